#!/usr/bin/env python3
"""Build the Whisper-encoder voice emotion model: one ONNX file with the waveform signature.

Smart Turn v3.2 (pipecat-ai, BSD-2-Clause) is a Whisper-tiny encoder fine-tuned to hear the end
of a turn; its hidden states also carry how something is said. This script wraps that ONNX
graph so that Attune can run it like any waveform model (`voice.model_path`):

  waveform [1, samples] (16 kHz speech trimmed of silence)
  -> the last 8 s at most (the encoder has 400 positions); zero mean, unit variance
  -> Whisper log-mel: 400-point periodic Hann DFT every 160 samples (a convolution with fixed
     cosine and sine kernels, reflect-padded by 200), power, 80 Slaney mel bands, log10,
     floored at max - 8, (x + 4) / 4, the last frame dropped: Smart Turn's own feature
     extractor, except that it is not padded to 8 s
  -> Smart Turn's encoder, made to read any length up to 8 s (its reshapes take the length
     from the input, and only the position embeddings of the frames present are added): hidden
     states [1, T, 384] and its attention-pooled vector [384]. Smart Turn itself always reads
     8 s, zero-padded at the start; reading only the speech is three to five times faster for
     utterances of a few seconds (BENCHMARKS.md compares the two)
  -> embedding [1, 1152]: mean and standard deviation of the hidden states over time, and the
     pooled vector
  -> with a head (--head, from train_voice_whisper.py): standardise, linear, softmax
  -> probabilities [1, 7] in Attune's class order.

    python3 scripts/voice_whisper_model.py --smart-turn smart-turn-v3.2-cpu.onnx --out embedding.onnx
    python3 scripts/voice_whisper_model.py --smart-turn ... --head voice-whisper-head.json --out voice-emotion-whisper.onnx

Setup runs the second form (numpy and onnx only); training uses the first.
"""
import argparse
import json

import numpy as np

RATE, WINDOW, FFT, HOP, MELS = 16_000, 8 * 16_000, 400, 160, 80
HIDDEN = "layer_norm_8_DequantizeLinear_Output"
POOLED = "sum_1_DequantizeLinear_Output"
POSITIONS = "inner.encoder.embed_positions.weight"
CLASSES = ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"]


