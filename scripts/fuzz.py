#!/usr/bin/env python3
"""Fuzz a running Attune server from the outside, as a hostile client would.

Starts `attune serve` (the binary given) on a free loopback port with a private data folder,
then for a bounded time sends: thousands of malformed WebSocket messages (bad JSON, wrong types,
huge and tiny numbers, NaN, unknown types, giant strings, deep nesting, garbage base64, absurd
sample rates), invalid WebSocket frames, bad HTTP methods, bodies and content types on every
route of /openapi.json, decompression-bomb audio, and clients that never read. Meanwhile a valid
session streams a real sentence and must get its transcript.

It asserts that the server stays up and answers /api/health, that every bad message gets an
error event (or a pong or `configured` for the valid controls mixed in) and every bad request a
4xx status with a JSON error, that clients that never read are disconnected, and that resident
memory stays bounded. It prints a JSON report (messages, connections, errors by code, statuses,
RSS before/peak/after) and exits non-zero on any failed check. Only the standard library is used.

    python3 scripts/fuzz.py --binary .build/debug/attune --seconds 60 --report .build/fuzz.json
"""
import argparse
import base64
import collections
import json
import os
import random
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("ATTUNE_SHARED_DATA", ROOT.parent / "shared" / "data"))
SPEECH = SHARED / "speech" / "ravdess-16k" / "Actor_01" / "03-01-01-01-01-01-01.wav"


# MARK: - A minimal WebSocket client (RFC 6455)

