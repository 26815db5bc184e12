import AttuneCore
import AttuneConversation
import AttuneEmotion
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

    @Test func confidentChannelsOutweighUnsureOnes() {
        var fusion = EmotionFusion(subject: "s")
        _ = fusion.update(estimate(.joy, 0.95, .text, at: 0))
        _ = fusion.update(EmotionEstimate(scores: [.anger: 0.3, .neutral: 0.35, .sadness: 0.35], channel: .voice, subject: "s", time: 0))
        #expect(fusion.current(at: 0)?.label == .joy)
    }

    @Test func oldEvidenceDecays() {
        var settings = FusionSettings()
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
