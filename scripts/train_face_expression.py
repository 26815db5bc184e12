"""Train Attune's facial expression classifier on FER2013 and export it as ONNX.

A small VGG-style CNN (four stages of 3x3 convolutions with batch normalisation, about 0.58 M
parameters) on 48x48 grayscale faces, trained on `fer2013-train` with random framing (scale and
shift), mirror images and brightness/contrast jitter; the epoch count and the other choices were made on
`fer2013-publictest`, so the PublicTest figure it prints is a tuning figure (the PrivateTest split
is kept aside by the data owners). Pure JAX (no Flax/Optax), so the same script runs on the CPU
(hours) or on a GPU (minutes) and gives the same model up to floating-point order.

    python scripts/train_face_expression.py --data ../shared/data/face --out face-expression.onnx
    python scripts/train_face_expression.py --data ../shared/data/face --pack fer.npz.xz   # for another machine
    python scripts/train_face_expression.py --packed fer.npz.xz --out face-expression.onnx

The ONNX model has Attune's face signature: input `image` [N, 1, 48, 48], grayscale in 0..1 (the
aligned face); output `probabilities` [N, 7] in Attune's class order. Per-image standardisation
and batch normalisation are folded into the graph, and the weights are stored as float16 (cast
to float32 inside the graph) to keep the file near 1 MB.
"""

from __future__ import annotations

import argparse
import io
import json
import lzma
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fer  # noqa: E402

STAGES = [(32, 2), (64, 2), (128, 2), (256, 1)]  # (channels, convolutions); a 2x2 max-pool between stages
EPS = 1e-5


def load(args) -> dict[str, np.ndarray]:
    if args.packed:
        with lzma.open(args.packed) as file:
            data = np.load(io.BytesIO(file.read()))
            return {key: data[key] for key in data.files}
    cache = Path.home() / ".cache" / "attune" / "fer"
    x_train, y_train = fer.load_cached(Path(args.data) / "fer2013-train", cache)
    x_test, y_test = fer.load_cached(Path(args.data) / "fer2013-publictest", cache)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def standardise(x):
    """Per-image zero mean and unit variance (robust to lighting), as the exported graph does."""
    import jax.numpy as jnp

    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    std = jnp.sqrt(((x - mean) ** 2).mean(axis=(1, 2, 3), keepdims=True) + 1e-3)
    return (x - mean) / std


def init_params(key):
    import jax

    params, state = {"conv": [], "dense": None}, {"bn": []}
    channels = 1
    for width, count in STAGES:
        for _ in range(count):
            key, sub = jax.random.split(key)
            fan_in = channels * 9
            w = jax.random.normal(sub, (width, channels, 3, 3)) * np.sqrt(2.0 / fan_in)
            params["conv"].append({"w": w, "gamma": np.ones(width, np.float32), "beta": np.zeros(width, np.float32)})
            state["bn"].append({"mean": np.zeros(width, np.float32), "var": np.ones(width, np.float32)})
            channels = width
    key, sub = jax.random.split(key)
    params["dense"] = {"w": jax.random.normal(sub, (channels, 7)) * np.sqrt(1.0 / channels), "b": np.zeros(7, np.float32)}
    return params, state


def forward(params, state, x, train: bool, key=None, dropout=0.4):
    """Logits for NCHW images in 0..1; returns (logits, new batch-norm state)."""
    import jax
    import jax.numpy as jnp

    h = standardise(x)
    new_bn = []
    index = 0
    for stage, (width, count) in enumerate(STAGES):
        for _ in range(count):
            layer, stats = params["conv"][index], state["bn"][index]
            h = jax.lax.conv_general_dilated(h, layer["w"], (1, 1), "SAME", dimension_numbers=("NCHW", "OIHW", "NCHW"))
            if train:
                mean = h.mean(axis=(0, 2, 3))
                var = h.var(axis=(0, 2, 3))
                new_bn.append({"mean": 0.9 * stats["mean"] + 0.1 * mean, "var": 0.9 * stats["var"] + 0.1 * var})
            else:
                mean, var = stats["mean"], stats["var"]
                new_bn.append(stats)
            h = (h - mean[None, :, None, None]) / jnp.sqrt(var[None, :, None, None] + EPS)
            h = h * layer["gamma"][None, :, None, None] + layer["beta"][None, :, None, None]
            h = jax.nn.relu(h)
            index += 1
        if stage < len(STAGES) - 1:
            h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
    h = h.mean(axis=(2, 3))
    if train and dropout > 0:
        keep = jax.random.bernoulli(key, 1 - dropout, h.shape)
        h = jnp.where(keep, h / (1 - dropout), 0)
    return h @ params["dense"]["w"] + params["dense"]["b"], {"bn": new_bn}


