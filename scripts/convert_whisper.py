#!/usr/bin/env python3
"""Convert a CTranslate2 Whisper model (model.bin + vocabulary.txt) into whisper.cpp's format.

    python3 scripts/convert_whisper.py MODEL_DIR OUT.bin

Pure Python (struct only), so setup needs no numpy. The mapping, CTranslate2 -> whisper.cpp:

    encoder/conv{1,2}/{weight,bias}              -> encoder.conv{1,2}.{weight,bias}   (bias as [n, 1])
    encoder/position_encodings/encodings         -> encoder.positional_embedding
    encoder/layer_N/self_attention/linear_0      -> encoder.blocks.N.attn.{query,key,value}  (fused Q|K|V rows split in three; key has no bias)
    encoder/layer_N/self_attention/linear_1      -> encoder.blocks.N.attn.out
    encoder/layer_N/self_attention/layer_norm    -> encoder.blocks.N.attn_ln
    encoder/layer_N/ffn/linear_{0,1}             -> encoder.blocks.N.mlp.{0,2}
    encoder/layer_N/ffn/layer_norm               -> encoder.blocks.N.mlp_ln
    encoder/layer_norm                           -> encoder.ln_post
    decoder/embeddings/weight                    -> decoder.token_embedding.weight  (also the output projection)
    decoder/position_encodings/encodings         -> decoder.positional_embedding
    decoder/layer_N/self_attention/...           -> decoder.blocks.N.attn... (as in the encoder)
    decoder/layer_N/attention/linear_0           -> decoder.blocks.N.cross_attn.query
    decoder/layer_N/attention/linear_1           -> decoder.blocks.N.cross_attn.{key,value}  (fused K|V rows split in two)
    decoder/layer_N/attention/linear_2           -> decoder.blocks.N.cross_attn.out
    decoder/layer_N/attention/layer_norm         -> decoder.blocks.N.cross_attn_ln
    decoder/layer_N/ffn/...                      -> decoder.blocks.N.mlp...
    decoder/layer_norm                           -> decoder.ln
    layer norm gamma/beta                        -> weight/bias

Matrices keep their row-major layout (whisper.cpp lists dimensions innermost first) and are
stored as float16; vectors, conv biases and positional embeddings as float32, as whisper.cpp's
loader expects. The file also carries the 80-bin mel filter bank (Slaney-style, computed here as
librosa.filters.mel(sr=16000, n_fft=400, n_mels=80) does) and the byte-level BPE vocabulary up to
<|endoftext|>; whisper.cpp derives the special tokens from the vocabulary size.
"""

from __future__ import annotations

import math
import re
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

GGML_MAGIC = 0x67676D6C
FLOAT32, FLOAT16 = 0, 1
CT2_DTYPES = {0: ("f", 4), 4: ("e", 2)}  # CTranslate2 dtype id -> struct code, width
SAMPLE_RATE, N_FFT = 16_000, 400


@dataclass
class Variable:
    shape: tuple[int, ...]
    dtype: int
    raw: bytes


class ConversionError(Exception):
    pass


def read_ctranslate2(path: Path) -> dict[str, Variable]:
    """Read every variable of a CTranslate2 model.bin (format version 6), aliases resolved."""
    data = path.read_bytes()
    offset = 0

    def take(fmt: str):
        nonlocal offset
        values = struct.unpack_from("<" + fmt, data, offset)
        offset += struct.calcsize("<" + fmt)
        return values

    def text() -> str:
        nonlocal offset
        (length,) = take("H")
        value = data[offset:offset + length].rstrip(b"\0").decode()
        offset += length
        return value

    (version,) = take("I")
    if version != 6:
        raise ConversionError(f"{path}: CTranslate2 format version {version}, expected 6")
    spec = text()
    if spec != "WhisperSpec":
        raise ConversionError(f"{path}: a {spec}, not a Whisper model")
    take("I")  # spec revision
    (count,) = take("I")
    variables: dict[str, Variable] = {}
    for _ in range(count):
        name = text()
        (rank,) = take("B")
        shape = take("I" * rank) if rank else ()
        (dtype,) = take("B")
        (size,) = take("I")
        variables[name] = Variable(tuple(shape), dtype, data[offset:offset + size])
        offset += size
    (aliases,) = take("I")
    for _ in range(aliases):
        alias, target = text(), text()
        variables[alias] = variables[target]
    return variables


def floats(variable: Variable) -> list[float]:
    if variable.dtype not in CT2_DTYPES:
        raise ConversionError(f"unsupported CTranslate2 dtype {variable.dtype} (quantized models are not supported)")
    code, width = CT2_DTYPES[variable.dtype]
    return list(struct.unpack(f"<{len(variable.raw) // width}{code}", variable.raw))


