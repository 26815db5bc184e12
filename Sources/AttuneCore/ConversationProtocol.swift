import Foundation

/// Messages the server sends on `/ws/conversation`, as JSON text frames with a `type` field.
/// The README's "WebSocket protocol" section documents each one.
public enum ServerEvent: Sendable, Equatable {
    case sessionStarted(sessionID: String, sampleRate: Int, maxFrameBytes: Int)
    case speechStarted(utterance: Int, start: Double)
    case speechEnded(utterance: Int, start: Double, end: Double, reason: String)
    case transcriptPartial(utterance: Int, text: String)
    case transcriptFinal(utterance: Int, start: Double, end: Double, transcript: Transcript, latencyMilliseconds: Double)
    /// One channel's estimate, e.g. the text emotion of a final transcript.
    case emotion(utterance: Int?, estimate: EmotionEstimate)
    /// The subject's fused state changed materially.
    case emotionUpdate(estimate: EmotionEstimate)
    /// The faces of a camera frame (`video_frame`), largest first; `droppedFrames` counts the
    /// session's frames skipped so far for arriving faster than `face.max_fps` or while one was analysed.
    case faces(FrameFaces)
    /// Attune starts answering utterance `utterance`.
    /// `opener`: the words said before the model's (`reply.opener`), nil when there are none.
    case replyStarted(reply: Int, utterance: Int, emotion: EmotionLabel, intensity: String, crisis: Bool, opener: String?)
    /// The next sentence of the reply's text, as it will be spoken.
    case replyTextDelta(reply: Int, sentence: Int, text: String)
    /// Header of one sentence's audio: the next binary frame holds `samples` PCM16 samples.
    case replyAudio(reply: Int, sentence: Int, sampleRate: Int, samples: Int, startMilliseconds: Double)
    /// The reply is complete (or was stopped); timings in ms from the end of the person's speech.
    /// `rejected` lists the model's sentences that the reply guard replaced or dropped.
    case replyDone(reply: Int, text: String, interrupted: Bool, timings: [String: Double], rejected: [String])
    /// The person spoke over the reply: stop playing it now.
    case stopPlayback(reply: Int, heard: String)
    /// The session's settings after a `configure` message.
    case configured(persona: String, voice: String, rate: Double, silenceMilliseconds: Int)
    case error(code: ErrorCode, message: String)
    case pong

    /// Machine-readable reasons in `error` events.
    public enum ErrorCode: String, Sendable, Codable, CaseIterable {
        case emptyFrame = "empty_frame"
        case oddFrame = "odd_frame"
        case frameTooLarge = "frame_too_large"
        case badMessage = "bad_message"
        case unknownMessage = "unknown_message"
        case unsupportedSampleRate = "unsupported_sample_rate"
        case badSamples = "bad_samples"
        case rateLimited = "rate_limited"
        case busy
        case transcriptionFailed = "transcription_failed"
        case unavailable
        /// The language model could not answer; a short spoken apology replaces the reply.
        case llmUnavailable = "llm_unavailable"
        /// Speech synthesis failed; the reply still arrives as text.
        case ttsFailed = "tts_failed"
        case badSetting = "bad_setting"
        /// A camera frame that is not a JPEG or PNG, over a limit, or does not decode.
        case badFrame = "bad_frame"
    }

