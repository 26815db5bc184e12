import AttuneCore
import AttuneConversation
import AttuneEmotion
import AttuneTestSupport
import Foundation
import Testing

@Suite struct EmotionEstimateTests {
    @Test func probabilitiesAreNormalisedAndComplete() {
        let estimate = EmotionEstimate(scores: [.joy: 3, .surprise: 1], channel: .text, subject: "s", time: 0)
        #expect(estimate.probabilities.count == 7)
        #expect(abs(estimate.probabilities.values.reduce(0, +) - 1) < 1e-12)
        #expect(estimate.label == .joy)
        #expect(abs(estimate.confidence - 0.75) < 1e-12)
        #expect(estimate.valence > 0.5)
    }

    @Test func valenceAndArousalFollowTheCircumplex() {
        let sad = EmotionEstimate(scores: [.sadness: 1], channel: .voice, subject: "s", time: 0)
        let angry = EmotionEstimate(scores: [.anger: 1], channel: .voice, subject: "s", time: 0)
        let neutral = EmotionEstimate(scores: [.neutral: 1], channel: .voice, subject: "s", time: 0)
        #expect(sad.valence < 0 && angry.valence < 0)
        #expect(angry.arousal > sad.arousal)
        #expect(neutral.valence == 0 && neutral.arousal < sad.arousal + 0.1)
        for label in EmotionLabel.allCases {
            #expect((-1...1).contains(label.circumplex.valence) && (0...1).contains(label.circumplex.arousal))
        }
    }

    @Test func invalidScoresMeanNeutral() {
        let estimate = EmotionEstimate(scores: [.joy: .nan, .anger: -2], channel: .text, subject: "s", time: 0)
        #expect(estimate.label == .neutral && estimate.confidence == 1)
    }

    @Test func jsonUsesTheVocabularyAndRoundTrips() throws {
        let estimate = EmotionEstimate(scores: [.fear: 0.7, .sadness: 0.3], channel: .face, subject: "p1", time: 12.5)
        let data = try JSONEncoder().encode(estimate)
        let object = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        #expect((object["probabilities"] as? [String: Double])?.keys.sorted() == EmotionLabel.allCases.map(\.rawValue).sorted())
        #expect(object["label"] as? String == "fear")
        #expect(try JSONDecoder().decode(EmotionEstimate.self, from: data) == estimate)
    }
}

@Suite struct EmotionFusionTests {
    func estimate(_ label: EmotionLabel, _ p: Double, _ channel: EmotionChannel, at time: Double) -> EmotionEstimate {
        EmotionEstimate(scores: [label: p, .neutral: 1 - p], channel: channel, subject: "s", time: time)
    }

    @Test func anySingleChannelWorks() {
        for channel in [EmotionChannel.text, .voice, .face] {
            var fusion = EmotionFusion(subject: "s")
            let fused = fusion.update(estimate(.fear, 0.9, channel, at: 0))
            #expect(fused?.label == .fear)
            #expect(fused?.channel == .fused)
        }
    }

    /// The rules of combination, apart from learned weights.
    static var equalWeights: FusionSettings {
        var settings = FusionSettings()
        settings.weights = .equal
        return settings
    }