class WebSocket:
    def __init__(self, port: int, path: str = "/ws/conversation", headers: list[str] | None = None,
                 receive_buffer: int | None = None, timeout: float = 10):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13", *(headers or []), "", ""]
        self.sock.sendall("\r\n".join(lines).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            head += chunk
        self.status = int(head.split(b" ", 2)[1])
        self.buffer = b""
        self.closed = False

    def send_frame(self, opcode: int, payload: bytes, fin: bool = True, mask: bool = True, rsv: int = 0,
                   length_override: int | None = None):
        first = (0x80 if fin else 0) | (rsv << 4) | opcode
        length = len(payload) if length_override is None else length_override
        if length < 126:
            header = struct.pack("!BB", first, (0x80 if mask else 0) | length)
        elif length < 1 << 16:
            header = struct.pack("!BBH", first, (0x80 if mask else 0) | 126, length)
        else:
            header = struct.pack("!BBQ", first, (0x80 if mask else 0) | 127, length)
        if mask:
            key = os.urandom(4)
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            header += key
        self.sock.sendall(header + payload)

    def send_text(self, text: str):
        self.send_frame(0x1, text.encode("utf-8", "surrogatepass"))

    def send_binary(self, data: bytes):
        self.send_frame(0x2, data)

    def _read(self, count: int) -> bytes:
        while len(self.buffer) < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                self.closed = True
                raise ConnectionError("connection closed")
            self.buffer += chunk
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def receive(self) -> tuple[int, bytes]:
        """The next message: (opcode, payload). Close frames come back as opcode 8."""
        first, second = self._read(2)
        length = second & 0x7F
        if length == 126:
            length = struct.unpack("!H", self._read(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._read(8))[0]
        payload = self._read(length)
        if first & 0x0F == 0x8:
            self.closed = True
        return first & 0x0F, payload

    def next_event(self, timeout: float) -> dict | None:
        """The next JSON event, skipping binary frames; None on close or timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                opcode, payload = self.receive()
            except (socket.timeout, TimeoutError):
                return None
            except (ConnectionError, OSError):
                return None
            if opcode == 0x1:
                return json.loads(payload)
            if opcode == 0x8:
                return None
        return None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# MARK: - Malformed input

def hostile_messages(rng: random.Random) -> list[tuple[str, str]]:
    """(message, what it is) pairs; each must be answered with exactly one event."""
    big = "x" * 100_000
    numbers = ["1e300", "-1e300", "1e-300", "-0", "0.5", "9223372036854775808", "-9223372036854775809", "123456789012345678901234567890",
               "NaN", "Infinity", "-Infinity", "1e309", "true", "null", '"12"', "[]", "{}"]
    messages = [
        ("", "empty text"), ("not json", "plain text"), ("{", "truncated JSON"), ("[]", "array"), ("42", "number"),
        ('"ping"', "string"), ("null", "null"), ('{"type": 7}', "numeric type"), ('{"type": null}', "null type"),
        ('{"type": "dance"}', "unknown type"), (json.dumps({"type": big}), "giant type"),
        ('{"type": "ping", "extra": ' + "[" * 5000 + "]" * 5000 + "}", "deep nesting"),
        ("[" * 100_000, "very deep nesting"), ('{"type": "ping"' + ', "a": 1' * 5000 + "}", "many keys"),
        ('{"type": "\ud800"}', "lone surrogate"), ('{"type":"user_text"}', "user_text without text"),
        (json.dumps({"type": "user_text", "text": ""}), "empty user_text"), (json.dumps({"type": "user_text", "text": big}), "giant user_text"),
        ('{"type":"user_text","text":5}', "numeric user_text"), ('{"type":"playback"}', "empty playback"),
        ('{"type":"audio_data"}', "audio_data without audio"), ('{"type":"audio_data","audio_data":"%%%","sample_rate":16000}', "garbage base64"),
        ('{"type":"audio_data","audio_data":"AAAA","sample_rate":"16000"}', "string rate"),
        ('{"type":"audio_data","audio_data":"AAAA","sample_rate":16000,"encoding":"mp3"}', "unknown encoding"),
        ('{"type":"audio_data","audio_data":"AA==","sample_rate":16000}', "odd audio"),
        ('{"type":"audio_data","audio_data":"","sample_rate":16000}', "empty audio"),
        ('{"type":"configure","persona":"' + "p" * 10_000 + '"}', "giant persona"),
        ('{"type":"configure","voice":"nobody"}', "unknown voice"), ('{"type":"configure","rate":99}', "rate out of range"),
        ('{"type":"configure","silence_ms":7}', "silence out of range"), ('{"type":"ping"}', "ping"),
        ('{"type":"configure"}', "empty configure"),
    ]
    for number in numbers:
        messages += [
            (f'{{"type":"configure","silence_ms":{number}}}', f"silence_ms {number}"),
            (f'{{"type":"configure","rate":{number}}}', f"rate {number}"),
            (f'{{"type":"playback","reply":{number},"played_ms":1}}', f"reply {number}"),
            (f'{{"type":"playback","reply":1,"played_ms":{number}}}', f"played_ms {number}"),
            (f'{{"type":"audio_data","audio_data":"AAAA","sample_rate":{number}}}', f"sample_rate {number}"),
        ]
    for rate in [0, 1, 7999, 48001, 96000, 192000, -16000, 2**31, 2**63 - 1]:
        messages.append((f'{{"type":"audio_data","audio_data":"AAAA","sample_rate":{rate}}}', f"sample_rate {rate}"))
    for _ in range(40):  # random bytes as text
        raw = bytes(rng.randrange(32, 127) for _ in range(rng.randrange(1, 200))).decode()
        messages.append((raw, "random text"))
    return messages


def hostile_frames() -> list[tuple[str, dict]]:
    """Invalid WebSocket frames: the server may close the connection, but must not crash or hang."""
    return [
        ("reserved bits", dict(opcode=0x1, payload=b'{"type":"ping"}', rsv=0x7)),
        ("unknown opcode", dict(opcode=0x3, payload=b"xx")),
        ("unmasked frame", dict(opcode=0x1, payload=b'{"type":"ping"}', mask=False)),
        ("fragmented ping", dict(opcode=0x9, payload=b"p", fin=False)),
        ("oversized control frame", dict(opcode=0x9, payload=b"p" * 200)),
        ("continuation without start", dict(opcode=0x0, payload=b"xx")),
        ("invalid UTF-8 text", dict(opcode=0x1, payload=b"\xff\xfe\xfd")),
        ("huge declared length", dict(opcode=0x2, payload=b"\x00" * 16, length_override=1 << 40)),
        ("frame over the transport limit", dict(opcode=0x2, payload=b"\x00" * 300_000)),
    ]


def bomb_files() -> list[tuple[str, bytes]]:
    """Small files that claim to be enormous."""
    rate, channels, bits, total = 192_000, 8, 16, 600 * 192_000
    packed = rate << 44 | (channels - 1) << 41 | (bits - 1) << 36 | total
    info = struct.pack("!HH", 4096, 4096) + b"\x00" * 6 + packed.to_bytes(8, "big") + b"\x00" * 16
    flac = b"fLaC" + bytes([0, 0, 0, len(info)]) + info + bytes([0x81, 0, 0x1B, 0x58]) + b"\x00" * 7000
    header = b"RIFF" + struct.pack("<I", 0xFFFFFFF0) + b"WAVE" + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 8, 192_000, 192_000 * 16, 16, 16)
    wav_huge = header + b"data" + struct.pack("<I", 0xFFFFFFE0) + b"\x00" * 4096
    wav_one_hertz = b"RIFF" + struct.pack("<I", 36 + 800) + b"WAVE" + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 1, 2, 2, 16) \
        + b"data" + struct.pack("<I", 800) + b"\x01\x00" * 400
    return [("FLAC claiming 10 min of 8-channel 192 kHz", flac), ("WAV claiming 4 GB", wav_huge), ("WAV at 1 Hz", wav_one_hertz),
            ("truncated WAV", wav_one_hertz[:30]), ("random bytes", os.urandom(5000)), ("empty", b"")]


# MARK: - Harness

class Report:
    def __init__(self):
        self.lock = threading.Lock()
        self.messages = 0
        self.frames = 0
        self.connections = 0
        self.http_requests = 0
        self.errors_by_code: collections.Counter = collections.Counter()
        self.statuses: collections.Counter = collections.Counter()
        self.failures: list[str] = []
        self.rss: list[int] = []

    def fail(self, what: str):
        with self.lock:
            if len(self.failures) < 50:
                self.failures.append(what)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def http(port: int, method: str, path: str, body: bytes = b"", headers: dict | None = None, timeout: float = 60) -> tuple[int, dict, bytes]:
    """A raw HTTP/1.1 request; returns (status, headers, body), status 0 when the connection closed."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (ConnectionError, socket.timeout, OSError):
        return 0, {}, b""
    finally:
        sock.close()
    if not data.startswith(b"HTTP/1."):
        return 0, {}, b""
    head, _, content = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    fields = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        fields[name.strip().lower()] = value.strip()
    return status, fields, content


def start_server(binary: str, data_dir: str) -> tuple[subprocess.Popen, int]:
    args = [binary, "serve", "--port", "0", "--data-dir", data_dir, "--log-level", "notice",
            "--set", "llm.embedded=false", "--set", "stream.max_outbound_bytes=262144", "--set", "stream.max_sessions=64"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace")
    deadline = time.monotonic() + 120
    log = []
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        log.append(line)
        if match := re.search(r"listening on http://[^\s:]+:(\d+)", line):
            threading.Thread(target=lambda: [None for _ in process.stderr], daemon=True).start()  # keep draining
            return process, int(match.group(1))
    process.kill()
    raise SystemExit("attune serve did not start:\n" + "".join(log))


def wait_healthy(port: int, timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, _, _ = http(port, "GET", "/api/health", timeout=10)
        if status == 200:
            return True
        time.sleep(0.25)
    return False


def pcm16(path: Path) -> bytes:
    with wave.open(str(path)) as wav:
        assert wav.getframerate() == 16000 and wav.getnchannels() == 1 and wav.getsampwidth() == 2
        return wav.readframes(wav.getnframes())


# MARK: - Attacks

def valid_session(port: int, report: Report, results: dict, name: str):
    """Streams a real sentence at real time and waits for its transcript."""
    try:
        ws = WebSocket(port)
        audio = pcm16(SPEECH) + b"\x00\x00" * 16000 * 2
        for offset in range(0, len(audio), 640):
            ws.send_binary(audio[offset:offset + 640])
            time.sleep(0.02)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            event = ws.next_event(deadline - time.monotonic())
            if event is None:
                break
            if event.get("type") == "transcript_final":
                results[name] = event.get("text", "")
                break
        ws.close()
    except Exception as error:  # noqa: BLE001 - reported as a failure
        report.fail(f"{name}: {error}")


# Messages that may be valid and then get no event of their own (a playback report for a reply
# that is not playing, an empty configure): the ping that follows them must still be answered.
MAY_BE_SILENT = ("played_ms ", "empty configure")
# Pings with odd extras: answered by one pong or one error, so no second ping follows them.
PING_LIKE = ("ping", "many keys", "deep nesting")


def message_fuzzer(port: int, report: Report, stop: float, seed: int):
    """One connection at a time. Each malformed message is followed by a ping: the answers before
    the pong must include an error event (or `configured`), and the pong must come (no hang)."""
    rng = random.Random(seed)
    messages = hostile_messages(rng)
    while time.monotonic() < stop:
        try:
            ws = WebSocket(port)
        except Exception as error:  # noqa: BLE001
            report.fail(f"connect: {error}")
            time.sleep(0.5)
            continue
        with report.lock:
            report.connections += 1
        first = ws.next_event(10)
        if not first or first.get("type") != "session_started":
            report.fail(f"no session_started: {first}")
        for _ in range(60):
            if time.monotonic() >= stop:
                break
            text, what = rng.choice(messages)
            ws.send_text(text)
            with report.lock:
                report.messages += 1
            answers = []
            if what in PING_LIKE:
                answer = ws.next_event(30)
                if answer is None:
                    report.fail(f"no answer to {what}")
                    break
                if answer.get("type") != "pong":
                    answers.append(answer)
            else:
                ws.send_text('{"type":"ping"}')
                while (answer := ws.next_event(30)) is not None and answer.get("type") != "pong":
                    answers.append(answer)
                if answer is None:
                    report.fail(f"no pong after {what} (answers: {answers})")
                    break
            for answer in answers:
                kind = answer.get("type")
                if kind == "error":
                    with report.lock:
                        report.errors_by_code[answer.get("code", "?")] += 1
                    if len(answer.get("message", "")) > 400:
                        report.fail(f"error message of {len(answer['message'])} characters for {what}")
                elif kind != "configured":
                    report.fail(f"{what} got {kind}")
            if not answers and not what.startswith(MAY_BE_SILENT) and what not in PING_LIKE:
                report.fail(f"no error event for {what}")
            time.sleep(0.12)  # two messages: under the 20 messages and 10 errors a second a session may send and get
        ws.close()


def frame_fuzzer(port: int, report: Report):
    """Each invalid frame on its own connection; the server may close it but must answer pings after."""
    for what, frame in hostile_frames():
        try:
            ws = WebSocket(port)
            ws.next_event(10)
            with report.lock:
                report.connections += 1
                report.frames += 1
            ws.send_frame(**frame)
            ws.send_text('{"type":"ping"}')
            answer = ws.next_event(10)
            # Either the session goes on (a pong, or an error then a pong) or the server closes it.
            if answer is not None and answer.get("type") not in ("pong", "error"):
                report.fail(f"{what}: unexpected {answer}")
            ws.close()
        except (ConnectionError, OSError):
            pass  # closed by the server: allowed for an invalid frame
        status, _, _ = http(port, "GET", "/api/health", timeout=30)
        if status != 200:
            report.fail(f"/api/health answered {status} after {what}")


def silent_readers(port: int, report: Report, count: int) -> list[bool]:
    """Clients that send typed turns (each answered with seconds of audio) and never read."""
    sockets = []
    for _ in range(count):
        try:
            ws = WebSocket(port, receive_buffer=4096)
            sockets.append(ws)
            with report.lock:
                report.connections += 1
        except Exception as error:  # noqa: BLE001
            report.fail(f"silent reader connect: {error}")
    disconnected = [False] * len(sockets)
    deadline = time.monotonic() + 90
    turn = 0
    while time.monotonic() < deadline and not all(disconnected):
        turn += 1
        for index, ws in enumerate(sockets):
            if disconnected[index]:
                continue
            try:
                ws.sock.settimeout(2)
                ws.send_text(json.dumps({"type": "user_text", "text": f"Please tell me something long, number {turn}."}))
            except (OSError, ConnectionError):
                disconnected[index] = True
        time.sleep(0.5)
    # A closed connection shows as EOF (or a reset) once the unread data is drained.
    for index, ws in enumerate(sockets):
        if disconnected[index]:
            continue
        ws.sock.settimeout(5)
        try:
            while True:
                chunk = ws.sock.recv(1 << 20)
                if not chunk:
                    disconnected[index] = True
                    break
        except (socket.timeout, TimeoutError):
            pass
        except OSError:
            disconnected[index] = True
        ws.close()
    return disconnected


def http_fuzzer(port: int, report: Report, stop: float):
    """Every route of the OpenAPI document with wrong methods, bodies and content types."""
    status, _, body = http(port, "GET", "/openapi.json")
    if status != 200:
        report.fail(f"/openapi.json answered {status}")
        return
    paths = [path.replace("{id}", "00000000-0000-0000-0000-000000000000") for path in json.loads(body)["paths"]]
    bodies = [
        (b"", None), (b"not json", "application/json"), (b"{", "application/json"), (b'{"text": 5}', "application/json"),
        (b'{"text": "' + b"a" * 30_000 + b'"}', "application/json"), (b"[" * 50_000, "application/json"),
        (b'{"text": "hi", "rate": 1e300}', "application/json"), (b'{"text": "hi", "voice": "' + b"v" * 5000 + b'"}', "application/json"),
        (os.urandom(3000), "application/octet-stream"), (b"text=hello", "application/x-www-form-urlencoded"),
        ("{\"text\": \"a" + "\u0301" * 5000 + "\"}", "application/json"),
    ] + [(data, "audio/wav") for _, data in bomb_files()]
    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]
    queries = ["", "?limit=1e300", "?limit=-1", "?offset=abc&limit=0", "?token=" + "t" * 3000]
    while time.monotonic() < stop:
        for path in paths + ["/api/does-not-exist", "/" + "a" * 3000, "/api/sessions/" + "%00" * 20, "/../../etc/passwd"]:
            for method in methods:
                for data, content_type in bodies if method in ("POST", "PUT", "PATCH") else [(b"", None)]:
                    if time.monotonic() >= stop:
                        return
                    if isinstance(data, str):
                        data = data.encode()
                    headers = {"Content-Type": content_type} if content_type else {}
                    query = random.choice(queries)
                    status, fields, content = http(port, method, path + query, data, headers)
                    with report.lock:
                        report.http_requests += 1
                        report.statuses[str(status)] += 1
                    if status == 0 or status >= 500 and not (status == 503 and "retry-after" in fields):
                        report.fail(f"{method} {path}{query[:20]} ({len(data)} bytes {content_type}): {status} {content[:200]!r}")
                    elif status >= 400 and method != "HEAD" and b'"error"' not in content:
                        report.fail(f"{method} {path}: {status} without a JSON error")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", required=True, help="the attune executable")
    parser.add_argument("--seconds", type=float, default=60, help="how long the message and HTTP fuzzers run")
    parser.add_argument("--report", help="also write the JSON report here")
    parser.add_argument("--max-rss-growth-mb", type=float, default=400, help="largest allowed growth of resident memory")
    parser.add_argument("--seed", type=int, default=1)
    options = parser.parse_args()

    report = Report()
    data_dir = tempfile.mkdtemp(prefix="attune-fuzz-")
    process = None
    peak = [0]
    sampling = [True]
    summary: dict = {"failures": report.failures}

    def sample():
        while sampling[0] and process.poll() is None:
            value = rss_kib(process.pid)
            peak[0] = max(peak[0], value)
            time.sleep(0.2)

    try:
        process, port = start_server(options.binary, data_dir)
        if not wait_healthy(port):
            report.fail("the server never became healthy")
            raise RuntimeError("unhealthy")
        rss_before = rss_kib(process.pid)
        threading.Thread(target=sample, daemon=True).start()
        transcripts: dict = {}
        stop = time.monotonic() + options.seconds
        workers = [threading.Thread(target=valid_session, args=(port, report, transcripts, "during"))]
        workers += [threading.Thread(target=message_fuzzer, args=(port, report, stop, options.seed + i)) for i in range(6)]
        workers += [threading.Thread(target=http_fuzzer, args=(port, report, stop))]
        workers += [threading.Thread(target=frame_fuzzer, args=(port, report))]
        for worker in workers:
            worker.start()
        disconnected = silent_readers(port, report, 4)
        for worker in workers:
            worker.join()
        if not all(disconnected):
            report.fail(f"clients that never read were not disconnected: {disconnected}")
        valid_session(port, report, transcripts, "after")
        for name in ("during", "after"):
            if "kids are talking" not in transcripts.get(name, "").lower():
                report.fail(f"the valid session {name} the fuzzing got no transcript: {transcripts.get(name)!r}")
        status, _, _ = http(port, "GET", "/api/health")
        if status != 200:
            report.fail(f"/api/health answered {status} at the end")
        time.sleep(2)
        rss_after = rss_kib(process.pid)
        growth_mb = (peak[0] - rss_before) / 1024
        if growth_mb > options.max_rss_growth_mb:
            report.fail(f"resident memory grew by {growth_mb:.0f} MB (limit {options.max_rss_growth_mb:.0f} MB)")
        if process.poll() is not None:
            report.fail(f"the server exited with {process.returncode}")
        summary = {
            "seconds": options.seconds, "messages": report.messages, "invalid_frames": report.frames,
            "connections": report.connections, "http_requests": report.http_requests,
            "errors_by_code": dict(report.errors_by_code.most_common()), "http_statuses": dict(sorted(report.statuses.items())),
            "silent_readers_disconnected": f"{sum(disconnected)}/{len(disconnected)}",
            "rss_mb": {"before": round(rss_before / 1024), "peak": round(peak[0] / 1024), "after": round(rss_after / 1024)},
            "failures": report.failures,
        }
    finally:
        sampling[0] = False
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(data_dir, ignore_errors=True)
    print(json.dumps(summary, indent=2))
    if options.report:
        Path(options.report).write_text(json.dumps(summary, indent=2))
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
