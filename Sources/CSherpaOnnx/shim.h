#ifndef ATTUNE_CSHERPAONNX_SHIM_H
#define ATTUNE_CSHERPAONNX_SHIM_H

#include <stddef.h>
#include <stdint.h>
#include <sherpa-onnx/c-api/c-api.h>

// No reachable package ships ONNX Runtime's headers, but its C API is a stable ABI: `OrtGetApiBase()`
// returns {GetApi, GetVersionString}, and `GetApi(ATTUNE_ORT_API_VERSION)` returns the `OrtApi`
// table of function pointers. ONNX Runtime only ever appends to that table, so a prefix of it,
// with each entry at its index in the public `onnxruntime_c_api.h`, is enough. The entries Attune
// calls carry their signatures; the others are placeholders named after what they are. The static
// assertions below check the positions of the typed entries.

typedef struct OrtEnv OrtEnv;
typedef struct OrtStatus OrtStatus;
typedef struct OrtMemoryInfo OrtMemoryInfo;
typedef struct OrtSession OrtSession;
typedef struct OrtValue OrtValue;
typedef struct OrtRunOptions OrtRunOptions;
typedef struct OrtSessionOptions OrtSessionOptions;
typedef struct OrtTypeInfo OrtTypeInfo;
typedef struct OrtTensorTypeAndShapeInfo OrtTensorTypeAndShapeInfo;
typedef struct OrtAllocator OrtAllocator;

/// ONNX Runtime 1.28 (the library in sherpa-onnx-core 2.0.1) answers versions up to 28.
#define ATTUNE_ORT_API_VERSION 28

/// ONNXTensorElementDataType values used here.
enum {
    ATTUNE_ORT_FLOAT = 1,
    ATTUNE_ORT_INT64 = 7,
};
/// OrtLoggingLevel: warnings and worse.
enum { ATTUNE_ORT_LOG_WARNING = 2, ATTUNE_ORT_LOG_ERROR = 3 };
/// GraphOptimizationLevel: every optimisation.
enum { ATTUNE_ORT_ENABLE_ALL = 99 };
/// OrtAllocatorType and OrtMemType for CPU tensors.
enum { ATTUNE_ORT_ARENA_ALLOCATOR = 1, ATTUNE_ORT_MEM_TYPE_DEFAULT = 0 };

