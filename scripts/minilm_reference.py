#!/usr/bin/env python3
"""A plain numpy forward pass of all-MiniLM-L6-v2, straight from its safetensors weights.

    python3 scripts/minilm_reference.py MODEL.safetensors < ids.json > embeddings.json

Reads a JSON list of token-id lists; writes a JSON list of sentence embeddings (mean pooling
over the tokens, then L2 normalisation, as the model's sentence-transformers modules specify).
It shares nothing with the Swift encoder but the weights, so tests use it to prove that one.
"""

import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from convert_minilm import read_safetensors  # noqa: E402

HEADS, EPS = 12, 1e-12


def layer_norm(x, weight, bias):
    mean = x.mean(-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + EPS) * weight + bias


def gelu(x):
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def embed(w, ids):
    n = len(ids)
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n] \
        + w["embeddings.token_type_embeddings.weight"][0]
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    for layer in range(6):
        p = f"encoder.layer.{layer}."
        dense = lambda name, h: h @ w[p + name + ".weight"].T + w[p + name + ".bias"]
        q, k, v = (dense(f"attention.self.{name}", x) for name in ("query", "key", "value"))
        d = x.shape[1] // HEADS
        split = lambda t: t.reshape(n, HEADS, d).transpose(1, 0, 2)
        scores = split(q) @ split(k).transpose(0, 2, 1) / math.sqrt(d)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        context = (scores @ split(v)).transpose(1, 0, 2).reshape(n, -1)
        x = layer_norm(x + dense("attention.output.dense", context),
                       w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"])
        hidden = gelu(dense("intermediate.dense", x))
        x = layer_norm(x + dense("output.dense", hidden), w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
    pooled = x.mean(0)
    return pooled / np.linalg.norm(pooled)


def main() -> int:
    weights = {k: v.astype(np.float64) for k, v in read_safetensors(Path(sys.argv[1])).items() if v.dtype != np.int64}
    batches = json.load(sys.stdin)
    json.dump([embed(weights, ids).tolist() for ids in batches], sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
