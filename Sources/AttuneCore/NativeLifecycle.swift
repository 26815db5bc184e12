import Foundation

/// Locks shared by the wrappers of native libraries.
public enum NativeLifecycle {
    /// Held while an object that owns an ONNX Runtime environment (a sherpa-onnx engine, an
    /// ``OnnxModel`` session) is created or destroyed: ONNX Runtime fails ("Only one instance of
    /// LoggingManager ... can exist") when one environment is set up while another is torn down
    /// on a different thread.
    public static let onnx = NSLock()
}
