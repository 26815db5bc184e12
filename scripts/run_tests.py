#!/usr/bin/env python3
"""Run the test suite and, when it fails, end with a summary a CI log's tail can show.

`swift test` prints the crashing thread's backtrace long before its last line, and a crash
never reports which test was running. This wrapper streams the output unchanged, keeps a copy
in .build/test-output.log, and on failure prints: the tests that started but never finished,
the failed tests, and the first frames of a crash report.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

LOG = Path(".build/test-output.log")
STARTED = re.compile(r"^◇ Test (.+?) started\.$")
ENDED = re.compile(r"^[✔✘↳] Test (.+?) (?:passed|failed|skipped)")
FAILED = re.compile(r"^✘ Test (.+?) (?:recorded an issue|failed)")
CRASH = re.compile(r"(Program crashed|Fatal error|crashed:|terminate called|GGML_ASSERT|Assertion .* failed)")


def main() -> int:
    # One test at a time: many tests stream audio in real time or talk to the language model,
    # and on two cores they would otherwise measure each other's load.
    command = [os.environ.get("SWIFT", "swift"), "test", "--skip-build", "--no-parallel", *sys.argv[1:]]
    LOG.parent.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    with LOG.open("w") as log, subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            log.write(line)
            lines.append(line.rstrip("\n"))
    if process.returncode == 0:
        return 0

    running: dict[str, None] = {}
    failed: dict[str, None] = {}
    crash_at = None
    for index, line in enumerate(lines):
        if (match := STARTED.match(line)) and not match.group(1).startswith("case "):
            running[match.group(1)] = None
        elif match := ENDED.match(line):
            running.pop(match.group(1), None)
        if match := FAILED.match(line):
            failed[match.group(1)] = None
        if crash_at is None and CRASH.search(line):
            crash_at = index

    print(f"\n===== test summary: `{' '.join(command)}` exited with {process.returncode} =====")
    if failed:
        print("failed:", *failed, sep="\n  ")
    if running:
        print("started but never finished (running when the process ended):", *running, sep="\n  ")
    if crash_at is not None:
        print("crash report (first lines):")
        for line in lines[crash_at : crash_at + 40]:
            print("  " + line)
    print(f"full output: {LOG}")
    return process.returncode or 1


if __name__ == "__main__":
    sys.exit(main())
