import AttuneConversation
import AttuneCore
import AttuneFace
import Foundation
import Logging
import Synchronization

/// The face channel of a live session: its models, the threads they run on, and the frame rate.
struct FaceChannel: Sendable {
    let analyzer: FaceAnalyzer
    let pool: InferencePool
    /// Frames analysed per second (`face.max_fps`).
    let maxFramesPerSecond: Double
}

/// A session's camera frames: at most `face.max_fps` a second are taken, and at most one waits
/// while another is analysed (a newer frame replaces it); every frame not analysed is counted.
/// Each frame carries its `Target`, where its reading goes (the companion, or the participant's
/// room). The reader calls ``submit(_:timestamp:to:)``; the owner runs ``run(channel:read:fail:)``
/// in its task group and ends it with ``finish()``.
final class FaceFrames<Target: Sendable>: Sendable {
    private let frames: AsyncStream<Frame>
    private let input: AsyncStream<Frame>.Continuation
    private let state: Mutex<(budget: RateBudget, dropped: Int)>

    struct Frame: Sendable {
        let data: String
        let timestamp: Double
        let target: Target
    }

    /// Why a frame gave no reading.
    enum Failure: Sendable {
        /// Not a JPEG or PNG, over a limit, or undecodable.
        case badFrame(String)
        case busy(String)
        case unavailable(String)
    }

    init(maxFramesPerSecond: Double) {
        (frames, input) = AsyncStream.makeStream(of: Frame.self, bufferingPolicy: .bufferingNewest(1))
        state = Mutex((RateBudget(rate: maxFramesPerSecond, burst: max(1, maxFramesPerSecond)), 0))
    }

    /// Frames dropped so far.
    var dropped: Int { state.withLock { $0.dropped } }

    func submit(_ data: String, timestamp: Double?, to target: Target) {
        guard state.withLock({ $0.budget.take() }) else {
            state.withLock { $0.dropped += 1 }
            return
        }
        if case .dropped = input.yield(Frame(data: data, timestamp: timestamp ?? Date().timeIntervalSince1970, target: target)) {
            state.withLock { $0.dropped += 1 }
        }
    }

    func finish() { input.finish() }

    /// Analyses frames in order on the face threads until ``finish()``; each reading goes to
    /// `read` with its frame, each failure to `fail`.
    func run(
        channel: FaceChannel, read: @Sendable (FrameReading, Frame) async -> Void, fail: @Sendable (Failure, Target) -> Void
    ) async {
        for await frame in frames {
            do {
                let bytes = try channel.analyzer.decoder.frameBytes(frame.data)
                let analyzer = channel.analyzer
                await read(try await channel.pool.run { try analyzer.read(bytes) }, frame)
            } catch let error as ImageError {
                fail(.badFrame("camera frame refused: \(error)"), frame.target)
            } catch let error as InferencePoolBusyError {
                state.withLock { $0.dropped += 1 }
                fail(.busy("\(error.description); this camera frame is skipped"), frame.target)
            } catch {
                fail(.unavailable("could not read a camera frame: \(error)"), frame.target)
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
