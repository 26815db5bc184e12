@testable import AttuneConversation
import Testing

/// Partial transcripts back off on a slow machine and give way to final-quality decodes.
@Suite struct TranscriptionProgressTests {
    @Test func partialsWaitForTheIntervalOrThreeTimesTheirOwnDecodeTime() {
        let progress = TranscriptionProgress()
        let last = ContinuousClock.now
        #expect(!progress.partialDue(since: last, now: last + .milliseconds(600), interval: .milliseconds(700), backoff: 3))
        #expect(progress.partialDue(since: last, now: last + .milliseconds(700), interval: .milliseconds(700), backoff: 3))
        // The last partial took 400 ms: the next waits 1.2 s, not 0.7 s.
        progress.partialTook(.milliseconds(400))
        #expect(!progress.partialDue(since: last, now: last + .milliseconds(1_100), interval: .milliseconds(700), backoff: 3))
        #expect(progress.partialDue(since: last, now: last + .milliseconds(1_200), interval: .milliseconds(700), backoff: 3))
        // A fast decode brings the interval back.
        progress.partialTook(.milliseconds(100))
        #expect(progress.partialDue(since: last, now: last + .milliseconds(700), interval: .milliseconds(700), backoff: 3))
    }

    @Test func finalQualityDecodesAreCountedUntilDone() {
        let progress = TranscriptionProgress()
        #expect(!progress.finalQualityWaiting)
        progress.finalQualityQueued()
        progress.finalQualityQueued()
        progress.finalQualityDone()
        #expect(progress.finalQualityWaiting)
        progress.finalQualityDone()
        #expect(!progress.finalQualityWaiting)
    }
}
