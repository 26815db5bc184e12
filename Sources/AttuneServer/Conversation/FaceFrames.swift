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
/// The reader calls ``submit(_:timestamp:)``; the owner runs ``run(channel:output:)`` in its task
/// group and ends it with ``finish()``.
final class FaceFrames: Sendable {
    private let frames: AsyncStream<Frame>
    private let input: AsyncStream<Frame>.Continuation
    private let state: Mutex<(budget: RateBudget, dropped: Int)>

    private struct Frame: Sendable {
        let data: String
        let timestamp: Double
    }

    init(maxFramesPerSecond: Double) {
        (frames, input) = AsyncStream.makeStream(of: Frame.self, bufferingPolicy: .bufferingNewest(1))
        state = Mutex((RateBudget(rate: maxFramesPerSecond, burst: max(1, maxFramesPerSecond)), 0))
    }

    /// Frames dropped so far.
    var dropped: Int { state.withLock { $0.dropped } }

    func submit(_ data: String, timestamp: Double?) {
        guard state.withLock({ $0.budget.take() }) else {
            state.withLock { $0.dropped += 1 }
            return
        }
        if case .dropped = input.yield(Frame(data: data, timestamp: timestamp ?? Date().timeIntervalSince1970)) {
            state.withLock { $0.dropped += 1 }
        }
    }

    func finish() { input.finish() }

    /// Analyses frames in order until ``finish()``: each gives a `faces` event and, with a face,
    /// the largest face's estimate on the `face` channel.
    func run(channel: FaceChannel, output: CompanionOutput) async {
        for await frame in frames {
            do {
                let bytes = try channel.analyzer.decoder.frameBytes(frame.data)
                let analyzer = channel.analyzer
                let reading = try await channel.pool.run { try analyzer.read(bytes) }
                output.emit.yield(.faces(FrameFaces(
                    faces: reading.faces.map {
                        .init(x: $0.box.x, y: $0.box.y, width: $0.box.width, height: $0.box.height, emotion: $0.emotion, confidence: $0.confidence)
                    },
                    width: reading.width, height: reading.height, timestamp: frame.timestamp, droppedFrames: dropped)))
                if let estimate = reading.estimate(subject: output.subject) {
                    await output.estimate(estimate, utterance: nil, source: nil)
                }
            } catch let error as ImageError {
                output.emit.error(.badFrame, "camera frame refused: \(error)")
            } catch let error as InferencePoolBusyError {
                state.withLock { $0.dropped += 1 }
                output.emit.error(.busy, "\(error.description); this camera frame is skipped")
            } catch {
                output.emit.error(.unavailable, "could not read a camera frame: \(error)")
            }
        }
    }
}
