import AttuneConversation
import Foundation
import JWTKit

/// Join tokens for rooms: JWTs signed with HS256 and `rooms.token_secret`, whose claims name
/// the user (`sub`), the room (`room`) and an expiry (`exp`). `attune token` mints them.
public struct RoomTokens: RoomAccess {
    struct Claims: JWTPayload {
        var sub: SubjectClaim
        var room: String
        var exp: ExpirationClaim

        func verify(using algorithm: some JWTAlgorithm) async throws {
            try exp.verifyNotExpired()
        }
    }

    private let secret: String
    /// HS256 needs a key at least as long as its digest.
    public static let minimumSecretBytes = 32

    /// Throws when the secret is shorter than ``minimumSecretBytes``.
    public init(secret: String) throws {
        guard secret.utf8.count >= Self.minimumSecretBytes else {
            throw ConfigurationError("rooms.token_secret must be at least \(Self.minimumSecretBytes) bytes (HS256); try `openssl rand -hex 32`")
        }
        self.secret = secret
    }

    private func keys() async -> JWTKeyCollection {
        await JWTKeyCollection().add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
    }

    /// A token admitting `user` to `room` until `lifetime` seconds from now.
    public func mint(room: RoomID, user: ParticipantID, lifetime: Double) async throws -> String {
        try await keys().sign(Claims(sub: .init(value: user.rawValue), room: room.rawValue, exp: .init(value: Date().addingTimeInterval(lifetime))))
    }

    public func authorize(token: String?, room: RoomID, user: ParticipantID) async throws(RoomError) {
        guard let token, !token.isEmpty else {
            throw RoomError(.unauthorized, "this server needs a join token: add \"token\" to join_room (attune token --room R --user U mints one)")
        }
        let claims: Claims
        do {
            claims = try await keys().verify(token, as: Claims.self)
        } catch {
            throw RoomError(.unauthorized, "the join token is invalid or expired")
        }
        guard claims.room == room.rawValue, claims.sub.value == user.rawValue else {
            throw RoomError(.unauthorized, "the join token is for another room or user")
        }
    }
}

/// Admits nobody: what a server with an unusable `rooms.token_secret` uses, so that a bad
/// secret closes the rooms rather than opening them.
struct ClosedRooms: RoomAccess {
    let reason: String

    func authorize(token: String?, room: RoomID, user: ParticipantID) async throws(RoomError) {
        throw RoomError(.unauthorized, reason)
    }
}