typedef struct AttuneOrtApi {
    void *CreateStatus;                                                         // 0
    void *GetErrorCode;                                                         // 1
    const char *(*GetErrorMessage)(const OrtStatus *status);                    // 2
    OrtStatus *(*CreateEnv)(int logLevel, const char *logID, OrtEnv **out);     // 3
    void *CreateEnvWithCustomLogger, *EnableTelemetryEvents, *DisableTelemetryEvents;  // 4-6
    OrtStatus *(*CreateSession)(const OrtEnv *env, const char *modelPath, const OrtSessionOptions *options,
                                OrtSession **out);                              // 7
    void *CreateSessionFromArray;                                               // 8
    OrtStatus *(*Run)(OrtSession *session, const OrtRunOptions *runOptions, const char *const *inputNames,
                      const OrtValue *const *inputs, size_t inputCount, const char *const *outputNames,
                      size_t outputCount, OrtValue **outputs);                  // 9
    OrtStatus *(*CreateSessionOptions)(OrtSessionOptions **out);                // 10
    void *SetOptimizedModelFilePath, *CloneSessionOptions, *SetSessionExecutionMode, *EnableProfiling,
        *DisableProfiling, *EnableMemPattern, *DisableMemPattern, *EnableCpuMemArena, *DisableCpuMemArena,
        *SetSessionLogId, *SetSessionLogVerbosityLevel, *SetSessionLogSeverityLevel;  // 11-22
    OrtStatus *(*SetSessionGraphOptimizationLevel)(OrtSessionOptions *options, int level);  // 23
    OrtStatus *(*SetIntraOpNumThreads)(OrtSessionOptions *options, int threads);  // 24
    OrtStatus *(*SetInterOpNumThreads)(OrtSessionOptions *options, int threads);  // 25
    void *CreateCustomOpDomain, *CustomOpDomainAdd, *AddCustomOpDomain, *RegisterCustomOpsLibrary;  // 26-29
    OrtStatus *(*SessionGetInputCount)(const OrtSession *session, size_t *out);   // 30
    OrtStatus *(*SessionGetOutputCount)(const OrtSession *session, size_t *out);  // 31
    void *SessionGetOverridableInitializerCount;                                // 32
    OrtStatus *(*SessionGetInputTypeInfo)(const OrtSession *session, size_t index, OrtTypeInfo **out);   // 33
    OrtStatus *(*SessionGetOutputTypeInfo)(const OrtSession *session, size_t index, OrtTypeInfo **out);  // 34
    void *SessionGetOverridableInitializerTypeInfo;                             // 35
    OrtStatus *(*SessionGetInputName)(const OrtSession *session, size_t index, OrtAllocator *allocator, char **out);   // 36
    OrtStatus *(*SessionGetOutputName)(const OrtSession *session, size_t index, OrtAllocator *allocator, char **out);  // 37
    void *SessionGetOverridableInitializerName, *CreateRunOptions, *RunOptionsSetRunLogVerbosityLevel,
        *RunOptionsSetRunLogSeverityLevel, *RunOptionsSetRunTag, *RunOptionsGetRunLogVerbosityLevel,
        *RunOptionsGetRunLogSeverityLevel, *RunOptionsGetRunTag, *RunOptionsSetTerminate,
        *RunOptionsUnsetTerminate, *CreateTensorAsOrtValue;                     // 38-48
    OrtStatus *(*CreateTensorWithDataAsOrtValue)(const OrtMemoryInfo *info, void *data, size_t byteCount,
                                                 const int64_t *shape, size_t rank, int elementType,
                                                 OrtValue **out);               // 49
    void *IsTensor;                                                             // 50
    OrtStatus *(*GetTensorMutableData)(OrtValue *value, void **out);            // 51
    void *FillStringTensor, *GetStringTensorDataLength, *GetStringTensorContent;  // 52-54
    OrtStatus *(*CastTypeInfoToTensorInfo)(const OrtTypeInfo *typeInfo, const OrtTensorTypeAndShapeInfo **out);  // 55
    void *GetOnnxTypeFromTypeInfo, *CreateTensorTypeAndShapeInfo, *SetTensorElementType, *SetDimensions;  // 56-59
    OrtStatus *(*GetTensorElementType)(const OrtTensorTypeAndShapeInfo *info, int *out);      // 60
    OrtStatus *(*GetDimensionsCount)(const OrtTensorTypeAndShapeInfo *info, size_t *out);     // 61
    OrtStatus *(*GetDimensions)(const OrtTensorTypeAndShapeInfo *info, int64_t *values, size_t count);  // 62
    void *GetSymbolicDimensions;                                                // 63
    OrtStatus *(*GetTensorShapeElementCount)(const OrtTensorTypeAndShapeInfo *info, size_t *out);  // 64
    OrtStatus *(*GetTensorTypeAndShape)(const OrtValue *value, OrtTensorTypeAndShapeInfo **out);  // 65
    void *GetTypeInfo, *GetValueType, *CreateMemoryInfo;                        // 66-68
    OrtStatus *(*CreateCpuMemoryInfo)(int allocatorType, int memoryType, OrtMemoryInfo **out);  // 69
    void *CompareMemoryInfo, *MemoryInfoGetName, *MemoryInfoGetId, *MemoryInfoGetMemType, *MemoryInfoGetType,
        *AllocatorAlloc;                                                        // 70-75
    OrtStatus *(*AllocatorFree)(OrtAllocator *allocator, void *pointer);        // 76
    void *AllocatorGetInfo;                                                     // 77
    OrtStatus *(*GetAllocatorWithDefaultOptions)(OrtAllocator **out);           // 78
    void *AddFreeDimensionOverride, *GetValue, *GetValueCount, *CreateValue, *CreateOpaqueValue,
        *GetOpaqueValue, *KernelInfoGetAttributeFloat, *KernelInfoGetAttributeInt64,
        *KernelInfoGetAttributeString, *KernelContextGetInputCount, *KernelContextGetOutputCount,
        *KernelContextGetInput, *KernelContextGetOutput;                        // 79-91
    void (*ReleaseEnv)(OrtEnv *value);                                          // 92
    void (*ReleaseStatus)(OrtStatus *value);                                    // 93
    void (*ReleaseMemoryInfo)(OrtMemoryInfo *value);                            // 94
    void (*ReleaseSession)(OrtSession *value);                                  // 95
    void (*ReleaseValue)(OrtValue *value);                                      // 96
    void *ReleaseRunOptions;                                                    // 97
    void (*ReleaseTypeInfo)(OrtTypeInfo *value);                                // 98
    void (*ReleaseTensorTypeAndShapeInfo)(OrtTensorTypeAndShapeInfo *value);    // 99
    void (*ReleaseSessionOptions)(OrtSessionOptions *value);                    // 100
} AttuneOrtApi;

