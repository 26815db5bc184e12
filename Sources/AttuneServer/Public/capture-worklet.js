// Runs on the audio thread: turns the microphone's float samples (at the context's rate) into
// 20 ms frames of 16 kHz PCM16 for /ws/conversation. Downsampling averages the input samples
// that fall into each output sample (a box filter), enough for speech at these ratios.
class CaptureProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.ratio = sampleRate / 16000;
    this.position = 0;      // fractional input position of the next output sample
    this.sum = 0;
    this.count = 0;
    this.frame = new Int16Array(320);
    this.filled = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    for (let i = 0; i < channel.length; i++) {
      this.sum += channel[i];
      this.count += 1;
      this.position += 1;
      if (this.position >= this.ratio) {
        this.position -= this.ratio;
        const value = Math.max(-1, Math.min(1, this.sum / this.count));
        this.frame[this.filled++] = Math.round(value * 32767);
        this.sum = 0;
        this.count = 0;
        if (this.filled === this.frame.length) {
          this.port.postMessage(this.frame.buffer.slice(0));
          this.filled = 0;
        }
      }
    }
    return true;
  }
}

registerProcessor('capture-processor', CaptureProcessor);
