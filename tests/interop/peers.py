"""Processes of third-party peers for the interop tests: start on 127.0.0.1, wait bounded,
stop by PID (never by name), keep every log in the test's tmp dir for a failure's message."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[2]
LOG_TAIL_CHARS = 3000


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports that were free a moment ago (all sockets held until the end)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((HOST, 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def need(*commands: str) -> None:
    """Fail when a peer's program is not installed: scripts/test installs every one, so a
    missing peer is a broken setup, never a skipped test."""
    missing = [c for c in commands if shutil.which(c) is None and not Path(c).exists()]
    if missing:
        pytest.fail(f"not installed: {' '.join(missing)} (scripts/test installs them)")


def tail(path: Path, chars: int = LOG_TAIL_CHARS) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError as e:
        return f"<{path}: {e}>"


def port_open(port: int, host: str = HOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class Proc:
    """One started program: its own session (so its children die with it), output in ``log``."""

    def __init__(self, name: str, argv: Sequence[str], log: Path, *, env: dict[str, str] | None
                 = None, cwd: Path | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.log = log
        full_env = dict(os.environ)
        full_env.update(env or {})
        with open(log, "ab") as out:
            self.popen = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, env=full_env, cwd=cwd,
                                          start_new_session=True)
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def describe(self) -> str:
        rc = self.popen.poll()
        state = "running" if rc is None else f"exited {rc}"
        return f"{self.name} (pid {self.pid}, {state}), log {self.log}:\n{tail(self.log)}"

    def stop(self, timeout_s: float = 10.0, sig: int = signal.SIGTERM) -> None:
        """``sig`` to the process group, then SIGKILL after ``timeout_s``; bounded."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # it ended by itself meanwhile
                os.killpg(self.pid, sig)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.popen.wait(5)
        else:  # the leader is gone; children in its group may not be
            with contextlib.suppress(ProcessLookupError, PermissionError):  # none left
                os.killpg(self.pid, signal.SIGKILL)


class Stack:
    """The processes one fixture started, stopped in reverse order whatever happens."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[Proc] = []
        self.cleanups: list[Callable[[], None]] = []

    def start(self, name: str, argv: Sequence[str], **kw: object) -> Proc:
        p = Proc(name, argv, self.workdir / f"{name}.log", **kw)  # type: ignore[arg-type]
        self.procs.append(p)
        return p

    def on_close(self, fn: Callable[[], None]) -> None:
        self.cleanups.append(fn)

    def wait_port(self, proc: Proc, port: int, timeout_s: float = 30.0) -> float:
        """Seconds until ``port`` accepts a connection; fails with the logs when ``proc``
        exits first or the time is up."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            if port_open(port):
                return time.monotonic() - t0
            if not proc.alive():
                break
            time.sleep(0.1)
        raise RuntimeError(f"port {port} not open after {time.monotonic() - t0:.1f} s\n"
                           + self.report())

    def wait(self, what: str, cond: Callable[[], object], timeout_s: float) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            if cond():
                return time.monotonic() - t0
            time.sleep(0.1)
        raise RuntimeError(f"{what}: not within {timeout_s} s\n" + self.report())

    def report(self) -> str:
        return "\n\n".join(p.describe() for p in self.procs)

    def close(self) -> None:
        errors: list[BaseException] = []
        for fn in reversed(self.cleanups):
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - every process still gets stopped
                errors.append(e)
        for p in reversed(self.procs):
            try:
                p.stop()
            except Exception as e:  # noqa: BLE001
                errors.append(e)
        if errors:
            raise errors[0]
