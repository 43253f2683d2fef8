"""Jasmin 0.11.1 (PyPI, in .venv/jasmin made by scripts/jasmin_venv.sh) with RabbitMQ and Redis
from Debian, all on free loopback ports in a tmp dir, configured through jCli. Started and
stopped by the ``jasmin`` fixture (conftest.py)."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from peers import HOST, REPO, Stack, free_ports

JASMIN_VENV = Path(os.environ.get("ADRESSAT_JASMIN_VENV", REPO / ".venv" / "jasmin"))
JASMIND = JASMIN_VENV / "bin" / "jasmind.py"
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
EPMD = "/usr/bin/epmd"
REDIS_SERVER = "/usr/bin/redis-server"
JASMIND_LOCK = Path("/tmp/jasmind.lock")  # jasmind's own, fixed: one jasmind per machine
RABBIT_START_TIMEOUT_S = 60.0
JASMIND_START_TIMEOUT_S = 30.0
CONNECTOR_BIND_TIMEOUT_S = 20.0
JCLI_TIMEOUT_S = 15.0
JCLI_BANNER_WAIT_S = 1.0
JCLI_DRAIN_S = 0.3
# the user an SMPP client binds to Jasmin's SMPP server with
USER = "adressat"
USER_PASSWORD = "adrpw"  # 8 characters at most (SMPP password field)
CONNECTOR = "upstream"  # Jasmin's smppc connector towards the SMSC behind it

_IAC, _DONT, _DO, _WONT, _WILL, _SB, _SE = 255, 254, 253, 252, 251, 250, 240
_PROMPT = re.compile(rb"(jcli : |> )$")
JCLI_ERRORS = ("Unknown", "Error", "error", "Incorrect", "nvalid", "not found", "Cannot",
               "must be", "must set")


class JCliError(RuntimeError):
    """jCli refused a command (its answer says why)."""


class JCli:
    """Jasmin's jCli (telnet, authentication off in our jasmin.cfg): ``run(line)`` -> reply."""

    def __init__(self, port: int, timeout_s: float = JCLI_TIMEOUT_S) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=timeout_s)
        self.timeout_s = timeout_s
        self.transcript: list[str] = []
        # jCli negotiates telnet options and shows its prompt only once it got some input
        try:
            self._read_prompt(JCLI_BANNER_WAIT_S)
        except (TimeoutError, JCliError):
            self.sock.sendall(b"\r\n")
            self._read_prompt()
        self._drain()

    def _drain(self) -> None:
        """Drops any further prompt (an answer to the empty line) before the first command."""
        self.sock.settimeout(JCLI_DRAIN_S)
        try:
            with contextlib.suppress(TimeoutError):  # nothing more came: drained
                while self.sock.recv(65536):
                    continue
        finally:
            self.sock.settimeout(self.timeout_s)

    def _strip_telnet(self, data: bytes) -> bytes:
        out = bytearray()
        i = 0
        while i < len(data):
            b = data[i]
            if b != _IAC or i + 1 >= len(data):
                out.append(b)
                i += 1
                continue
            cmd = data[i + 1]
            if cmd in (_DO, _WILL) and i + 2 < len(data):  # refuse every option
                self.sock.sendall(bytes((_IAC, _WONT if cmd == _DO else _DONT, data[i + 2])))
                i += 3
            elif cmd in (_DONT, _WONT):
                i += 3
            elif cmd == _SB:
                end = data.find(bytes((_IAC, _SE)), i)
                i = len(data) if end < 0 else end + 2
            else:
                i += 2
        return bytes(out)

    def _read_prompt(self, timeout_s: float | None = None) -> str:
        buf = b""
        wait_s = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + wait_s
        self.sock.settimeout(wait_s)
        while not _PROMPT.search(buf):
            if time.monotonic() > deadline:
                raise JCliError(f"no jCli prompt within {wait_s} s: {buf!r}")
            chunk = self.sock.recv(65536)
            if not chunk:
                raise JCliError(f"jCli closed: {buf!r}")
            buf += self._strip_telnet(chunk)
        return buf.decode(errors="replace")

    def run(self, line: str, *, check: bool = True) -> str:
        self.sock.sendall(line.encode() + b"\r\n")
        reply = self._read_prompt()
        self.transcript.append(f"{line} -> {reply!r}")
        body = reply.rsplit("jcli : ", 1)[0] if reply.endswith("jcli : ") else reply
        if check and any(e in body for e in JCLI_ERRORS):
            raise JCliError(f"jCli refused {line!r}: {reply!r}")
        return reply

    def script(self, text: str) -> None:
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                self.run(line)

    def close(self) -> None:
        with contextlib.suppress(OSError):  # jCli may have closed already
            self.sock.sendall(b"quit\r\n")
        self.sock.close()


