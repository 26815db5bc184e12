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
}
