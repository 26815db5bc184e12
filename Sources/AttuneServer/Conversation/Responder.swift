import AttuneAgent
import AttuneAudio
import AttuneConversation
import AttuneCore
import AttuneEmotion
import AttuneSpeech
import AttuneStorage
import Foundation
import Logging
import Metrics
import Synchronization

/// A finished utterance, ready to be answered.
struct UserTurn: Sendable {
    let utterance: Int
    let text: String
    let textEmotion: EmotionEstimate?
    let fused: EmotionEstimate?
    /// When the person stopped speaking (nil for typed text); timings count from here.
    let speechEndedAt: ContinuousClock.Instant
    let transcribedAt: ContinuousClock.Instant
    let startedAt: Double
}

/// Settings of replies.
public struct ReplySettings: Sendable, Equatable {
    /// Probability from which the text emotion model's reading of a reply sentence counts as
    /// contradicting the person's feeling.
    public var mismatchThreshold = 0.5
    /// The same for joy against a painful feeling: the text emotion model reads reassurance
    /// ("It's okay to feel that way.") as joy at 0.5 to 0.7, and cheerfulness above 0.75.
    public var joyMismatchThreshold = 0.75
    public var memory = MemorySettings()
    /// Start the reply in a pause, on its speculative transcript (``SpeculativeReply``); it is
    /// kept when the turn ends with the same prompt, dropped when the person goes on.
    public var speculativeStart = true
    /// Say the plan's opener (``ReplyPlan/opener(for:)``) the moment the turn ends, before the
    /// model's first sentence, and have the model go on from it.
    public var opener = true
    /// After each reply, have the model read the conversation so far into its prompt cache, so
    /// that the next turn's prompt reads only its plan, message and opener.
    public var warmHistory = true
    /// In a pause held because its words stop mid-sentence, have the model read the prompt the
    /// turn would get, up to the words so far, into its prompt cache: once the turn ends with the
    /// feeling the pause was read with, its prompt reads only the words that came after and the
    /// opener. Not at partial transcripts: on two cores, a model reading while the person speaks
    /// slowed the decode of the next pause, which must come within the silence for a pause to be
    /// held (BENCHMARKS.md, "Reading ahead in held pauses").
    public var readAhead = true
    /// Put every feeling's treatment in the prompt's cached start and name only the feeling in
    /// each turn (``PromptBuilder/planInStart``): a turn's prompt reads about 25 tokens fewer,
    /// and its first token comes about half a second sooner on two cores (BENCHMARKS.md).
    public var planInStart = true
    /// When the guard's rejections leave fewer of the model's own words than this, the model is
    /// asked once more for a sentence about what happened (0: never).
    public var secondTryWords = 8
    /// Stop the model's first try once the guard has rejected this many of its sentences and
    /// approved none, and ask once more at once, instead of reading on to the end of a reply
    /// that will most likely be asked for again (0: read every first try to its end).
    public var secondTryAfterRejections = 2
    /// Ask the model once more, in the same way, when its reply mentions nothing of the
    /// particular things the person told about (``ReplyGuard/mentionsNothingOfTheirs``).
    public var secondTryUnmentioned = true
    /// Spoken when the language model cannot answer.
    public var apology = "I'm sorry, I lost my train of thought for a moment. Could you say that again?"

    public init() {}

    /// The words a reply to `message` opens with under `plan`: the plan's opener when openers
    /// are on, none otherwise. One rule for a speculative start and for the reply, so that their
    /// prompts match.
    func openingWords(for message: String, plan: ReplyPlan) -> String? {
        opener ? plan.opener(for: message) : nil
    }

    /// How prompts for `persona` are built under these settings.
    public func promptBuilder(for persona: Persona) -> PromptBuilder {
        PromptBuilder(persona: persona, memory: memory, planInStart: planInStart)
    }
}

/// The engines replies are made with, each nil when it is unavailable (with the reason).
struct ResponderEngines: Sendable {
    var chat: (any ChatModel)?
    var chatUnavailableReason: String
    var synthesizer: (any SpeechSynthesizing)?
    var synthesizerUnavailableReason: String
    /// Where sessions and turns are stored.
    var history: (any ConversationRepository)?
    /// The text emotion of a reply sentence, for the ``ReplyGuard``.
    var judge: ReplyGuard.Judge
}

/// How replies are made.
struct ResponderSettings: Sendable {
    var personas: [Persona]
    var synthesis: SynthesisSettings
    var reply: ReplySettings
    /// Finished turns waiting for an answer before more get `busy` (`stream.max_pending_turns`).
    var maxPendingTurns: Int
}

