#ifndef ATTUNE_CWHISPER_SHIM_H
#define ATTUNE_CWHISPER_SHIM_H

#include <whisper.h>
#include <ggml.h>
#include <ggml-cpu.h>
#include <ggml-backend.h>
#include <gguf.h>

#endif