def as_float16(variable: Variable) -> bytes:
    if variable.dtype == 4:
        return variable.raw
    values = floats(variable)
    return struct.pack(f"<{len(values)}e", *values)


def as_float32(variable: Variable) -> bytes:
    values = floats(variable)
    return struct.pack(f"<{len(values)}f", *values)


def rows(variable: Variable, start: int, stop: int) -> Variable:
    """Rows [start, stop) of a matrix or vector, as a new variable."""
    width = CT2_DTYPES[variable.dtype][1]
    row = width * (math.prod(variable.shape[1:]) if len(variable.shape) > 1 else 1)
    return Variable((stop - start, *variable.shape[1:]), variable.dtype, variable.raw[start * row:stop * row])


def scalar(variable: Variable) -> int:
    code = {1: "b", 2: "h", 3: "i"}[variable.dtype]
    return struct.unpack("<" + code, variable.raw)[0]


# ---------------------------------------------------------------------------------------------
# Mel filter bank (Slaney mel scale, area-normalised triangles)


def hz_to_mel(hz: float) -> float:
    linear_step, log_start_hz = 200.0 / 3, 1000.0
    log_start_mel, log_step = log_start_hz / linear_step, math.log(6.4) / 27.0
    if hz < log_start_hz:
        return hz / linear_step
    return log_start_mel + math.log(hz / log_start_hz) / log_step


def mel_to_hz(mel: float) -> float:
    linear_step, log_start_hz = 200.0 / 3, 1000.0
    log_start_mel, log_step = log_start_hz / linear_step, math.log(6.4) / 27.0
    if mel < log_start_mel:
        return mel * linear_step
    return log_start_hz * math.exp(log_step * (mel - log_start_mel))


def mel_filters(n_mels: int) -> list[list[float]]:
    bins = N_FFT // 2 + 1
    fft_hz = [i * (SAMPLE_RATE / 2) / (bins - 1) for i in range(bins)]
    low, high = hz_to_mel(0.0), hz_to_mel(SAMPLE_RATE / 2)
    edges = [mel_to_hz(low + (high - low) * i / (n_mels + 1)) for i in range(n_mels + 2)]
    filters = []
    for m in range(n_mels):
        left, centre, right = edges[m], edges[m + 1], edges[m + 2]
        norm = 2.0 / (right - left)
        row = []
        for hz in fft_hz:
            rising = (hz - left) / (centre - left)
            falling = (right - hz) / (right - centre)
            row.append(max(0.0, min(rising, falling)) * norm)
        filters.append(row)
    return filters


# ---------------------------------------------------------------------------------------------
# Vocabulary: GPT-2 byte-level BPE symbols back to raw bytes


def byte_decoder() -> dict[str, int]:
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return {chr(code): byte for byte, code in zip(printable, codes)}


def read_vocabulary(path: Path) -> list[bytes]:
    decoder = byte_decoder()
    tokens = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line == "<|endoftext|>":
            return tokens
        try:
            tokens.append(bytes(decoder[c] for c in line))
        except KeyError as error:
            raise ConversionError(f"{path}: token {len(tokens)} ({line!r}) is not byte-level BPE: {error}")
    raise ConversionError(f"{path}: no <|endoftext|> token")


# ---------------------------------------------------------------------------------------------