/// Answers one session's turns, one at a time: builds the reply plan and prompt, streams the
/// language model's text sentence by sentence through the ``ReplyGuard``, speaks each approved
/// sentence as soon as it is ready, and stores the finished turn. A new utterance from the
/// person interrupts a reply in progress (barge-in).
///
/// ``run()`` owns the replies: each is a child task of its task group, and the next reply
/// starts only after the previous one (its generation and its speaking) has ended.
actor Responder {
    private let engines: ResponderEngines
    private let settings: ResponderSettings
    private let sessionID: String
    private let emit: any OutboundSink
    private let logger: Logger

    private(set) var persona: Persona = .companion
    private(set) var voice: String
    private(set) var rate: Double
    private var memory: [RememberedTurn] = []
    private var recentEmotions: [EmotionLabel] = []
    private var turnIndex = 0
    private var replyCounter = 0
    private var sessionStored = false
    /// The reply being generated, from the moment its turn is accepted (so a barge-in that comes
    /// before it starts still stops it).
    private var current: (id: Int, progress: ReplyProgress)?
    /// A reply started on a pause's guess, waiting for its turn to end.
    private var speculation: SpeculativeReply?
    /// Dropped speculations, until they have stopped (``run()`` awaits them at the end).
    private var retired: [SpeculativeReply] = []
    /// The model reading the history after a reply (`reply.warm_history`); ``run()`` awaits it.
    private var warming: Task<Void, Never>?
    /// The last finished reply, while the client may still be playing it.
    private var playing: (id: Int, turnIndex: Int, progress: ReplyProgress)?
    private let inbox: AsyncStream<PendingReply>
    private let inboxInput: AsyncStream<PendingReply>.Continuation
    private var waiting = 0

    /// A turn accepted for an answer.
    private struct PendingReply: Sendable {
        let id: Int
        let turn: UserTurn
        let progress: ReplyProgress
        let speculation: SpeculativeReply?
    }

    init(engines: ResponderEngines, settings: ResponderSettings, sessionID: String, emit: any OutboundSink, logger: Logger) {
        self.engines = engines
        self.settings = settings
        self.sessionID = sessionID
        self.emit = emit
        self.logger = logger
        self.voice = settings.synthesis.defaultVoice
        self.rate = settings.synthesis.rate
        (inbox, inboxInput) = AsyncStream.makeStream(of: PendingReply.self)
        TurnMetrics.register()
    }

    /// Whether a reply is being generated, or its audio is still playing on the client.
    var isReplying: Bool { current != nil || playing?.progress.isPlaying(at: .now) == true }

    // MARK: - Settings

    /// Applies a `configure` message; returns an error message for a bad value.
    func configure(persona name: String?, voice newVoice: String?, rate newRate: Double?) -> String? {
        if let name {
            guard let chosen = settings.personas.first(where: { $0.id == name }) else {
                return "unknown persona '\(ClientMessage.prefix(name))'; personas: \(settings.personas.map(\.id).joined(separator: ", "))"
            }
            persona = chosen
        }
        if let newVoice {
            let voices = engines.synthesizer?.voices ?? []
            guard voices.contains(where: { $0.id == newVoice }) else {
                return "unknown voice '\(ClientMessage.prefix(newVoice))'; voices: \(voices.map(\.id).joined(separator: ", "))"
            }
            voice = newVoice
        }
        if let newRate {
            guard newRate.isFinite, SynthesisSettings.rates.contains(newRate) else {
                return "rate must be between \(SynthesisSettings.rates.lowerBound) and \(SynthesisSettings.rates.upperBound)"
            }
            rate = newRate
        }
        return nil
    }

    /// Continues a stored session (`POST /api/converse` with a `session_id`): its persona and
    /// voice, its latest turns as memory, and new turns numbered after the stored ones.
    func resume(_ record: SessionRecord) {
        if let stored = settings.personas.first(where: { $0.id == record.session.persona }) { persona = stored }
        if engines.synthesizer?.voices.contains(where: { $0.id == record.session.voice }) == true { voice = record.session.voice }
        memory = record.turns.suffix(settings.reply.memory.maxTurns).map { turn in
            RememberedTurn(
                userText: turn.userText, emotion: (turn.fusedEmotion ?? turn.emotions[EmotionChannel.text.rawValue])?.label,
                reply: turn.replyText, interrupted: turn.interrupted)
        }
        recentEmotions = Array(memory.compactMap(\.emotion).suffix(5))
        turnIndex = max(record.session.turnCount, record.turns.last?.index ?? 0)
        sessionStored = true
    }

    // MARK: - Turns

    /// Accepts `turn` for an answer, interrupting the reply in progress. Returns false (and
    /// answers nothing) when `stream.max_pending_turns` turns are already waiting.
    func respond(to turn: UserTurn) -> Bool {
        guard waiting < settings.maxPendingTurns else { return false }
        interrupt()
        replyCounter += 1
        let pending = PendingReply(id: replyCounter, turn: turn, progress: ReplyProgress(), speculation: speculation)
        speculation = nil
        current = (pending.id, pending.progress)
        waiting += 1
        inboxInput.yield(pending)
        return true
    }

    /// Answers accepted turns one at a time until ``close()``.
    func run() async {
        // The openers in this session's voice, synthesised once (and kept for every session)
        // while the person starts talking; none without a model, since only its replies open so.
        async let openersReady: Void = settings.reply.opener && engines.chat != nil
            ? engines.synthesizer?.prepare(ReplyPlan.allOpeners, voice: voice, rate: rate) ?? () : ()
        await withTaskGroup(of: Void.self) { replies in
            for await pending in inbox {
                waiting -= 1
                // The previous reply was interrupted when this turn was accepted: let it unwind.
                await replies.waitForAll()
                await stopPlaying()
                turnIndex += 1
                let context = ReplyContext(
                    reply: pending.id, turnIndex: turnIndex, turn: pending.turn, persona: persona, voice: voice, rate: rate,
                    memory: memory, recentEmotions: recentEmotions, sessionID: sessionID, speculation: pending.speculation)
                await storeSessionIfNeeded()
                replies.addTask { [engines, settings, emit, logger] in
                    let outcome = await ReplyRun(
                        engines: engines, settings: settings, emit: emit, logger: logger, context: context, progress: pending.progress
                    ).runUntilInterrupted()
                    await self.finished(reply: pending.id, turn: pending.turn, outcome: outcome)
                }
            }
            interrupt()
        }
        dropSpeculation()
        for dropped in retired { await dropped.finish() }
        retired.removeAll()
        warming?.cancel()
        await warming?.value
        await openersReady
        if sessionStored, let history = engines.history {
            try? await history.endSession(id: sessionID, at: Date().timeIntervalSince1970)
        }
    }

    /// Ends the session: no more turns are accepted, and the reply in progress stops. ``run()``
    /// returns once it has unwound.
    func close() {
        inboxInput.finish()
        interrupt()
        dropSpeculation()
        warming?.cancel()
    }

    // MARK: - Speculative start

    /// Starts the reply to `turn`, a pause's guess, before the turn has ended: when nothing is
    /// being answered or waiting, the model starts on the prompt this turn would get. The turn
    /// that ends with the same prompt takes it over (``respond(to:)``).
    func speculate(on turn: UserTurn) {
        guard settings.reply.speculativeStart, current == nil, waiting == 0, let chat = engines.chat else { return }
        let messages = prompt(for: turn, withOpener: true)
        if let speculation, speculation.messages == messages { return }
        dropSpeculation()
        speculation = SpeculativeReply(utterance: turn.utterance, messages: messages, chat: chat)
        TurnMetrics.speculations.increment()
    }

    /// The person went on speaking (or the session ends): the speculative reply is stale.
    func dropSpeculation() {
        guard let dropped = speculation else { return }
        speculation = nil
        dropped.cancel()
        TurnMetrics.droppedSpeculations.increment()
        retired.removeAll { $0.hasStopped }
        retired.append(dropped)
    }

    /// The person spoke over the reply: stop generating and speaking, tell the client to stop
    /// playing, and keep what they heard. Returns at once; the reply unwinds on its own and
    /// records the turn as interrupted.
    func interrupt() {
        guard let current, !current.progress.isInterrupted else { return }
        current.progress.markInterrupted()
        emit.yield(.event(.stopPlayback(reply: current.id, heard: current.progress.heardText(at: .now))))
    }

    /// Barge-in: stops the reply being generated, or the one still playing on the client.
    func bargeIn() async {
        if current != nil {
            interrupt()
        } else {
            await stopPlaying()
        }
    }

    /// A finished reply still playing on the client: stop it there, and record the turn as
    /// interrupted with what was heard.
    private func stopPlaying() async {
        guard let playing else { return }
        self.playing = nil
        guard playing.progress.isPlaying(at: .now) else { return }
        let heard = playing.progress.heardText(at: .now)
        emit.yield(.event(.stopPlayback(reply: playing.id, heard: heard)))
        if let last = memory.indices.last {
            memory[last].reply = heard
            memory[last].interrupted = true
        }
        if let history = engines.history {
            let sessionID = self.sessionID
            try? await history.markInterrupted(session: sessionID, turn: playing.turnIndex, heard: heard)
        }
    }

    /// The client reports how far it has played a reply.
    func playback(reply: Int, playedMilliseconds: Double) {
        if let current, current.id == reply { current.progress.reportPlayback(playedMilliseconds) }
        if let playing, playing.id == reply { playing.progress.reportPlayback(playedMilliseconds) }
    }

    private func finished(reply: Int, turn: UserTurn, outcome: ReplyOutcome) async {
        if let current, current.id == reply {
            if !outcome.interrupted && !current.progress.isInterrupted { playing = (reply, outcome.turnIndex, current.progress) }
            self.current = nil
        }
        memory.append(RememberedTurn(
            userText: turn.text, emotion: turn.fused?.label ?? turn.textEmotion?.label, reply: outcome.spokenText,
            interrupted: outcome.interrupted))
        if memory.count > settings.reply.memory.maxTurns {
            memory.removeFirst(memory.count - settings.reply.memory.maxTurns)
        }
        if let label = turn.fused?.label ?? turn.textEmotion?.label {
            recentEmotions = Array((recentEmotions + [label]).suffix(5))
        }
        warmHistory()
        guard let history = engines.history else { return }
        var emotions: [String: EmotionEstimate] = [:]
        if let text = turn.textEmotion { emotions[EmotionChannel.text.rawValue] = text }
        let stored = StoredTurn(
            index: outcome.turnIndex, startedAt: turn.startedAt, userText: turn.text, replyText: outcome.spokenText,
            interrupted: outcome.interrupted, emotions: emotions, fusedEmotion: turn.fused, timings: outcome.timings)
        // A turn stopped by barge-in is still stored: the writes run in a task of their own,
        // which the reply's cancellation does not reach.
        let sessionID = self.sessionID
        let logger = self.logger
        await Task {
            await self.storeSessionIfNeeded()
            do {
                try await history.append(stored, to: sessionID)
            } catch {
                logger.error("could not store turn \(outcome.turnIndex): \(error)")
            }
        }.value
    }

    /// Has the model read the prompt `turn`, a held pause's guess, would get, up to its words
    /// (no opener, no reply), while the person is still speaking: when the turn ends with the
    /// same feeling, the model finds its prompt read up to where the words went on. Skipped while
    /// a reply is being written or a turn waits (the model is busy with them) and once the model
    /// has been started on a pause. A read-ahead still running is replaced: what it has read is
    /// the start of the next one.
    func readAhead(on turn: UserTurn) {
        guard settings.reply.readAhead, current == nil, waiting == 0, speculation == nil, let chat = engines.chat else { return }
        readIntoCache(prompt(for: turn, withOpener: false), chat: chat)
        TurnMetrics.readAheads.increment()
    }

    /// The messages the model gets for `turn` in this session now, going on from the plan's
    /// opener or (for reading ahead) ending with the message: one rule for the speculative
    /// start and the read-ahead, as ``UserTurn/prompt(plan:opener:builder:history:recentEmotions:)``
    /// is for them and the reply.
    private func prompt(for turn: UserTurn, withOpener: Bool) -> [ChatMessage] {
        let plan = turn.plan(after: recentEmotions)
        return turn.prompt(
            plan: plan, opener: withOpener ? settings.reply.openingWords(for: turn.text, plan: plan) : nil,
            builder: settings.reply.promptBuilder(for: persona), history: memory, recentEmotions: recentEmotions)
    }

    /// Has the model read `messages` into its prompt cache (``warming``), dropping a read still
    /// running: what it has read is the start of this one.
    private func readIntoCache(_ messages: [ChatMessage], chat: any ChatModel) {
        warming?.cancel()
        warming = Task { try? await chat.prefill(messages) }
    }

    /// Has the model read the conversation so far (the next prompt's start) while the person
    /// listens to the reply: the prompt it last read ended with the turn's plan, which the next
    /// prompt does not repeat, so the last message and reply would be read again before the
    /// next first token (about 40 tokens, 0.7 s on two cores). Skipped when a turn is already
    /// waiting or the model has been started on one. A warm-up still running is dropped: what
    /// it has read is the start of this one.
    private func warmHistory() {
        guard settings.reply.warmHistory, waiting == 0, speculation == nil, let chat = engines.chat else { return }
        readIntoCache(settings.reply.promptBuilder(for: persona).context(history: memory), chat: chat)
    }

    private func storeSessionIfNeeded() async {
        guard !sessionStored, let history = engines.history else { return }
        do {
            try await history.startSession(id: sessionID, persona: persona.id, voice: voice, at: Date().timeIntervalSince1970)
            sessionStored = true
        } catch {
            logger.error("could not store session: \(error)")
        }
    }
}

