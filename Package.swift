// swift-tools-version:6.1
import PackageDescription

// Native libraries live in the setup cache; `scripts/setup.py` links them into `.deps`.
// Embedding that folder as the rpath lets every binary find them without LD_LIBRARY_PATH.
let nativeLibraryPath = "\(Context.packageDirectory)/.deps/lib"
let nativeLinkerSettings: [LinkerSetting] = [
    .unsafeFlags(["-L\(nativeLibraryPath)", "-Xlinker", "-rpath", "-Xlinker", nativeLibraryPath])
]

let package = Package(
    name: "attune",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "attune", targets: ["attune"]),
        .library(name: "AttuneServer", targets: ["AttuneServer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.7.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.0"),
    ],
    targets: [
        // C wrappers over the native runtimes that setup installs (see scripts/setup.py).
        .systemLibrary(name: "CSherpaOnnx", pkgConfig: "attune-sherpa-onnx"),
        .systemLibrary(name: "CWhisper", pkgConfig: "attune-whisper"),
        .systemLibrary(name: "CSndFile", pkgConfig: "sndfile", providers: [.apt(["libsndfile1-dev"])]),
        .systemLibrary(name: "CSoxr", pkgConfig: "soxr", providers: [.apt(["libsoxr-dev"])]),
        .systemLibrary(name: "CEspeakNG", pkgConfig: "espeak-ng", providers: [.apt(["libespeak-ng-dev"])]),
        .systemLibrary(name: "CKissFFT", pkgConfig: "kissfft-float", providers: [.apt(["libkissfft-dev"])]),
        .systemLibrary(name: "CTurboJPEG", pkgConfig: "libturbojpeg", providers: [.apt(["libturbojpeg0-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng16", providers: [.apt(["libpng-dev"])]),

        // Core types, protocol messages and the bounded pool that runs blocking inference.
        .target(
            name: "AttuneCore",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Audio containers, decoding (libsndfile, ffmpeg) and resampling (libsoxr).
        .target(name: "AttuneAudio", dependencies: ["AttuneCore", "CSndFile", "CSoxr"]),
        // Voice activity detection, speech recognition and synthesis on the native runtimes.
        .target(
            name: "AttuneSpeech",
            dependencies: ["AttuneCore", "AttuneAudio", "AttuneONNX", "CKissFFT", "CSherpaOnnx", "CWhisper", "CEspeakNG"],
            linkerSettings: nativeLinkerSettings
        ),
        // The emotion vocabulary, estimates and fusion shared by every channel; the text model on ggml.
        .target(
            name: "AttuneEmotion", dependencies: ["AttuneCore", "CWhisper"],
            resources: [.copy("Resources/emotion-head.json")], linkerSettings: nativeLinkerSettings),
        // Conversation agent: personas, prompts, reply plans and the LLM client.
        .target(
            name: "AttuneAgent",
            dependencies: [
                "AttuneCore", "AttuneEmotion",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The conversation core: rooms, participants, their emotion and the typed rooms protocol.
        // It knows nothing of HTTP, SQL or the native libraries.
        .target(name: "AttuneConversation", dependencies: ["AttuneCore"], resources: [.copy("Resources/fusion-weights.json")]),
        // ONNX models on ONNX Runtime's C API (the library sherpa-onnx ships): voice, face and end-of-turn models.
        .target(name: "AttuneONNX", dependencies: ["AttuneCore", "CSherpaOnnx"]),
        // Emotion in the voice: acoustic features (KISS FFT) and the voice model (ONNX).
        .target(
            name: "AttuneVoice", dependencies: ["AttuneCore", "AttuneONNX", "CKissFFT"],
            resources: [.copy("Resources/voice-emotion.onnx")]),
        // Emotion in the face: frame decoding (libjpeg-turbo, libpng), RetinaFace, alignment and
        // the expression model (ONNX).
        .target(
            name: "AttuneFace", dependencies: ["AttuneCore", "AttuneONNX", "CTurboJPEG", "CPNG"],
            resources: [.copy("Resources/face-expression.onnx")]),
        // Where conversations and rooms are kept: SQLite (embedded) or a PostgreSQL server shared by
        // several instances, which also carries their rooms' events (LISTEN/NOTIFY).
        .target(
            name: "AttuneStorage",
            dependencies: [
                "AttuneCore", "AttuneConversation",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        // HTTP + WebSocket server.
        .target(
            name: "AttuneServer",
            dependencies: [
                "AttuneCore", "AttuneAudio", "AttuneSpeech", "AttuneEmotion", "AttuneAgent", "AttuneStorage", "AttuneConversation", "AttuneVoice", "AttuneFace",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "JWTKit", package: "jwt-kit"),
            ],
            resources: [.copy("Public")]
        ),
        // Benchmarks and the WebSocket client they (and the tests) drive sessions with.
        .target(
            name: "AttuneBench",
            dependencies: [
                "AttuneServer", "AttuneSpeech", "AttuneAudio", "AttuneCore", "AttuneEmotion", "AttuneAgent",
                "AttuneConversation", "AttuneVoice", "AttuneFace", "AttuneStorage",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
            ]
        ),
        // The thin command-line entry point.
        .executableTarget(
            name: "attune",
            dependencies: [
                "AttuneServer", "AttuneSpeech", "AttuneAudio", "AttuneBench", "AttuneEmotion", "AttuneConversation", "AttuneVoice", "AttuneFace",
                "AttuneStorage",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // Paths to shared data and models, for the test targets only.
        .target(name: "AttuneTestSupport"),
        .testTarget(
            name: "AttuneCoreTests",
            dependencies: [
                "AttuneCore", "AttuneEmotion", "AttuneAgent", "AttuneStorage", "AttuneConversation", "AttuneTestSupport",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(name: "AttuneConversationTests", dependencies: ["AttuneConversation", "AttuneCore"]),
        .testTarget(name: "AttuneONNXTests", dependencies: ["AttuneONNX", "AttuneTestSupport"]),
        .testTarget(name: "AttuneFaceTests", dependencies: ["AttuneFace", "AttuneCore", "AttuneTestSupport"]),
        .testTarget(name: "AttuneVoiceTests", dependencies: ["AttuneVoice", "AttuneONNX", "AttuneCore", "AttuneAudio", "AttuneTestSupport"]),
        .testTarget(name: "AttuneAudioTests", dependencies: ["AttuneAudio", "AttuneTestSupport"]),
        .testTarget(name: "AttuneAgentTests", dependencies: ["AttuneAgent", "AttuneCore", "AttuneEmotion", "AttuneTestSupport"]),
        .testTarget(name: "AttuneSpeechTests", dependencies: ["AttuneSpeech", "AttuneAudio", "AttuneCore", "AttuneTestSupport"]),
        .testTarget(
            name: "AttuneServerTests",
            dependencies: [
                "AttuneServer", "AttuneBench", "AttuneAudio", "AttuneAgent", "AttuneConversation", "AttuneTestSupport", "AttuneVoice", "AttuneFace",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HummingbirdWSTesting", package: "hummingbird-websocket"),
            ]
        ),
    ]
)
