import AttuneCore
import CSherpaOnnx
import CWhisper
import Foundation

/// Versions of the native libraries linked into the process.
public enum NativeRuntime {
    public static var whisperVersion: String { String(cString: whisper_version()) }
    public static var onnxRuntimeVersion: String { String(cString: attune_onnxruntime_version()) }
    public static var sherpaOnnxVersion: String { String(cString: SherpaOnnxGetVersionStr()) }

    /// The CPU features ggml's kernels use on this machine, as whisper.cpp reports them.
    ///
    /// Read once: `whisper_print_system_info` rebuilds a static `std::string` on every call, so
    /// two threads calling it at once corrupt the heap (seen as a crash in the tests). A
    /// `static let` is initialised exactly once, under a lock.
    public static let whisperSystemInfo: String =
        String(cString: whisper_print_system_info()).trimmingCharacters(in: CharacterSet(charactersIn: " |\n"))

    /// Held while a sherpa-onnx object is created or destroyed (see ``NativeLifecycle/onnx``).
    public static var onnxLifecycle: NSLock { NativeLifecycle.onnx }

    /// Health entries for the libraries themselves (models report their own).
    public static func componentStatuses() -> [ComponentStatus] {
        [
            .measure("whisper.cpp", version: whisperVersion) { whisperSystemInfo },
            .measure("onnxruntime", version: onnxRuntimeVersion) { nil },
            .measure("sherpa-onnx", version: sherpaOnnxVersion) { String(cString: SherpaOnnxGetGitSha1()) },
        ]
    }
}
