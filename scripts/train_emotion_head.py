#!/usr/bin/env python3
"""Train Attune's text emotion head on all-MiniLM-L6-v2 sentence embeddings (numpy only).

    make train-emotion     # embeds the shared GoEmotions-Ekman sets, then runs this script

or by hand:

    attune embed --features F --data train.tsv --output train.f32 --tokens train.tokens
    attune embed --features F --data dev.tsv --output dev.f32 --tokens dev.tokens
    PYTHONPATH=$ATTUNE_CACHE/python python3 scripts/train_emotion_head.py --features F \
        --train train.tsv train.f32 train.tokens --dev dev.tsv dev.f32 dev.tokens \
        --out Sources/AttuneEmotion/Resources/emotion-head.json

F lists the encoder's pooled hidden states the head reads, LAYER:POOLING (see PooledFeature in
MiniLMEncoder.swift); the head file records it, so Attune computes the same ones. With
`--embedded`, the .f32 files may hold more blocks than F uses (for comparing choices).

The head adds two parts' logits: a one-hidden-layer MLP on the pooled features (384 per block
-> H -> 7, ReLU)
and a linear layer on lexical features, the presence of each of the K most frequent WordPiece
tokens and adjacent token pairs of the training set (L2-normalised; pairs catch "not happy"), which keeps words such as "furious" or "disgusting"
decisive where the sentence embedding blurs them. Both are trained together with Adam on a
weighted cross-entropy. Multi-label rows become soft targets split evenly over their labels. Classes are
weighted by (1 / frequency) ** POWER so rare ones (fear, disgust, surprise) are not drowned by
neutral. Hyper-parameters are chosen on dev.tsv only, and so are per-class logit offsets that
maximise dev macro-F1. Training is seeded, so the same command writes the same file.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path

import numpy as np

LABELS = ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"]
BLOCK = 384  # values per pooled feature


SPECIAL = {0, 100, 101, 102, 103}  # [PAD] [UNK] [CLS] [SEP] [MASK]


def read_tokens(path: Path) -> list[list[int]]:
    return [[t for t in json.loads(line) if t not in SPECIAL] for line in path.read_text().split("\n") if line]


def terms(tokens: list[int]) -> list[int]:
    """A text's lexical terms: its WordPiece ids and its adjacent pairs (a * 2^20 + b, e.g. "not happy")."""
    return tokens + [a * BIGRAM + b for a, b in zip(tokens, tokens[1:])]


BIGRAM = 1 << 20


def lexical(token_lists: list[list[int]], vocabulary: dict[int, int]) -> np.ndarray:
    """Presence of each vocabulary term, L2-normalised per text."""
    x = np.zeros((len(token_lists), len(vocabulary)), dtype=np.float32)
    for i, tokens in enumerate(token_lists):
        present = {vocabulary[t] for t in terms(tokens) if t in vocabulary}
        if present:
            x[i, list(present)] = 1 / np.sqrt(len(present))
    return x


