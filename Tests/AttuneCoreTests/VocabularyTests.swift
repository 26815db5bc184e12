import AttuneCore
import AttuneEmotion
import AttuneStorage
import AttuneTestSupport
import Foundation
import Testing

@Suite struct VocabularyTests {
    @Test(arguments: [
        ("happy", EmotionLabel.joy), ("Happiness", .joy), ("angry", .anger), ("anxious", .fear),
        ("sad", .sadness), ("surprised", .surprise), ("disgust", .disgust), (" neutral ", .neutral),
        ("fearful", .fear), ("calm", .neutral),
    ])
    func otherVocabulariesMapOntoTheSevenClasses(name: String, label: EmotionLabel) {
        #expect(EmotionLabel(normalizing: name) == label)
    }

    @Test func unknownNamesHaveNoLabel() {
        #expect(EmotionLabel(normalizing: "bored") == nil)
        #expect(EmotionLabel.allCases.count == 7)
    }
}

@Suite struct DataDirectoryTests {
    @Test func createsTheFolderAndChecksItIsWritable() throws {
        let folder = TestData.scratch.appendingPathComponent("attune-\(UUID().uuidString)/nested")
        try DataDirectory(folder).prepare()
        #expect(FileManager.default.fileExists(atPath: folder.path))
        try FileManager.default.removeItem(at: folder.deletingLastPathComponent())
    }

    @Test func reportsAFolderItCannotCreate() {
        #expect(throws: StorageError.self) { try DataDirectory(URL(fileURLWithPath: "/proc/attune-data")).prepare() }
    }
}
