#!/usr/bin/env python3
"""Quantize a whisper.cpp model file (ggml format, float16 weights) to q8_0 or q5_1.

Usage: quantize_whisper.py LIBGGML_BASE INPUT OUTPUT TYPE

LIBGGML_BASE is the libggml-base.so that whisper.cpp itself loads (setup's .deps/lib): the
blocks are made by its own ggml_quantize_chunk, so the file holds exactly what whisper.cpp's
`quantize` tool would write. As there, the two-dimensional float16 matrices (attention, MLP,
token embedding) are quantized; the convolutions, biases, norms and positional embeddings stay
as they are, and the header's ftype becomes GGML_QNT_VERSION * 1000 + the quantized ftype.
"""

import ctypes
import struct
import sys
from pathlib import Path

GGML_MAGIC = 0x67676D6C
GGML_QNT_VERSION = 2
GGML_QNT_VERSION_FACTOR = 1000
FLOAT32, FLOAT16 = 0, 1
# name: (ggml_type, ggml_ftype), from ggml.h
TYPES = {"q8_0": (8, 7), "q5_1": (7, 9)}
HPARAMS = 11  # n_vocab ... n_mels, ftype


class QuantizeError(Exception):
    pass


def load_ggml(path: Path) -> ctypes.CDLL:
    ggml = ctypes.CDLL(str(path))
    ggml.ggml_fp16_to_fp32_row.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    ggml.ggml_fp16_to_fp32_row.restype = None
    ggml.ggml_quantize_chunk.argtypes = [
        ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p,
    ]
    ggml.ggml_quantize_chunk.restype = ctypes.c_size_t
    ggml.ggml_row_size.argtypes = [ctypes.c_int, ctypes.c_int64]
    ggml.ggml_row_size.restype = ctypes.c_size_t
    return ggml


def quantize(ggml: ctypes.CDLL, source: Path, output: Path, kind: str) -> None:
    qtype, qftype = TYPES[kind]
    data = source.read_bytes()
    at = 0

    def take(fmt: str):
        nonlocal at
        values = struct.unpack_from(fmt, data, at)
        at += struct.calcsize(fmt)
        return values

    (magic,) = take("<i")
    if magic != GGML_MAGIC:
        raise QuantizeError(f"{source} is not a whisper.cpp ggml file")
    hparams = list(take(f"<{HPARAMS}i"))
    if hparams[-1] != FLOAT16:
        raise QuantizeError(f"{source} has ftype {hparams[-1]}; only float16 models are quantized")
    header_start = at
    # mel filters, then the vocabulary: copied as they are
    n_mel, n_fft = take("<ii")
    at += 4 * n_mel * n_fft
    (n_vocab,) = take("<i")
    for _ in range(n_vocab):
        (length,) = take("<i")
        at += length
    hparams[-1] = GGML_QNT_VERSION * GGML_QNT_VERSION_FACTOR + qftype

    partial = output.with_name(output.name + ".partial")
    before = after = quantized = 0
    with partial.open("wb") as out:
        out.write(struct.pack("<i", GGML_MAGIC) + struct.pack(f"<{HPARAMS}i", *hparams))
        out.write(data[header_start:at])
        while at < len(data):
            n_dims, length, ttype = take("<iii")
            dims = take(f"<{n_dims}i")
            name = data[at:at + length]
            at += length
            count = 1
            for d in dims:
                count *= d
            size = count * (4 if ttype == FLOAT32 else 2)
            raw = data[at:at + size]
            at += size
            before += size
            if ttype == FLOAT16 and n_dims == 2:
                if dims[0] % 32:
                    raise QuantizeError(f"{name.decode()}: rows of {dims[0]} do not split into 32-value blocks")
                floats = (ctypes.c_float * count)()
                ggml.ggml_fp16_to_fp32_row(ctypes.c_char_p(raw), floats, count)
                blocks = ctypes.create_string_buffer(ggml.ggml_row_size(qtype, dims[0]) * (count // dims[0]))
                written = ggml.ggml_quantize_chunk(qtype, floats, blocks, 0, count // dims[0], dims[0], None)
                raw, ttype = blocks.raw[:written], qtype
                quantized += 1
            out.write(struct.pack(f"<iii{n_dims}i", n_dims, length, ttype, *dims) + name + raw)
            after += len(raw)
    partial.rename(output)
    print(f"quantized {source.name} to {kind}: {quantized} matrices, weights {before / 2**20:.1f} MB -> "
          f"{after / 2**20:.1f} MB -> {output}")


def main() -> int:
    if len(sys.argv) != 5 or sys.argv[4] not in TYPES:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    try:
        quantize(load_ggml(Path(sys.argv[1])), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4])
    except (QuantizeError, OSError, struct.error) as error:
        print(f"quantize_whisper: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
