#!/usr/bin/env python3
"""A throw-away PostgreSQL server for the tests and benchmarks: Debian's postgresql (setup
group `postgres`) initialised in a temporary folder, listening on a free loopback port, and
removed again whatever happens.

    python3 scripts/pg_temp.py -- COMMAND...   runs COMMAND with ATTUNE_TEST_POSTGRES_URL set

As a module: `with TemporaryPostgres() as url: ...`. initdb refuses to run as root, so under
root the server runs as the `postgres` user that Debian's package creates.
"""
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENVIRONMENT = "ATTUNE_TEST_POSTGRES_URL"


def postgres_bin() -> Path:
    """The folder of initdb and pg_ctl (Debian keeps them out of PATH)."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name), reverse=True)
    if candidates:
        return candidates[0].parent
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise SystemExit("PostgreSQL is not installed: run `python3 scripts/setup.py --with postgres` (Debian's postgresql)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class TemporaryPostgres:
    """Starts on enter, stops (fast shutdown, then kill) and deletes its folder on exit."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="attune-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.password = secrets.token_hex(12)
        self.bin = postgres_bin()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.folder, "postgres", "postgres")
        self.started = False
        self.watchdog: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"postgres://attune:{self.password}@127.0.0.1:{self.port}/attune?sslmode=disable"

    def run(self, *command: str, **options) -> subprocess.CompletedProcess:
        return subprocess.run([*self.as_user, *command], check=True, **options)

    def __enter__(self) -> str:
        try:
            password_file = self.folder / "password"
            password_file.write_text(self.password + "\n")
            if self.as_user:
                shutil.chown(password_file, "postgres", "postgres")
            self.run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "attune", f"--pwfile={password_file}",
                     "--auth=scram-sha-256", "--encoding=UTF8", "--no-sync", capture_output=True)
            options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
            self.run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.folder / "server.log"),
                     "-w", "-t", "60", "start", stdout=subprocess.DEVNULL)
            self.started = True
            self.watchdog = self.watch(os.getpid())
            environment = dict(os.environ, PGPASSWORD=self.password)
            subprocess.run(["psql", "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", "attune", "-d", "postgres",
                            "-c", "CREATE DATABASE attune"], check=True, env=environment)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        print(f"PostgreSQL {self.bin.parent.name} for the tests on 127.0.0.1:{self.port} ({self.folder})", flush=True)
        return self.url

    def watch(self, owner: int) -> subprocess.Popen:
        """Starts a process, in a session of its own, that stops the server and deletes its
        folder once `owner` has gone without doing so: an owner killed outright (SIGKILL, the
        machine's out-of-memory killer) runs no cleanup of its own."""
        return subprocess.Popen(
            [sys.executable, __file__, "--watch", str(owner), str(self.data)], start_new_session=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def __exit__(self, *_exception) -> None:
        if self.watchdog is not None:
            self.watchdog.kill()
            self.watchdog.wait()
            self.watchdog = None
        if self.started:
            subprocess.run([*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "20", "stop"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            pid_file = self.data / "postmaster.pid"
            if pid_file.exists():  # did not stop in time
                try:
                    os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
                except (ValueError, ProcessLookupError, PermissionError):
                    pass
            self.started = False
        shutil.rmtree(self.folder, ignore_errors=True)


def stop_when_gone(owner: int, data: Path) -> int:
    """The watchdog of ``TemporaryPostgres.watch``: waits for `owner` to end, then stops the
    server of `data` (immediately) and deletes its folder, if they are still there."""
    while True:
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            break
        time.sleep(1)
    pid_file = data / "postmaster.pid"
    if pid_file.exists():
        try:
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGQUIT)  # PostgreSQL's immediate shutdown
        except (ValueError, ProcessLookupError, PermissionError):
            pass
        for _ in range(20):
            if not pid_file.exists():
                break
            time.sleep(0.5)
    shutil.rmtree(data.parent, ignore_errors=True)
    return 0


def main() -> int:
    arguments = sys.argv[1:]
    if arguments[:1] == ["--watch"]:
        return stop_when_gone(int(arguments[1]), Path(arguments[2]))
    if arguments[:1] == ["--"]:
        arguments = arguments[1:]
    if not arguments:
        print(__doc__)
        return 2
    # A SIGTERM or SIGHUP (a `timeout`, a CI job cancelled) ends the run through the with block,
    # so the server is stopped and its folder removed; by default Python would die on the spot.
    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, stop_on_signal)
    try:
        with TemporaryPostgres() as url:
            return subprocess.run(arguments, env=dict(os.environ, **{ENVIRONMENT: url})).returncode
    except KeyboardInterrupt:
        return 130


def stop_on_signal(_number, _frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