/// Everything one reply needs, captured when it starts.
struct ReplyContext: Sendable {
    let reply: Int
    let turnIndex: Int
    let turn: UserTurn
    let persona: Persona
    let voice: String
    let rate: Double
    let memory: [RememberedTurn]
    let recentEmotions: [EmotionLabel]
    let sessionID: String
    /// A reply started in the pause before this turn ended, used if its prompt is this turn's.
    let speculation: SpeculativeReply?
}

struct ReplyOutcome: Sendable {
    let turnIndex: Int
    /// What the person heard (all of it, unless interrupted).
    let spokenText: String
    let interrupted: Bool
    let timings: TurnTimings
}

/// What a reply has sent so far, shared between its task and the session (for barge-in).
final class ReplyProgress: Sendable {
    private struct State {
        var sentences: [(text: String, startMs: Double, endMs: Double)] = []
        var firstAudioAt: ContinuousClock.Instant?
        /// When the first audio after the opener was sent.
        var answerAudioAt: ContinuousClock.Instant?
        var playedMs: Double?
        var reportedAt: ContinuousClock.Instant?
        var interrupted = false
        var interruptedAt: ContinuousClock.Instant?
        var synthesisMs = 0.0
        var audioMs = 0.0
    }
    private let state = Mutex(State())
    /// Tasks waiting for the interruption.
    private let waiters = Mutex<[UUID: CheckedContinuation<Void, Never>]>([:])