_Static_assert(__builtin_offsetof(AttuneOrtApi, GetErrorMessage) == 2 * sizeof(void *), "OrtApi index 2");
_Static_assert(__builtin_offsetof(AttuneOrtApi, Run) == 9 * sizeof(void *), "OrtApi index 9");
_Static_assert(__builtin_offsetof(AttuneOrtApi, SetIntraOpNumThreads) == 24 * sizeof(void *), "OrtApi index 24");
_Static_assert(__builtin_offsetof(AttuneOrtApi, SessionGetInputCount) == 30 * sizeof(void *), "OrtApi index 30");
_Static_assert(__builtin_offsetof(AttuneOrtApi, SessionGetInputName) == 36 * sizeof(void *), "OrtApi index 36");
_Static_assert(__builtin_offsetof(AttuneOrtApi, CreateTensorWithDataAsOrtValue) == 49 * sizeof(void *), "OrtApi index 49");
_Static_assert(__builtin_offsetof(AttuneOrtApi, CastTypeInfoToTensorInfo) == 55 * sizeof(void *), "OrtApi index 55");
_Static_assert(__builtin_offsetof(AttuneOrtApi, GetTensorElementType) == 60 * sizeof(void *), "OrtApi index 60");
_Static_assert(__builtin_offsetof(AttuneOrtApi, GetTensorTypeAndShape) == 65 * sizeof(void *), "OrtApi index 65");
_Static_assert(__builtin_offsetof(AttuneOrtApi, CreateCpuMemoryInfo) == 69 * sizeof(void *), "OrtApi index 69");
_Static_assert(__builtin_offsetof(AttuneOrtApi, AllocatorFree) == 76 * sizeof(void *), "OrtApi index 76");
_Static_assert(__builtin_offsetof(AttuneOrtApi, GetAllocatorWithDefaultOptions) == 78 * sizeof(void *), "OrtApi index 78");
_Static_assert(__builtin_offsetof(AttuneOrtApi, ReleaseEnv) == 92 * sizeof(void *), "OrtApi index 92");
_Static_assert(__builtin_offsetof(AttuneOrtApi, ReleaseSessionOptions) == 100 * sizeof(void *), "OrtApi index 100");

typedef struct AttuneOrtApiBase {
    const AttuneOrtApi *(*GetApi)(uint32_t version);
    const char *(*GetVersionString)(void);
} AttuneOrtApiBase;

const AttuneOrtApiBase *OrtGetApiBase(void);

static inline const char *attune_onnxruntime_version(void) {
    const AttuneOrtApiBase *base = OrtGetApiBase();
    return base ? base->GetVersionString() : "";
}

/// The API table, or NULL if this library does not offer ATTUNE_ORT_API_VERSION.
static inline const AttuneOrtApi *attune_onnxruntime_api(void) {
    const AttuneOrtApiBase *base = OrtGetApiBase();
    return base ? base->GetApi(ATTUNE_ORT_API_VERSION) : 0;
}

#endif
