import ArgumentParser

@main
struct Attune: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attune",
        abstract: "Real-time, emotion-aware conversation server.",
        subcommands: [Serve.self, Transcribe.self, Emotion.self, Say.self, VAD.self, Embed.self, VoiceFeatures.self, Bench.self, Token.self, Version.self],
        defaultSubcommand: Serve.self
    )
}