    /// The event as one line of JSON.
    public var json: String {
        var object: [String: Any]
        switch self {
        case let .sessionStarted(sessionID, sampleRate, maxFrameBytes):
            object = ["type": "session_started", "session_id": sessionID, "sample_rate": sampleRate, "max_frame_bytes": maxFrameBytes]
        case let .speechStarted(utterance, start):
            object = ["type": "speech_started", "utterance": utterance, "start": start.rounded(to: 3)]
        case let .speechEnded(utterance, start, end, reason):
            object = ["type": "speech_ended", "utterance": utterance, "start": start.rounded(to: 3), "end": end.rounded(to: 3), "reason": reason]
        case let .transcriptPartial(utterance, text):
            object = ["type": "transcript_partial", "utterance": utterance, "text": text]
        case let .transcriptFinal(utterance, start, end, transcript, latency):
            object = [
                "type": "transcript_final", "utterance": utterance, "text": transcript.text,
                "start": start.rounded(to: 3), "end": end.rounded(to: 3),
                "confidence": transcript.confidence.rounded(to: 4), "latency_ms": latency.rounded(to: 1),
                "segments": transcript.segments.map { segment -> [String: Any] in
                    [
                        "start": (start + segment.start).rounded(to: 3), "end": min(end, start + segment.end).rounded(to: 3),
                        "text": segment.text, "confidence": segment.confidence.rounded(to: 4),
                        "no_speech_prob": segment.noSpeechProbability.rounded(to: 4),
                    ]
                },
            ]
        case let .emotion(utterance, estimate):
            object = estimate.jsonObject
            object["type"] = "emotion"
            if let utterance { object["utterance"] = utterance }
        case let .emotionUpdate(estimate):
            object = estimate.jsonObject
            object["type"] = "emotion_update"
        case let .faces(frame):
            object = [
                "type": "faces", "face_detected": !frame.faces.isEmpty, "width": frame.width, "height": frame.height,
                "timestamp": frame.timestamp.rounded(to: 3), "dropped_frames": frame.droppedFrames,
                "faces": frame.faces.map { face -> [String: Any] in
                    [
                        "box": ["x": face.x.rounded(to: 1), "y": face.y.rounded(to: 1), "width": face.width.rounded(to: 1), "height": face.height.rounded(to: 1)],
                        "emotion": face.emotion.rawValue, "confidence": face.confidence.rounded(to: 4),
                    ]
                },
            ]
        case let .replyStarted(reply, utterance, emotion, intensity, crisis, opener):
            object = ["type": "reply_started", "reply": reply, "utterance": utterance, "emotion": emotion.rawValue, "intensity": intensity, "crisis": crisis]
            if let opener { object["opener"] = opener }
        case let .replyTextDelta(reply, sentence, text):
            object = ["type": "reply_text_delta", "reply": reply, "sentence": sentence, "text": text]
        case let .replyAudio(reply, sentence, sampleRate, samples, start):
            object = [
                "type": "reply_audio", "reply": reply, "sentence": sentence, "sample_rate": sampleRate, "samples": samples,
                "encoding": "pcm_s16le", "start_ms": start.rounded(to: 1),
            ]
        case let .replyDone(reply, text, interrupted, timings, rejected):
            object = [
                "type": "reply_done", "reply": reply, "text": text, "interrupted": interrupted,
                "timings": timings.mapValues { $0.rounded(to: 1) }, "rejected": rejected,
            ]
        case let .stopPlayback(reply, heard):
            object = ["type": "stop_playback", "reply": reply, "heard": heard]
        case let .configured(persona, voice, rate, silence):
            object = ["type": "configured", "persona": persona, "voice": voice, "rate": rate, "silence_ms": silence]
        case let .error(code, message):
            object = ["type": "error", "code": code.rawValue, "message": message]
        case .pong:
            object = ["type": "pong"]
        }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}

/// Messages a client sends as JSON text frames (binary frames carry raw 16 kHz PCM16 audio).
public enum ClientMessage: Sendable, Equatable {
    /// Audio at any rate from 8 to 48 kHz, base64 of little-endian PCM16 (or float32).
    case audioData(bytes: [UInt8], sampleRate: Int, encoding: SampleEncoding)
    /// The person is done speaking (e.g. a second click on the microphone).
    case endTurn
    case ping
    /// Session settings; each field is optional and keeps its value when absent.
    case configure(persona: String?, voice: String?, rate: Double?, silenceMilliseconds: Int?)
    /// How much of a reply's audio the client has played, in milliseconds from its start.
    case playback(reply: Int, playedMilliseconds: Double)
    /// Say a text (the "text instead of voice" path, and tests): handled like a final transcript.
    case userText(String)
    /// A camera frame: a `data:image/jpeg;base64,` (or PNG) URL or bare base64, and the client's time.
    case videoFrame(frame: String, timestamp: Double?)