def load(tsv: Path, embeddings: Path, blocks: list[int], embedded: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features (the chosen blocks of each row), soft targets and a mask of single-label rows."""
    rows = [line.split("\t") for line in tsv.read_text(encoding="utf-8").split("\n") if line]
    x = np.fromfile(embeddings, dtype="<f4").reshape(-1, embedded, BLOCK)[:, blocks].reshape(len(rows), -1)
    if len(x) != len(rows):
        raise SystemExit(f"{embeddings}: {len(x)} embeddings for {len(rows)} rows")
    y = np.zeros((len(rows), len(LABELS)), dtype=np.float32)
    single = np.zeros(len(rows), dtype=bool)
    for i, row in enumerate(rows):
        ids = [int(v) for v in row[1].split(",")]
        y[i, ids] = 1 / len(ids)
        single[i] = len(ids) == 1
    return x, y, single


def macro_f1(truth: np.ndarray, predicted: np.ndarray) -> tuple[float, float]:
    scores = []
    for c in range(len(LABELS)):
        tp = np.sum((predicted == c) & (truth == c))
        fp = np.sum((predicted == c) & (truth != c))
        fn = np.sum((predicted != c) & (truth == c))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)), float(np.mean(predicted == truth))


class MLP:
    def __init__(self, inputs: int, hidden: int, lexical_size: int, seed: int):
        rng = np.random.default_rng(seed)
        self.w1 = rng.normal(0, np.sqrt(2 / inputs), (inputs, hidden)).astype(np.float32)
        self.b1 = np.zeros(hidden, np.float32)
        self.w2 = rng.normal(0, np.sqrt(1 / hidden), (hidden, len(LABELS))).astype(np.float32)
        self.b2 = np.zeros(len(LABELS), np.float32)
        self.wl = np.zeros((lexical_size, len(LABELS)), np.float32)

    def params(self):
        return [self.w1, self.b1, self.w2, self.b2, self.wl]

    def logits(self, x, lex):
        h = np.maximum(x @ self.w1 + self.b1, 0)
        return h @ self.w2 + self.b2 + lex @ self.wl, h

    def train(self, x, lex, y, class_weight, epochs, lr, decay, seed, batch=256):
        rng = np.random.default_rng(seed)
        moments = [(np.zeros_like(p), np.zeros_like(p)) for p in self.params()]
        step = 0
        for _ in range(epochs):
            order = rng.permutation(len(x))
            for start in range(0, len(x), batch):
                idx = order[start:start + batch]
                xb, lb, yb = x[idx], lex[idx], y[idx]
                z, h = self.logits(xb, lb)
                z = z - z.max(1, keepdims=True)
                p = np.exp(z)
                p /= p.sum(1, keepdims=True)
                weight = (yb * class_weight).sum(1, keepdims=True)
                dz = weight * (p - yb) / len(xb)
                grads = [None, None, h.T @ dz, dz.sum(0), lb.T @ dz]
                dh = (dz @ self.w2.T) * (h > 0)
                grads[0], grads[1] = xb.T @ dh, dh.sum(0)
                step += 1
                for param, grad, (m, v) in zip(self.params(), grads, moments):
                    if param.ndim == 2:
                        grad = grad + decay * param
                    m *= 0.9
                    m += 0.1 * grad
                    v *= 0.999
                    v += 0.001 * grad * grad
                    param -= lr * (m / (1 - 0.9 ** step)) / (np.sqrt(v / (1 - 0.999 ** step)) + 1e-8)


def tune_offsets(logits: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-class additive logit offsets, coordinate ascent on dev macro-F1."""
    offsets = np.zeros(len(LABELS), np.float32)
    best = macro_f1(truth, (logits + offsets).argmax(1))[0]
    for _ in range(3):
        for c in range(len(LABELS)):
            for delta in np.linspace(-1.5, 1.5, 31):
                trial = offsets.copy()
                trial[c] = delta
                score = macro_f1(truth, (logits + trial).argmax(1))[0]
                if score > best + 1e-6:
                    best, offsets = score, trial
    return offsets


def pack(matrix: np.ndarray) -> dict:
    """A weight matrix for the head file: rounded to 4 decimals, then little-endian float16,
    base64 (a third of the size of JSON numbers; Swift reads it back as Float)."""
    rounded = np.round(matrix.astype(np.float64), 4).astype("<f2")
    return {"shape": list(rounded.shape), "f16": base64.b64encode(rounded.tobytes()).decode()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", nargs=3, type=Path, required=True, metavar=("TSV", "F32", "TOKENS"))
    parser.add_argument("--dev", nargs=3, type=Path, required=True, metavar=("TSV", "F32", "TOKENS"))
    parser.add_argument("--features", default="6:mean", help="pooled features the head reads, LAYER:POOLING,...")
    parser.add_argument("--embedded", help="the features the .f32 files hold, if more than --features")
    parser.add_argument("--lexical-size", type=int, default=12000)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    features = args.features.split(",")
    embedded = (args.embedded or args.features).split(",")
    missing = [f for f in features if f not in embedded]
    if missing:
        raise SystemExit(f"--features {missing} are not among the embedded {embedded}")
    blocks = [embedded.index(f) for f in features]
    x_train, y_train, _ = load(*args.train[:2], blocks, len(embedded))
    x_dev, y_dev, dev_single = load(*args.dev[:2], blocks, len(embedded))
    train_tokens, dev_tokens = read_tokens(args.train[2]), read_tokens(args.dev[2])
    counts: dict[int, int] = {}
    for tokens in train_tokens:
        for t in set(terms(tokens)):
            counts[t] = counts.get(t, 0) + 1
    kept = sorted(sorted(counts, key=lambda t: -counts[t])[:args.lexical_size])
    vocabulary = {t: i for i, t in enumerate(kept)}
    lex_train, lex_dev = lexical(train_tokens, vocabulary), lexical(dev_tokens, vocabulary)
    truth = y_dev[dev_single].argmax(1)
    frequency = y_train.sum(0) / y_train.sum()

    best = None
    for hidden in (256,):
        for power in (0.5,):
            for decay in (1e-4, 1e-3):
                for epochs in (12, 20):
                    class_weight = (1 / frequency) ** power
                    class_weight /= (class_weight * frequency).sum()
                    model = MLP(x_train.shape[1], hidden, len(vocabulary), args.seed)
                    model.train(x_train, lex_train, y_train, class_weight, epochs, 1e-3, decay, args.seed)
                    logits = model.logits(x_dev[dev_single], lex_dev[dev_single])[0]
                    f1, accuracy = macro_f1(truth, logits.argmax(1))
                    print(f"hidden={hidden} power={power} decay={decay} epochs={epochs}: dev macro-F1 {f1:.4f} accuracy {accuracy:.4f}",
                          file=sys.stderr)
                    if best is None or f1 > best[0]:
                        best = (f1, accuracy, model, dict(hidden=hidden, power=power, decay=decay, epochs=epochs))

    f1, accuracy, model, chosen = best
    logits = model.logits(x_dev[dev_single], lex_dev[dev_single])[0]
    offsets = tune_offsets(logits, truth)
    tuned_f1, tuned_accuracy = macro_f1(truth, (logits + offsets).argmax(1))
    print(f"chosen {chosen}; offsets {np.round(offsets, 2).tolist()}: dev macro-F1 {tuned_f1:.4f} accuracy {tuned_accuracy:.4f}",
          file=sys.stderr)

    head = {
        "labels": LABELS,
        "embedding": "all-MiniLM-L6-v2 hidden states, each pooled block L2 normalised",
        "features": features,
        "training": {**chosen, "seed": args.seed, "dev_macro_f1": round(tuned_f1, 4), "dev_accuracy": round(tuned_accuracy, 4)},
        "layers": [
            {"weight": pack(model.w1.T), "bias": np.round(model.b1.astype(np.float64), 6).tolist(), "activation": "relu"},
            {"weight": pack(model.w2.T), "bias": np.round((model.b2 + offsets).astype(np.float64), 6).tolist(), "activation": "softmax"},
        ],
        "lexical": {"tokens": kept, "weight": pack(model.wl)},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(head, separators=(",", ":")) + "\n")
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