def mel_filters():
    """Slaney-normalised mel filters [80, 201] (Whisper's, as Smart Turn computes them)."""
    def to_mel(hz):
        hz = np.atleast_1d(np.asarray(hz, dtype=np.float64))
        mels = 3.0 * hz / 200.0
        log = hz >= 1000.0
        mels[log] = 15.0 + np.log(hz[log] / 1000.0) * (27.0 / np.log(6.4))
        return mels

    def to_hz(mels):
        mels = np.atleast_1d(np.asarray(mels, dtype=np.float64))
        hz = 200.0 * mels / 3.0
        log = mels >= 15.0
        hz[log] = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mels[log] - 15.0))
        return hz

    edges = to_hz(np.linspace(to_mel(0.0)[0], to_mel(RATE / 2)[0], MELS + 2))
    bins = np.linspace(0, RATE // 2, FFT // 2 + 1)
    slopes = edges[None, :] - bins[:, None]
    down = -slopes[:, :-2] / np.diff(edges)[:-1]
    up = slopes[:, 2:] / np.diff(edges)[1:]
    filters = np.maximum(0, np.minimum(down, up)) * (2.0 / (edges[2: MELS + 2] - edges[:MELS]))[None, :]
    return filters.T.astype(np.float32)


def dft_kernels():
    """Cosine and sine kernels [402, 1, 400] with the periodic Hann window."""
    n = np.arange(FFT)
    window = np.hanning(FFT + 1)[:-1]
    k = np.arange(FFT // 2 + 1)[:, None]
    kernels = np.concatenate([np.cos(2 * np.pi * k * n / FFT) * window, -np.sin(2 * np.pi * k * n / FFT) * window])
    return kernels[:, None, :].astype(np.float32)


def build(smart_turn_path, head=None):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(smart_turn_path)
    graph = model.graph
    assert [value.name for value in graph.input] == ["input_features"], "not the Smart Turn v3 graph"
    names = {output for node in graph.node for output in node.output}
    assert HIDDEN in names and POOLED in names, "Smart Turn graph without the expected encoder tensors"

    def constant(name, value, dtype=np.int64):
        graph.initializer.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    c = {
        "minus_window": constant("w_minus_window", [-WINDOW]),
        "big": constant("w_big", [2 ** 62]), "axis1": constant("w_axis1", [1]),
        "axis2": constant("w_axis2", [2]), "zero": constant("w_zero", [0]), "axes12": constant("w_axes12", [1, 2]),
        "reflect": constant("w_reflect", [0, FFT // 2, 0, FFT // 2]), 
        "halves": constant("w_halves", [FFT // 2 + 1, FFT // 2 + 1]),
        "dft": constant("w_dft", dft_kernels(), np.float32), "mel": constant("w_mel", mel_filters(), np.float32),
        "eps_var": constant("w_eps_var", 1e-7, np.float32), "floor": constant("w_floor", 1e-10, np.float32),
        "ln10": constant("w_ln10", np.log(10.0), np.float32), "eight": constant("w_eight", 8.0, np.float32),
        "four": constant("w_four", 4.0, np.float32),
        "minus_one": constant("w_minus_one", [-1]),
    }
    node = helper.make_node
    front = [
        # The last 8 s (the encoder's positions); shorter speech is read as it is.
        node("Slice", ["waveform", c["minus_window"], c["big"], c["axis1"]], ["w_padded"]),
        # Zero mean, unit variance.
        node("ReduceMean", ["w_padded", c["axis1"]], ["w_mean"], keepdims=1),
        node("Sub", ["w_padded", "w_mean"], ["w_centred"]),
        node("Mul", ["w_centred", "w_centred"], ["w_square"]),
        node("ReduceMean", ["w_square", c["axis1"]], ["w_var"], keepdims=1),
        node("Add", ["w_var", c["eps_var"]], ["w_var_eps"]),
        node("Sqrt", ["w_var_eps"], ["w_deviation"]),
        node("Div", ["w_centred", "w_deviation"], ["w_normal"]),
        # Centred frames, power spectrum, mel, log10.
        node("Pad", ["w_normal", c["reflect"]], ["w_reflected"], mode="reflect"),
        node("Unsqueeze", ["w_reflected", c["axis1"]], ["w_signal"]),
        node("Conv", ["w_signal", c["dft"]], ["w_spectrum"], strides=[HOP]),
        node("Split", ["w_spectrum", c["halves"]], ["w_real", "w_imaginary"], axis=1),
        node("Mul", ["w_real", "w_real"], ["w_real2"]),
        node("Mul", ["w_imaginary", "w_imaginary"], ["w_imaginary2"]),
        node("Add", ["w_real2", "w_imaginary2"], ["w_power"]),
        node("MatMul", [c["mel"], "w_power"], ["w_melspec"]),
        node("Max", ["w_melspec", c["floor"]], ["w_floored"]),
        node("Log", ["w_floored"], ["w_ln"]),
        node("Div", ["w_ln", c["ln10"]], ["w_log10"]),
        node("Slice", ["w_log10", c["zero"], c["minus_one"], c["axis2"]], ["w_frames"]),  # drop the last, as Whisper does
        node("ReduceMax", ["w_frames", c["axes12"]], ["w_top"], keepdims=1),
        node("Sub", ["w_top", c["eight"]], ["w_bottom"]),
        node("Max", ["w_frames", "w_bottom"], ["w_clamped"]),
        node("Add", ["w_clamped", c["four"]], ["w_shifted"]),
        node("Div", ["w_shifted", c["four"]], ["input_features"]),
    ]
    back = [
        # Mean and spread of the hidden states over time.
        node("ReduceMean", [HIDDEN, c["axis1"]], ["w_hidden_mean"], keepdims=0),
        node("ReduceMean", [HIDDEN, c["axis1"]], ["w_hidden_mean_k"], keepdims=1),
        node("Sub", [HIDDEN, "w_hidden_mean_k"], ["w_hidden_centred"]),
        node("Mul", ["w_hidden_centred", "w_hidden_centred"], ["w_hidden_square"]),
        node("ReduceMean", ["w_hidden_square", c["axis1"]], ["w_hidden_var"], keepdims=0),
        node("Sqrt", ["w_hidden_var"], ["w_hidden_std"]),
        node("Concat", ["w_hidden_mean", "w_hidden_std", POOLED], ["embedding"], axis=1),
    ]
    outputs = [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, 3 * 384])]
    if head is not None:
        constant("h_mean", head["mean"], np.float32)
        constant("h_scale", head["scale"], np.float32)
        constant("h_weights", np.asarray(head["weights"]).T, np.float32)
        constant("h_bias", head["bias"], np.float32)
        back += [
            node("Sub", ["embedding", "h_mean"], ["h_centred"]),
            node("Div", ["h_centred", "h_scale"], ["h_standard"]),
            node("MatMul", ["h_standard", "h_weights"], ["h_linear"]),
            node("Add", ["h_linear", "h_bias"], ["h_scores"]),
            node("Softmax", ["h_scores"], ["probabilities"], axis=1),
        ]
        outputs = [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, len(CLASSES)])]
    # Smart Turn reads exactly 800 frames; let it read any number up to that: its reshapes
    # name the 400 positions (val_21), and it adds all 400 position embeddings.
    for initializer in graph.initializer:
        if initializer.name == "val_21":
            assert list(numpy_helper.to_array(initializer)) == [400]
            initializer.CopyFrom(numpy_helper.from_array(np.array([-1], np.int64), "val_21"))
    encoder = []
    for original in graph.node:
        if original.op_type == "Add" and POSITIONS in original.input:
            other = [name for name in original.input if name != POSITIONS][0]
            encoder += [
                node("Shape", [other], ["w_encoded_shape"]),
                node("Gather", ["w_encoded_shape", c["axis1"]], ["w_positions"], axis=0),
                node("Slice", [POSITIONS, c["zero"], "w_positions", c["zero"]], ["w_used_positions"]),
                node("Add", [other, "w_used_positions"], list(original.output)),
            ]
        else:
            encoder.append(original)
    del graph.value_info[:]  # shapes recorded for 800 frames; ONNX Runtime infers the real ones
    nodes = front + encoder + back
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.input[:]
    graph.input.append(helper.make_tensor_value_info("waveform", TensorProto.FLOAT, [1, "samples"]))
    del graph.output[:]
    graph.output.extend(outputs)
    graph.name = "attune_voice_whisper"
    model.producer_name = "attune voice_whisper_model.py"
    onnx.checker.check_model(model)
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smart-turn", required=True, help="smart-turn-v3.2-cpu.onnx")
    parser.add_argument("--head", help="head JSON from train_voice_whisper.py (without: the embedding model)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    import onnx

    head = None
    if args.head:
        with open(args.head) as handle:
            head = json.load(handle)
        assert head["classes"] == CLASSES, f"{args.head}: classes must be {CLASSES}"
    onnx.save(build(args.smart_turn, head), args.out)


if __name__ == "__main__":
    main()
