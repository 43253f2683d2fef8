"""Kannel 1.4.5 (Debian ``kannel``): bearerbox + smsbox in a tmp dir, bearerbox bound as an
ESME (``smsc = smpp``, transceiver) to an SMPP server on loopback; smsbox's sendsms on a free
port. Started and stopped by the ``kannel`` fixture (conftest.py)."""

from __future__ import annotations

import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from peers import HOST, Stack, free_ports

BEARERBOX = "/usr/sbin/bearerbox"
SMSBOX = "/usr/sbin/smsbox"
SENDSMS_USER = "kannel"
SENDSMS_PASSWORD = "kannelpw"
ADMIN_PASSWORD = "admin"
ONLINE_TIMEOUT_S = 30.0


def config(workdir: Path, *, smsc_port: int, system_id: str, password: str, admin_port: int,
           smsbox_port: int, sendsms_port: int) -> str:
    return f"""\
group = core
admin-port = {admin_port}
admin-interface = {HOST}
admin-password = {ADMIN_PASSWORD}
status-password = {ADMIN_PASSWORD}
admin-allow-ip = "{HOST}"
smsbox-port = {smsbox_port}
smsbox-interface = {HOST}
box-allow-ip = "{HOST}"
log-file = "{workdir}/bearerbox-file.log"
log-level = 0
access-log = "{workdir}/bearerbox-access.log"
dlr-storage = internal

group = smsc
smsc = smpp
smsc-id = adressat
host = {HOST}
port = {smsc_port}
receive-port = 0
transceiver-mode = true
smsc-username = {system_id}
smsc-password = {password}
system-type = ""
interface-version = 34
enquire-link-interval = 30
max-pending-submits = 10
reconnect-delay = 1
source-addr-ton = 5
source-addr-npi = 0
dest-addr-ton = 1
dest-addr-npi = 1
source-addr-autodetect = no

group = smsbox
bearerbox-host = {HOST}
bearerbox-port = {smsbox_port}
sendsms-port = {sendsms_port}
sendsms-interface = {HOST}
log-file = "{workdir}/smsbox-file.log"
log-level = 0
access-log = "{workdir}/smsbox-access.log"

group = sendsms-user
username = {SENDSMS_USER}
password = {SENDSMS_PASSWORD}
max-messages = 1
concatenation = false
"""


@dataclass
class Kannel:
    """A running Kannel. ``send`` = one sendsms GET; ``status`` = bearerbox's status.txt."""

    workdir: Path
    sendsms_port: int
    admin_port: int
    stack: Stack
    startup_s: float = 0.0

    def send(self, to: str, text: str, *, sender: str = "KANNEL", dlr_mask: int = 0,
             dlr_url: str = "", timeout_s: float = 10.0) -> tuple[int, str]:
        q = {"username": SENDSMS_USER, "password": SENDSMS_PASSWORD, "from": sender, "to": to,
             "text": text}
        if dlr_mask:
            q["dlr-mask"] = str(dlr_mask)
            q["dlr-url"] = dlr_url
        url = f"http://{HOST}:{self.sendsms_port}/cgi-bin/sendsms?{urllib.parse.urlencode(q)}"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as r:  # noqa: S310 - loopback
                return int(r.status), r.read().decode(errors="replace")
        except urllib.error.HTTPError as e:
            return int(e.code), e.read().decode(errors="replace")

    def status(self) -> str:
        url = f"http://{HOST}:{self.admin_port}/status.txt?password={ADMIN_PASSWORD}"
        try:
            with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - loopback
                return str(r.read().decode(errors="replace"))
        except OSError:
            return ""

    def logs(self) -> str:
        return self.stack.report()


def start(stack: Stack, *, smsc_port: int, system_id: str, password: str) -> Kannel:
    """bearerbox then smsbox; returns once the SMPP link to ``smsc_port`` is online."""
    t0 = time.monotonic()
    admin_port, smsbox_port, sendsms_port = free_ports(3)
    conf = stack.workdir / "kannel.conf"
    conf.write_text(config(stack.workdir, smsc_port=smsc_port, system_id=system_id,
                           password=password, admin_port=admin_port, smsbox_port=smsbox_port,
                           sendsms_port=sendsms_port))
    bearerbox = stack.start("bearerbox", [BEARERBOX, str(conf)], cwd=stack.workdir)
    stack.wait_port(bearerbox, smsbox_port)
    smsbox = stack.start("smsbox", [SMSBOX, str(conf)], cwd=stack.workdir)
    stack.wait_port(smsbox, sendsms_port)
    k = Kannel(stack.workdir, sendsms_port, admin_port, stack)
    stack.wait("Kannel's SMPP link online", lambda: "(online" in k.status(), ONLINE_TIMEOUT_S)
    k.startup_s = time.monotonic() - t0
    return k
