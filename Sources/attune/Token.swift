import ArgumentParser
import AttuneConversation
import AttuneServer
import Foundation

/// `attune token --room R --user U`: a join token for the rooms protocol.
struct Token: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Mint a join token (JWT, HS256) for a room and user.",
        discussion: "Signed with rooms.token_secret (ATTUNE_ROOMS_TOKEN_SECRET, or --secret); the server checks it on join_room.")

    @Option(help: "The room_id the token admits to.") var room: String
    @Option(help: "The user_id it admits.") var user: String
    @Option(help: "Seconds until it expires.") var lifetime: Double = 3_600
    @Option(help: "The secret (default: rooms.token_secret from the environment or --config).") var secret: String?
    @Option(help: "JSON file of settings.") var config: String?

    func run() async throws {
        guard let roomID = RoomID(room) else { throw ValidationError("--room: 1-64 letters, digits or -_.:@") }
        guard let userID = ParticipantID(user) else { throw ValidationError("--user: 1-64 letters, digits or -_.:@") }
        guard lifetime > 0, lifetime <= 366 * 86_400 else { throw ValidationError("--lifetime: 1 s to a year") }
        let configured = try AttuneConfiguration.load(file: config, environment: ProcessInfo.processInfo.environment).rooms.tokenSecret
        guard let key = secret ?? configured else {
            throw ValidationError("no secret: set rooms.token_secret (ATTUNE_ROOMS_TOKEN_SECRET) or pass --secret")
        }
        let tokens: RoomTokens
        do { tokens = try RoomTokens(secret: key) } catch { throw ValidationError("\(error)") }
        print(try await tokens.mint(room: roomID, user: userID, lifetime: lifetime))
    }
}