def augment(key, x, zoom: float = 0.15, shift: float = 0.1):
    """Random framing (scale 1±`zoom`, shift ±`shift` of the side, from the image padded by
    edge pixels), mirror images, brightness/contrast jitter. The framing jitter makes the model
    robust to how a detector's box frames a face, which differs from FER2013's own crops."""
    import jax
    import jax.numpy as jnp

    n = x.shape[0]
    k1, k2, k3, k4, k5 = jax.random.split(key, 5)
    padded = jnp.pad(x, ((0, 0), (0, 0), (12, 12), (12, 12)), mode="edge")  # 72 x 72
    scale = jax.random.uniform(k1, (n,), minval=1 - zoom, maxval=1 + zoom)
    offset = jax.random.uniform(k2, (n, 2), minval=-shift * 48, maxval=shift * 48)

    def frame(image, s, t):
        # out = s * in + translation: the padded centre (36) lands on the output centre (24) + t.
        translation = 24 - s * 36 + t
        return jax.image.scale_and_translate(
            image, (1, 48, 48), (1, 2), jnp.stack([s, s]), translation, method="linear", antialias=True)

    crop = jax.vmap(frame)(padded, scale, offset)
    flip = jax.random.bernoulli(k3, 0.5, (n, 1, 1, 1))
    crop = jnp.where(flip, crop[..., ::-1], crop)
    contrast = jax.random.uniform(k4, (n, 1, 1, 1), minval=0.7, maxval=1.3)
    brightness = jax.random.uniform(k5, (n, 1, 1, 1), minval=-0.15, maxval=0.15)
    mean = crop.mean(axis=(1, 2, 3), keepdims=True)
    return jnp.clip((crop - mean) * contrast + mean + brightness, 0, 1)


def train(data, epochs: int, batch: int, seed: int, lr: float, weight_decay: float, log, zoom: float = 0.15, shift: float = 0.1) -> tuple:
    import jax
    import jax.numpy as jnp

    x_train = data["x_train"].astype(np.float32)[:, None] / 255
    y_train = data["y_train"]
    x_test = data["x_test"].astype(np.float32)[:, None] / 255
    y_test = data["y_test"]
    key = jax.random.PRNGKey(seed)
    key, sub = jax.random.split(key)
    params, state = init_params(sub)
    moments = jax.tree_util.tree_map(lambda p: (jnp.zeros_like(p), jnp.zeros_like(p)), params)
    steps_per_epoch = len(x_train) // batch
    total = epochs * steps_per_epoch

    def loss_fn(params, state, x, y, key):
        logits, new_state = forward(params, state, x, True, key)
        # Label smoothing 0.1.
        target = jax.nn.one_hot(y, 7) * 0.9 + 0.1 / 7
        loss = -(target * jax.nn.log_softmax(logits)).sum(axis=1).mean()
        return loss, new_state

    @jax.jit
    def step(params, state, moments, x, y, key, t):
        k1, k2 = jax.random.split(key)
        x = augment(k1, x, zoom, shift)
        (loss, new_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, state, x, y, k2)
        rate = lr * 0.5 * (1 + jnp.cos(jnp.pi * t / total))  # cosine decay
        b1, b2 = 0.9, 0.999

        def update(p, g, m):
            m1 = b1 * m[0] + (1 - b1) * g
            m2 = b2 * m[1] + (1 - b2) * g * g
            m1h = m1 / (1 - b1 ** (t + 1))
            m2h = m2 / (1 - b2 ** (t + 1))
            return p - rate * (m1h / (jnp.sqrt(m2h) + 1e-8) + weight_decay * p), (m1, m2)

        flat_p, tree = jax.tree_util.tree_flatten(params)
        flat_g = tree.flatten_up_to(grads)
        flat_m = tree.flatten_up_to(moments)
        updated = [update(p, g, m) for p, g, m in zip(flat_p, flat_g, flat_m)]
        params = tree.unflatten([u[0] for u in updated])
        moments = tree.unflatten([u[1] for u in updated])
        return params, new_state, moments, loss

    @jax.jit
    def predict(params, state, x):
        logits, _ = forward(params, state, x, False)
        mirrored, _ = forward(params, state, x[..., ::-1], False)
        return jax.nn.softmax(logits), jax.nn.softmax(mirrored)

    def evaluate(params, state):
        single, both = [], []
        for start in range(0, len(x_test), 512):
            p, q = predict(params, state, x_test[start : start + 512])
            single.append(np.asarray(p))
            both.append(np.asarray((p + q) / 2))
        single, both = np.concatenate(single), np.concatenate(both)
        return (single.argmax(1) == y_test).mean(), (both.argmax(1) == y_test).mean(), single

    rng = np.random.default_rng(seed)
    t = 0
    for epoch in range(epochs):
        started = time.time()
        order = rng.permutation(len(x_train))
        losses = []
        for index in range(steps_per_epoch):
            chosen = order[index * batch : (index + 1) * batch]
            key, sub = jax.random.split(key)
            params, state, moments, loss = step(params, state, moments, x_train[chosen], y_train[chosen], sub, t)
            losses.append(float(loss)) if index % 50 == 0 else None
            t += 1
        if epoch % 5 == 4 or epoch == epochs - 1:
            accuracy, mirrored, _ = evaluate(params, state)
            log(f"epoch {epoch + 1}/{epochs}: loss {np.mean(losses):.3f}, publictest {accuracy:.4f} (with mirror {mirrored:.4f}), {time.time() - started:.1f} s/epoch")
    accuracy, mirrored, probabilities = evaluate(params, state)
    return params, state, accuracy, mirrored, probabilities


