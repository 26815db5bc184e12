import Foundation

/// How thoroughly to decode.
public enum TranscriptionPass: Sendable {
    /// A quick look at speech still in progress: encoder sized to the audio, one greedy pass.
    case partial
    /// The record of a finished utterance.
    case final
}

/// Turns 16 kHz mono speech into text.
public protocol SpeechTranscribing: Sendable {
    func transcribe(_ samples: [Float], pass: TranscriptionPass) async throws -> Transcript
    /// Like ``transcribe(_:pass:)``, for a decode that may stop being wanted: once `abandon`
    /// returns true (asked before the decode starts and between the model's computations, on the
    /// decoding thread) it stops and throws ``TranscriptionAbandoned``.
    func transcribe(_ samples: [Float], pass: TranscriptionPass, abandonIf abandon: @escaping @Sendable () -> Bool) async throws -> Transcript
}

extension SpeechTranscribing {
    /// For a transcriber that cannot stop a decode under way: only a decode not yet begun is abandoned.
    public func transcribe(_ samples: [Float], pass: TranscriptionPass, abandonIf abandon: @escaping @Sendable () -> Bool) async throws -> Transcript {
        if abandon() { throw TranscriptionAbandoned() }
        return try await transcribe(samples, pass: pass)
    }
}

/// A decode stopped because its result was no longer wanted.
public struct TranscriptionAbandoned: Error, Sendable, CustomStringConvertible {
    public init() {}
    public var description: String { "the decode was abandoned" }
}