    /// Records a sentence whose audio is being sent; `answer`: it comes after the opener.
    func sentAudio(_ text: String, durationMs: Double, answer: Bool) -> Double {
        state.withLock { state in
            let start = state.sentences.last?.endMs ?? 0
            if state.firstAudioAt == nil { state.firstAudioAt = .now }
            if answer, state.answerAudioAt == nil { state.answerAudioAt = .now }
            state.sentences.append((text, start, start + durationMs))
            return start
        }
    }

    func reportPlayback(_ ms: Double) {
        state.withLock {
            $0.playedMs = max($0.playedMs ?? 0, ms)
            $0.reportedAt = .now
        }
    }
    func markInterrupted() {
        state.withLock {
            $0.interrupted = true
            $0.interruptedAt = $0.interruptedAt ?? .now
        }
        for waiter in waiters.withLock({ waiters in defer { waiters = [:] }; return waiters.values }) { waiter.resume() }
    }

    /// Returns once the reply is interrupted, or when the calling task is cancelled.
    func waitUntilInterrupted() async {
        let id = UUID()
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state in
                    // Registered under the state lock, so an interruption cannot slip in between.
                    if state.interrupted || Task.isCancelled { return true }
                    waiters.withLock { $0[id] = continuation }
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            waiters.withLock { $0.removeValue(forKey: id) }?.resume()
        }
    }

    func addSynthesis(milliseconds: Double, audioMilliseconds: Double) {
        state.withLock {
            $0.synthesisMs += milliseconds
            $0.audioMs += audioMilliseconds
        }
    }

    /// Time spent synthesising and the length of the audio it made (`tts_ms`, `audio_ms`).
    var synthesisTotals: [String: Double] {
        state.withLock { $0.audioMs > 0 ? ["tts_ms": $0.synthesisMs, "audio_ms": $0.audioMs] : [:] }
    }

    /// Milliseconds from the interruption to `now` (when generation and synthesis have stopped);
    /// 0 when the interruption came after that (no audio was sent after it either).
    func stopMilliseconds(at now: ContinuousClock.Instant) -> Double? {
        state.withLock { $0.interruptedAt.map { max(0, (now - $0).milliseconds) } }
    }
    var isInterrupted: Bool { state.withLock { $0.interrupted } }

    /// The sentences the person has heard (begun to hear) by `now`.
    func heardText(at now: ContinuousClock.Instant) -> String {
        state.withLock { state in
            let played = Self.played(state, at: now)
            return state.sentences.filter { $0.startMs < played }.map(\.text).joined(separator: " ")
        }
    }

    /// Whether the client is still playing audio of this reply at `now`.
    func isPlaying(at now: ContinuousClock.Instant) -> Bool {
        state.withLock { state in
            guard let end = state.sentences.last?.endMs else { return false }
            return Self.played(state, at: now) < end
        }
    }

    /// Milliseconds of the reply played by `now`: the client's last report carried forward at
    /// real-time pace, or, without a report, the time since the first audio frame was sent.
    private static func played(_ state: State, at now: ContinuousClock.Instant) -> Double {
        if let reported = state.playedMs, let at = state.reportedAt { return reported + (now - at).milliseconds }
        return state.firstAudioAt.map { (now - $0).milliseconds } ?? 0
    }

    var firstAudioAt: ContinuousClock.Instant? { state.withLock { $0.firstAudioAt } }
    var answerAudioAt: ContinuousClock.Instant? { state.withLock { $0.answerAudioAt } }

    var allText: String { state.withLock { $0.sentences.map(\.text).joined(separator: " ") } }
}