    public enum SampleEncoding: String, Sendable {
        case pcm16 = "pcm_s16le"
        case float32 = "pcm_f32le"
    }

    public struct ParseError: Error, Sendable {
        public let code: ServerEvent.ErrorCode
        public let message: String
    }

    /// Longest part of a client's bad input that an error message repeats.
    public static let echoLimit = 40

    /// Parses one text frame. Every field is checked for its JSON type and range; a number that
    /// does not fit (`1e300` where a whole number is expected, NaN, a fraction) is refused with
    /// `bad_message` (`bad_setting` for `configure`), never converted.
    public init(json text: String, maxTextBytes: Int = 4_000) throws(ParseError) {
        let data = Data(text.utf8)
        let envelope: Envelope
        do {
            envelope = try JSONDecoder().decode(Envelope.self, from: data)
        } catch {
            throw ParseError(code: .badMessage, message: "text frames must be JSON objects with a string \"type\"")
        }
        switch envelope.type {
        case "audio_data":
            let body: AudioDataBody = try Self.decode(data, as: "audio_data", code: .badMessage)
            guard let bytes = Data(base64Encoded: body.audio_data) else {
                throw ParseError(code: .badMessage, message: "audio_data: \"audio_data\" is not valid base64")
            }
            guard StreamLimits.sampleRates.contains(body.sample_rate) else {
                throw ParseError(
                    code: .unsupportedSampleRate,
                    message: "sample_rate \(body.sample_rate) Hz is outside \(StreamLimits.sampleRates.lowerBound)-\(StreamLimits.sampleRates.upperBound) Hz")
            }
            let name = body.encoding ?? SampleEncoding.pcm16.rawValue
            guard let encoding = SampleEncoding(rawValue: name) else {
                throw ParseError(code: .badMessage, message: "encoding must be pcm_s16le or pcm_f32le, got \"\(Self.prefix(name))\"")
            }
            self = .audioData(bytes: [UInt8](bytes), sampleRate: body.sample_rate, encoding: encoding)
        case "end_turn":
            self = .endTurn
        case "ping":
            self = .ping
        case "configure":
            let body: ConfigureBody = try Self.decode(data, as: "configure", code: .badSetting)
            if let rate = body.rate, !rate.isFinite {
                throw ParseError(code: .badSetting, message: "configure: rate must be a finite number")
            }
            self = .configure(persona: body.persona, voice: body.voice, rate: body.rate, silenceMilliseconds: body.silence_ms)
        case "playback":
            let body: PlaybackBody = try Self.decode(data, as: "playback", code: .badMessage)
            guard body.reply > 0, body.played_ms.isFinite, (0...Self.maxPlayedMilliseconds).contains(body.played_ms) else {
                throw ParseError(code: .badMessage, message: "playback needs \"reply\" (≥ 1) and \"played_ms\" (0 to \(Int(Self.maxPlayedMilliseconds)))")
            }
            self = .playback(reply: body.reply, playedMilliseconds: body.played_ms)
        case "user_text":
            let body: UserTextBody = try Self.decode(data, as: "user_text", code: .badMessage)
            guard body.text.utf8.count <= maxTextBytes else {
                throw ParseError(code: .badMessage, message: "user_text is \(body.text.utf8.count) bytes; the limit is \(maxTextBytes) (setting stream.max_text_bytes)")
            }
            guard !body.text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                throw ParseError(code: .badMessage, message: "user_text needs a non-empty \"text\"")
            }
            self = .userText(body.text)
        case "video_frame":
            let body: VideoFrameBody = try Self.decode(data, as: "video_frame", code: .badMessage)
            guard body.frame.count > 0, body.timestamp?.isFinite ?? true else {
                throw ParseError(code: .badMessage, message: "video_frame needs a non-empty \"frame\" and a finite \"timestamp\"")
            }
            self = .videoFrame(frame: body.frame, timestamp: body.timestamp)
        case let other?:
            throw ParseError(code: .unknownMessage, message: "unknown message type \"\(Self.prefix(other))\"")
        case nil:
            throw ParseError(code: .badMessage, message: "text frames need a string \"type\"")
        }
    }

