#!/usr/bin/env python3
"""Train the voice emotion model on RAVDESS (actors 01-12) and export it to ONNX.

The features come from Attune itself (`attune voice-features`), so training and serving share
one extractor. Evaluation is speaker-independent: actors are held out, never clips (4 folds of
3 actors, each fold with both sexes). Several model families are compared on the same folds
(logistic regression, a small MLP, gradient-boosted trees, an RBF SVM, and the soft vote of
logistic, trees and SVM: the ensemble, the best); a second figure adapts to each held-out
speaker with running statistics. The chosen family (logistic by default: small enough for
git) is retrained on all actors and written as ONNX with the documented signature:
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
# `--heldout-out` trains on the other actors, for `attune bench emotion-voice --actors 9-12`.
BENCH_ACTORS = [9, 10, 11, 12]


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
    from sklearn.ensemble import HistGradientBoostingClassifier, VotingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    logistic = lambda: make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=4000))
    gbm = lambda: HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, max_leaf_nodes=15, random_state=seed)
    svc = lambda: make_pipeline(StandardScaler(), SVC(C=1, gamma="scale", probability=True, random_state=seed))
    return {
        "logistic": logistic,
        "mlp": lambda: make_pipeline(
            StandardScaler(),
            MLPClassifier(hidden_layer_sizes=(64,), alpha=1e-2, max_iter=2000, early_stopping=False, random_state=seed)),
        "gbm": gbm,
        "svc": svc,
        # The mean of the three families' probabilities.
        "ensemble": lambda: VotingClassifier([("logistic", logistic()), ("gbm", gbm()), ("svc", svc())], voting="soft", flatten_transform=False),
    }


def scores(truth, predicted):
    from sklearn.metrics import accuracy_score, f1_score

    return {"accuracy": round(float(accuracy_score(truth, predicted)), 3),
            "macro_f1": round(float(f1_score(truth, predicted, average="macro")), 3)}


def evaluate(make, features, labels, actors, whole, train_on_chunks):
    """Predictions for every row, each from a model that never heard its actor."""
    probabilities = np.zeros((len(labels), len(CLASSES)))
    for held_out in FOLDS:
        test = np.isin(actors, held_out)
        train = ~test if train_on_chunks else (~test & whole)
        model = make()
        model.fit(features[train], labels[train])
        probabilities[test] = model.predict_proba(features[test])
    predicted = probabilities.argmax(axis=1)
    return {"whole_clips": scores(labels[whole], predicted[whole]), "chunks": scores(labels[~whole], predicted[~whole])}, probabilities


def speaker_adapted(make, features, labels, actors, whole, prior=5, seed=7):
    """Accuracy on whole clips when each clip is normalised by its speaker's running statistics.

    Training actors are normalised by all their clips. A held-out actor's clips come in a random
    order, like a session; each is scaled by the mean and deviation of that actor's clips heard
    before it, blended with the training set's (worth `prior` clips) so the first clips are
    usable. Each clip is still judged once, by a model that never heard its actor.
    """
    rng = np.random.default_rng(seed)
    predicted = np.zeros(len(labels), dtype=int)
    for held_out in FOLDS:
        test = np.isin(actors, held_out)
        normalised = features.copy()
        for actor in set(actors[~test].tolist()):
            rows = actors == actor
            mean, deviation = features[rows & whole].mean(0), features[rows & whole].std(0) + 1e-6
            normalised[rows] = (features[rows] - mean) / deviation
        train = ~test
        model = make()
        model.fit(normalised[train], labels[train])
        global_mean = features[train & whole].mean(0)
        global_square = (features[train & whole] ** 2).mean(0)
        for actor in held_out:
            clips = np.where((actors == actor) & whole)[0]
            total, squares, count = prior * global_mean, prior * global_square, prior
            for row in rng.permutation(clips):
                mean = total / count
                deviation = np.sqrt(np.maximum(squares / count - mean ** 2, 0)) + 1e-6
                predicted[row] = model.predict(((features[row] - mean) / deviation)[None, :])[0]
                total, squares, count = total + features[row], squares + features[row] ** 2, count + 1
    return scores(labels[whole], predicted[whole])


def export(model, dimension, path):
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    import onnx
    import onnx.helper

    # skl2onnx 1.19 hands the tree converter numpy booleans (missing-value flags of
    # HistGradientBoosting) where ONNX wants ints; cast them before they reach protobuf.
    make_attribute = onnx.helper.make_attribute
    if not getattr(make_attribute, "casts_booleans", False):
        def casting(key, value, *args, **kwargs):
            if isinstance(value, (list, tuple, np.ndarray)) and any(isinstance(item, (bool, np.bool_)) for item in value):
                value = [int(item) for item in value]
            return make_attribute(key, value, *args, **kwargs)
        casting.casts_booleans = True
        onnx.helper.make_attribute = casting

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
    parser.add_argument("--family", default="logistic",
                        help="family to export, trained on whole clips and chunks (default: logistic, 3 KB and within 0.02 "
                             "of the best; the ensemble scores 0.016 more but weighs 2.7 MB, too much to keep in git)")
    parser.add_argument("--heldout-out", help=f"also export the family trained without actors {BENCH_ACTORS}, for the benchmark")
    parser.add_argument("--oof", help="write the exported family's out-of-fold probabilities of each whole clip here (TSV), for scripts/train_fusion.py")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    names, features, labels, actors, whole, clips = load(args.features)
    print(f"{len(labels)} rows ({whole.sum()} whole clips, {(~whole).sum()} chunks), {features.shape[1]} features, "
          f"actors {sorted(set(actors.tolist()))}", file=sys.stderr)
    report = {"folds": FOLDS, "rows": int(len(labels)), "whole_clips": int(whole.sum()), "families": {}}
    out_of_fold = None
    for name, make in families(args.seed).items():
        for chunks in (False, True):
            key = f"{name}{'+chunks' if chunks else ''}"
            result, probabilities = evaluate(make, features, labels, actors, whole, chunks)
            report["families"][key] = result
            print(f"{key:16s} whole clips {result['whole_clips']}  chunks {result['chunks']}", file=sys.stderr)
            if name == args.family and chunks:
                out_of_fold = probabilities
    adapted = speaker_adapted(families(args.seed)[args.family], features, labels, actors, whole)
    report["speaker_adapted"] = {"family": args.family, "whole_clips": adapted}
    print(f"{args.family} with running speaker statistics: whole clips {adapted}", file=sys.stderr)
    if args.oof:
        with open(args.oof, "w") as handle:
            handle.write("\t".join(["path", "label", "actor"] + [f"voice_{name}" for name in CLASSES]) + "\n")
            for row in np.where(whole)[0]:
                values = [f"{value:.6f}" for value in out_of_fold[row]]
                handle.write("\t".join([clips[row], CLASSES[labels[row]], str(actors[row])] + values) + "\n")
    # Chance and the majority class, for scale.
    counts = np.bincount(labels[whole], minlength=len(CLASSES))
    report["majority_accuracy"] = round(float(counts.max() / counts.sum()), 3)

    model = families(args.seed)[args.family]()
    model.fit(features, labels)
    export(model, features.shape[1], args.out)
    report["exported"] = {"family": args.family, "trained_on": "all rows of actors 01-12", "path": args.out}
    if args.heldout_out:
        model = families(args.seed)[args.family]()
        train = ~np.isin(actors, BENCH_ACTORS)
        model.fit(features[train], labels[train])
        export(model, features.shape[1], args.heldout_out)
        report["exported_heldout"] = {"family": args.family, "trained_on": f"all rows of actors other than {BENCH_ACTORS}",
                                      "path": args.heldout_out}
    print(json.dumps(report, indent=2))
    if args.report:
        with open(args.report, "w") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()
