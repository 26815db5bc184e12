#ifndef ATTUNE_CESPEAKNG_SHIM_H
#define ATTUNE_CESPEAKNG_SHIM_H

#include <stdlib.h>
#include <string.h>
#include <espeak-ng/speak_lib.h>

// libespeak-ng keeps global state: callers serialise every call (Swift holds one lock).

// Samples that the synthesis callback collects; `user_data` of espeak_Synth points at one.
typedef struct AttuneEspeakSamples {
    short *data;
    int count;
    int capacity;
} AttuneEspeakSamples;

static int attune_espeak_collect(short *samples, int count, espeak_EVENT *events) {
    if (samples == NULL || count <= 0 || events == NULL) return 0;
    AttuneEspeakSamples *sink = (AttuneEspeakSamples *)events->user_data;
    if (sink == NULL) return 0;
    if (sink->count + count > sink->capacity) {
        int capacity = (sink->capacity + count) * 2;
        short *grown = (short *)realloc(sink->data, (size_t)capacity * sizeof(short));
        if (grown == NULL) return 1;  // stop synthesis
        sink->data = grown;
        sink->capacity = capacity;
    }
    memcpy(sink->data + sink->count, samples, (size_t)count * sizeof(short));
    sink->count += count;
    return 0;
}

// Initialises espeak-ng for synchronous synthesis into memory; returns its sample rate, or -1.
static inline int attune_espeak_initialize(void) {
    int rate = espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, NULL, 0);
    if (rate > 0) espeak_SetSynthCallback(attune_espeak_collect);
    return rate;
}

// Synthesises UTF-8 `text` into `sink` (which the caller frees with attune_espeak_free).
static inline int attune_espeak_synthesize(const char *text, AttuneEspeakSamples *sink) {
    espeak_ERROR error = espeak_Synth(text, strlen(text) + 1, 0, POS_CHARACTER, 0,
                                      espeakCHARS_UTF8, NULL, sink);
    if (error != EE_OK) return (int)error;
    return (int)espeak_Synchronize();
}

static inline void attune_espeak_free(AttuneEspeakSamples *sink) {
    free(sink->data);
    sink->data = NULL;
    sink->count = sink->capacity = 0;
}

// The IPA phonemes of the next clause of `*text`, advancing `*text` (NULL at the end).
static inline const char *attune_espeak_next_phonemes(const char **text) {
    return espeak_TextToPhonemes((const void **)text, espeakCHARS_UTF8, espeakPHONEMES_IPA);
}

#endif
