"""TLS against the real ``adressat run`` (issue 13), with clients we did not write:
python-smpplib over its own TLS socket binds, submits and gets its receipt; ``openssl s_client``
sees the certificate, and a new one after the files change (a bad new file keeps the old one,
said in /status, the metrics and an episode); ``curl --cacert`` posts to the HTTPS messages
API; TLS 1.0 and 1.1 clients are refused; a plaintext bind sent to the TLS port is closed and
the server goes on; with the plaintext listeners off nothing answers in plain text."""

from __future__ import annotations

import json
import re
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import smpplib.exceptions
from e2e_kit import Esme, RawEsme, close_all, inbox, next_msisdn, wait_for

from adressat.smpp.constants import CommandId as C
from adressat.testing.certs import write_self_signed
from adressat.testing.server import ServerProcess, adressat, free_port

pytestmark = pytest.mark.slow

KEY_RE = re.compile(r"adr_[0-9a-f]{12}_[A-Za-z0-9_-]+")
OPENSSL = shutil.which("openssl")
CURL = shutil.which("curl")


@dataclass
class TlsNode:
    server: ServerProcess
    home: Path
    cert: Path
    key: Path
    smpp_tls_port: int
    http_tls_port: int
    api_key: str

    def esme(self, mode: str = "trx", ca: Path | None = None) -> Esme:
        # a bind waits for a password check and a handshake: more than smpplib's 0.3 s when
        # the machine is busy (its bind times out into a ConnectionError)
        return Esme(self.smpp_tls_port, "demo", "pw", mode=mode, timeout_s=2.0,
                    ssl_context=client_context(ca or self.cert))


