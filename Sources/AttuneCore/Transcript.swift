/// One stretch of recognised text.
public struct TranscriptSegment: Codable, Sendable, Equatable {
    public init(start: Double, end: Double, text: String, confidence: Double, noSpeechProbability: Double) {
        self.start = start
        self.end = end
        self.text = text
        self.confidence = confidence
        self.noSpeechProbability = noSpeechProbability
    }

    /// Seconds from the start of the audio.
    public var start: Double
    public var end: Double
    public var text: String
    /// Mean probability of the segment's text tokens.
    public var confidence: Double
    /// Whisper's probability that the window held no speech.
    public var noSpeechProbability: Double

    enum CodingKeys: String, CodingKey {
        case start, end, text, confidence
        case noSpeechProbability = "no_speech_prob"
    }
}

/// What a transcriber heard in some audio.
public struct Transcript: Codable, Sendable, Equatable {
    public var text: String
    public var segments: [TranscriptSegment]
    /// Token-weighted mean probability over the kept segments; 0 when nothing was kept.
    public var confidence: Double

    public init(text: String, segments: [TranscriptSegment], confidence: Double) {
        self.text = text
        self.segments = segments
        self.confidence = confidence
    }

    public static let empty = Transcript(text: "", segments: [], confidence: 0)
}

