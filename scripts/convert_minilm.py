#!/usr/bin/env python3
"""Convert all-MiniLM-L6-v2 (safetensors) into a GGUF file for Attune's ggml BERT encoder.

    PYTHONPATH=<cache>/python python3 scripts/convert_minilm.py MODEL_DIR OUT.gguf

Tensors keep their Hugging Face names (embeddings.word_embeddings.weight,
encoder.layer.N.attention.self.query.weight, ...) and float32 values; `position_ids` is dropped.
Metadata records the architecture the Swift encoder checks: bert.*.
"""

import json
import sys
from pathlib import Path

import gguf
import numpy as np


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    with path.open("rb") as handle:
        header_size = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(header_size))
        base = 8 + header_size
    data = np.memmap(path, dtype=np.uint8, mode="r")
    dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = data[base + start:base + end]
        tensors[name] = np.frombuffer(raw, dtype=dtypes[info["dtype"]]).reshape(info["shape"])
    return tensors


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    model_dir, output = Path(sys.argv[1]), Path(sys.argv[2])
    config = json.loads((model_dir / "config.json").read_text())
    tensors = read_safetensors(model_dir / "model.safetensors")
    partial = output.with_name(output.name + ".partial")
    writer = gguf.GGUFWriter(str(partial), "bert")
    writer.add_uint32("bert.embedding_length", config["hidden_size"])
    writer.add_uint32("bert.block_count", config["num_hidden_layers"])
    writer.add_uint32("bert.attention.head_count", config["num_attention_heads"])
    writer.add_uint32("bert.feed_forward_length", config["intermediate_size"])
    writer.add_uint32("bert.context_length", config["max_position_embeddings"])
    writer.add_float32("bert.attention.layer_norm_epsilon", config["layer_norm_eps"])
    for name, array in tensors.items():
        if name == "embeddings.position_ids":
            continue
        writer.add_tensor(name, np.ascontiguousarray(array, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    partial.rename(output)
    print(f"converted {len(tensors) - 1} tensors -> {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
