import AttuneConversation
import AttuneCore
import AttuneFace
import Foundation
import Logging
import Synchronization

/// The face channel: its models, the threads they run on, and the frame rate of a session.
struct FaceChannel: Sendable {
    let analyzer: FaceAnalyzer
    let pool: InferencePool
    /// Frames analysed per second per session (`face.max_fps`).
    let maxFramesPerSecond: Double

    /// Reads a frame sent as a data URL or base64, on the face threads. Throws `ImageError`
    /// for a bad frame and `InferencePoolBusyError` when the threads are full.
    func read(_ frame: String) async throws -> FrameReading {
        let bytes = try analyzer.decoder.frameBytes(frame)
        let analyzer = self.analyzer
        return try await pool.run { try analyzer.read(bytes) }
    }

    /// Why a frame gave no reading, with the error code both protocols use (`bad_frame`,
    /// `busy`, `unavailable`).
    static func failure(_ error: any Error) -> (code: String, message: String) {
        switch error {
        case let error as ImageError: ("bad_frame", "camera frame refused: \(error)")
        case let error as InferencePoolBusyError: ("busy", "\(error.description); this camera frame is skipped")
        default: ("unavailable", "could not read a camera frame: \(error)")
        }
    }
}

/// Frames a session may have analysed, `face.max_fps` a second; every frame not analysed is counted.
final class FrameBudget: Sendable {
    private let state: Mutex<(budget: RateBudget, dropped: Int)>

    init(maxFramesPerSecond: Double) {
        state = Mutex((RateBudget(rate: maxFramesPerSecond, burst: max(1, maxFramesPerSecond)), 0))
    }

    /// Takes a frame if the rate allows it; otherwise counts it as dropped.
    func take() -> Bool {
        state.withLock { state in
            if state.budget.take() { return true }
            state.dropped += 1
            return false
        }
    }

    /// Counts a frame dropped for another reason (replaced while waiting, threads busy).
    func drop() { state.withLock { $0.dropped += 1 } }

    var dropped: Int { state.withLock { $0.dropped } }
}

/// A session's camera frames: at most `face.max_fps` a second are taken, and at most one waits
/// while another is analysed (a newer frame replaces it); every frame not analysed is counted.
/// Each frame carries its `Target`, where its reading goes (the companion, or the participant's
/// room). The reader calls ``submit(_:timestamp:to:)``; the owner runs ``run(channel:read:fail:)``
/// in its task group and ends it with ``finish()``.
final class FaceFrames<Target: Sendable>: Sendable {
    private let frames: AsyncStream<Frame>
    private let input: AsyncStream<Frame>.Continuation
    private let budget: FrameBudget

    struct Frame: Sendable {
        let data: String
        let timestamp: Double
        let target: Target
    }

    init(maxFramesPerSecond: Double) {
        (frames, input) = AsyncStream.makeStream(of: Frame.self, bufferingPolicy: .bufferingNewest(1))
        budget = FrameBudget(maxFramesPerSecond: maxFramesPerSecond)
    }

    /// Frames dropped so far.
    var dropped: Int { budget.dropped }

    func submit(_ data: String, timestamp: Double?, to target: Target) {
        guard budget.take() else { return }
        if case .dropped = input.yield(Frame(data: data, timestamp: timestamp ?? Date().timeIntervalSince1970, target: target)) {
            budget.drop()
        }
    }

    func finish() { input.finish() }

    /// Analyses frames in order until ``finish()``; each reading goes to `read` with its frame,
    /// each failure (``FaceChannel/failure(_:)``) to `fail`.
    func run(
        channel: FaceChannel, read: @Sendable (FrameReading, Frame) async -> Void,
        fail: @Sendable (_ code: String, _ message: String, Target) -> Void
    ) async {
        for await frame in frames {
            do {
                await read(try await channel.read(frame.data), frame)
            } catch {
                if error is InferencePoolBusyError { budget.drop() }
                let (code, message) = FaceChannel.failure(error)
                fail(code, message, frame.target)
            }
        }
    }
}

extension FrameFaces {
    init(_ reading: FrameReading, timestamp: Double, droppedFrames: Int) {
        self.init(
            faces: reading.faces.map {
                .init(x: $0.box.x, y: $0.box.y, width: $0.box.width, height: $0.box.height, emotion: $0.emotion, confidence: $0.confidence)
            },
            width: reading.width, height: reading.height, timestamp: timestamp, droppedFrames: droppedFrames)
    }
}
