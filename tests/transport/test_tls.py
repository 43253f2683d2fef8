"""transport.tls against a real asyncio TLS server on 127.0.0.1 and the ssl module's client:
the files are read, a change is served to the next handshake (the connections already open keep
theirs), a bad new file keeps the old certificate and is said, TLS 1.0 and 1.1 are refused."""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from pathlib import Path

import pytest
from cryptography import x509

from adressat.testing.certs import write_self_signed
from adressat.transport.tls import (
    CertificateWatcher,
    TlsError,
    pinned_client_context,
    read_certificate,
    server_context,
)


def _client(cafile: Path | None = None, **versions: ssl.TLSVersion) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    if cafile is None:
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.load_verify_locations(cafile)
    for k, v in versions.items():
        setattr(ctx, k, v)
    return ctx


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    data = await reader.read(100)
    writer.write(data)
    await writer.drain()
    writer.close()


async def _served_serial(port: int, ctx: ssl.SSLContext | None = None) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx or _client())
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.write(b"ping")
    assert await reader.read(4) == b"ping"
    writer.close()
    return int(x509.load_der_x509_certificate(der).serial_number)


def _touch_later(*paths: Path) -> None:
    for p in paths:  # a new mtime even on a file system with coarse stamps
        st = p.stat()
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_server_context_reads_the_files_and_names_what_is_wrong(tmp_path: Path) -> None:
    cert, key = write_self_signed(tmp_path, serial=0xA1)
    ctx, info = server_context(cert, key)
    assert info.serial == 0xA1 and "adressat-test" in info.subject
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert read_certificate(cert).serial == 0xA1
    other_cert, other_key = write_self_signed(tmp_path, serial=0xA2, name="other")
    with pytest.raises(TlsError) as e:
        server_context(cert, other_key)
    assert e.value.cause == "key_values_mismatch" and str(other_key) in str(e.value)
    with pytest.raises(TlsError) as e:
        server_context(tmp_path / "nope.pem", key)
    assert e.value.cause == "missing"
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    with pytest.raises(TlsError) as e:
        server_context(tmp_path / "junk.pem", key)
    assert e.value.cause == "not_a_certificate"
    # the key's contents never reach the error, whatever went wrong
    secret = key.read_text().splitlines()[1]
    with pytest.raises(TlsError) as e:
        server_context(key, key)
    assert secret not in str(e.value)


def test_a_changed_certificate_is_served_to_the_next_handshake(tmp_path: Path) -> None:
    cert, key = write_self_signed(tmp_path, serial=0x1001)
    reloaded: list[int] = []
    w = CertificateWatcher(cert, key, on_reloaded=lambda i: reloaded.append(i.serial))

    async def go() -> None:
        server = await asyncio.start_server(_echo, "127.0.0.1", 0, ssl=w.front)
        port = server.sockets[0].getsockname()[1]
        try:
            assert await _served_serial(port) == 0x1001
            # a connection open across the reload keeps its certificate
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=_client())
            write_self_signed(tmp_path, serial=0x1002)
            _touch_later(cert, key)
            assert w.check() is None  # changed on this look: read once it stays the same
            assert await _served_serial(port) == 0x1001
            assert w.check() is True and reloaded == [0x1002]
            assert await _served_serial(port) == 0x1002
            assert w.check() is None and w.reloads_total == 1
            writer.write(b"open")
            assert await reader.read(4) == b"open"
            writer.close()
            # and the new one is what a client that pins it accepts
            assert await _served_serial(port, pinned_client_context(cert)) == 0x1002
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(go())


def test_a_bad_new_file_keeps_the_old_certificate_and_is_said(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cert, key = write_self_signed(tmp_path, serial=0x2001)
    failed: list[str] = []
    w = CertificateWatcher(cert, key, on_failed=lambda e: failed.append(e.cause))

    async def go() -> None:
        server = await asyncio.start_server(_echo, "127.0.0.1", 0, ssl=w.front)
        port = server.sockets[0].getsockname()[1]
        try:
            # a key of another certificate: does not load
            write_self_signed(tmp_path, serial=0x2002, name="other")
            key.write_bytes((tmp_path / "other.key").read_bytes())
            _touch_later(key)
            with caplog.at_level(logging.WARNING, logger="adressat.tls"):
                assert w.check() is None
                assert w.check() is False
            assert failed == ["key_values_mismatch"] and w.failures_total == 1
            assert w.failing is not None and w.stats()["failing"] == "key_values_mismatch"
            assert any("reload failed" in r.getMessage() for r in caplog.records)
            assert await _served_serial(port) == 0x2001
            assert w.check() is None and w.failures_total == 1  # said once per change
            # a truncated certificate: does not load either
            cert.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n")
            _touch_later(cert)
            w.check()
            assert w.check() is False and w.failures_total == 2
            assert await _served_serial(port) == 0x2001
            # the operator puts a good pair in place: served, and no longer failing
            write_self_signed(tmp_path, serial=0x2003)
            _touch_later(cert, key)
            w.check()
            assert w.check() is True and w.failing is None
            assert await _served_serial(port) == 0x2003
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(go())


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
@pytest.mark.parametrize("weakened", [False, True], ids=["as_built", "seclevel_0"])
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_tls_1_0_and_1_1_are_refused(tmp_path: Path, version: ssl.TLSVersion,
                                     weakened: bool) -> None:
    cert, key = write_self_signed(tmp_path, serial=0x3001)
    w = CertificateWatcher(cert, key)
    if weakened:
        # OpenSSL 3's default security level refuses TLS < 1.2 by itself; at level 0 only
        # the context's minimum_version stands between an old client and the server
        w.front.set_ciphers("ALL:@SECLEVEL=0")

    async def go() -> None:
        server = await asyncio.start_server(_echo, "127.0.0.1", 0, ssl=w.front)
        port = server.sockets[0].getsockname()[1]
        try:
            old = _client(minimum_version=ssl.TLSVersion.MINIMUM_SUPPORTED,
                          maximum_version=version)
            old.set_ciphers("ALL:@SECLEVEL=0")  # the client would: only the server refuses
            with pytest.raises((ssl.SSLError, ConnectionError)):
                await _served_serial(port, old)
            # 1.2 and 1.3 are served
            for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
                assert await _served_serial(port, _client(cert, maximum_version=v)) == 0x3001
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(go())


def test_the_watcher_refuses_to_start_without_good_files(tmp_path: Path) -> None:
    cert, key = write_self_signed(tmp_path, serial=0x4001)
    with pytest.raises(TlsError):
        CertificateWatcher(cert, tmp_path / "missing.key")
    with pytest.raises(ValueError):
        CertificateWatcher(cert, key, interval_s=0)


def test_a_key_readable_by_others_is_warned_about(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cert, key = write_self_signed(tmp_path, serial=0x5001)
    key.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="adressat.tls"):
        CertificateWatcher(cert, key)
    assert any("readable by others" in r.getMessage() for r in caplog.records)
