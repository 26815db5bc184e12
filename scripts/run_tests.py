#!/usr/bin/env python3
"""Run the test suite and, when it fails, end with a summary a CI log's tail can show.

`swift test` prints the crashing thread's backtrace long before its last line, and a crash
never reports which test was running. This wrapper streams the output unchanged, keeps a copy
in .build/test-output.log, and on failure prints: the tests that started but never finished,
the failed tests, and the first frames of a crash report.

Whatever the outcome (a pass, a failure, a crash, Ctrl-C or a CI timeout's SIGTERM), no process
the tests started outlives the run: `swift test` runs in its own process group, every process
it starts inherits a marker in its environment, and both are killed at the end. The tests get a
throw-away PostgreSQL server (scripts/pg_temp.py, in ATTUNE_TEST_POSTGRES_URL), stopped and
deleted at the end in every outcome (by a watchdog process when this one is killed outright), and a temporary directory of their own (TMPDIR), deleted
after them: what they, SwiftPM's runner and the browsers they start write there does not
outlive the run.
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import uuid
from contextlib import ExitStack
from pathlib import Path

from pg_temp import ENVIRONMENT as POSTGRES_URL, TemporaryPostgres

LOG = Path(".build/test-output.log")
STARTED = re.compile(r"^◇ Test (.+?) started\.$")
ENDED = re.compile(r"^[✔✘↳] Test (.+?)(?: with \d+ test cases?)? (?:passed|failed|skipped)")
FAILED = re.compile(r"^✘ Test (.+?)(?: with \d+ test cases?)? (?:recorded an issue|failed)")
CRASH = re.compile(r"(Program crashed|Fatal error|crashed:|terminate called|GGML_ASSERT|Assertion .* failed)")
MARKER = "ATTUNE_TEST_RUN"


def marked_processes(marker: str) -> list[int]:
    """Processes whose environment carries this run's marker (all the tests' descendants, even
    those that left the process group)."""
    needle = f"{MARKER}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            pass  # gone, or not ours to read
    return found


def kill_leftovers(process: subprocess.Popen, marker: str) -> list[int]:
    """Kills the test process group and every marked process; returns the pids that were left."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    left = marked_processes(marker)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


def stop_on_terminate(_signal, _frame):
    raise KeyboardInterrupt


def main() -> int:
    # One test at a time: many tests stream audio in real time or talk to the language model,
    # and on two cores they would otherwise measure each other's load.
    command = [os.environ.get("SWIFT", "swift"), "test", "--skip-build", "--no-parallel", *sys.argv[1:]]
    LOG.parent.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    marker = uuid.uuid4().hex
    # A SIGTERM (a CI timeout) or SIGHUP (a closed terminal) ends the run the way Ctrl-C does,
    # so the cleanup below runs; the PostgreSQL server's watchdog stops it even after a SIGKILL.
    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, stop_on_terminate)
    with ExitStack() as resources:
        temporary = resources.enter_context(tempfile.TemporaryDirectory(prefix="attune-run-", ignore_cleanup_errors=True))
        environment = dict(os.environ, **{MARKER: marker, "TMPDIR": temporary})
        if POSTGRES_URL not in environment:
            environment[POSTGRES_URL] = resources.enter_context(TemporaryPostgres())
        return run_swift_test(command, environment, marker, lines)


def run_swift_test(command: list[str], environment: dict[str, str], marker: str, lines: list[str]) -> int:
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace", env=environment,
        start_new_session=True)
    try:
        with LOG.open("w") as log:
            assert process.stdout is not None
            for line in process.stdout:
                sys.stdout.write(line)
                sys.stdout.flush()
                log.write(line)
                lines.append(line.rstrip("\n"))
        status = process.wait()
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the tests")
        status = 130
    finally:
        left = kill_leftovers(process, marker)
        process.wait()
    if left:
        print(f"killed {len(left)} process(es) the tests left running: {sorted(left)}")
    if status == 0:
        return 0

    running: dict[str, None] = {}
    failed: dict[str, None] = {}
    crash_at = None
    for index, line in enumerate(lines):
        if (match := STARTED.match(line)) and not match.group(1).startswith("case ") and match.group(1) != "run":
            running[match.group(1)] = None
        elif match := ENDED.match(line):
            running.pop(match.group(1), None)
        if (match := FAILED.match(line)) and not match.group(1).startswith("run with"):
            failed[match.group(1)] = None
        if crash_at is None and CRASH.search(line):
            crash_at = index

    print(f"\n===== test summary: `{' '.join(command)}` exited with {status} =====")
    if failed:
        print("failed:", *failed, sep="\n  ")
    if running:
        print("started but never finished (running when the process ended):", *running, sep="\n  ")
    if crash_at is not None:
        print("crash report (first lines):")
        for line in lines[crash_at : crash_at + 40]:
            print("  " + line)
    print(f"full output: {LOG}")
    return status or 1


if __name__ == "__main__":
    sys.exit(main())
