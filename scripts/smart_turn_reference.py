#!/usr/bin/env python3
"""The reference for Attune's Swift Smart Turn features: the numpy extractor shipped beside the
model in the pipecat-ai wheel (`_whisper_features.py`), run on the audio Attune would send.

Usage: smart_turn_reference.py PIPECAT_WHEEL < audio.f32 > features.f32

Reads 16 kHz mono float32 samples from standard input, keeps the last 8 s or zero-pads at the
start (as pipecat's LocalSmartTurnAnalyzerV3 does), and writes the [80, 800] features as
float32 to standard output. Needs numpy (setup's python/ folder on PYTHONPATH).
"""
import sys
import types
import zipfile

import numpy as np

MEMBER = "pipecat/audio/turn/smart_turn/_whisper_features.py"


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    with zipfile.ZipFile(sys.argv[1]) as wheel:
        source = wheel.read(MEMBER).decode()
    module = types.ModuleType("whisper_features")
    exec(compile(source, MEMBER, "exec"), module.__dict__)
    audio = np.frombuffer(sys.stdin.buffer.read(), dtype="<f4")
    window = 8 * 16_000
    audio = audio[-window:] if audio.size > window else np.pad(audio, (window - audio.size, 0))
    features = module.compute_whisper_log_mel_features(audio, do_normalize=True)
    sys.stdout.buffer.write(features.astype("<f4").tobytes())
    return 0


if __name__ == "__main__":
    sys.exit(main())
