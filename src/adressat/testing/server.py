"""Run the real ``adressat`` command in a subprocess, on loopback, for end-to-end tests.

Bounded everywhere: waiting for the port, stopping, killing.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: the commands whose password the CLI reads from ADRESSAT_PASSWORD (never from argv)
_PASSWORD_COMMANDS = (("account", "add"), ("connector", "add"), ("connector", "set"))


def password_to_env(args: Sequence[str]) -> tuple[list[str], dict[str, str] | None]:
    """The test kit's shorthand ``account add NAME --password PW`` (and ``connector add|set
    ... --password PW``): the CLI refuses a password on its command line (issue 13), so the
    kit hands PW over in the environment (ADRESSAT_PASSWORD), where ``ps`` does not show it.
    Returns the arguments without it and the environment to run them with (None: as is)."""
    out = list(args)
    if tuple(out[:2]) not in _PASSWORD_COMMANDS or "--password" not in out:
        return out, None
    i = out.index("--password")
    if i + 1 >= len(out):
        return out, None
    password = out[i + 1]
    del out[i:i + 2]
    return out, {**os.environ, "ADRESSAT_PASSWORD": password}


def adressat(home: Path, *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run one ``adressat`` CLI command to completion (see :func:`password_to_env`)."""
    argv, env = password_to_env(args)
    return subprocess.run(
        [sys.executable, "-m", "adressat.cli", "--home", str(home), *argv],
        capture_output=True, text=True, timeout=timeout_s, check=False, env=env,
    )


def audit(home: Path, grace_s: float = 60.0) -> dict[str, object]:
    out = adressat(home, "audit", "--json", "--grace-s", str(grace_s))
    return json.loads(out.stdout)  # type: ignore[no-any-return]


class ServerProcess:
    """``adressat run`` on 127.0.0.1:<port> with its data under ``home``."""

    def __init__(self, home: Path, port: int | None = None, *extra_args: str,
                 env: dict[str, str] | None = None) -> None:
        self.home = home
        self.port = port or free_port()
        self.extra_args = extra_args
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = home / f"server-{self.port}.log"

    def start(self, ready_timeout_s: float = 30.0) -> ServerProcess:
        self.home.mkdir(parents=True, exist_ok=True)
        # owner-only like everything else in the data directory
        log = os.fdopen(os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600),
                        "ab")
        env = dict(os.environ)
        env.update(self.env or {})
        http = () if "--http-port" in self.extra_args else ("--http-port", "0")
        (self.home / "node.json").unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "adressat.cli", "--home", str(self.home), "run",
             "--smpp-port", str(self.port), *http, *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )
        log.close()
        # plaintext SMPP off (issue 13): ready once node.json says where it listens
        plain = not any(a == "--smpp-plain" and b == "off"
                        for a, b in zip(self.extra_args, self.extra_args[1:], strict=False))
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"adressat exited with {self.proc.returncode}: "
                                   + self.log_path.read_text(errors="replace")[-2000:])
            if not plain:
                if (self.home / "node.json").exists():
                    return self
                time.sleep(0.05)
                continue
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise TimeoutError("adressat did not listen in time")

    @property
    def http_port(self) -> int:
        """The node's HTTP port, from ``<home>/node.json`` (written once it listens)."""
        return int(self.node_info()["http_port"])

    def node_info(self) -> dict[str, object]:
        """``<home>/node.json``: where the node listens (TLS ports too; 0: that one is off)."""
        deadline = time.monotonic() + 10.0
        while True:
            try:
                info = json.loads((self.home / "node.json").read_text())
                assert isinstance(info, dict)
                return info
            except (OSError, ValueError, KeyError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def http_get(self, path: str, timeout_s: float = 10.0) -> tuple[int, bytes]:
        """GET ``path`` from the node's HTTP listener: (status, body)."""
        import urllib.error
        import urllib.request

        url = f"http://127.0.0.1:{self.http_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as r:  # noqa: S310 - loopback
                return int(r.status), r.read()
        except urllib.error.HTTPError as e:
            return int(e.code), e.read()

    def kill(self) -> None:
        """SIGKILL: no chance to clean up (what a crash looks like)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout_s: float = 20.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return int(self.proc.returncode or 0)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