def macro_f1(truth, predicted) -> float:
    scores = []
    for label in range(7):
        tp = ((predicted == label) & (truth == label)).sum()
        fp = ((predicted == label) & (truth != label)).sum()
        fn = ((predicted != label) & (truth == label)).sum()
        scores.append(0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def export(params, state, path: Path) -> None:
    """Writes the ONNX graph: standardise, (conv with batch norm folded in, relu) x N with max-pools,
    global average pool, dense, softmax. Weights are float16 initialisers cast to float32."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []

    def const(name, array, half=True):
        array = np.asarray(array, np.float32)
        if half:
            inits.append(numpy_helper.from_array(array.astype(np.float16), name + "_f16"))
            nodes.append(helper.make_node("Cast", [name + "_f16"], [name], to=TensorProto.FLOAT))
        else:
            inits.append(numpy_helper.from_array(array, name))
        return name

    const("eps", np.array([1e-3], np.float32), half=False)
    nodes += [
        helper.make_node("ReduceMean", ["image"], ["mean"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Sub", ["image", "mean"], ["centred"]),
        helper.make_node("Mul", ["centred", "centred"], ["squared"]),
        helper.make_node("ReduceMean", ["squared"], ["variance"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Add", ["variance", "eps"], ["variance_eps"]),
        helper.make_node("Sqrt", ["variance_eps"], ["std"]),
        helper.make_node("Div", ["centred", "std"], ["h0"]),
    ]
    current, index = "h0", 0
    for stage, (width, count) in enumerate(STAGES):
        for _ in range(count):
            layer, stats = params["conv"][index], state["bn"][index]
            scale = np.asarray(layer["gamma"]) / np.sqrt(np.asarray(stats["var"]) + EPS)
            w = np.asarray(layer["w"]) * scale[:, None, None, None]
            b = np.asarray(layer["beta"]) - np.asarray(stats["mean"]) * scale
            out = f"conv{index}"
            nodes.append(helper.make_node(
                "Conv", [current, const(f"w{index}", w), const(f"b{index}", b)], [out], kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
            nodes.append(helper.make_node("Relu", [out], [f"relu{index}"]))
            current = f"relu{index}"
            index += 1
        if stage < len(STAGES) - 1:
            nodes.append(helper.make_node("MaxPool", [current], [f"pool{stage}"], kernel_shape=[2, 2], strides=[2, 2]))
            current = f"pool{stage}"
    nodes += [
        helper.make_node("GlobalAveragePool", [current], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["features"], axis=1),
        helper.make_node("Gemm", ["features", const("dense_w", params["dense"]["w"]), const("dense_b", params["dense"]["b"])], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "attune-face-expression",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 48, 48])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 7])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="attune")
    model.ir_version = 8
    model.metadata_props.append(onnx.StringStringEntryProto(key="labels", value=",".join(fer.LABELS)))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def flatten(params, state) -> dict[str, np.ndarray]:
    arrays = {"dense_w": np.asarray(params["dense"]["w"]), "dense_b": np.asarray(params["dense"]["b"])}
    for index, (layer, stats) in enumerate(zip(params["conv"], state["bn"])):
        for name in ("w", "gamma", "beta"):
            arrays[f"conv{index}_{name}"] = np.asarray(layer[name])
        for name in ("mean", "var"):
            arrays[f"conv{index}_{name}"] = np.asarray(stats[name])
    return arrays


def unflatten(arrays) -> tuple:
    count = sum(count for _, count in STAGES)
    params = {"conv": [{name: arrays[f"conv{i}_{name}"] for name in ("w", "gamma", "beta")} for i in range(count)],
              "dense": {"w": arrays["dense_w"], "b": arrays["dense_b"]}}
    state = {"bn": [{name: arrays[f"conv{i}_{name}"] for name in ("mean", "var")} for i in range(count)]}
    return params, state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/face", help="folder holding fer2013-train and fer2013-publictest")
    parser.add_argument("--packed", help="read the images from a file written by --pack instead")
    parser.add_argument("--pack", help="write train and publictest images to this .npz.xz file and stop")
    parser.add_argument("--out", help="ONNX file to write")
    parser.add_argument("--report", help="JSON file for the PublicTest figures")
    parser.add_argument("--weights", help="also keep the trained weights in this .npz (to export elsewhere)")
    parser.add_argument("--from-weights", help="export weights saved by --weights instead of training")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=5e-5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--holdout", type=float, default=0.0,
                        help="keep this fraction of fer2013-train (stratified, fixed seed) out of training and report the model on it: "
                             "a figure no choice was made on")
    parser.add_argument("--zoom", type=float, default=0.15, help="framing jitter: scale 1 ± this")
    parser.add_argument("--shift", type=float, default=0.1, help="framing jitter: shift up to this fraction of the side")
    parser.add_argument("--width", type=float, default=1.0, help="multiplies every stage's channels")
    args = parser.parse_args()
    global STAGES
    STAGES = [(int(round(width * args.width)), count) for width, count in STAGES]
    if args.from_weights:
        params, state = unflatten(np.load(args.from_weights))
        export(params, state, Path(args.out))
        print(f"wrote {args.out} ({Path(args.out).stat().st_size} bytes)")
        return
    data = load(args)
    if args.pack:
        buffer = io.BytesIO()
        np.savez(buffer, **data)
        with lzma.open(args.pack, "wb", preset=6) as file:
            file.write(buffer.getvalue())
        print(f"packed {len(data['x_train'])} + {len(data['x_test'])} images into {args.pack}")
        return
    holdout = None
    if args.holdout > 0:
        rng = np.random.default_rng(1234)
        chosen = np.concatenate([rng.permutation(np.flatnonzero(data["y_train"] == label))[: int(round(args.holdout * (data["y_train"] == label).sum()))]
                                 for label in range(7)])
        keep = np.setdiff1d(np.arange(len(data["y_train"])), chosen)
        holdout = (data["x_train"][chosen], data["y_train"][chosen])
        data = dict(data, x_train=data["x_train"][keep], y_train=data["y_train"][keep])
    import jax

    print(f"devices: {jax.devices()}", flush=True)
    started = time.time()
    params, state, accuracy, mirrored, probabilities = train(
        data, args.epochs, args.batch, args.seed, args.lr, args.weight_decay, lambda line: print(line, flush=True), args.zoom, args.shift)
    predicted = probabilities.argmax(1)
    report = {
        "model": "attune VGG-style CNN, 0.58 M parameters", "epochs": args.epochs, "seed": args.seed, "zoom": args.zoom, "shift": args.shift, "width": args.width,
        "train_images": int(len(data["x_train"])), "publictest_images": int(len(data["x_test"])),
        "publictest_accuracy": round(float(accuracy), 4), "publictest_accuracy_with_mirror": round(float(mirrored), 4),
        "publictest_macro_f1": round(macro_f1(data["y_test"], predicted), 4),
        "train_seconds": round(time.time() - started, 1), "device": str(jax.devices()[0]),
        "note": "epochs, learning rate and augmentation were chosen on PublicTest: these are tuning figures",
    }
    print(json.dumps(report), flush=True)
    if holdout is not None:
        x = holdout[0].astype(np.float32)[:, None] / 255
        single, both = [], []
        for start in range(0, len(x), 512):
            logits, _ = forward(params, state, x[start : start + 512], False)
            mirrored, _ = forward(params, state, x[start : start + 512, ..., ::-1], False)
            p, q = np.asarray(jax.nn.softmax(logits)), np.asarray(jax.nn.softmax(mirrored))
            single.append(p)
            both.append((p + q) / 2)
        single, both = np.concatenate(single), np.concatenate(both)
        report["holdout_images"] = int(len(x))
        report["holdout_accuracy"] = round(float((single.argmax(1) == holdout[1]).mean()), 4)
        report["holdout_accuracy_with_mirror"] = round(float((both.argmax(1) == holdout[1]).mean()), 4)
        report["holdout_macro_f1_with_mirror"] = round(macro_f1(holdout[1], both.argmax(1)), 4)
        print(json.dumps({k: v for k, v in report.items() if k.startswith("holdout")}), flush=True)
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=2) + "\n")
    if args.weights:
        np.savez(args.weights, **flatten(params, state))
    if args.out:
        export(params, state, Path(args.out))
        print(f"wrote {args.out} ({Path(args.out).stat().st_size} bytes)")


if __name__ == "__main__":
    main()
