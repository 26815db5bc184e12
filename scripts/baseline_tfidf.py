#!/usr/bin/env python3
"""The TF-IDF + logistic-regression baseline for the text emotion task (numpy only).

    PYTHONPATH=$ATTUNE_CACHE/python python3 scripts/baseline_tfidf.py \
        --train ../shared/data/text/goemotions-ekman/train.tsv --dev ../shared/data/text/goemotions-ekman/dev.tsv

Features: lower-cased word unigrams and bigrams (the 20,000 most frequent in train), sublinear
term frequency times smoothed inverse document frequency, L2-normalised rows. Model:
multinomial logistic regression with L2 regularisation, trained with Adam on soft targets
(multi-label rows split evenly), the same single-label dev rows and metrics as
`attune bench emotion-text`. The regularisation strength is chosen on dev.
"""

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

LABELS = ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"]
WORD = re.compile(r"[a-z0-9']+")


def read(path: Path):
    texts, targets = [], []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if not line:
            continue
        fields = line.split("\t")
        ids = [int(v) for v in fields[1].split(",")]
        y = np.zeros(len(LABELS), np.float32)
        y[ids] = 1 / len(ids)
        texts.append(fields[0])
        targets.append(y)
    return texts, np.array(targets)


def terms(text: str) -> list[str]:
    words = WORD.findall(text.lower())
    return words + [a + " " + b for a, b in zip(words, words[1:])]


def matrix(texts, vocabulary, idf):
    x = np.zeros((len(texts), len(vocabulary)), np.float32)
    for i, text in enumerate(texts):
        counts = {}
        for t in terms(text):
            j = vocabulary.get(t)
            if j is not None:
                counts[j] = counts.get(j, 0) + 1
        for j, c in counts.items():
            x[i, j] = (1 + np.log(c)) * idf[j]
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def train(x, y, decay, epochs=300, lr=0.05):
    w = np.zeros((x.shape[1], len(LABELS)), np.float32)
    b = np.zeros(len(LABELS), np.float32)
    mw, vw, mb, vb = (np.zeros_like(w), np.zeros_like(w), np.zeros_like(b), np.zeros_like(b))
    for step in range(1, epochs + 1):
        z = x @ w + b
        z -= z.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        g = (p - y) / len(x)
        gw, gb = x.T @ g + decay * w, g.sum(0)
        for param, grad, m, v in ((w, gw, mw, vw), (b, gb, mb, vb)):
            m *= 0.9
            m += 0.1 * grad
            v *= 0.999
            v += 0.001 * grad * grad
            param -= lr * (m / (1 - 0.9 ** step)) / (np.sqrt(v / (1 - 0.999 ** step)) + 1e-8)
    return w, b


def scores(truth, predicted):
    per_class = []
    for c in range(len(LABELS)):
        tp = np.sum((predicted == c) & (truth == c))
        fp = np.sum((predicted == c) & (truth != c))
        fn = np.sum((predicted != c) & (truth == c))
        per_class.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(per_class)), float(np.mean(predicted == truth))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--dev", type=Path, required=True)
    parser.add_argument("--features", type=int, default=20000)
    args = parser.parse_args()
    train_texts, y_train = read(args.train)
    dev_texts, y_dev = read(args.dev)
    document_frequency = {}
    for text in train_texts:
        for t in set(terms(text)):
            document_frequency[t] = document_frequency.get(t, 0) + 1
    kept = sorted(document_frequency, key=lambda t: -document_frequency[t])[: args.features]
    vocabulary = {t: i for i, t in enumerate(kept)}
    n = len(train_texts)
    idf = np.array([np.log((1 + n) / (1 + document_frequency[t])) + 1 for t in kept], np.float32)
    x_train, x_dev = matrix(train_texts, vocabulary, idf), matrix(dev_texts, vocabulary, idf)
    single = (y_dev > 0).sum(1) == 1
    truth = y_dev[single].argmax(1)
    best = None
    for decay in (1e-5, 1e-4, 1e-3):
        w, b = train(x_train, y_train, decay)
        f1, accuracy = scores(truth, (x_dev[single] @ w + b).argmax(1))
        print(f"decay={decay}: dev macro-F1 {f1:.4f} accuracy {accuracy:.4f}", file=sys.stderr)
        if best is None or f1 > best[0]:
            best = (f1, accuracy, decay)
    print(json.dumps({"texts": int(single.sum()), "macro_f1": round(best[0], 4), "accuracy": round(best[1], 4), "decay": best[2]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
