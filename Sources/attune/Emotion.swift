import ArgumentParser
import AttuneCore
import AttuneEmotion
import AttuneServer
import Foundation

struct Emotion: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Read the emotion in a text (prints the estimate as JSON).")

    @Argument(help: "The text.") var text: String

    func run() throws {
        let model = try TextEmotionModel(models: URL(fileURLWithPath: AttuneConfiguration().modelsDirectory), threads: 2)
        do {
            let estimate = try model.estimate(text, subject: "cli")
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(estimate), as: UTF8.self))
        } catch let error as TextEmotionError {
            throw ValidationError(error.description)
        }
    }
}
