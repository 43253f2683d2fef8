"""OsmoMSC 1.9.0 (Debian ``osmo-msc``) with osmo-stp and osmo-hlr, its built-in SMSC's SMPP
server on a free loopback port, files in a tmp dir. Started and stopped by the ``osmo_msc``
fixture (conftest.py).

Without SCTP in the kernel osmo-msc exits (its SGs listener is an SCTP socket); then
``osmo/nosctp.c`` is compiled with gcc into the tmp dir and LD_PRELOADed into osmo-stp and
osmo-msc (SCTP sockets become TCP ones; SMPP is TCP anyway). The M3UA link MSC<->STP stays down
either way (no RAN here): OsmoMSC's SMSC only stores what it is given (SQLite) for subscribers
that never attach."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from peers import HOST, Stack, free_ports, port_open

OSMO_MSC = "/usr/bin/osmo-msc"
OSMO_STP = "/usr/bin/osmo-stp"
OSMO_HLR = "/usr/bin/osmo-hlr"
GCC = "gcc"
SHIM_SOURCE = Path(__file__).parent / "osmo" / "nosctp.c"
SYSTEM_ID = "adressat"
PASSWORD = "adrpw"
SMSC_SYSTEM_ID = "OSMO-MSC"
# ports these versions cannot move (no config option): VTY/CTRL of the MSC and HLR, the STP's
# VTY, the HLR's GSUP server
FIXED_PORTS = (4254, 4255, 4258, 4259, 4239, 4222)
START_TIMEOUT_S = 15.0

_LOG = """\
log stderr
 logging filter all 1
 logging color 0
 logging print category 1
 logging timestamp 1
 logging level set-all notice
"""


def kernel_has_sctp() -> bool:
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP).close()
        return True
    except OSError:
        return False


def _stp_cfg(m3ua_port: int) -> str:
    return _LOG + f"""\
line vty
 no login
 bind {HOST}
cs7 instance 0
 point-code 0.23.2
 xua rkm routing-key-allocation dynamic-permitted
 listen m3ua {m3ua_port}
  accept-asp-connections dynamic-permitted
  local-ip {HOST}
"""


def _hlr_cfg() -> str:
    return _LOG + f"""\
line vty
 bind {HOST}
ctrl
 bind {HOST}
hlr
 gsup
  bind ip {HOST}
 subscriber-create-on-demand no-msisdn none
"""


def _msc_cfg(*, smpp_port: int, m3ua_port: int, sgs_port: int, mgw_local_port: int,
             mgw_remote_port: int, sms_db: Path) -> str:
    return _LOG + f"""\
line vty
 no login
 bind {HOST}
ctrl
 bind {HOST}
cs7 instance 0
 point-code 0.23.1
 asp asp-clnt-msc-0 {m3ua_port} 0 m3ua
  remote-ip {HOST}
  local-ip {HOST}
  role asp
  sctp-role client
 as as-clnt-msc-0 m3ua
  asp asp-clnt-msc-0
  routing-key 2 0.23.1
network
 network country code 1
 mobile network code 1
 short name OsmoMSC
 long name OsmoMSC
 encryption a5 0
 authentication optional
msc
 mgw local-port {mgw_local_port}
 mgw remote-ip {HOST}
 mgw remote-port {mgw_remote_port}
 no assign-tmsi
hlr
 remote-ip {HOST}
 remote-port 4222
sgs
 local-ip {HOST}
 local-port {sgs_port}
 vlr-name vlr.invalid
smsc
 database {sms_db}
smpp
 local-tcp-ip {HOST} {smpp_port}
 system-id {SMSC_SYSTEM_ID}
 policy closed
 esme {SYSTEM_ID}
  password {PASSWORD}
  default-route
"""


@dataclass
class OsmoMsc:
    """A running OsmoMSC: SMPP server on ``smpp_port`` for ESME ``SYSTEM_ID``/``PASSWORD``.
    ``stored()``: what its SMSC has in SQLite (one row per accepted submit_sm)."""

    workdir: Path
    smpp_port: int
    sms_db: Path
    stack: Stack
    shim: Path | None
    startup_s: dict[str, float] = field(default_factory=dict)
    system_id: str = SYSTEM_ID
    password: str = PASSWORD

    def stored(self) -> list[dict[str, object]]:
        conn = sqlite3.connect(f"file:{self.sms_db}?mode=ro", uri=True, timeout=5)
        try:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute(
                "SELECT id, dest_addr, src_addr, sent, status_rep_req, msg_ref FROM SMS "
                "ORDER BY id")]
        finally:
            conn.close()

    def logs(self) -> str:
        return self.stack.report()


def build_shim(workdir: Path) -> Path:
    out = workdir / "nosctp.so"
    subprocess.run([GCC, "-shared", "-fPIC", "-O2", "-o", str(out), str(SHIM_SOURCE), "-ldl"],
                   check=True, capture_output=True, timeout=60)
    return out


def start(stack: Stack) -> OsmoMsc:
    """osmo-stp, osmo-hlr, osmo-msc (LD_PRELOAD shim if no SCTP); returns once SMPP listens."""
    busy = [p for p in FIXED_PORTS if port_open(p)]
    if busy:
        raise RuntimeError(f"ports {busy} in use (another Osmocom process?): OsmoMSC, OsmoHLR "
                           "and OsmoSTP cannot move them")
    t0 = time.monotonic()
    work = stack.workdir
    shim = None if kernel_has_sctp() else build_shim(work)
    env = {"LD_PRELOAD": str(shim)} if shim else {}
    times = {"shim_s": time.monotonic() - t0}
    smpp_port, m3ua_port, sgs_port, mgw_local, mgw_remote = free_ports(5)
    (work / "stp.cfg").write_text(_stp_cfg(m3ua_port))
    (work / "hlr.cfg").write_text(_hlr_cfg())
    sms_db = work / "sms.db"
    (work / "msc.cfg").write_text(_msc_cfg(smpp_port=smpp_port, m3ua_port=m3ua_port,
                                           sgs_port=sgs_port, mgw_local_port=mgw_local,
                                           mgw_remote_port=mgw_remote, sms_db=sms_db))
    stp = stack.start("osmo-stp", [OSMO_STP, "-c", str(work / "stp.cfg")], env=env, cwd=work)
    hlr = stack.start("osmo-hlr", [OSMO_HLR, "-c", str(work / "hlr.cfg"), "-l",
                                   str(work / "hlr.db")], cwd=work)
    stack.wait_port(stp, m3ua_port, START_TIMEOUT_S)
    stack.wait_port(hlr, 4222, START_TIMEOUT_S)
    msc = stack.start("osmo-msc", [OSMO_MSC, "-c", str(work / "msc.cfg")], env=env, cwd=work)
    stack.wait_port(msc, smpp_port, START_TIMEOUT_S)
    times["total_s"] = time.monotonic() - t0
    return OsmoMsc(work, smpp_port, sms_db, stack, shim, times)
