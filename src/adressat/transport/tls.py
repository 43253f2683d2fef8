"""TLS for the listeners: the only place that builds ``ssl.SSLContext`` objects.

* :func:`server_context` reads a PEM certificate chain and its private key from files into a
  server context: TLS 1.2 at least, the ``ssl`` module's default cipher suites (since Python
  3.10: AES-GCM and ChaCha20 with forward secrecy only, security level 2), no compression.
* :class:`CertificateWatcher` keeps the context the listeners serve in step with the files.
  The listeners are given one context, :attr:`CertificateWatcher.front`, for their whole life;
  its ``sni_callback`` (called in every handshake, whether or not the client sends SNI) swaps
  in the context built from the files as they are now, so a handshake after a reload presents
  the new certificate and connections already open keep theirs. The files are looked at every
  ``interval_s`` (their mtime, size and inode); a change is read once it has stayed the same on
  two looks in a row (a renewal that writes the certificate, then the key, is not read half
  done). A file that does not load keeps the previous context, and is said loudly: a WARNING
  line, ``failures_total``, and ``on_failed`` (the composition root opens an episode), until a
  change loads again (``on_reloaded``).
* :func:`pinned_client_context` is what the ``adressat`` command uses to reach its own node's
  HTTPS listener: it trusts exactly the node's certificate file.

Errors name the file and the reason; never the contents of a key.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509

__all__ = ["TlsError", "CertificateInfo", "CertificateWatcher", "server_context",
           "pinned_client_context", "read_certificate", "describe"]

log = logging.getLogger("adressat.tls")

#: the lowest protocol version offered; 1.0 and 1.1 (RFC 8996) are refused in the handshake
MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2


class TlsError(Exception):
    """The certificate or key files cannot be used. ``cause`` is a short machine-readable
    name (``missing``, ``unreadable``, ``key_values_mismatch`` ...) for episodes and metrics."""

    def __init__(self, message: str, cause: str) -> None:
        super().__init__(message)
        self.cause = cause


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """What the served (leaf) certificate says about itself."""

    serial: int
    subject: str
    not_after: float  # POSIX seconds

    def as_dict(self) -> dict[str, object]:
        return {"serial": format(self.serial, "X"), "subject": self.subject,
                "not_after": self.not_after}


def _cause(e: BaseException) -> str:
    if isinstance(e, FileNotFoundError):
        return "missing"
    if isinstance(e, PermissionError):
        return "unreadable"
    if isinstance(e, ssl.SSLError):
        return str(e.reason or e.library or "ssl_error").lower()
    if isinstance(e, ValueError):
        return "not_a_certificate"
    return type(e).__name__.lower()


def read_certificate(cert_file: Path) -> CertificateInfo:
    """The leaf (first) certificate of a PEM file."""
    try:
        data = cert_file.read_bytes()
        cert = x509.load_pem_x509_certificates(data)[0]
    except (OSError, ValueError) as e:
        raise TlsError(f"{cert_file}: not a PEM certificate ({_cause(e)})", _cause(e)) from None
    return CertificateInfo(serial=cert.serial_number, subject=cert.subject.rfc4514_string(),
                           not_after=cert.not_valid_after_utc.timestamp())


def _base_server_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)  # secure defaults (ciphers, no SSLv3 ...)
    ctx.minimum_version = MINIMUM_VERSION
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    return ctx


def server_context(cert_file: Path, key_file: Path) -> tuple[ssl.SSLContext, CertificateInfo]:
    """A server context holding the chain of ``cert_file`` and the key of ``key_file`` (PEM,
    the key unencrypted), and what its certificate says. :class:`TlsError` when they do not
    load or do not belong together."""
    info = read_certificate(cert_file)
    ctx = _base_server_context()
    try:
        # a key with a passphrase is not supported: an empty one makes it fail, not prompt
        ctx.load_cert_chain(str(cert_file), str(key_file), password=lambda: b"")
    except (OSError, ssl.SSLError) as e:
        raise TlsError(f"{cert_file}, {key_file}: cannot be loaded ({_cause(e)})",
                       _cause(e)) from None
    return ctx, info


def pinned_client_context(cert_file: Path) -> ssl.SSLContext:
    """A client context that trusts exactly the certificate in ``cert_file`` (partial chain:
    the leaf itself is the anchor), whatever name or address it is reached by."""
    ctx = ssl.create_default_context(cafile=str(cert_file))
    ctx.check_hostname = False  # the node is reached by address; the certificate is pinned
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    ctx.minimum_version = MINIMUM_VERSION
    return ctx


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class CertificateWatcher:
    """The served context and the files it comes from. Built from the files at once (a
    :class:`TlsError` if they do not load: a node does not start without its certificate)."""

    def __init__(self, cert_file: Path, key_file: Path, *, interval_s: float = 2.0,
                 on_failed: Callable[[TlsError], None] | None = None,
                 on_reloaded: Callable[[CertificateInfo], None] | None = None) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be > 0")
        self.cert_file = cert_file
        self.key_file = key_file
        self.interval_s = interval_s
        self.on_failed = on_failed
        self.on_reloaded = on_reloaded
        self._stamps = self._look()
        self.front, self.info = server_context(cert_file, key_file)
        self.front.sni_callback = self._select
        self.current = self.front
        self._pending = self._stamps  # last look's stamps, read once they stay the same
        self.reloads_total = 0
        self.failures_total = 0
        self.failing: TlsError | None = None  # the files on disk are not what is served
        self._warn_key_mode()

    def _look(self) -> tuple[object, object]:
        return (_stamp(self.cert_file), _stamp(self.key_file))

    def _warn_key_mode(self) -> None:
        try:
            mode = self.key_file.stat().st_mode
        except OSError:
            return
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("TLS key file is readable by others than its owner",
                        extra={"file": str(self.key_file), "mode": oct(mode & 0o777)})

    def _select(self, sslobj: ssl.SSLObject | ssl.SSLSocket, server_name: str | None,
                ctx: ssl.SSLContext) -> None:
        current = self.current
        if current is not ctx:
            sslobj.context = current

    def check(self) -> bool | None:
        """One look at the files: True when a new certificate was loaded, False when a
        change did not load (the previous one is kept), None when nothing is to be done."""
        now = self._look()
        if now == self._stamps:
            self._pending = now
            return None
        if now != self._pending:  # still changing (or just changed): read on the next look
            self._pending = now
            return None
        self._stamps = now
        try:
            ctx, info = server_context(self.cert_file, self.key_file)
        except TlsError as e:
            self.failures_total += 1
            self.failing = e
            log.warning("TLS certificate reload failed; still serving the previous one",
                        extra={"error": str(e), "cause": e.cause,
                               "serial": format(self.info.serial, "X"),
                               "failures": self.failures_total})
            if self.on_failed is not None:
                self.on_failed(e)
            return False
        ctx.sni_callback = None
        old = self.info
        self.current, self.info = ctx, info
        self.reloads_total += 1
        self.failing = None
        log.info("TLS certificate reloaded",
                 extra={"serial": format(info.serial, "X"), "previous": format(old.serial, "X"),
                        "subject": info.subject,
                        "not_after": datetime.fromtimestamp(info.not_after, UTC).isoformat()})
        self._warn_key_mode()
        if self.on_reloaded is not None:
            self.on_reloaded(info)
        return True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                self.check()
            except Exception:  # noqa: BLE001 - the watcher must go on; said, tried again
                log.exception("TLS certificate check failed",
                              extra={"file": str(self.cert_file)})

    def stats(self) -> dict[str, object]:
        return {"certificate": self.info.as_dict(), "cert_file": str(self.cert_file),
                "reloads": self.reloads_total, "reload_failures": self.failures_total,
                "failing": None if self.failing is None else self.failing.cause}


def describe(info: CertificateInfo) -> str:
    """One line for the banner."""
    until = datetime.fromtimestamp(info.not_after, UTC).strftime("%Y-%m-%d")
    return f"serial {info.serial:X}, {info.subject}, until {until}"

