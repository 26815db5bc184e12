import AttuneCore
import AttuneTestSupport
import Foundation
import Testing

@testable import AttuneConversation

/// The README's protocol tables, the typed messages and the pages agree: every documented client
/// example decodes, every server message is documented with every field it carries, every error
/// code is listed, and the pages only send and handle messages that exist.
@Suite struct ProtocolDocumentationTests {
    /// One table of a README section: the first cell of each row, and the backticked names in the rest.
    struct Row {
        let first: String
        let names: Set<String>
    }

    static func section(_ heading: String) throws -> String {
        let readme = try String(contentsOf: TestData.packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        guard let start = readme.range(of: "## " + heading) else { throw TestFailure("README has no section \(heading)") }
        let rest = readme[start.upperBound...]
        let end = rest.range(of: "\n## ")?.lowerBound ?? rest.endIndex
        return String(rest[..<end])
    }

    /// The rows of the table whose header starts with `header`.
    static func table(_ section: String, header: String) -> [Row] {
        var rows: [Row] = []
        var inTable = false
        for line in section.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("| \(header)") { inTable = true; continue }
            guard inTable else { continue }
            guard line.hasPrefix("|") else { if !rows.isEmpty { break } else { continue } }
            if line.hasPrefix("|---") { continue }
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 3 else { continue }
            let first = cells[1].trimmingCharacters(in: CharacterSet(charactersIn: "`"))
            let rest = cells[2...].joined(separator: "|")
            let names = rest.matches(of: /`([a-z_]+)`/).map { String($0.output.1) }
            rows.append(Row(first: first, names: Set(names)))
        }
        return rows
    }

    /// A documented example with its placeholders filled in.
    static func example(_ documented: String) -> String {
        documented
            .replacingOccurrences(of: "\"<base64 PCM16>\"", with: "\"AAAA\"")
            .replacingOccurrences(of: "\"<base64>\"", with: "\"AAAA\"")
            .replacingOccurrences(of: "8000-48000", with: "16000")
            .replacingOccurrences(of: "{...}", with: "{}")
            .replacingOccurrences(of: "\"...\"", with: "\"hello\"")
    }

    static func keys(_ json: String, under container: String? = nil) throws -> (type: String, keys: Set<String>) {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let fields = container.map { object[$0] as? [String: Any] ?? [:] } ?? object
        return (object["type"] as? String ?? "", Set(fields.keys).subtracting(["type"]))
    }

    // MARK: - /ws/conversation

    static var conversationEvents: [ServerEvent] {
        let estimate = EmotionEstimate(scores: [.joy: 0.7, .neutral: 0.3], channel: .text, subject: "s1", time: 1)
        let fused = EmotionEstimate(scores: [.joy: 0.7, .neutral: 0.3], channel: .fused, subject: "s1", time: 1)
        let transcript = Transcript(
            text: "hello", segments: [TranscriptSegment(start: 0, end: 1, text: "hello", confidence: 0.9, noSpeechProbability: 0.01)],
            confidence: 0.9)
        let events: [ServerEvent] = [
            .sessionStarted(sessionID: "s1", sampleRate: 16_000, maxFrameBytes: 64_000),
            .speechStarted(utterance: 1, start: 0.5),
            .speechEnded(utterance: 1, start: 0.5, end: 1.5, reason: "silence"),
            .transcriptPartial(utterance: 1, text: "hel"),
            .transcriptFinal(utterance: 1, start: 0.5, end: 1.5, transcript: transcript, latencyMilliseconds: 12),
            .emotion(utterance: 1, estimate: estimate),
            .emotionUpdate(estimate: fused),
            .faces(FrameFaces(
                faces: [.init(x: 200, y: 120, width: 180, height: 220, emotion: .joy, confidence: 0.8)], width: 640, height: 480,
                timestamp: 1_700_000_000.5, droppedFrames: 0)),
            .replyStarted(reply: 1, utterance: 1, emotion: .joy, intensity: "mild", crisis: false, opener: "Oh."),
            .replyTextDelta(reply: 1, sentence: 1, text: "Oh."),
            .replyAudio(reply: 1, sentence: 1, sampleRate: 22_050, samples: 100, startMilliseconds: 0),
            .replyDone(reply: 1, text: "Nice.", interrupted: false, timings: ["first_token_ms": 100], rejected: []),
            .stopPlayback(reply: 1, heard: "Ni"),
            .configured(persona: "companion", voice: "joe", rate: 1, silenceMilliseconds: 500),
            .error(code: .busy, message: "busy"),
            .pong,
        ]
        // Adding a case to ServerEvent breaks this switch until the case has a sample above.
        for event in events {
            switch event {
            case .sessionStarted, .speechStarted, .speechEnded, .transcriptPartial, .transcriptFinal, .emotion, .emotionUpdate, .faces,
                .replyStarted, .replyTextDelta, .replyAudio, .replyDone, .stopPlayback, .configured, .error, .pong:
                break
            }
        }
        return events
    }

