import AttuneTestSupport
import Foundation
import Testing

/// The tests' scratch folder: one per test process, and folders of processes that died without
/// removing theirs are removed by the next.
struct ScratchFolderTests {
    @Test func foldersOfProcessesNoLongerRunningAreRemoved() throws {
        let base = URL(fileURLWithPath: TestData.temporaryDirectory())
        defer { try? FileManager.default.removeItem(at: base) }
        // A process that has exited (and been reaped) leaves a pid nobody has.
        let exited = Process()
        exited.executableURL = URL(fileURLWithPath: "/bin/true")
        try exited.run()
        exited.waitUntilExit()
        let names = ["attune-tests-\(exited.processIdentifier)", "attune-tests-1", "attune-tests-\(getpid())", "attune-tests-x", "other-9"]
        for name in names {
            try FileManager.default.createDirectory(at: base.appendingPathComponent(name), withIntermediateDirectories: true)
        }

        let removed = TestData.removeScratchFolders(in: base, ofProcessesOtherThan: getpid())

        #expect(removed == ["attune-tests-\(exited.processIdentifier)"])
        let left = try FileManager.default.contentsOfDirectory(atPath: base.path).sorted()
        #expect(left == ["attune-tests-\(getpid())", "attune-tests-1", "attune-tests-x", "other-9"].sorted())
    }

    @Test func everythingATestWritesIsInThisProcessesFolder() {
        #expect(TestData.scratch.lastPathComponent == "attune-tests-\(getpid())")
        #expect(TestData.temporaryDirectory().hasPrefix(TestData.scratch.path + "/"))
        #expect(FileManager.default.fileExists(atPath: TestData.scratch.path))
    }
}
