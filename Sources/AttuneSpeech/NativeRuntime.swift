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
    public static var whisperSystemInfo: String {
        String(cString: whisper_print_system_info()).trimmingCharacters(in: CharacterSet(charactersIn: " |\n"))
    }

    /// Health entries for the libraries themselves (models report their own).
    public static func componentStatuses() -> [ComponentStatus] {
        [
            .measure("whisper.cpp", version: whisperVersion) { whisperSystemInfo },
            .measure("onnxruntime", version: onnxRuntimeVersion) { nil },
            .measure("sherpa-onnx", version: sherpaOnnxVersion) { String(cString: SherpaOnnxGetGitSha1()) },
        ]
    }
}
