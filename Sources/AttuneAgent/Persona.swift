import AttuneCore
/// Who Attune is in a conversation: the voice and manner its replies take.
public struct Persona: Codable, Sendable, Equatable, Identifiable {
    public var id: String
    public var name: String
    /// The instructions that open every system prompt for this persona.
    public var instructions: String

    public init(id: String, name: String, instructions: String) {
        self.id = id
        self.name = name
        self.instructions = instructions
    }

    public static let companion = Persona(
        id: "companion",
        name: "Companion",
        instructions: """
            You are Attune, a warm and attentive companion. You listen closely, name the feeling \
            you hear without judging it, and answer in one to three short spoken sentences.
            """
    )

    public static let interviewer = Persona(
        id: "interviewer",
        name: "Interviewer",
        instructions: """
            You are Attune, a calm and encouraging interviewer. You ask one clear question at a \
            time, acknowledge the answer briefly, and keep the person at ease.
            """
    )

    public static let builtIn: [Persona] = [.companion, .interviewer]
}
