#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <math.h>
#include <kissfft/kiss_fftr.h>
#include <fftw3.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(void){
  const int n=512, reps=200000; float in[512]; for(int i=0;i<n;i++) in[i]=sinf(i*0.1f)+0.01f*(rand()%100);
  kiss_fftr_cfg k=kiss_fftr_alloc(n,0,0,0); kiss_fft_cpx ko[257];
  double t=now(); for(int r=0;r<reps;r++){ in[r%n]+=1e-7f; kiss_fftr(k,in,ko);} double tk=(now()-t)/reps*1e9;
  float *fi=fftwf_malloc(sizeof(float)*n); fftwf_complex *fo=fftwf_malloc(sizeof(fftwf_complex)*257);
  fftwf_plan p=fftwf_plan_dft_r2c_1d(n,fi,fo,FFTW_MEASURE); for(int i=0;i<n;i++) fi[i]=in[i];
  t=now(); for(int r=0;r<reps;r++){ fi[r%n]+=1e-7f; fftwf_execute(p);} double tf=(now()-t)/reps*1e9;
  double diff=0; kiss_fftr(k,fi,ko); fftwf_execute(p); for(int i=0;i<257;i++) diff=fmax(diff,fabs(ko[i].r-fo[i][0])+fabs(ko[i].i-fo[i][1]));
  printf("512-point real FFT: kissfft %.0f ns, fftw3f %.0f ns, max difference %.2g\n",tk,tf,diff); return 0;}