def tensors(variables: dict[str, Variable], layers: tuple[int, int], state: int):
    """Yield (whisper.cpp name, float16?, shape, variable) in the order whisper.cpp reads them."""

    def norm(prefix: str, ct2: str):
        yield f"{prefix}.weight", False, variables[f"{ct2}/gamma"]
        yield f"{prefix}.bias", False, variables[f"{ct2}/beta"]

    def linear(prefix: str, ct2: str, start: int = 0, stop: int | None = None, bias: bool = True):
        weight = variables[f"{ct2}/weight"]
        stop = stop if stop is not None else weight.shape[0]
        yield f"{prefix}.weight", True, rows(weight, start, stop)
        if bias:
            yield f"{prefix}.bias", False, rows(variables[f"{ct2}/bias"], start, stop)

    def fused_self_attention(prefix: str, ct2: str):
        yield from linear(f"{prefix}.attn.query", f"{ct2}/linear_0", 0, state)
        yield from linear(f"{prefix}.attn.key", f"{ct2}/linear_0", state, 2 * state, bias=False)
        yield from linear(f"{prefix}.attn.value", f"{ct2}/linear_0", 2 * state, 3 * state)
        yield from linear(f"{prefix}.attn.out", f"{ct2}/linear_1")
        yield from norm(f"{prefix}.attn_ln", f"{ct2}/layer_norm")

    def ffn(prefix: str, ct2: str):
        yield from linear(f"{prefix}.mlp.0", f"{ct2}/linear_0")
        yield from linear(f"{prefix}.mlp.2", f"{ct2}/linear_1")
        yield from norm(f"{prefix}.mlp_ln", f"{ct2}/layer_norm")

    yield "encoder.positional_embedding", False, variables["encoder/position_encodings/encodings"]
    for conv in ("conv1", "conv2"):
        weight, bias = variables[f"encoder/{conv}/weight"], variables[f"encoder/{conv}/bias"]
        yield f"encoder.{conv}.weight", True, weight
        yield f"encoder.{conv}.bias", False, Variable((bias.shape[0], 1), bias.dtype, bias.raw)
    for n in range(layers[0]):
        yield from fused_self_attention(f"encoder.blocks.{n}", f"encoder/layer_{n}/self_attention")
        yield from ffn(f"encoder.blocks.{n}", f"encoder/layer_{n}/ffn")
    yield from norm("encoder.ln_post", "encoder/layer_norm")

    yield "decoder.positional_embedding", False, variables["decoder/position_encodings/encodings"]
    yield "decoder.token_embedding.weight", True, variables["decoder/embeddings/weight"]
    for n in range(layers[1]):
        prefix, ct2 = f"decoder.blocks.{n}", f"decoder/layer_{n}"
        yield from fused_self_attention(prefix, f"{ct2}/self_attention")
        yield from linear(f"{prefix}.cross_attn.query", f"{ct2}/attention/linear_0")
        yield from linear(f"{prefix}.cross_attn.key", f"{ct2}/attention/linear_1", 0, state, bias=False)
        yield from linear(f"{prefix}.cross_attn.value", f"{ct2}/attention/linear_1", state, 2 * state)
        yield from linear(f"{prefix}.cross_attn.out", f"{ct2}/attention/linear_2")
        yield from norm(f"{prefix}.cross_attn_ln", f"{ct2}/attention/layer_norm")
        yield from ffn(prefix, f"{ct2}/ffn")
    yield from norm("decoder.ln", "decoder/layer_norm")


def convert(model_dir: Path, output: Path) -> None:
    variables = read_ctranslate2(model_dir / "model.bin")
    vocabulary = read_vocabulary(model_dir / "vocabulary.txt")

    n_vocab, n_text_state = variables["decoder/embeddings/weight"].shape
    n_audio_ctx, n_audio_state = variables["encoder/position_encodings/encodings"].shape
    n_text_ctx = variables["decoder/position_encodings/encodings"].shape[0]
    n_mels = variables["encoder/conv1/weight"].shape[1]
    layer = re.compile(r"(encoder|decoder)/layer_(\d+)/")
    count = lambda side: len({m.group(2) for m in map(layer.match, variables) if m and m.group(1) == side})
    n_audio_layer, n_text_layer = count("encoder"), count("decoder")
    if n_audio_state != n_text_state:
        raise ConversionError("encoder and decoder widths differ; not a Whisper model this converter knows")
    hparams = [
        n_vocab, n_audio_ctx, n_audio_state, scalar(variables["encoder/num_heads"]), n_audio_layer,
        n_text_ctx, n_text_state, scalar(variables["decoder/num_heads"]), n_text_layer, n_mels, FLOAT16,
    ]

    partial = output.with_name(output.name + ".partial")
    with partial.open("wb") as out:
        out.write(struct.pack("<i", GGML_MAGIC))
        out.write(struct.pack(f"<{len(hparams)}i", *hparams))
        filters = mel_filters(n_mels)
        out.write(struct.pack("<ii", n_mels, len(filters[0])))
        for row in filters:
            out.write(struct.pack(f"<{len(row)}f", *row))
        out.write(struct.pack("<i", len(vocabulary)))
        for token in vocabulary:
            out.write(struct.pack("<i", len(token)) + token)
        written = 0
        for name, half, variable in tensors(variables, (n_audio_layer, n_text_layer), n_audio_state):
            dims = list(reversed(variable.shape))
            encoded = name.encode()
            out.write(struct.pack(f"<iii{len(dims)}i", len(dims), len(encoded), FLOAT16 if half else FLOAT32, *dims))
            out.write(encoded)
            out.write(as_float16(variable) if half else as_float32(variable))
            written += 1
    partial.rename(output)
    print(f"converted {model_dir.name}: {n_audio_layer}+{n_text_layer} layers, width {n_audio_state}, "
          f"vocabulary {n_vocab}, {written} tensors -> {output}")


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    try:
        convert(Path(sys.argv[1]), Path(sys.argv[2]))
    except (ConversionError, KeyError, OSError) as error:
        print(f"convert_whisper: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
