#!/usr/bin/env python3
"""Train the voice emotion model on RAVDESS (actors 01-12) and export it to ONNX.

The features come from Attune itself (`attune voice-features`), so training and serving share
one extractor. Evaluation is speaker-independent: actors are held out, never clips (4 folds of
3 actors, each fold with both sexes). Several model families are compared on the same folds;
the chosen one is retrained on all actors and written as ONNX with the documented signature:
input `features` [N, 56] (AcousticFeatures order), output `probabilities` [N, 7] in Attune's
class order (anger, disgust, fear, joy, neutral, sadness, surprise).

    make train-voice                  # or:
    python3 scripts/train_voice_emotion.py --features .build/voice/features.tsv --out models/voice-emotion.onnx

Needs scikit-learn, skl2onnx and onnx (make train-voice installs them in a virtual environment
under the setup cache).
"""
import argparse
import json
import sys

import numpy as np

CLASSES = ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"]
# Held-out actor groups: each mixes odd (male) and even (female) actors.
FOLDS = [[1, 6, 11], [2, 7, 12], [3, 8, 9], [4, 5, 10]]


def load(path):
    with open(path) as handle:
        header = handle.readline().rstrip("\n").split("\t")
        rows = [line.rstrip("\n").split("\t") for line in handle if line.strip()]
    features = np.array([[float(v) for v in row[4:]] for row in rows], dtype=np.float32)
    labels = np.array([CLASSES.index(row[1]) for row in rows])
    actors = np.array([int(row[2]) for row in rows])
    whole = np.array([row[3] == "whole" for row in rows])
    clips = np.array([row[0] for row in rows])
    return header[4:], features, labels, actors, whole, clips


def families(seed):
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        "logistic": lambda: make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=4000)),
        "mlp": lambda: make_pipeline(
            StandardScaler(),
            MLPClassifier(hidden_layer_sizes=(64,), alpha=1e-2, max_iter=2000, early_stopping=False, random_state=seed)),
        "gbm": lambda: HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, max_leaf_nodes=15, random_state=seed),
    }


def scores(truth, predicted):
    from sklearn.metrics import accuracy_score, f1_score

    return {"accuracy": round(float(accuracy_score(truth, predicted)), 3),
            "macro_f1": round(float(f1_score(truth, predicted, average="macro")), 3)}


def evaluate(make, features, labels, actors, whole, train_on_chunks):
    """Predictions for every row, each from a model that never heard its actor."""
    predicted = np.zeros(len(labels), dtype=int)
    for held_out in FOLDS:
        test = np.isin(actors, held_out)
        train = ~test if train_on_chunks else (~test & whole)
        model = make()
        model.fit(features[train], labels[train])
        predicted[test] = model.predict(features[test])
    return {"whole_clips": scores(labels[whole], predicted[whole]), "chunks": scores(labels[~whole], predicted[~whole])}, predicted


def export(model, dimension, path):
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    import onnx

    classifier = model.steps[-1][1] if hasattr(model, "steps") else model
    onnx_model = convert_sklearn(
        model, initial_types=[("features", FloatTensorType([None, dimension]))],
        options={type(classifier): {"zipmap": False}}, target_opset=15)
    # skl2onnx names the outputs label and probabilities; keep only the probabilities.
    graph = onnx_model.graph
    keep = [output for output in graph.output if output.name == "probabilities"]
    del graph.output[:]
    graph.output.extend(keep)
    onnx.checker.check_model(onnx_model)
    with open(path, "wb") as handle:
        handle.write(onnx_model.SerializeToString())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--features", required=True, help="TSV from `attune voice-features`")
    parser.add_argument("--out", required=True, help="ONNX file to write")
    parser.add_argument("--report", help="write the evaluation as JSON here")
    parser.add_argument("--family", default="logistic", help="family to export, trained on whole clips and chunks (default: logistic, the best on the folds)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    names, features, labels, actors, whole, _ = load(args.features)
    print(f"{len(labels)} rows ({whole.sum()} whole clips, {(~whole).sum()} chunks), {features.shape[1]} features, "
          f"actors {sorted(set(actors.tolist()))}", file=sys.stderr)
    report = {"folds": FOLDS, "rows": int(len(labels)), "whole_clips": int(whole.sum()), "families": {}}
    for name, make in families(args.seed).items():
        for chunks in (False, True):
            key = f"{name}{'+chunks' if chunks else ''}"
            result, _ = evaluate(make, features, labels, actors, whole, chunks)
            report["families"][key] = result
            print(f"{key:16s} whole clips {result['whole_clips']}  chunks {result['chunks']}", file=sys.stderr)
    # Chance and the majority class, for scale.
    counts = np.bincount(labels[whole], minlength=len(CLASSES))
    report["majority_accuracy"] = round(float(counts.max() / counts.sum()), 3)

    model = families(args.seed)[args.family]()
    model.fit(features, labels)
    export(model, features.shape[1], args.out)
    report["exported"] = {"family": args.family, "trained_on": "all rows of actors 01-12", "path": args.out}
    print(json.dumps(report, indent=2))
    if args.report:
        with open(args.report, "w") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()
