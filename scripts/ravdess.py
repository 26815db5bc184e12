"""RAVDESS clips as Attune's voice scripts read them: labels, actors, and speech trimmed of
silence exactly as the server trims it (AcousticFeatures.trimmed in Swift)."""
import glob
import os
import wave

import numpy as np

RATE, HOP = 16_000, 160
# RAVDESS emotion codes to Attune's class indices (anger, disgust, fear, joy, neutral, sadness,
# surprise); calm counts as neutral.
CODES = {"01": 4, "02": 4, "03": 3, "04": 5, "05": 0, "06": 2, "07": 1, "08": 6}


def trimmed(samples):
    """The speech of a clip: 10 ms frames from the first to the last within 35 dB of the loudest."""
    frames = len(samples) // HOP
    if frames <= 2:
        return samples
    energy = (samples[: frames * HOP].reshape(frames, HOP) ** 2).mean(axis=1)
    levels = 10 * np.log10(energy + 1e-12)
    floor = max(levels.max() - 35, -60)
    loud = np.where(levels > floor)[0]
    return samples[loud[0] * HOP: min(len(samples), (loud[-1] + 1) * HOP)] if len(loud) else samples[:0]


def load(folder, with_paths=False):
    """Trimmed clips, labels and actors (and paths) of a folder of RAVDESS-named 16 kHz WAVs."""
    clips, labels, actors = [], [], []
    paths = sorted(glob.glob(os.path.join(folder, "**", "*.wav"), recursive=True))
    for path in paths:
        parts = os.path.basename(path)[:-4].split("-")
        with wave.open(path) as handle:
            assert handle.getframerate() == RATE and handle.getnchannels() == 1, f"{path}: not 16 kHz mono"
            samples = np.frombuffer(handle.readframes(handle.getnframes()), dtype=np.int16).astype(np.float32) / 32768
        clips.append(trimmed(samples))
        labels.append(CODES[parts[2]])
        actors.append(int(parts[6]))
    if with_paths:
        return clips, np.array(labels), np.array(actors), paths
    return clips, np.array(labels), np.array(actors)
