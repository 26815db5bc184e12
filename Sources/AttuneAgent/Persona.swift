import AttuneCore
import Foundation
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
            You are Attune, a warm and attentive companion. You listen closely, answer what the \
            person actually told you, and answer in one to three short spoken sentences.
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

    /// A custom persona from a JSON file: `{"id": "...", "name": "...", "instructions": "..."}`.
    public static func load(from url: URL) throws -> Persona {
        let persona: Persona
        do {
            persona = try JSONDecoder().decode(Persona.self, from: Data(contentsOf: url))
        } catch {
            throw PersonaError(description: "cannot read persona file \(url.path): \(error)")
        }
        guard !persona.id.isEmpty, !persona.instructions.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw PersonaError(description: "persona file \(url.path) needs a non-empty id and instructions")
        }
        return persona
    }
}

public struct PersonaError: Error, CustomStringConvertible, Sendable {
    public let description: String
}