    @Test func aLoneChannelIsTheFusedEstimateUnchanged() throws {
        // Without a voice (typed text, GoEmotions), fusion costs the text nothing.
        let text = EmotionEstimate(scores: [.anger: 0.5, .disgust: 0.3, .neutral: 0.2], channel: .text, subject: "s", time: 0)
        var fusion = EmotionFusion(subject: "s")
        let result = fusion.fuse(text)
        let fused = try #require(result)
        for label in EmotionLabel.allCases { #expect(abs(fused.probabilities[label]! - text.probabilities[label]!) < 1e-12) }
    }

    @Test func theLearnedWeightsLetAnAngryVoiceOutweighNeutralWords() throws {
        // RAVDESS: "Kids are talking by the door", shouted. Equal weights call it neutral.
        #expect(FusionWeights.bundled != .equal)
        let words = EmotionEstimate(scores: [.neutral: 0.9, .joy: 0.1], channel: .text, subject: "s", time: 0)
        let voice = EmotionEstimate(scores: [.anger: 0.6, .neutral: 0.4], channel: .voice, subject: "s", time: 0)
        var unsmoothed = FusionSettings()
        unsmoothed.smoothing = 1  // look at the combination alone, not the running state
        var equalUnsmoothed = Self.equalWeights
        equalUnsmoothed.smoothing = 1
        var learned = EmotionFusion(subject: "s", settings: unsmoothed)
        var equal = EmotionFusion(subject: "s", settings: equalUnsmoothed)
        for estimate in [words, voice] {
            _ = learned.fuse(estimate)
            _ = equal.fuse(estimate)
        }
        #expect(equal.current(at: 0)?.label == .neutral)
        #expect(learned.current(at: 0)?.label == .anger)
        // Emotional words still count beside a voice that sounds neutral.
        var upset = EmotionFusion(subject: "s", settings: unsmoothed)
        _ = upset.fuse(EmotionEstimate(scores: [.sadness: 0.85, .neutral: 0.15], channel: .text, subject: "s", time: 0))
        _ = upset.fuse(EmotionEstimate(scores: [.neutral: 0.5, .sadness: 0.3, .joy: 0.2], channel: .voice, subject: "s", time: 0))
        #expect(upset.current(at: 0)?.label == .sadness)
    }

    @Test func aWeightsFileIsCheckedWithItsName() throws {
        let file = TestData.scratch.appendingPathComponent("weights-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: file) }
        try Data(#"{"classes": ["anger", "joy"], "weights": {}}"#.utf8).write(to: file)
        #expect { try FusionWeights(contentsOf: file) } throws: { "\($0)".contains(file.path) && "\($0)".contains("classes") }
        let classes = EmotionLabel.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ",")
        try Data(#"{"classes": [\#(classes)], "weights": {"smell": [1,1,1,1,1,1,1]}}"#.utf8).write(to: file)
        #expect { try FusionWeights(contentsOf: file) } throws: { "\($0)".contains("smell") }
        try Data(#"{"classes": [\#(classes)], "weights": {"voice": [1,1,1,1,1,1,2]}}"#.utf8).write(to: file)
        #expect(try FusionWeights(contentsOf: file).weight(.voice, 6) == 2)
        #expect(try FusionWeights(contentsOf: file).weight(.text, 6) == 1)
    }

    @Test func confidentChannelsOutweighUnsureOnes() {
        var fusion = EmotionFusion(subject: "s", settings: Self.equalWeights)
        _ = fusion.update(estimate(.joy, 0.95, .text, at: 0))
        _ = fusion.update(EmotionEstimate(scores: [.anger: 0.3, .neutral: 0.35, .sadness: 0.35], channel: .voice, subject: "s", time: 0))
        #expect(fusion.current(at: 0)?.label == .joy)
    }

    @Test func oldEvidenceDecays() {
        var settings = Self.equalWeights
        settings.smoothing = 1  // no smoothing: look at decay alone
        var fusion = EmotionFusion(subject: "s", settings: settings)
        _ = fusion.update(estimate(.anger, 0.9, .text, at: 0))
        // A fresh, less confident face reading wins once the text is several half-lives old.
        let fresh = fusion.update(estimate(.joy, 0.6, .face, at: 40))
        #expect(fresh?.label == .joy)
        // But not when both are recent.
        var recent = EmotionFusion(subject: "s", settings: settings)
        _ = recent.update(estimate(.anger, 0.9, .text, at: 0))
        _ = recent.update(estimate(.joy, 0.6, .face, at: 1))
        #expect(recent.current(at: 1)?.label == .anger)
    }

    @Test func smoothingDampsASingleJitteryReading() {
        var fusion = EmotionFusion(subject: "s")
        for second in 0..<5 { _ = fusion.update(estimate(.sadness, 0.8, .voice, at: Double(second))) }
        // One surprising reading from the same channel moves the state, but not all the way.
        _ = fusion.update(estimate(.surprise, 0.9, .voice, at: 5))
        let state = fusion.current(at: 5)!
        #expect(state.probabilities[.sadness]! > 0.1)
        #expect(state.probabilities[.surprise]! < 0.9)
    }

    @Test func onlyMaterialChangesAreReported() {
        var fusion = EmotionFusion(subject: "s")
        #expect(fusion.update(estimate(.joy, 0.8, .text, at: 0)) != nil)
        #expect(fusion.update(estimate(.joy, 0.81, .text, at: 0.5)) == nil)
        #expect(fusion.update(estimate(.joy, 0.79, .face, at: 1)) == nil)
        var reported = 0
        for step in 0..<6 where fusion.update(estimate(.anger, 0.95, .text, at: 2 + Double(step))) != nil { reported += 1 }
        #expect(reported >= 1)
        #expect(fusion.current(at: 8)?.label == .anger)
    }
}