    @Test func everyDocumentedConversationMessageDecodes() throws {
        let rows = Self.table(try Self.section("WebSocket protocol (`/ws/conversation`)"), header: "frame |")
        let examples = rows.map(\.first).filter { $0.hasPrefix("{") }
        #expect(examples.count >= 6, "\(rows.map(\.first))")
        for documented in examples {
            #expect(throws: Never.self, "\(documented)") { _ = try ClientMessage(json: Self.example(documented)) }
        }
    }

    @Test func everyConversationEventIsDocumentedWithItsFields() throws {
        let rows = Self.table(try Self.section("WebSocket protocol (`/ws/conversation`)"), header: "event |")
        let documented = Dictionary(rows.map { ($0.first, $0.names) }, uniquingKeysWith: { $0.union($1) })
        let samples = Self.conversationEvents
        let sent = Set(try samples.map { try Self.keys($0.json).type })
        #expect(Set(documented.keys) == sent, "documented but not sent, or sent but not documented: \(Set(documented.keys).symmetricDifference(sent).sorted())")
        for event in samples {
            let (type, keys) = try Self.keys(event.json)
            // `emotion_update` documents itself as "the same fields" as `emotion`.
            let names = type == "emotion_update" ? (documented["emotion"] ?? []) : (documented[type] ?? [])
            #expect(keys.subtracting(names).isEmpty, "\(type) sends \(keys.subtracting(names).sorted()) that the README does not name")
        }
        let codes = documented["error"] ?? []
        for code in ServerEvent.ErrorCode.allCases { #expect(codes.contains(code.rawValue), "error code \(code.rawValue) is not documented") }
    }

    // MARK: - /ws/rooms

    static var roomMessages: [RoomServerMessage] {
        let room = RoomID("r1")!, ann = ParticipantID("ann")!, mic = TrackID("mic")!
        let update = EmotionUpdate(
            room: room, participant: ann,
            estimate: EmotionEstimate(scores: [.joy: 0.7, .neutral: 0.3], channel: .fused, subject: "ann", time: 1),
            source: EmotionSource(channel: .voice, kind: .chunk, track: mic, start: 1, end: 2.5))
        let snapshot = ParticipantSnapshot(userID: ann, userInfo: .object(["name": .string("Ann")]), joinedAt: "2026-01-01T00:00:00.000Z", tracks: [mic], emotion: update)
        let messages: [RoomServerMessage] = [
            .roomJoined(room: room, user: ann, participants: [snapshot]),
            .participantJoined(room: room, participant: snapshot),
            .participantLeft(room: room, user: ann),
            .emotionUpdate(update),
            .roomStatus(room: room, participants: [snapshot]),
            .transcript(room: room, user: ann, track: mic, text: "hello", start: 0.5, end: 1.5),
            .pong(timestamp: "2026-01-01T00:00:00.000Z"),
            .error(RoomError(.busy, "busy")),
        ]
        for message in messages {
            switch message {
            case .roomJoined, .participantJoined, .participantLeft, .emotionUpdate, .roomStatus, .transcript, .pong, .error: break
            }
        }
        return messages
    }

    @Test func everyDocumentedRoomsMessageDecodes() throws {
        let rows = Self.table(try Self.section("Rooms protocol (`/ws/rooms`)"), header: "message | meaning")
        let examples = rows.map(\.first).filter { $0.hasPrefix("{") }
        #expect(examples.count >= 7, "\(rows.map(\.first))")
        for documented in examples {
            #expect(throws: Never.self, "\(documented)") { _ = try RoomClientMessage(json: Self.example(documented)) }
        }
        // The binary frame as documented: one byte N, N bytes of track id, PCM16.
        #expect(try RoomClientMessage(binary: [3] + Array("mic".utf8) + [0, 0, 1, 0]) == .audioData(track: TrackID("mic")!, bytes: [0, 0, 1, 0], sampleRate: 16_000))
    }

    @Test func everyRoomsMessageIsDocumentedWithItsFields() throws {
        let rows = Self.table(try Self.section("Rooms protocol (`/ws/rooms`)"), header: "message | `data`")
        let documented = Dictionary(rows.map { ($0.first, $0.names) }, uniquingKeysWith: { $0.union($1) })
        let samples = Self.roomMessages
        #expect(Set(try samples.map { try Self.keys($0.json).type }).isSubset(of: Set(documented.keys)))
        for message in samples {
            let (type, keys) = try Self.keys(message.json, under: "data")
            if type == "emotion_update" {
                let object = try JSONSerialization.jsonObject(with: Data(message.json.utf8)) as? [String: Any]
                let source = try #require((object?["data"] as? [String: Any])?["source"] as? [String: Any])
                let sourceKeys = Set(source.keys)
                #expect(sourceKeys.subtracting(documented[type] ?? []).isEmpty, "\(source)")
            }
            #expect(keys.subtracting(documented[type] ?? []).isEmpty, "\(type) sends \(keys.subtracting(documented[type] ?? []).sorted()) that the README does not name")
        }
        let codes = documented["error"] ?? []
        for code in RoomError.Code.allCases { #expect(codes.contains(code.rawValue), "error code \(code.rawValue) is not documented") }
    }

    // MARK: - The pages

    /// The message types a page sends (`type: '…'`) and handles (`case '…'`).
    static func page(_ path: String) throws -> (sends: Set<String>, handles: Set<String>) {
        let script = try String(contentsOf: TestData.packageRoot.appendingPathComponent("Sources/AttuneServer/Public/" + path), encoding: .utf8)
        return (Set(script.matches(of: /type: '([a-z_]+)'/).map { String($0.output.1) }),
                Set(script.matches(of: /case '([a-z_]+)'/).map { String($0.output.1) }))
    }

    @Test func thePagesSpeakTheTypedProtocols() throws {
        let conversation = try Self.page("app.js")
        let events = Set(try Self.conversationEvents.map { try Self.keys($0.json).type })
        #expect(conversation.handles.subtracting(events).isEmpty, "app.js handles unknown events \(conversation.handles.subtracting(events))")
        #expect(!conversation.sends.isEmpty)
        for type in conversation.sends {
            // Parsing may refuse the empty body; it must not call the type unknown.
            do { _ = try ClientMessage(json: #"{"type":"\#(type)"}"#) } catch { #expect(error.code != .unknownMessage, "app.js sends \(type)") }
        }

        let rooms = try Self.page("rooms/rooms.js")
        let roomEvents = Set(try Self.roomMessages.map { try Self.keys($0.json).type })
        #expect(rooms.handles.subtracting(roomEvents).isEmpty, "rooms.js handles unknown messages \(rooms.handles.subtracting(roomEvents))")
        #expect(!rooms.sends.isEmpty)
        for type in rooms.sends {
            do { _ = try RoomClientMessage(json: #"{"type":"\#(type)"}"#) } catch { #expect(error.code != .unknownMessage, "rooms.js sends \(type)") }
        }
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