def _jasmin_cfg(workdir: Path, p: dict[str, int]) -> str:
    log = workdir / "jasmin-log"
    return f"""\
[smpp-server]
id = smpps_01
bind = {HOST}
port = {p['smpp']}
log_file = {log}/default-smpps_01.log
[smpp-server-pb]
bind = {HOST}
port = {p['smpp_pb']}
[smpp-server-pb-client]
host = {HOST}
port = {p['smpp_pb']}
[client-management]
bind = {HOST}
port = {p['cm']}
[service-smppclient]
log_file = {log}/service-smppclient.log
[router]
bind = {HOST}
port = {p['router']}
[jcli]
bind = {HOST}
port = {p['jcli']}
authentication = False
[http-api]
bind = {HOST}
port = {p['http']}
[amqp-broker]
host = {HOST}
port = {p['amqp']}
[redis-client]
host = {HOST}
port = {p['redis']}
[dlr]
# a receipt that overtakes its submit_sm_resp mapping (both go through RabbitMQ) is looked up
# again after this delay: Jasmin's default (10 s, 2 retries) holds a fast SMSC's receipts for
# 10-20 s or drops them
dlr_lookup_retry_delay = 1
dlr_lookup_max_retries = 10
"""


@dataclass
class Jasmin:
    """A running Jasmin: an SMPP server on ``smpp_port`` taking binds of ``USER``/
    ``USER_PASSWORD``, routing every MT to the smppc connector ``CONNECTOR`` towards
    ``upstream_port``. ``jcli()`` opens a console for more configuration."""

    workdir: Path
    smpp_port: int
    jcli_port: int
    upstream_port: int
    stack: Stack
    startup_s: dict[str, float] = field(default_factory=dict)
    system_id: str = USER
    password: str = USER_PASSWORD

    def jcli(self) -> JCli:
        c = JCli(self.jcli_port)
        self.stack.on_close(c.close)
        return c

    def connector_status(self) -> str:
        c = JCli(self.jcli_port)
        try:
            return c.run("smppccm -l", check=False)
        finally:
            c.close()

    def logs(self) -> str:
        return self.stack.report() + "\n\n" + "\n".join(
            f"{f.name}:\n{f.read_text(errors='replace')[-3000:]}"
            for f in sorted((self.workdir / "jasmin-log").glob("*.log")))


def start_redis(stack: Stack, port: int) -> None:
    redis = stack.start("redis", [REDIS_SERVER, "--bind", HOST, "--port", str(port), "--save", "",
                                  "--appendonly", "no", "--dir", str(stack.workdir)])
    stack.wait_port(redis, port, 10)


