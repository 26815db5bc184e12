#!/usr/bin/env python3
"""A small CNN on log-mel spectrograms of RAVDESS speech, trained with JAX on the CPU.

The model reads the waveform itself, so it plugs into Attune through the documented waveform
signature (`voice.model_path`: input [N, samples] of 16 kHz speech trimmed of silence, output
[N, 7] probabilities in Attune's class order). Inside the model:

1. log-mel spectrogram: a 512-point Hann-windowed DFT every 10 ms written as a convolution with
   fixed cosine and sine kernels, power, 64 mel bands (HTK, 0-8 kHz), log; each band's mean
   over the clip is subtracted (cepstral mean normalisation: the speaker's and microphone's
   colouring goes, the movement stays);
2. four blocks of 3x3 convolution (16, 32, 48, 64 channels), ReLU and 2x2 max pooling;
3. the mean over time and frequency, a dense layer to 7 scores, softmax.

Training uses random crops of 2 s and, with --augment, noise at 10-30 dB SNR, gain, and speed
and pitch changes (resampling by 0.9-1.1). Evaluation is speaker-independent, on the same
4 folds of 3 held-out actors as `train_voice_emotion.py`; every clip is scored whole. The
ONNX export is written with the `onnx` helper, node by node, and checked against JAX on real
clips with ONNX Runtime.

    python3 scripts/train_voice_cnn.py --data ../shared/data/speech/ravdess-16k --report bench/voice-cnn-report.json
    python3 scripts/train_voice_cnn.py --data ... --export models/voice-cnn.onnx   # train on all actors and export

Needs jax[cpu], numpy, onnx (and onnxruntime to check the export).
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ravdess import load  # noqa: E402
from train_voice_emotion import CLASSES, FOLDS, scores  # noqa: E402

RATE, FFT, HOP, MELS = 16_000, 512, 160, 64
CHANNELS = [16, 32, 48, 64]
CROP = 2 * RATE


def constants():
    """The DFT kernels [514, 1, 512] and the mel matrix [257, 64]."""
    n = np.arange(FFT)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / FFT)
    k = np.arange(FFT // 2 + 1)[:, None]
    cosine = np.cos(2 * np.pi * k * n / FFT) * window
    sine = -np.sin(2 * np.pi * k * n / FFT) * window
    dft = np.concatenate([cosine, sine])[:, None, :].astype(np.float32)

    def mel(hz):
        return 2595 * np.log10(1 + hz / 700)

    edges = 700 * (10 ** (np.linspace(mel(0), mel(RATE / 2), MELS + 2) / 2595) - 1)
    bins = np.fft.rfftfreq(FFT, 1 / RATE)
    matrix = np.zeros((FFT // 2 + 1, MELS), dtype=np.float32)
    for band in range(MELS):
        low, centre, high = edges[band: band + 3]
        rising = (bins - low) / (centre - low)
        falling = (high - bins) / (high - centre)
        matrix[:, band] = np.maximum(0, np.minimum(rising, falling))
    return dft, matrix


def init(key):
    import jax

    params = []
    previous = 1
    for channels in CHANNELS:
        key, sub = jax.random.split(key)
        scale = np.sqrt(2 / (previous * 9))
        params.append({"w": jax.random.normal(sub, (channels, previous, 3, 3)) * scale, "b": np.zeros(channels, np.float32)})
        previous = channels
    key, sub = jax.random.split(key)
    params.append({"w": jax.random.normal(sub, (previous, len(CLASSES))) * np.sqrt(1 / previous), "b": np.zeros(len(CLASSES), np.float32)})
    return params


def forward(params, waveform, dft, mel, mask=None):
    """Scores [N, 7] of waveforms [N, samples] (mask [N, frames]: which frames are real)."""
    import jax
    import jax.numpy as jnp

    spectrum = jax.lax.conv_general_dilated(waveform[:, None, :], dft, (HOP,), "VALID", dimension_numbers=("NCH", "OIH", "NCH"))
    half = FFT // 2 + 1
    power = spectrum[:, :half] ** 2 + spectrum[:, half:] ** 2  # [N, 257, T]
    logmel = jnp.log(jnp.einsum("nft,fm->nmt", power, mel) + 1e-6)  # [N, 64, T]
    if mask is None:
        logmel = logmel - logmel.mean(axis=2, keepdims=True)
    else:
        weights = mask[:, None, :]
        logmel = (logmel - (logmel * weights).sum(2, keepdims=True) / weights.sum(2, keepdims=True)) * weights
    x = logmel[:, None]
    for layer in params[:-1]:
        x = jax.lax.conv_general_dilated(x, layer["w"], (1, 1), "SAME", dimension_numbers=("NCHW", "OIHW", "NCHW"))
        x = jax.nn.relu(x + layer["b"][None, :, None, None])
        x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
    pooled = x.mean(axis=(2, 3))
    return pooled @ params[-1]["w"] + params[-1]["b"]


def augment(samples, rng):
    """Speed and pitch (resampling), gain, and noise."""
    factor = rng.uniform(0.9, 1.1)
    positions = np.arange(0, len(samples) - 1, factor)
    samples = np.interp(positions, np.arange(len(samples)), samples).astype(np.float32)
    samples = samples * rng.uniform(0.5, 1.5)
    snr = rng.uniform(10, 30)
    power = (samples ** 2).mean() + 1e-12
    return samples + rng.normal(0, np.sqrt(power / 10 ** (snr / 10)), len(samples)).astype(np.float32)


def crop(samples, rng):
    if len(samples) >= CROP:
        start = rng.integers(0, len(samples) - CROP + 1)
        return samples[start: start + CROP], CROP
    return np.pad(samples, (0, CROP - len(samples))), len(samples)


def train(clips, labels, epochs, augmented, seed, log):
    import jax
    import jax.numpy as jnp

    dft, mel = constants()
    params = init(jax.random.PRNGKey(seed))
    frames = (CROP - FFT) // HOP + 1

    def loss(params, batch, mask, targets):
        logits = forward(params, batch, dft, mel, mask)
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(len(targets)), targets])

    # Adam with weight decay, written out (no optimiser library needed).
    rate, beta1, beta2, decay = 1e-3, 0.9, 0.999, 1e-4
    first = jax.tree_util.tree_map(jnp.zeros_like, params)
    second = jax.tree_util.tree_map(jnp.zeros_like, params)

    @jax.jit
    def step(params, first, second, count, batch, mask, targets):
        value, grads = jax.value_and_grad(loss)(params, batch, mask, targets)
        first = jax.tree_util.tree_map(lambda m, g: beta1 * m + (1 - beta1) * g, first, grads)
        second = jax.tree_util.tree_map(lambda v, g: beta2 * v + (1 - beta2) * g * g, second, grads)
        params = jax.tree_util.tree_map(
            lambda p, m, v: p - rate * ((m / (1 - beta1 ** count)) / (jnp.sqrt(v / (1 - beta2 ** count)) + 1e-8) + decay * p),
            params, first, second)
        return params, first, second, value

    rng = np.random.default_rng(seed)
    count = 0
    for epoch in range(epochs):
        order = rng.permutation(len(clips))
        total = 0.0
        for start in range(0, len(order), 32):
            chosen = order[start: start + 32]
            batch, mask = [], []
            for index in chosen:
                samples = augment(clips[index], rng) if augmented else clips[index]
                window, real = crop(samples, rng)
                batch.append(window)
                real_frames = max(1, min(frames, (real - FFT) // HOP + 1))
                mask.append((np.arange(frames) < real_frames).astype(np.float32))
            count += 1
            params, first, second, value = step(params, first, second, count, np.stack(batch), np.stack(mask), labels[chosen])
            total += float(value) * len(chosen)
        if log and (epoch + 1) % 5 == 0:
            log(f"epoch {epoch + 1}: loss {total / len(clips):.3f}")
    return params


def predict(params, clips):
    import jax

    dft, mel = constants()
    run = jax.jit(lambda params, waveform: jax.nn.softmax(forward(params, waveform, dft, mel)))
    return np.stack([np.asarray(run(params, clip[None, :]))[0] for clip in clips])


def export(params, path):
    """The model as ONNX (opset 17): input `waveform` [N, samples], output `probabilities` [N, 7]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    dft, mel = constants()
    initializers = [numpy_helper.from_array(dft, "dft"), numpy_helper.from_array(mel, "mel"),
                    numpy_helper.from_array(np.array([1], np.int64), "axis1"),
                    numpy_helper.from_array(np.array([FFT // 2 + 1, FFT // 2 + 1], np.int64), "halves"),
                    numpy_helper.from_array(np.array([1e-6], np.float32), "epsilon")]
    nodes = [
        helper.make_node("Unsqueeze", ["waveform", "axis1"], ["signal"]),
        helper.make_node("Conv", ["signal", "dft"], ["spectrum"], strides=[HOP]),
        helper.make_node("Split", ["spectrum", "halves"], ["real", "imaginary"], axis=1),
        helper.make_node("Mul", ["real", "real"], ["real2"]),
        helper.make_node("Mul", ["imaginary", "imaginary"], ["imaginary2"]),
        helper.make_node("Add", ["real2", "imaginary2"], ["power"]),
        helper.make_node("Transpose", ["power"], ["power_t"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["power_t", "mel"], ["mel_t"]),
        helper.make_node("Add", ["mel_t", "epsilon"], ["mel_e"]),
        helper.make_node("Log", ["mel_e"], ["log_t"]),
        helper.make_node("Transpose", ["log_t"], ["logmel"], perm=[0, 2, 1]),
        helper.make_node("ReduceMean", ["logmel"], ["band_mean"], axes=[2], keepdims=1),
        helper.make_node("Sub", ["logmel", "band_mean"], ["normalised"]),
        helper.make_node("Unsqueeze", ["normalised", "axis1"], ["x0"]),
    ]
    previous = "x0"
    for index, layer in enumerate(params[:-1]):
        weight, bias = f"conv{index}_w", f"conv{index}_b"
        initializers += [numpy_helper.from_array(np.asarray(layer["w"], np.float32), weight),
                         numpy_helper.from_array(np.asarray(layer["b"], np.float32), bias)]
        nodes += [
            helper.make_node("Conv", [previous, weight, bias], [f"c{index}"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", [f"c{index}"], [f"r{index}"]),
            helper.make_node("MaxPool", [f"r{index}"], [f"p{index}"], kernel_shape=[2, 2], strides=[2, 2]),
        ]
        previous = f"p{index}"
    initializers += [numpy_helper.from_array(np.asarray(params[-1]["w"], np.float32), "dense_w"),
                     numpy_helper.from_array(np.asarray(params[-1]["b"], np.float32), "dense_b")]
    nodes += [
        helper.make_node("GlobalAveragePool", [previous], ["pooled4"]),
        helper.make_node("Flatten", ["pooled4"], ["pooled"]),
        helper.make_node("Gemm", ["pooled", "dense_w", "dense_b"], ["scores"]),
        helper.make_node("Softmax", ["scores"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "attune_voice_cnn",
        [helper.make_tensor_value_info("waveform", TensorProto.FLOAT, ["N", "samples"])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", len(CLASSES)])],
        initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="attune train_voice_cnn.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="folder of RAVDESS-named WAVs at 16 kHz")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--no-augment", action="store_true")
    parser.add_argument("--folds", type=int, default=len(FOLDS), help="evaluate on this many of the folds (0: none)")
    parser.add_argument("--report", help="write the evaluation as JSON here")
    parser.add_argument("--export", help="train on all actors and write the ONNX model here")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    def log(message):
        print(f"[voice-cnn] {message}", file=sys.stderr, flush=True)

    clips, labels, actors = load(args.data)
    log(f"{len(clips)} clips, actors {sorted(set(actors.tolist()))}")
    report = {"clips": len(clips), "epochs": args.epochs, "augment": not args.no_augment, "folds": FOLDS[: args.folds]}
    if args.folds:
        predicted = np.full(len(labels), -1)
        started = time.time()
        for held_out in FOLDS[: args.folds]:
            test = np.isin(actors, held_out)
            params = train([clips[i] for i in np.where(~test)[0]], labels[~test], args.epochs, not args.no_augment, args.seed, log)
            predicted[test] = predict(params, [clips[i] for i in np.where(test)[0]]).argmax(axis=1)
            log(f"held out {held_out}: {scores(labels[test], predicted[test])}")
        scored = predicted >= 0
        report["whole_clips"] = scores(labels[scored], predicted[scored])
        report["train_minutes"] = round((time.time() - started) / 60, 1)
        log(f"whole clips {report['whole_clips']}")
    if args.export:
        params = train(clips, labels, args.epochs, not args.no_augment, args.seed, log)
        export(params, args.export)
        check = [clips[i] for i in range(0, len(clips), 60)]
        expected = predict(params, check)
        try:
            import onnxruntime

            session = onnxruntime.InferenceSession(args.export)
            got = np.stack([session.run(None, {"waveform": clip[None, :]})[0][0] for clip in check])
            report["export_max_difference"] = float(np.abs(got - expected).max())
            log(f"ONNX matches JAX within {report['export_max_difference']:.2e}")
        except ImportError:
            log("onnxruntime is not installed: the export was not checked")
        report["exported"] = args.export
    print(json.dumps(report, indent=2))
    if args.report:
        with open(args.report, "w") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()
