/// Decides whether a `join_room` may enter its room (for example by checking a signed token).
public protocol RoomAccess: Sendable {
    /// Throws ``RoomError`` `unauthorized` when `token` does not admit `user` to `room`.
    func authorize(token: String?, room: RoomID, user: ParticipantID) async throws(RoomError)
}