    /// A day of audio: larger playback positions are nonsense.
    static let maxPlayedMilliseconds = 86_400_000.0

    /// At most ``echoLimit`` characters of a client's input, for error messages.
    public static func prefix(_ text: String) -> String {
        text.count <= echoLimit ? text : String(text.prefix(echoLimit)) + "…"
    }

    private static func decode<Body: MessageBody>(_ data: Data, as type: String, code: ServerEvent.ErrorCode) throws(ParseError) -> Body {
        do {
            return try JSONDecoder().decode(Body.self, from: data)
        } catch let DecodingError.keyNotFound(key, _) {
            throw ParseError(code: code, message: "\(type) needs \"\(prefix(key.stringValue))\"")
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context),
            let DecodingError.dataCorrupted(context)
        {
            let field = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw ParseError(code: code, message: "\(type): \"\(prefix(field))\" has the wrong type or is out of range (\(Body.expected))")
        } catch {
            throw ParseError(code: code, message: "\(type): malformed message (\(Body.expected))")
        }
    }

    /// A message's fields; `expected` describes them for error messages.
    private protocol MessageBody: Decodable {
        static var expected: String { get }
    }

    private struct Envelope: Decodable {
        let type: String?
    }

    // The field names are the wire's; each body says what it expects for error messages.
    private struct AudioDataBody: MessageBody {
        let audio_data: String
        let sample_rate: Int
        let encoding: String?
        static let expected = "audio_data: base64 string, sample_rate: whole number of Hz, encoding: pcm_s16le or pcm_f32le"
    }

    private struct ConfigureBody: MessageBody {
        let persona: String?
        let voice: String?
        let rate: Double?
        let silence_ms: Int?
        static let expected = "persona, voice: strings; rate: number; silence_ms: whole number"
    }

    private struct PlaybackBody: MessageBody {
        let reply: Int
        let played_ms: Double
        static let expected = "reply: whole number, played_ms: number"
    }

    private struct VideoFrameBody: MessageBody {
        let frame: String
        let timestamp: Double?
        static let expected = "frame: data URL or base64 string, timestamp: number"
    }

    private struct UserTextBody: MessageBody {
        let text: String
        static let expected = "text: string"
    }
}

/// The faces of one camera frame, for the `faces` event.
public struct FrameFaces: Sendable, Equatable {
    public struct Face: Sendable, Equatable {
        public let x: Double, y: Double, width: Double, height: Double
        public let emotion: EmotionLabel
        public let confidence: Double

        public init(x: Double, y: Double, width: Double, height: Double, emotion: EmotionLabel, confidence: Double) {
            (self.x, self.y, self.width, self.height) = (x, y, width, height)
            self.emotion = emotion
            self.confidence = confidence
        }
    }

    public let faces: [Face]
    public let width: Int
    public let height: Int
    public let timestamp: Double
    public let droppedFrames: Int

    public init(faces: [Face], width: Int, height: Int, timestamp: Double, droppedFrames: Int) {
        self.faces = faces
        self.width = width
        self.height = height
        self.timestamp = timestamp
        self.droppedFrames = droppedFrames
    }
}

/// Limits of the live audio stream that the protocol itself fixes.
public enum StreamLimits {
    /// Lowest and highest sample rates accepted in `audio_data`.
    public static let sampleRates = 8_000...48_000
}

extension EmotionEstimate {
    /// The estimate as a JSON object, probabilities by class name, rounded for the wire.
    var jsonObject: [String: Any] {
        [
            "probabilities": Dictionary(uniqueKeysWithValues: probabilities.map { ($0.key.rawValue, $0.value.rounded(to: 4)) }),
            "label": label.rawValue, "confidence": confidence.rounded(to: 4),
            "valence": valence.rounded(to: 4), "arousal": arousal.rounded(to: 4),
            "channel": channel.rawValue, "subject": subject, "time": time.rounded(to: 3),
        ]
    }
}

extension Double {
    /// The value rounded to `places` decimal places, as messages and reports write numbers.
    public func rounded(to places: Int) -> Double {
        let scale = pow(10, Double(places))
        return (self * scale).rounded() / scale
    }
}