def client_context(cafile: Path) -> ssl.SSLContext:
    """What a careful ESME does: trusts the node's certificate (no name: reached by address)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(cafile))
    ctx.check_hostname = False  # smpplib wraps without a server_hostname
    return ctx


def served_serial(port: int, *flags: str) -> tuple[int | None, str]:
    """The serial of the certificate ``openssl s_client`` is shown on ``port`` (None: the
    handshake failed), and what s_client printed."""
    assert OPENSSL, "openssl is installed by scripts/test"
    out = subprocess.run([OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", *flags],
                         input="", capture_output=True, text=True, timeout=20, check=False)
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", out.stdout,
                  re.S)
    if out.returncode != 0 or m is None:
        return None, out.stdout + out.stderr
    x = subprocess.run([OPENSSL, "x509", "-noout", "-serial"], input=m.group(0),
                       capture_output=True, text=True, timeout=20, check=True)
    return int(x.stdout.strip().split("=", 1)[1], 16), out.stdout


def start_node(tmp: Path, serial: int, *extra: str) -> TlsNode:
    home = tmp / "home"
    cert, key = write_self_signed(tmp / "tls", serial=serial)
    out = adressat(home, "account", "add", "demo", "--password", "pw")
    assert out.returncode == 0, out.stderr
    out = adressat(home, "account", "key", "add", "demo")
    assert out.returncode == 0, out.stderr
    m = KEY_RE.search(out.stdout)
    assert m, out.stdout
    server = ServerProcess(home, None, "--quiet-network", "--subscribers", "100000",
                           "--tls-cert", str(cert), "--tls-key", str(key),
                           "--smpp-tls-port", str(free_port()), "--http-tls-port", "0",
                           "--tls-reload-interval-s", "0.25",
                           "--tls-handshake-timeout-s", "1", *extra).start()
    info = server.node_info()
    return TlsNode(server, home, cert, key, int(info["smpp_tls_port"]),  # type: ignore[arg-type]
                   int(info["http_tls_port"]), m.group(0))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsNode]:
    n = start_node(tmp_path_factory.mktemp("tls"), 0x7E1)
    try:
        yield n
    finally:
        n.server.stop()


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    close_all()


def _mid(resp: object) -> str:
    v = resp.message_id  # type: ignore[attr-defined]
    return v.decode() if isinstance(v, bytes) else str(v)


def submit_and_receipt(e: Esme, number: str) -> str:
    resp = e.resp(e.submit(number, b"code 1234", registered_delivery=1))
    assert resp.status == 0, hex(resp.status)
    mid = _mid(resp)
    receipt = e.wait_receipt(mid, 20)
    assert b"stat:DELIVRD" in bytes(receipt.short_message)
    return mid


def test_smpplib_over_tls_binds_submits_and_gets_its_receipt(node: TlsNode) -> None:
    e = node.esme()
    sock = e.c._socket  # noqa: SLF001 - smpplib's own socket: TLS, at least 1.2
    assert isinstance(sock, ssl.SSLSocket) and sock.version() in ("TLSv1.2", "TLSv1.3")
    number = next_msisdn()
    mid = submit_and_receipt(e, number)
    got = wait_for(lambda: inbox(node.home, number), 20)
    assert [g.smsc_message_id for g in got] == [mid]
    # the plaintext listener serves the same accounts beside it
    plain = Esme(node.server.port, "demo", "pw", timeout_s=2.0)
    assert plain.resp(plain.submit(next_msisdn())).status == 0


def test_openssl_s_client_sees_the_certificate_on_both_tls_ports(node: TlsNode) -> None:
    for port in (node.smpp_tls_port, node.http_tls_port):
        serial, out = served_serial(port, "-CAfile", str(node.cert), "-verify_return_error")
        assert serial == 0x7E1, out
        assert "Verify return code: 0 (ok)" in out


def test_curl_posts_to_the_https_messages_api_and_gets_202(node: TlsNode) -> None:
    assert CURL, "curl is installed by scripts/test"
    number = next_msisdn()
    body = json.dumps({"to": "+" + number, "from": "Clinic", "text": "your code is 1234"})
    out = subprocess.run(
        [CURL, "-sS", "--cacert", str(node.cert), "-o", "-", "-w", "\n%{http_code}",
         "-H", f"Authorization: Bearer {node.api_key}", "-H", "Content-Type: application/json",
         "--data", body, f"https://127.0.0.1:{node.http_tls_port}/v1/messages"],
        capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 0, out.stderr
    answer, code = out.stdout.rsplit("\n", 1)
    assert code == "202", out.stdout
    mid = json.loads(answer)["id"]
    got = wait_for(lambda: inbox(node.home, number), 20)
    assert [g.smsc_message_id for g in got] == [mid]
    # and curl that does not trust the certificate is refused by curl itself
    bad = subprocess.run([CURL, "-sS", f"https://127.0.0.1:{node.http_tls_port}/health/live"],
                         capture_output=True, text=True, timeout=30, check=False)
    assert bad.returncode == 60, bad.stderr  # peer certificate cannot be authenticated


@pytest.mark.parametrize("version", ["-tls1", "-tls1_1"])
def test_tls_1_0_and_1_1_clients_are_refused(node: TlsNode, version: str) -> None:
    for port in (node.smpp_tls_port, node.http_tls_port):
        # the client is willing (security level 0); the server must say no
        serial, out = served_serial(port, version, "-cipher", "DEFAULT:@SECLEVEL=0")
        assert serial is None, out
        assert "no peer certificate available" in out, out
        serial, out = served_serial(port, "-tls1_2")
        assert serial == 0x7E1, out
    assert CURL
    bad = subprocess.run([CURL, "-sS", "--cacert", str(node.cert), "--tlsv1.1",
                          "--tls-max", "1.1", "--ciphers", "DEFAULT:@SECLEVEL=0",
                          f"https://127.0.0.1:{node.http_tls_port}/health/live"],
                         capture_output=True, text=True, timeout=30, check=False)
    assert bad.returncode != 0, bad.stdout


def test_a_plaintext_bind_to_the_tls_port_is_closed_and_the_server_goes_on(
        node: TlsNode) -> None:
    # python-smpplib without TLS, on the TLS port: the handshake fails, the server closes
    plain = Esme(node.smpp_tls_port, "demo", "pw", mode="")
    with pytest.raises((smpplib.exceptions.ConnectionError, smpplib.exceptions.PDUError,
                        OSError)):
        plain.bind("trx", "demo", "pw")
        plain.pump(lambda: False, 5)
    # raw octets: a bind PDU, then garbage; every one closed without an answer
    for data in (None, b"\x00" * 64, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"):
        raw = RawEsme(node.smpp_tls_port)
        if data is None:
            raw.request(C.BIND_TRANSCEIVER, system_id="demo", password="pw",
                        interface_version=0x34)
        else:
            raw.send_raw(data)
        assert raw.read(10) is None  # EOF: closed, nothing answered in plain text
    # a connection that never starts its handshake is closed at the handshake timeout
    with socket.create_connection(("127.0.0.1", node.smpp_tls_port), timeout=15) as s:
        assert s.recv(1) == b""
    # the server goes on: TLS and plaintext sessions are served, it is ready
    e = node.esme()
    submit_and_receipt(e, next_msisdn())
    status, _ = node.server.http_get("/health/ready")
    assert status == 200 and node.server.proc is not None and node.server.proc.poll() is None


def _status(node: TlsNode) -> dict[str, object]:
    code, body = node.server.http_get("/status")
    assert code == 200
    return json.loads(body)  # type: ignore[no-any-return]


def _metric(node: TlsNode, name: str) -> float:
    code, body = node.server.http_get("/metrics")
    assert code == 200
    m = re.search(rf"^{name}(?:_total)? (\S+)$", body.decode(), re.M)
    assert m, name
    return float(m.group(1))


def test_a_changed_certificate_is_served_without_a_restart_and_a_bad_one_keeps_the_old(
        tmp_path: Path) -> None:
    n = start_node(tmp_path, 0xA01)
    try:
        pid = n.server.proc.pid if n.server.proc else None
        before = n.esme()  # bound across the reload
        assert served_serial(n.smpp_tls_port)[0] == 0xA01
        write_self_signed(n.cert.parent, serial=0xA02)  # the same paths, new pair
        assert wait_for(lambda: served_serial(n.smpp_tls_port)[0] == 0xA02, 20, 0.2)
        assert served_serial(n.http_tls_port)[0] == 0xA02
        assert n.server.proc is not None and n.server.proc.pid == pid  # no restart
        assert _metric(n, "adressat_tls_reloads") == 1
        # the session bound before the reload goes on with its own connection
        submit_and_receipt(before, next_msisdn())
        submit_and_receipt(n.esme(), next_msisdn())
        good = n.cert.read_bytes()

        # a bad new certificate: the old one is still served, and said, not silently
        n.cert.write_text("-----BEGIN CERTIFICATE-----\nnot one\n-----END CERTIFICATE-----\n")
        tls = wait_for(lambda: (t := _status(n)["tls"]) and t["failing"] and t, 20, 0.2)
        assert tls["failing"] == "not_a_certificate", tls  # type: ignore[index]
        assert tls["certificate"]["serial"] == "A02"  # type: ignore[index]
        assert _metric(n, "adressat_tls_reload_failures") == 1
        assert _metric(n, "adressat_tls_reload_failing") == 1
        assert served_serial(n.smpp_tls_port)[0] == 0xA02
        code, body = n.server.http_get("/health/ready")
        ready = json.loads(body)
        assert code == 200, ready  # it still serves: said, but ready
        assert [e["kind"] for e in ready["episodes_open"]] == ["tls_reload_failed"], ready
        log = n.server.log_path.read_text()
        assert "TLS certificate reload failed" in log and "episode started" in log
        # the key of another certificate: does not load either
        served = tmp_path / "served.pem"  # what the ESME trusts while the files are bad
        served.write_bytes(good)
        write_self_signed(tmp_path / "other", serial=0xB00)
        write_self_signed(n.cert.parent, serial=0xA03)
        n.key.write_bytes((tmp_path / "other" / "cert.key").read_bytes())
        assert wait_for(lambda: _metric(n, "adressat_tls_reload_failures") == 2, 20, 0.2)
        assert _status(n)["tls"]["failing"] == "key_values_mismatch"  # type: ignore[index]
        assert served_serial(n.smpp_tls_port)[0] == 0xA02
        submit_and_receipt(n.esme(ca=served), next_msisdn())

        # the operator puts a good pair in place: served, and the episode ends
        write_self_signed(n.cert.parent, serial=0xA04)
        assert wait_for(lambda: served_serial(n.smpp_tls_port)[0] == 0xA04, 20, 0.2)
        assert wait_for(lambda: not json.loads(n.server.http_get("/health/ready")[1])[
            "episodes_open"], 10)
        assert _metric(n, "adressat_tls_reload_failing") == 0
    finally:
        close_all()
        n.server.stop()


def test_with_the_plaintext_listeners_off_only_tls_answers(tmp_path: Path) -> None:
    smpp_plain, http_plain = free_port(), free_port()
    n = start_node(tmp_path, 0xC01, "--smpp-plain", "off", "--http-plain", "off",
                   "--http-port", str(http_plain))
    try:
        assert n.server.port != smpp_plain
        info = n.server.node_info()
        assert info["smpp_port"] == 0 and info["http_port"] == 0
        for port in (n.server.port, http_plain):  # the ports it was given: nobody listens
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
        e = n.esme()
        submit_and_receipt(e, next_msisdn())
        assert served_serial(n.http_tls_port)[0] == 0xC01
        # health and status over HTTPS only; `adressat status` pins the node's certificate
        out = adressat(n.home, "status")
        assert out.returncode == 0, out.stdout + out.stderr
        assert "READY" in out.stdout and f"HTTPS port {n.http_tls_port}" in out.stdout
        log = n.server.log_path.read_text()
        assert f"SMPP 3.4 over TLS: 127.0.0.1:{n.smpp_tls_port}" in log  # the banner
        assert f"https://127.0.0.1:{n.http_tls_port}/health/ready" in log
        assert "http://" not in log.split("adressat listening:", 1)[1].split("store:", 1)[0]
    finally:
        close_all()
        n.server.stop()


def test_run_refuses_tls_settings_that_cannot_work(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cert, key = write_self_signed(tmp_path, serial=0xD01)
    other_cert, _ = write_self_signed(tmp_path, serial=0xD02, name="other")
    port = str(free_port())
    cases = [
        (("--smpp-plain", "off"), "--smpp-plain off needs --tls-cert"),
        (("--http-plain", "off"), "--http-plain off needs --tls-cert"),
        (("--tls-cert", str(cert)), "--tls-cert and --tls-key go together"),
        (("--tls-cert", str(other_cert), "--tls-key", str(key)), "key_values_mismatch"),
        (("--tls-cert", str(tmp_path / "none.pem"), "--tls-key", str(key)), "none.pem"),
        (("--smpp-tls-port", "70000"), "0..65535"),
    ]
    secret = key.read_text().splitlines()[1]
    for args, said in cases:
        out = adressat(home, "run", "--smpp-port", port, "--http-port", "0", *args,
                       timeout_s=60)
        assert out.returncode == 2, (args, out.stdout[-500:], out.stderr[-500:])
        assert said in out.stderr, (args, out.stderr)
        assert secret not in out.stdout + out.stderr