/// One reply from plan to last audio frame.
struct ReplyRun {
    let engines: ResponderEngines
    let settings: ResponderSettings
    let emit: any OutboundSink
    let logger: Logger
    let context: ReplyContext
    let progress: ReplyProgress

    /// Runs the reply, cancelling it as soon as it is interrupted (barge-in, a newer turn, the
    /// session's end). Returns once its generation and speaking have both stopped.
    func runUntilInterrupted() async -> ReplyOutcome {
        await withTaskGroup(of: ReplyOutcome?.self) { group in
            group.addTask { await run() }
            group.addTask {
                await progress.waitUntilInterrupted()
                return nil
            }
            var outcome: ReplyOutcome?
            while outcome == nil, let next = await group.next() {
                if next == nil { group.cancelAll() }  // interrupted: cancel the reply, then collect it
                outcome = next ?? nil
            }
            group.cancelAll()
            return outcome!
        }
    }

    func run() async -> ReplyOutcome {
        let turn = context.turn
        let plan = turn.plan(after: context.recentEmotions)
        // Said the moment the turn ends, while the model starts writing (never without a model:
        // the apology alone says why there is no answer).
        let opener = engines.chat == nil ? nil : settings.reply.openingWords(for: turn.text, plan: plan)
        let openerSentences = opener == nil ? 0 : 1
        emit.yield(.event(.replyStarted(
            reply: context.reply, utterance: turn.utterance, emotion: plan.emotion, intensity: plan.intensity.rawValue,
            crisis: plan.isCrisis, opener: opener)))
        var timings = TurnTimings(transcriptMs: (turn.transcribedAt - turn.speechEndedAt).milliseconds)
        var speculationLead: Double?
        /// The first request's account of its prompt (the model's, or the speculative start's).
        var promptReading: PromptReadingRecord?

        // Approved sentences flow to the speaking task, which synthesises them in order while
        // the model writes on.
        let (sentences, speak) = AsyncStream.makeStream(of: String.self)
        async let speaking: Void = speakAll(sentences, answerFrom: openerSentences + 1)
        var text: [String] = []
        var rejected: [String] = []
        var secondTryAt: Double?
        let queue = { (sentence: String) in
            text.append(sentence)
            emit.yield(.event(.replyTextDelta(reply: context.reply, sentence: text.count, text: sentence)))
            speak.yield(sentence)
        }

        do {
            // Interrupted before it began (a barge-in right after the turn ended).
            if progress.isInterrupted { throw CancellationError() }
            if let opener { queue(opener) }
            guard let chat = engines.chat else { throw LLMError(.unreachable, engines.chatUnavailableReason) }
            let messages = turn.prompt(
                plan: plan, opener: opener, builder: settings.reply.promptBuilder(for: context.persona), history: context.memory,
                recentEmotions: context.recentEmotions)
            let pieces: AsyncThrowingStream<String, any Error>
            if let speculation = context.speculation, speculation.messages == messages {
                pieces = speculation.pieces
                promptReading = speculation.promptReading
                speculationLead = (turn.speechEndedAt - speculation.startedAt).milliseconds
                TurnMetrics.usedSpeculations.increment()
            } else {
                if let speculation = context.speculation {
                    logger.debug("reply \(context.reply): the speculative start had another prompt; dropped")
                    TurnMetrics.droppedSpeculations.increment()
                    await speculation.finish()
                }
                let reading = PromptReadingRecord()
                promptReading = reading
                pieces = chat.streamReply(to: messages, recordingPromptIn: reading)
            }
            var guardrail = ReplyGuard(
                plan: plan, threshold: settings.reply.mismatchThreshold,
                joyThreshold: settings.reply.joyMismatchThreshold, judge: engines.judge)
            guardrail.userText = turn.text
            if let opener { guardrail.alreadySaid(opener) }
            guardrail.shownToModel(messages.filter { $0.role != .user }.map(\.content) + ReplyPlan.allExamples.map(\.0))
            /// Speaks the sentences of `pieces` that the guard lets through (or its repairs). With
            /// `giveUp`, stops reading (and the model writing) as soon as the guard finds the
            /// reply going nowhere.
            func speakReviewed(_ pieces: AsyncThrowingStream<String, any Error>, giveUp: Bool = false) async throws {
                var splitter = SentenceStream()
                let finished = try await pieces.read { piece in
                    if timings.firstTokenMs == nil {
                        timings.firstTokenMs = (ContinuousClock.now - turn.speechEndedAt).milliseconds
                    }
                    for sentence in splitter.append(piece) {
                        if let approved = await guardrail.review(sentence) { queue(approved) }
                        if giveUp && guardrail.isGoingNowhere(after: settings.reply.secondTryAfterRejections) { return false }
                    }
                    return true
                }
                // A cancelled stream ends without an error: what it cut off is not a sentence.
                if Task.isCancelled || progress.isInterrupted { throw CancellationError() }
                guard finished else { return }
                if let rest = splitter.finish(), let approved = await guardrail.review(rest) { queue(approved) }
            }
            try await speakReviewed(pieces, giveUp: settings.reply.secondTryWords > 0)
            let cutDown = guardrail.needsSecondTry(minimumWords: settings.reply.secondTryWords)
            if cutDown || settings.reply.secondTryUnmentioned && guardrail.mentionsNothingOfTheirs {
                logger.debug("reply \(context.reply): \(cutDown ? "the guard left \(guardrail.approvedWords) word(s) of the model's" : "the reply mentioned nothing of theirs"); asking once more")
                secondTryAt = (ContinuousClock.now - turn.speechEndedAt).milliseconds
                let again = ReplyPlan.secondTry(messages, said: text, to: turn.text)
                guardrail.shownToModel([ReplyPlan.secondTryNote])
                guardrail.stopRepairing()
                try await speakReviewed(chat.streamReply(to: again))
            }
            guardrail.closing().forEach(queue)
            if text.count == openerSentences { queue(plan.repairs.first ?? "I'm listening.") }
            rejected = guardrail.rejected
            if !guardrail.rejected.isEmpty {
                logger.info("reply \(context.reply): replaced \(guardrail.rejected.count) sentence(s) that contradicted \(plan.emotion.rawValue)")
            }
        } catch {
            if !Task.isCancelled && !progress.isInterrupted {
                logger.warning("reply \(context.reply): \(error)")
                emit.yield(.event(.error(code: .llmUnavailable, message: "the language model could not answer: \(error)")))
                if plan.isCrisis || plan.needsUrgentCare {
                    // Support and the help line never depend on the model.
                    if text.isEmpty, let first = plan.repairs.first { queue(first) }
                    if !text.contains(where: { ReplyGuard.mentionsHelp($0) }) {
                        queue(plan.isCrisis ? ReplyPlan.crisisHelp : ReplyPlan.urgentHelp)
                    }
                } else if text.count == openerSentences {
                    queue(settings.reply.apology)
                }
            }
        }
        speak.finish()
        // Generation has stopped. When interrupted, no more audio is sent from here on; a
        // synthesis already running still finishes on its worker and is awaited (its audio is
        // dropped), so the next reply never overlaps this one.
        let stoppedAt = ContinuousClock.now
        await speaking
        await context.speculation?.finish()

        let interrupted = progress.isInterrupted
        let spoken = interrupted ? progress.heardText(at: stoppedAt) : text.joined(separator: " ")
        if let first = progress.firstAudioAt { timings.firstAudioMs = (first - turn.speechEndedAt).milliseconds }
        let answerAudioMs = progress.answerAudioAt.map { ($0 - turn.speechEndedAt).milliseconds }
        timings.totalMs = (ContinuousClock.now - turn.speechEndedAt).milliseconds
        var reported: [String: Double] = progress.synthesisTotals
        if interrupted, let stopped = progress.stopMilliseconds(at: stoppedAt) {
            reported["stop_ms"] = stopped
            TurnMetrics.interruptionStop.recordNanoseconds(Int64(stopped * 1_000_000))
        }
        reported["transcript_ms"] = timings.transcriptMs
        reported["first_token_ms"] = timings.firstTokenMs
        reported["first_audio_ms"] = timings.firstAudioMs
        // The first audio after the opener: the model's own words (or what stands for them).
        reported["answer_audio_ms"] = answerAudioMs
        reported["total_ms"] = timings.totalMs
        // How long before the end of the turn the model started on it (speculative start).
        reported["speculation_lead_ms"] = speculationLead
        // When the model was asked once more because the guard had left too little of its reply.
        reported["second_try_ms"] = secondTryAt
        // How much of the prompt the model found in its cache and had to read before its first
        // token (llama-server reports it): what read-ahead and the cached start save.
        if let reading = promptReading?.reading {
            reported["prompt_tokens_cached"] = Double(reading.cachedTokens)
            reported["prompt_tokens_read"] = Double(reading.readTokens)
        }
        emit.yield(.event(.replyDone(reply: context.reply, text: spoken, interrupted: interrupted, timings: reported, rejected: rejected)))
        TurnMetrics.record(timings)
        return ReplyOutcome(turnIndex: context.turnIndex, spokenText: spoken, interrupted: interrupted, timings: timings)
    }

    /// Synthesises and sends each sentence; stops at barge-in. A failed synthesis is reported
    /// once and the rest of the reply goes out as text only. Sentence `answerFrom` (counted
    /// from 1) is the first after the opener.
    private func speakAll(_ sentences: AsyncStream<String>, answerFrom: Int) async {
        var index = 0
        var failed = false
        for await sentence in sentences {
            index += 1
            guard !failed, !Task.isCancelled, !progress.isInterrupted else { continue }
            guard let synthesizer = engines.synthesizer else {
                failed = true
                emit.yield(.event(.error(code: .ttsFailed, message: "speech synthesis is unavailable: \(engines.synthesizerUnavailableReason); the reply continues as text")))
                continue
            }
            do {
                let started = ContinuousClock.now
                let audio = try await synthesizer.synthesize(sentence, voice: context.voice, rate: context.rate)
                progress.addSynthesis(milliseconds: (ContinuousClock.now - started).milliseconds, audioMilliseconds: audio.duration * 1000)
                guard !progress.isInterrupted else { continue }
                let start = progress.sentAudio(sentence, durationMs: audio.duration * 1000, answer: index >= answerFrom)
                emit.yield(.event(.replyAudio(
                    reply: context.reply, sentence: index, sampleRate: audio.sampleRate, samples: audio.samples.count,
                    startMilliseconds: start)))
                emit.yield(.audio(PCM.int16LittleEndian(from: audio.samples)))
            } catch {
                failed = true
                emit.yield(.event(.error(code: .ttsFailed, message: "speech synthesis failed: \(error); the reply continues as text")))
            }
        }
    }
}

/// Prometheus histograms of the per-turn timings.
enum TurnMetrics {
    static let transcript = Timer(label: "attune_turn_transcript_seconds", preferredDisplayUnit: .seconds)
    static let firstToken = Timer(label: "attune_turn_first_token_seconds", preferredDisplayUnit: .seconds)
    static let firstAudio = Timer(label: "attune_turn_first_audio_seconds", preferredDisplayUnit: .seconds)
    static let total = Timer(label: "attune_turn_total_seconds", preferredDisplayUnit: .seconds)
    static let interruptionStop = Timer(label: "attune_interruption_stop_seconds", preferredDisplayUnit: .seconds)
    /// Replies started in a pause; those a turn took over; those dropped (the person went on,
    /// or the turn's prompt differed).
    static let speculations = Counter(label: "attune_speculative_replies_started_total")
    static let usedSpeculations = Counter(label: "attune_speculative_replies_used_total")
    static let droppedSpeculations = Counter(label: "attune_speculative_replies_dropped_total")
    static let readAheads = Counter(label: "attune_read_aheads_total")

    /// Creates every histogram, so /metrics lists them before the first turn.
    static func register() {
        _ = [transcript, firstToken, firstAudio, total, interruptionStop]
        _ = [speculations, usedSpeculations, droppedSpeculations]
    }

    static func record(_ timings: TurnTimings) {
        for (timer, value) in [(transcript, timings.transcriptMs), (firstToken, timings.firstTokenMs), (firstAudio, timings.firstAudioMs), (total, timings.totalMs)] {
            if let value, value >= 0 { timer.recordNanoseconds(Int64(value * 1_000_000)) }
        }
    }
}

extension Duration {
    var nanoseconds: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }
}
