#ifndef ATTUNE_CSHERPAONNX_SHIM_H
#define ATTUNE_CSHERPAONNX_SHIM_H

#include <stdint.h>
#include <sherpa-onnx/c-api/c-api.h>

// No reachable package ships ONNX Runtime's headers, but its entry point is a stable C ABI:
// `OrtGetApiBase()` returns two function pointers, the second of which reports the version.
// Only that much is declared here, to show the runtime's version in /api/health.
typedef struct AttuneOrtApiBase {
    const void *(*GetApi)(uint32_t version);
    const char *(*GetVersionString)(void);
} AttuneOrtApiBase;

const AttuneOrtApiBase *OrtGetApiBase(void);

static inline const char *attune_onnxruntime_version(void) {
    const AttuneOrtApiBase *base = OrtGetApiBase();
    return base ? base->GetVersionString() : "";
}

#endif
