import AttuneCore
import Foundation

/// One finished exchange, as the agent remembers it.
public struct RememberedTurn: Sendable, Equatable {
    public var userText: String
    public var emotion: EmotionLabel?
    /// What Attune said; for an interrupted turn, only what the person heard.
    public var reply: String
    public var interrupted: Bool

    public init(userText: String, emotion: EmotionLabel?, reply: String, interrupted: Bool) {
        self.userText = userText
        self.emotion = emotion
        self.reply = reply
        self.interrupted = interrupted
    }
}

/// Settings of the conversation memory in the prompt.
public struct MemorySettings: Sendable, Equatable {
    /// Most recent turns kept word for word.
    public var recentTurns = 6
    /// Budget for the whole history part of the prompt (verbatim turns and summary), in tokens
    /// (estimated at four characters each).
    public var historyTokens = 600
    /// Budget of the summary of older turns, in tokens.
    public var summaryTokens = 150
    /// Most turns a live session remembers at all; older ones are forgotten (the prompt only
    /// ever reads the newest within its budgets, so this bounds a long session's memory).
    public var maxTurns = 50

    public init() {}
}

/// The fused emotion now and how it has moved over the last turns.
public struct EmotionContext: Sendable, Equatable {
    public var current: EmotionEstimate?
    /// Top labels of the previous turns, oldest first.
    public var recent: [EmotionLabel]

    public init(current: EmotionEstimate?, recent: [EmotionLabel]) {
        self.current = current
        self.recent = recent
    }

    /// A sentence on the trend, e.g. "Over the last turns they went from calm to sad."
    public var trend: String? {
        guard let now = current?.label, let first = recent.first, recent.count >= 2 else { return nil }
        if recent.allSatisfy({ $0 == now }) { return "They have sounded \(ReplyPlan.adjective(now)) for several turns." }
        if first != now { return "Over the last turns they went from \(ReplyPlan.adjective(first)) to \(ReplyPlan.adjective(now))." }
        return nil
    }
}

/// Builds the chat messages for one reply: persona, reply plan, emotion and its trend, and the
/// conversation so far within a token budget (recent turns verbatim, older ones summarised).
public struct PromptBuilder: Sendable {
    public var persona: Persona
    public var memory: MemorySettings
    /// Every feeling's treatment in the stable start (``ReplyPlan/guide``), each turn naming
    /// only how they sound (``ReplyPlan/feelingLine``); false: each turn gets its plan's
    /// instructions in full (``ReplyPlan/instructions``).
    public var planInStart: Bool

    public init(persona: Persona, memory: MemorySettings = .init(), planInStart: Bool = true) {
        self.persona = persona
        self.memory = memory
        self.planInStart = planInStart
    }

    /// - Parameter opener: the words already spoken to this message (``ReplyPlan/opener(for:)``),
    ///   which the model is told to go on from.
    public func messages(
        for userText: String, plan: ReplyPlan, emotion: EmotionContext, history: [RememberedTurn], opener: String? = nil
    ) -> [ChatMessage] {
        // Stable parts first, so llama.cpp reuses the cached prefix across turns and sessions:
        // the persona, the manner and the examples of every feeling never change for a persona.
        // What changes per turn (the summary, the recent turns, the plan and the trend) follows,
        // and the plan sits right before the message it is about. (With the plan after the
        // message, which would let the message's start be read before the plan is known, the
        // held-out replies judged acceptable fell from 31 to 27 of 35 in one run: BENCHMARKS.md.)
        var messages = context(history: history)
        var guidance = [planInStart ? plan.feelingLine : plan.instructions]
        if let trend = emotion.trend { guidance.append(trend) }
        if let last = history.last, last.interrupted {
            guidance.append("They interrupted your last reply and only heard: \"\(last.reply)\". Do not repeat it; respond to what they say now.")
        }
        messages.append(ChatMessage(.system, guidance.joined(separator: "\n")))
        messages.append(ChatMessage(.user, userText))
        // The reply so far: llama-server continues a last assistant message (prefill) rather
        // than starting a new one; a server that does not still reads what was said. The
        // manner (in the cached start) tells the model to go on from it: a line per turn saying
        // so cost about 25 tokens of prompt, 0.4 s on two cores, before every first token.
        if let opener { messages.append(ChatMessage(.assistant, opener)) }
        return messages
    }

    /// The start of every prompt for the next turn after `history`: the persona, the manner, the
    /// examples, then the conversation so far (a summary of older turns, the recent ones
    /// verbatim). ``messages(for:plan:emotion:history:opener:)`` continues it with the plan and
    /// the message, so it can be read into the model's prompt cache before the turn comes.
    public func context(history: [RememberedTurn]) -> [ChatMessage] {
        let recentCount = fittingRecentTurns(history)
        let older = history.dropLast(recentCount)
        let recent = history.suffix(recentCount)
        let start = [persona.instructions, Self.manner] + (planInStart ? [ReplyPlan.guide] : [])
        var messages = [ChatMessage(.system, start.joined(separator: "\n\n"))]
        for (message, reply) in ReplyPlan.allExamples {
            messages.append(ChatMessage(.user, message))
            messages.append(ChatMessage(.assistant, reply))
        }
        if let summary = Self.summary(of: Array(older), budget: memory.summaryTokens) {
            messages.append(ChatMessage(.system, "Earlier in this conversation:\n\(summary)"))
        }
        for turn in recent {
            messages.append(ChatMessage(.user, turn.userText))
            if !turn.reply.isEmpty { messages.append(ChatMessage(.assistant, turn.reply)) }
        }
        return messages
    }

    /// How every reply is spoken, whatever the persona.
    static let manner = """
        Talk to them directly, as "you", in one to three short spoken sentences: plain warm words, \
        no lists, no emojis. Mention the particular thing they told you, so they know you heard it. \
        Never describe them in the third person and never repeat these instructions. When your reply \
        already begins with a few words, you have said them out loud: go on from them, and do not say \
        them again.
        """

    /// How many of the latest turns fit verbatim in the history budget (at most `recentTurns`).
    func fittingRecentTurns(_ history: [RememberedTurn]) -> Int {
        var used = memory.summaryTokens
        var count = 0
        for turn in history.reversed() where count < memory.recentTurns {
            let cost = Self.tokens(turn.userText) + Self.tokens(turn.reply)
            guard used + cost <= memory.historyTokens else { break }
            used += cost
            count += 1
        }
        return count
    }

    /// One line per older turn, newest kept first when the budget runs out: what the person
    /// said (its first sentence, shortened) and how they felt.
    static func summary(of turns: [RememberedTurn], budget: Int) -> String? {
        var lines: [String] = []
        var used = 0
        for turn in turns.reversed() {
            let firstSentence = turn.userText.split(whereSeparator: { ".!?".contains($0) }).first.map(String.init) ?? turn.userText
            let gist = firstSentence.count > 120 ? firstSentence.prefix(117) + "..." : Substring(firstSentence)
            let feeling = turn.emotion.map { " (sounded \(ReplyPlan.adjective($0)))" } ?? ""
            let line = "- They said: \(gist.trimmingCharacters(in: .whitespaces))\(feeling)"
            guard used + tokens(line) <= budget else { break }
            used += tokens(line)
            lines.insert(line, at: 0)
        }
        return lines.isEmpty ? nil : lines.joined(separator: "\n")
    }

    /// A rough token count: four characters per token.
    static func tokens(_ text: String) -> Int { (text.utf8.count + 3) / 4 }
}
