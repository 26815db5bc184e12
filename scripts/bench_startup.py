#!/usr/bin/env python3
"""Time `attune serve` from process start to its first healthy /api/health.

Prints one JSON object: {"runs": N, "startup_ms_p50": ..., "startup_ms_min": ..., "startup_ms_max": ...}.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def time_one_start(binary: str, timeout: float) -> float:
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        started = time.monotonic()
        server = subprocess.Popen(
            [binary, "serve", "--port", str(port), "--data-dir", data, "--log-level", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            while time.monotonic() - started < timeout:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1) as response:
                        if response.status == 200:
                            return (time.monotonic() - started) * 1000
                except (urllib.error.URLError, ConnectionError):
                    pass
                if server.poll() is not None:
                    raise RuntimeError(f"attune serve exited with {server.returncode} before it was healthy")
                time.sleep(0.005)
            raise RuntimeError(f"attune serve was not healthy within {timeout} s")
        finally:
            server.terminate()
            server.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default=".build/release/attune")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=30)
    args = parser.parse_args()
    times = [time_one_start(args.binary, args.timeout) for _ in range(args.runs)]
    print(json.dumps({
        "runs": len(times),
        "startup_ms_p50": round(statistics.median(times), 1),
        "startup_ms_min": round(min(times), 1),
        "startup_ms_max": round(max(times), 1),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
