#!/usr/bin/env python3
"""Does the pitch at a pause tell a mid-sentence stop from the end of a sentence? (numpy only)

    .build/release/attune bench turns --data ../shared/data/speech/ravdess-16k --turns 0 \
        --pauses 500,750,1000 --set turn.hold_unfinished=false --pause-audio /tmp/pauses
    python3 scripts/pause_pitch.py /tmp/pauses

`--pause-audio` writes the audio of every pause the turn detector offers (what a speculative
transcript would read: the utterance up to the pause plus its 200 ms tail), named
`NUMBER-CLIP-mid|end-CUT_WORD-PAUSE_MS.wav`: `mid` when the pause came before the utterance's
last word (the speaker goes on), `end` when it came after it (the sentence is finished).

Pitch is tracked as `AcousticFeatures` does (normalised autocorrelation of 40 ms windows every
10 ms, 60-400 Hz, voiced when the peak exceeds 0.5 within 35 dB of the loudest frame), in
semitones above 55 Hz. Features of the last voiced stretch, each relative to the speaker's own
utterance so that voices compare:

- drop: median pitch of the last 100 ms voiced minus the utterance's median;
- slope: least-squares pitch slope over the last 300 ms voiced (semitones per second);
- above_floor: median pitch of the last 100 ms voiced minus the utterance's 10th percentile;
- unvoiced_tail: seconds from the last voiced frame to the end of the audio.

Prints each feature's AUC for "mid" against "end" (0.5: no information), over all pauses and
over the held-out actors 09-12 alone, and the medians by cut word. The features are fixed
here, not fitted, so the AUCs are not tuned figures.
"""

import re
import sys
import wave
from collections import defaultdict
from pathlib import Path

import numpy as np

RATE = 16_000
HOP = 160
WINDOW = 640
NAME = re.compile(r"\d+-(03-01-\d\d-\d\d-\d\d-\d\d-(\d\d))-(mid|end)-(.+)-(\d+)\.wav")
FEATURES = ["drop", "slope", "above_floor", "unvoiced_tail"]


def read(path: Path) -> np.ndarray:
    with wave.open(str(path)) as file:
        return np.frombuffer(file.readframes(file.getnframes()), dtype=np.int16).astype(np.float32) / 32768


def pitch_track(samples: np.ndarray):
    shortest, longest = RATE // 400, RATE // 60
    count = (len(samples) - WINDOW - longest - 1) // HOP
    if count <= 0:
        return np.array([]), np.array([])
    levels = np.array([10 * np.log10(np.mean(samples[i * HOP:i * HOP + 400] ** 2) + 1e-10) for i in range(count)])
    loudest = levels.max()
    times, pitches = [], []
    for frame in range(count):
        if levels[frame] < loudest - 35:
            continue
        start = frame * HOP
        window = samples[start:start + WINDOW]
        energy = float(np.dot(window, window))
        if energy < 1e-8:
            continue
        best_lag, best_score = 0, 0.0
        for lag in range(shortest, longest + 1):
            later = samples[start + lag:start + lag + WINDOW]
            score = float(np.dot(window, later)) / np.sqrt(energy * float(np.dot(later, later)) + 1e-12)
            if score > best_score:
                best_lag, best_score = lag, score
        if best_score > 0.5:
            times.append(frame * HOP / RATE)
            pitches.append(12 * np.log2(RATE / best_lag / 55))
    return np.array(times), np.array(pitches)


def features(samples: np.ndarray):
    times, pitches = pitch_track(samples)
    if len(pitches) < 3:
        return None
    reference = np.median(pitches)
    last = times[-1]
    final = np.median(pitches[times > last - 0.1])
    recent = times > last - 0.3
    slope = np.polyfit(times[recent], pitches[recent], 1)[0] if recent.sum() >= 3 else 0.0
    return {
        "drop": final - reference,
        "slope": slope,
        "above_floor": final - np.percentile(pitches, 10),
        "unvoiced_tail": len(samples) / RATE - last,
    }


def auc(positives, negatives) -> float:
    positives, negatives = np.asarray(positives), np.asarray(negatives)
    if len(positives) == 0 or len(negatives) == 0:
        return float("nan")
    return float(np.mean([(p > negatives).mean() + 0.5 * (p == negatives).mean() for p in positives]))


def main():
    folder = Path(sys.argv[1])
    rows = []
    for path in sorted(folder.glob("*.wav")):
        match = NAME.fullmatch(path.name)
        if not match:
            continue
        _, actor, kind, word, _ = match.groups()
        values = features(read(path))
        if values:
            rows.append((int(actor), kind, word.lower(), values))
    print(f"{len(rows)} pauses with pitch: {sum(r[1] == 'mid' for r in rows)} mid-sentence, {sum(r[1] == 'end' for r in rows)} at the end")
    for name in FEATURES:
        every = auc([r[3][name] for r in rows if r[1] == "mid"], [r[3][name] for r in rows if r[1] == "end"])
        held = auc([r[3][name] for r in rows if r[1] == "mid" and r[0] >= 9], [r[3][name] for r in rows if r[1] == "end" and r[0] >= 9])
        print(f"{name:14s} AUC mid vs end: {every:.3f} (actors 09-12: {held:.3f})")
    by_word = defaultdict(list)
    for _, kind, word, values in rows:
        if kind == "mid":
            by_word[word].append(values["drop"])
    ends = [r[3]["drop"] for r in rows if r[1] == "end"]
    print(f"drop at the end of the sentence: median {np.median(ends):+.2f} st ({len(ends)})")
    for word, drops in sorted(by_word.items(), key=lambda item: -len(item[1])):
        if len(drops) >= 10:
            print(f"drop after '{word}': median {np.median(drops):+.2f} st ({len(drops)})")


if __name__ == "__main__":
    main()
