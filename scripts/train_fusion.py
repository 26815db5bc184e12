#!/usr/bin/env python3
"""Learn how much each channel counts, per class, when Attune fuses text and voice.

Attune's fusion (EmotionFusion in Sources/AttuneConversation) combines the channels heard as
    p[k] ∝ Σ_c w[c][k] · p_c[k]
and passes a lone channel through unchanged. This script learns w from RAVDESS, where every
clip has a voice (the default voice model's out-of-fold probabilities, from
`train_voice_whisper.py --oof`, or the feature model's from `train_voice_emotion.py --oof`) and words (the text model's probabilities of what Whisper heard,
from `attune bench emotion-voice --dump`). It minimises the log-loss of the fused probability of
the true label, with w = exp(θ) and a penalty pulling θ towards 0 (w = 1), so a weight the data
says nothing about stays at 1. RAVDESS's words carry no emotion ("Kids are talking by the
door"), so they teach that the text's *neutral* is weak evidence beside the voice; its other
classes are rarely predicted here and keep weights near 1.

Evidence is speaker-independent: the weights are fitted on three actor folds and scored on the
fourth, and the report compares text alone, voice alone, equal weights and learned weights.
The weights written to --out are fitted on all clips.

    make train-voice     # or:
    python3 scripts/train_fusion.py --oof .build/voice/oof-whisper.tsv --clips .build/voice/clips.tsv \
        --out Sources/AttuneConversation/Resources/fusion-weights.json
"""
import argparse
import json
import os
import sys

import numpy as np
from scipy.optimize import minimize

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from train_voice_emotion import CLASSES, FOLDS, scores  # noqa: E402

CHANNELS = ["text", "voice"]


def read(path):
    with open(path) as handle:
        header = handle.readline().rstrip("\n").split("\t")
        return [dict(zip(header, line.rstrip("\n").split("\t"))) for line in handle if line.strip()]


def load(oof_path, clips_path):
    """Text and voice probabilities [N, 2, 7], labels and actors of the clips in both files."""
    text = {os.path.realpath(row["path"]): row for row in read(clips_path)}
    probabilities, labels, actors = [], [], []
    for row in read(oof_path):
        words = text.get(os.path.realpath(row["path"]))
        if words is None or words.get(f"text_{CLASSES[0]}", "") == "":
            continue
        probabilities.append([[float(words[f"text_{name}"]) for name in CLASSES],
                              [float(row[f"voice_{name}"]) for name in CLASSES]])
        labels.append(CLASSES.index(row["label"]))
        actors.append(int(row["actor"]))
    return np.array(probabilities), np.array(labels), np.array(actors)


def fuse(probabilities, weights):
    mixed = (probabilities * weights[None, :, :]).sum(axis=1)
    return mixed / mixed.sum(axis=1, keepdims=True)


def fit(probabilities, labels, penalty):
    shape = (len(CHANNELS), len(CLASSES))

    def loss(theta):
        fused = fuse(probabilities, np.exp(theta.reshape(shape)))
        return -np.log(fused[np.arange(len(labels)), labels] + 1e-9).mean() + penalty * (theta ** 2).sum()

    result = minimize(loss, np.zeros(np.prod(shape)), method="L-BFGS-B")
    return np.exp(result.x.reshape(shape))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--oof", required=True, help="out-of-fold voice probabilities (train_voice_emotion.py --oof)")
    parser.add_argument("--clips", required=True, help="text probabilities per clip (attune bench emotion-voice --dump)")
    parser.add_argument("--out", required=True, help="fusion weights JSON to write")
    parser.add_argument("--report", help="write the evidence as JSON here")
    parser.add_argument("--penalty", type=float, default=0.01, help="pull of each log-weight towards 0")
    args = parser.parse_args()

    probabilities, labels, actors = load(args.oof, args.clips)
    print(f"{len(labels)} clips with text and voice", file=sys.stderr)
    equal = np.ones((len(CHANNELS), len(CLASSES)))
    predictions = {name: np.zeros(len(labels), dtype=int) for name in ["learned", "equal"]}
    for held_out in FOLDS:
        test = np.isin(actors, held_out)
        weights = fit(probabilities[~test], labels[~test], args.penalty)
        predictions["learned"][test] = fuse(probabilities[test], weights).argmax(axis=1)
        predictions["equal"][test] = fuse(probabilities[test], equal).argmax(axis=1)
    evidence = {
        "clips": int(len(labels)),
        "protocol": "weights fitted on 3 actor folds, scored on the 4th; voice probabilities out of fold",
        "text_only": scores(labels, probabilities[:, 0].argmax(axis=1)),
        "voice_only": scores(labels, probabilities[:, 1].argmax(axis=1)),
        "fused_equal_weights": scores(labels, predictions["equal"]),
        "fused_learned_weights": scores(labels, predictions["learned"]),
        "text_alone_passes_through": "a lone channel is the fused estimate unchanged, so text without voice "
                                    "(GoEmotions) scores exactly as the text model does",
    }
    for key in ["text_only", "voice_only", "fused_equal_weights", "fused_learned_weights"]:
        print(f"{key:24s} {evidence[key]}", file=sys.stderr)

    weights = fit(probabilities, labels, args.penalty)
    document = {
        "classes": CLASSES,
        "weights": {channel: [round(float(value), 4) for value in weights[index]] for index, channel in enumerate(CHANNELS)},
        "trained_on": "RAVDESS actors 01-12: out-of-fold voice probabilities and the text of Whisper's transcripts",
        "penalty": args.penalty,
        "evidence": evidence,
    }
    with open(args.out, "w") as handle:
        json.dump(document, handle, indent=2)
        handle.write("\n")
    print(json.dumps(document["weights"]), file=sys.stderr)
    if args.report:
        with open(args.report, "w") as handle:
            json.dump(evidence, handle, indent=2)


if __name__ == "__main__":
    main()
