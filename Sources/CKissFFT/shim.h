#ifndef ATTUNE_CKISSFFT_SHIM_H
#define ATTUNE_CKISSFFT_SHIM_H

// KISS FFT (BSD-3-Clause, Debian libkissfft-dev), float build: real-input FFTs for the acoustic
// features. pkg-config's cflags define kiss_fft_scalar as float.
#include <kiss_fftr.h>

#endif
