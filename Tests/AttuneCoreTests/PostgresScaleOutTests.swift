import AttuneAgent
import AttuneConversation
import AttuneCore
import AttuneStorage
import AttuneTestSupport
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import Testing

/// Several instances on one real PostgreSQL database: room changes travel between them
/// (LISTEN/NOTIFY), survive a lost listening connection, and a silent instance's participants
/// are taken out of their rooms.
@Suite(.serialized) struct PostgresScaleOutTests {
    let room = RoomID("hall")!, ann = ParticipantID("ann")!, bob = ParticipantID("bob")!

    func update(_ label: EmotionLabel, at time: Double, user: ParticipantID) -> EmotionUpdate {
        EmotionUpdate(room: room, participant: user, estimate: EmotionEstimate(scores: [label: 1], channel: .fused, subject: user.rawValue, time: time))
    }

    /// Changes heard by one instance, and a way to wait for them.
    final class Heard: Sendable {
        private let changes = Mutex<[RoomChange]>([])
        func append(_ change: RoomChange) { changes.withLock { $0.append(change) } }
        var all: [RoomChange] { changes.withLock { $0 } }

        /// Waits until `count` changes have arrived (or the deadline passes) and returns them all.
        func wait(for count: Int, within seconds: Double = 60) async throws -> [RoomChange] {
            _ = try await TestData.eventually(within: seconds) { all.count >= count }
            return all
        }
    }