def start_rabbitmq(stack: Stack, amqp_port: int) -> float:
    """epmd (ours, foreground) + RabbitMQ on loopback, in ``stack.workdir/rabbitmq``."""
    t0 = time.monotonic()
    epmd_port, dist_port = free_ports(2)
    base = stack.workdir / "rabbitmq"
    base.mkdir()
    (base / "enabled_plugins").write_text("[].\n")
    (base / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = {HOST}:{amqp_port}\nloopback_users.guest = true\n"
        "log.console = false\nlog.file.level = warning\n")
    env = {
        "HOME": str(base), "RABBITMQ_NODENAME": f"rabbit-{amqp_port}@localhost",
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"), "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "RABBITMQ_PID_FILE": str(base / "rabbit.pid"),
        "ERL_EPMD_ADDRESS": HOST, "ERL_EPMD_PORT": str(epmd_port),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
    }
    epmd = stack.start("epmd", [EPMD, "-port", str(epmd_port), "-address", HOST],
                       env={"ERL_EPMD_ADDRESS": HOST})
    stack.wait_port(epmd, epmd_port, 10)
    rabbit = stack.start("rabbitmq", [RABBITMQ_SERVER], env=env, cwd=base)
    stack.wait_port(rabbit, amqp_port, RABBIT_START_TIMEOUT_S)
    return time.monotonic() - t0


def start(stack: Stack, *, upstream_port: int, upstream_system_id: str,
          upstream_password: str) -> Jasmin:
    """RabbitMQ, Redis, jasmind (DLR lookup/thrower and deliver_sm thrower in-process), then
    jCli: user ``USER``, connector ``CONNECTOR`` (trx, no throughput limit) to the SMSC on
    ``upstream_port``, started and bound, and a DefaultRoute to it."""
    if JASMIND_LOCK.exists():
        raise RuntimeError(f"{JASMIND_LOCK} exists: another jasmind runs on this machine, or a "
                           "killed one left its lock (remove it if no jasmind is running)")
    t0 = time.monotonic()
    names = ["smpp", "smpp_pb", "cm", "router", "jcli", "http", "amqp", "redis"]
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    times: dict[str, float] = {}
    times["rabbitmq_s"] = start_rabbitmq(stack, ports["amqp"])
    start_redis(stack, ports["redis"])
    work = stack.workdir
    for d in ("jasmin-log", "jasmin-store", "jasmin-config"):
        (work / d).mkdir()
    cfg = work / "jasmin-config" / "jasmin.cfg"
    cfg.write_text(_jasmin_cfg(work, ports))
    env = {"CONFIG_PATH": str(work / "jasmin-config"),
           "RESOURCE_PATH": str(JASMIN_VENV / "resource"),
           "STORE_PATH": str(work / "jasmin-store"), "LOG_PATH": str(work / "jasmin-log")}
    t1 = time.monotonic()
    jasmind = stack.start("jasmind", [str(JASMIN_VENV / "bin" / "python"), str(JASMIND), "-c",
                                      str(cfg), "--enable-dlr-thrower", "--enable-dlr-lookup",
                                      "--enable-deliver-thrower", "--disable-http-api"],
                          env=env, cwd=work)
    stack.wait_port(jasmind, ports["jcli"], JASMIND_START_TIMEOUT_S)
    stack.wait_port(jasmind, ports["smpp"], JASMIND_START_TIMEOUT_S)
    times["jasmind_s"] = time.monotonic() - t1
    j = Jasmin(work, ports["smpp"], ports["jcli"], upstream_port, stack)
    cli = JCli(ports["jcli"])
    try:
        cli.script(f"""
            group -a
            gid adressat
            ok
            user -a
            username {USER}
            password {USER_PASSWORD}
            gid adressat
            uid {USER}
            ok
            smppccm -a
            cid {CONNECTOR}
            host {HOST}
            port {upstream_port}
            username {upstream_system_id}
            password {upstream_password}
            bind transceiver
            submit_throughput 0
            ok
            smppccm -1 {CONNECTOR}
            mtrouter -a
            type DefaultRoute
            connector smppc({CONNECTOR})
            rate 0.00
            ok
        """)
    except Exception as e:
        raise RuntimeError(f"{e}\n" + "\n".join(cli.transcript) + "\n" + j.logs()) from e
    finally:
        (work / "jcli-setup.log").write_text("\n".join(cli.transcript))
        cli.close()
    stack.wait("Jasmin's connector bound", lambda: "BOUND_TRX" in j.connector_status(),
               CONNECTOR_BIND_TIMEOUT_S)
    times["total_s"] = time.monotonic() - t0
    j.startup_s = times
    return j