    @Test func anotherInstanceHearsEveryChangeOnceAcrossALostListener() async throws {
        let database = try PostgresTestDatabase()
        defer { database.drop() }
        let location = try PostgresLocation(url: database.url)
        let a = try PostgresStore(location: location, instanceID: "instance-a")
        let b = try PostgresStore(location: location, instanceID: "instance-b")
        let heard = Heard()
        try await a.whileRunning {
            try await b.whileRunning {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await b.follow { heard.append($0) } }
                    defer { group.cancelAll() }
                    // The schema exists once A has answered; B listens once its connection is up.
                    #expect(await a.check() == .available)
                    #expect(try await TestData.eventually { b.listenerBackendPID != nil })

                    try await a.participantJoined(room: room, user: ann, info: .object(["name": .string("Ann")]), at: Date(timeIntervalSince1970: 1_000))
                    for index in 0..<3 { try await a.record(update(.joy, at: 2_000 + Double(index), user: ann), keep: 10) }
                    // Larger than a NOTIFY payload may be: it travels by id and is read from the table.
                    let large = JSONValue.string(String(repeating: "x", count: 20_000))
                    try await a.participantJoined(room: room, user: bob, info: large, at: Date(timeIntervalSince1970: 1_001))
                    var changes = try await heard.wait(for: 5)
                    #expect(changes.count == 5)
                    #expect(changes.first == .joined(room: room, user: ann, info: .object(["name": .string("Ann")]), at: Date(timeIntervalSince1970: 1_000)))
                    #expect(changes.dropFirst().prefix(3).allSatisfy { if case .emotion = $0 { true } else { false } })
                    #expect(changes.last == .joined(room: room, user: bob, info: large, at: Date(timeIntervalSince1970: 1_001)))

                    // End B's listening connection on the server, and write while it is gone.
                    let lost = try #require(b.listenerBackendPID)
                    #expect(try database.run("SELECT pg_terminate_backend(\(lost))") == "t")
                    for index in 0..<5 { try await a.record(update(.sadness, at: 3_000 + Double(index), user: ann), keep: 10) }
                    try await a.participantLeft(room: room, user: bob, at: Date(timeIntervalSince1970: 3_100))
                    changes = try await heard.wait(for: 11)
                    #expect(try await TestData.eventually { (b.listenerBackendPID ?? lost) != lost })
                    try await a.record(update(.anger, at: 4_000, user: ann), keep: 10)
                    changes = try await heard.wait(for: 12)
                    // Give a duplicate the time to show up, then count: every change exactly once, in order.
                    try await a.participantLeft(room: room, user: ann, at: Date(timeIntervalSince1970: 4_100))
                    changes = try await heard.wait(for: 13)
                    #expect(changes.count == 13)
                    let emotions = changes.compactMap { if case .emotion(let update) = $0 { update.timestamp } else { nil } }
                    let expected = [2_000.0, 2_001, 2_002, 3_000, 3_001, 3_002, 3_003, 3_004, 4_000].map { roomsTimestamp(Date(timeIntervalSince1970: $0)) }
                    #expect(emotions == expected)
                    #expect(changes[10] == .left(room: room, user: bob))
                    #expect(changes.last == .left(room: room, user: ann))
                }
            }
        }
    }

    /// A room may open on an instance before its listener is up (found by `bench rooms
    /// --instances 2`): what the others did since the store was made still arrives.
    @Test func aListenerThatStartsLateHearsWhatHappenedSinceItsStoreWasMade() async throws {
        let database = try PostgresTestDatabase()
        defer { database.drop() }
        let location = try PostgresLocation(url: database.url)
        let old = try PostgresStore(location: location, instanceID: "instance-old")
        let heard = Heard()
        try await old.whileRunning {
            try await old.participantJoined(room: room, user: bob, info: nil, at: Date(timeIntervalSince1970: 900))
            let late = try PostgresStore(location: location, instanceID: "instance-late")
            try await old.participantJoined(room: room, user: ann, info: nil, at: Date(timeIntervalSince1970: 1_000))
            try await late.whileRunning {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await late.follow { heard.append($0) } }
                    defer { group.cancelAll() }
                    #expect(try await TestData.eventually { late.listenerBackendPID != nil })
                    try await old.record(update(.joy, at: 2_000, user: ann), keep: 10)
                    // Ann joined after the late store was made, before its listener was up: her join
                    // and then her emotion arrive (Bob's earlier join may too, within the margin).
                    let isEmotion: (RoomChange) -> Bool = { if case .emotion = $0 { true } else { false } }
                    #expect(try await TestData.eventually { heard.all.contains(where: isEmotion) })
                    let changes = heard.all
                    #expect(changes.contains(.joined(room: room, user: ann, info: nil, at: Date(timeIntervalSince1970: 1_000))))
                    #expect(changes.last.map(isEmotion) == true)
                    #expect(changes.filter(isEmotion).count == 1)
                }
            }
        }
    }

    @Test func aSilentInstancesParticipantsLeaveTheirRoomsWithinTheTimeout() async throws {
        let database = try PostgresTestDatabase()
        defer { database.drop() }
        let location = try PostgresLocation(url: database.url)
        var settings = PostgresSettings()
        settings.heartbeatInterval = 0.2
        settings.instanceTimeout = 1.5
        let dying = try PostgresStore(location: location, settings: settings, instanceID: "instance-dying")
        let survivor = try PostgresStore(location: location, settings: settings, instanceID: "instance-survivor")
        let heard = Heard()
        try await survivor.whileRunning {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await survivor.follow { heard.append($0) } }
                defer { group.cancelAll() }
                #expect(try await TestData.eventually { survivor.listenerBackendPID != nil })
                // The dying instance joins two participants, beats a few times, then stops without a goodbye.
                try await dying.whileRunning {
                    try await dying.participantJoined(room: room, user: ann, info: nil, at: Date(timeIntervalSince1970: 1_000))
                    try await dying.participantJoined(room: RoomID("porch")!, user: bob, info: nil, at: Date(timeIntervalSince1970: 1_000))
                    #expect(try await TestData.eventually { try database.run("SELECT count(*) FROM attune_instance") == "2" })
                }
                let changes = try await heard.wait(for: 4)
                #expect(changes.count == 4)
                #expect(Set(changes.dropFirst(2).map { "\($0)" }) == Set([RoomChange.left(room: room, user: ann), .left(room: RoomID("porch")!, user: bob)].map { "\($0)" }))
                #expect(try await survivor.participants(in: room).isEmpty)
                #expect(try await survivor.room(room)?.members.first?.leftAt != nil)
                #expect(try database.run("SELECT id FROM attune_instance") == "instance-survivor")
            }
        }
    }

    @Test func aGracefulShutdownTakesTheInstancesParticipantsOutAtOnce() async throws {
        let database = try PostgresTestDatabase()
        defer { database.drop() }
        // The default instance timeout (10 s): nobody would reap it within this test.
        let leaving = try PostgresStore(location: try PostgresLocation(url: database.url), instanceID: "instance-leaving")
        let services = ServiceGroup(configuration: .init(services: [leaving], logger: Logger(label: "test")))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await services.run() }
            try await leaving.participantJoined(room: room, user: ann, info: nil, at: Date(timeIntervalSince1970: 1_000))
            #expect(try await TestData.eventually { try database.run("SELECT count(*) FROM attune_instance") == "1" })
            await services.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        #expect(try database.run("SELECT count(*) FROM room_member WHERE left_at IS NULL") == "0")
        #expect(try database.run("SELECT count(*) FROM attune_instance") == "0")
        #expect(try database.run("SELECT change FROM room_event ORDER BY id DESC LIMIT 1").contains(#""kind":"left""#))
    }

    @Test func anUnreachableServerIsAClearErrorWithinTheTimeout() async throws {
        // A port nobody listens on.
        let port = try EmbeddedLLMServer.freePort()  // free, so nobody listens there
        var settings = PostgresSettings()
        settings.timeout = 1
        let store = try PostgresStore(location: try PostgresLocation(url: "postgres://attune:secret@127.0.0.1:\(port)/attune"), settings: settings)
        try await store.whileRunning {
            let clock = ContinuousClock()
            let start = clock.now
            await #expect(throws: StorageError.self) { try await store.startSession(id: "s", persona: "companion", voice: "joe", at: 1) }
            #expect(clock.now - start < .seconds(30))  // bounded by storage.timeout_s, not hanging
            guard case .unavailable(let reason) = store.availability else {
                Issue.record("the store should say it is unavailable")
                return
            }
            #expect(reason.contains("127.0.0.1"))
            #expect(!reason.contains("secret"))
        }
    }

    /// A store stopped while its heartbeat is in the middle of a transaction (here: the first
    /// migration, cut short by a tiny `storage.timeout_s`) stops at once. Before the pool
    /// outlived the heartbeat, PostgresNIO never resumed the heartbeat's query once the pool had
    /// stopped under it, and a loaded `make test` hung for good in about one stop of twenty.
    @Test(.timeLimit(.minutes(2))) func aStoreStoppedMidTransactionStops() async throws {
        for round in 0..<30 {
            let database = try PostgresTestDatabase()
            defer { database.drop() }
            var settings = PostgresSettings()
            settings.timeout = [0.002, 0.005, 0.01, 0.02, 0.04][round % 5]
            let store = try PostgresStore(location: try PostgresLocation(url: database.url), settings: settings)
            // The operation may finish or time out; what matters is that the store then stops.
            _ = try? await store.whileRunning {
                try await store.startSession(id: "s", persona: "companion", voice: "joe", at: 1)
            }
        }
    }

    @Test func urlsAreReadAndBadOnesExplained() throws {
        let location = try PostgresLocation(url: "postgresql://me:p%40ss@db.example:6543/attune?sslmode=require")
        #expect(location.host == "db.example" && location.port == 6543 && location.username == "me")
        #expect(location.password == "p@ss" && location.database == "attune" && location.tls == .require)
        #expect(location.description == "postgres://me:***@db.example:6543/attune")
        #expect(try StorageLocation(url: "sqlite:chat.sqlite") == .sqlite(path: "chat.sqlite"))
        for bad in ["mysql://a@b/c", "postgres://host/db", "postgres://me@host", "postgres://me@host/db?sslmode=maybe", "sqlite:"] {
            #expect(throws: StorageError.self) { try StorageLocation(url: bad) }
        }
        do {
            _ = try StorageLocation(url: "redis://me:hidden@host/1")
        } catch {
            #expect(!"\(error)".contains("hidden"))
        }
    }
}
