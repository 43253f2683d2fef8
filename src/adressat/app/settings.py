"""Every limit adressat has, named, with its unit last (STYLE.md #7).

One frozen dataclass; the CLI and the environment fill it in, nothing else reads argv or
os.environ.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path


def default_home() -> Path:
    return Path(os.environ.get("ADRESSAT_HOME", "./var"))


@dataclass(frozen=True)
class Settings:
    home: Path = field(default_factory=default_home)
    node_id: int = 1

    # SMPP server
    smpp_host: str = "127.0.0.1"
    smpp_port: int = 2775
    system_id: str = "adressat"
    pdu_length_max: int = 65536
    window_size_max: int = 100  # outstanding requests we send to one ESME
    inbound_window_max: int = 1000  # unanswered requests we accept from one ESME
    response_timeout_s: float = 10.0
    enquire_link_interval_s: float = 30.0
    idle_timeout_s: float = 120.0
    bind_timeout_s: float = 30.0
    bad_pdus_max: int = 10  # per session, then the session is closed
    sessions_max: int = 1000  # connections open at once; one more is closed at once
    account_sessions_max: int = 10  # bound sessions of one account at once; 0: no limit
    account_binds_per_minute_max: int = 120  # accepted binds of one account in 60 s; 0: none
    pdu_read_timeout_s: float = 10.0  # first octet of a PDU to its last; 0: never
    throughput_per_s_default: int = 0  # 0: no per-account limit unless the account has one
    # issue 13: account changes (disable, remove, rates, sender rules) reach the running node
    accounts_refresh_s: float = 1.0  # accounts.version is read this often
    account_unbind_timeout_s: float = 1.0  # an ended session's unbind_resp waited this long

    # store and queue
    commit_batch_max: int = 2000
    queue_messages_max: int = 1_000_000  # non-final messages; over it submit_sm gets RMSGQFUL
    # ingress pacing (ingress/pacing.py): while the queue in the store is deeper than this
    # (delivery/backlog.py), a new submit waits before its commit, at most ingress_hold_s_max
    ingress_pace_lag_s: float = 0.02  # 0: never
    ingress_hold_s_max: float = 1.0
    # routes through connectors only, unless this (the own network's queue is store and
    # forward: a burst to our subscribers is taken faster than delivery goes)
    ingress_pace_own_network: bool = False
    validity_s_default: float = 48 * 3600.0
    validity_s_max: float = 7 * 24 * 3600.0
    retry_delays_s: tuple[float, ...] = (15.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
    retry_jitter_fraction: float = 0.1
    lease_s: float = 60.0

    # disk (docs/architecture.md, "Disk: WAL and retention")
    wal_checkpoint_bytes: int = 16 * 1024 * 1024  # past it, a checkpoint that restarts the WAL
    content_retention_s: float = 7 * 24 * 3600.0  # text purged this long after the final state
    record_retention_s: float = 90 * 24 * 3600.0  # then the rows: message, attempts, receipt
    retention_interval_s: float = 1.0  # a retention pass (off the hot path) this often
    retention_batch_max: int = 100  # rows per retention transaction (the write lock is short)
    # issue 12, helper S: HTTP senders' records, pruned by the same retention pass
    idempotency_keep_s: float = 86400.0  # an Idempotency-Key's first answer kept this long
    callback_retention_s: float = 7 * 24 * 3600.0  # callbacks sent or given up, kept this long

    # delivery
    delivery_process: bool = True  # the delivery half in a process of its own (second core)
    delivery_concurrency_max: int = 500
    delivery_timeout_s: float = 30.0
    scheduler_interval_s: float = 0.05
    # a claim holds the store's write lock for its whole batch (submits wait behind it)
    claim_batch_max: int = 100
    receipt_resend_s: float = 30.0

    # integrity (DESIGN.md "Fail closed")
    breaker_alarms_threshold: int = 1  # integrity alarms on a route that trip it; 0 = never
    held_routes_refresh_s: float = 1.0  # how soon a `route release` reaches the worker
    fault_poll_interval_s: float = 0.5  # how soon `adressat fault on/off` takes effect
    # False ONLY to measure what the guards cost (bench/e2e.py): no binding-tag check, no
    # routing cross-check, no acknowledgement identity check. Never in service.
    integrity_guards: bool = True

    # simulated network
    subscribers: int = 100_000
    first_msisdn: str = "46701000000"
    netsim_seed: int = 1
    netsim_realistic: bool = True

    # heal or shout (DESIGN.md): episodes, readiness, the delivery process's supervision
    delivery_loop_failures_max: int = 20  # turns in a row failing for a non-store reason
    delivery_backoff_s_max: float = 5.0  # between retries of a failing delivery turn
    delivery_heartbeat_s: float = 1.0  # the delivery process says it is alive
    delivery_heartbeat_timeout_s: float = 15.0  # silent that long: killed and started anew
    delivery_restart_delay_s_min: float = 1.0  # doubling while it keeps dying...
    delivery_restart_delay_s_max: float = 30.0  # ...up to this
    store_probe_interval_s: float = 1.0  # a one-row write: can the store write?
    # a write waits this long for the store's write lock held by another process, then fails
    # (StoreUnavailable: a temporary refusal); below the heartbeat timeout, so a process that
    # hangs holding it never freezes the other's loop and its watchdog (store/wlock.py)
    store_lock_wait_s: float = 2.0
    due_wait_s_max: float = 120.0  # a due message unclaimed longer: delivery is stalled
    stall_check_interval_s: float = 5.0

    # the HTTP listener: health, metrics, status (loopback unless said otherwise)
    http_host: str = "127.0.0.1"
    http_port: int = 8775  # 0: any free port (written to <home>/node.json)
    # the listener's operator paths (status, metrics, alerts, dashboard, care: everything but
    # the senders' API, sendsms and health) answer only to these addresses (api/access.py)
    operator_allow_ip: tuple[str, ...] = ("127.0.0.0/8", "::1/128")

    # TLS (issue 13; docs/architecture.md "TLS"): the TLS listeners exist only when both files
    # are given; the plaintext ones can be switched off (then only TLS is served)
    tls_cert_file: str = ""  # PEM certificate chain, leaf first; "": no TLS listeners
    tls_key_file: str = ""  # PEM private key of it, unencrypted, owner-only
    tls_reload_interval_s: float = 2.0  # the files are looked at this often (a change: reload)
    tls_handshake_timeout_s: float = 10.0  # an SMPP TLS handshake not done by then: closed
    smpp_tls_port: int = 3550  # SMPP over TLS, on smpp_host; 0: any free port
    http_tls_port: int = 8776  # HTTPS (the same pages and APIs), on http_host; 0: any free port
    smpp_plain: bool = True  # False: no plaintext SMPP listener (smpp_port unused)
    http_plain: bool = True  # False: no plaintext HTTP listener at all, health included

    def problem(self) -> str | None:
        """Why these settings cannot run, or None."""
        if self.store_lock_wait_s >= self.delivery_heartbeat_timeout_s:
            return ("--store-lock-wait-s must be below --delivery-heartbeat-timeout-s (a write"
                    " waiting longer would hold up the watchdog that heals a hung holder)")
        return self.tls_problem()

    def tls_problem(self) -> str | None:
        """Why these TLS settings cannot run, or None."""
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            return "--tls-cert and --tls-key go together"
        if not self.tls_cert_file and not self.smpp_plain:
            return "--smpp-plain off needs --tls-cert and --tls-key (else no SMPP listener)"
        if not self.tls_cert_file and not self.http_plain:
            return "--http-plain off needs --tls-cert and --tls-key (else no HTTP listener)"
        if self.tls_reload_interval_s <= 0 or self.tls_handshake_timeout_s <= 0:
            return "TLS intervals and timeouts must be > 0"
        for name in ("smpp_tls_port", "http_tls_port"):
            if not 0 <= getattr(self, name) <= 65535:
                return f"{name} must be 0..65535"
        return None

    # logs (observe/logs.py): "text" for a terminal or "json" lines; "debug" adds a line per
    # message event (accepted, deferred, final, receipt sent)
    log_format: str = "text"
    log_level: str = "info"

    # canary prober (issue 10, helper A; docs/canary.md)
    canary_interval_s: float = 5.0  # one probe per (route, serving node) this often; 0: none
    canary_deadline_s: float = 10.0  # stored by the canary's handset within it, or not passed
    canary_validity_s: float = 60.0  # a probe message's validity (then it expires: lost)
    canary_window_s: float = 300.0  # "all passed over the last ..." (GET /v1/canaries, status)
    canary_probes_retention_s: float = 86400.0  # probe results kept this long
    canaries_per_node: int = 2  # canary SIMs netsim designates per serving node


    # alerts (issue 10, helper B; docs/alerts.md has why each default is what it is)
    alert_interval_s: float = 1.0  # the rules run this often in the SMPP process
    alert_hold_s: float = 60.0  # a condition gone this long (with evidence): resolved
    alert_failure_window_s: int = 10  # failure rate judged over the last seconds
    alert_failure_attempts_min: int = 50  # attempts of a place in that window, at least
    alert_failure_failures_min: int = 10  # network failures in that window, at least
    alert_failure_rate_margin: float = 0.02  # over baseline and peers by at least this
    alert_failure_rate_ratio: float = 2.0  # and at least this many times them
    alert_failure_z_min: float = 4.0  # and this far out of the reference's binomial noise
    alert_baseline_s: float = 600.0  # the time constant of a place's own baseline (EWMA)
    alert_latency_window_s: int = 30
    alert_latency_attempts_min: int = 100
    alert_latency_p95_ms_floor: float = 1000.0  # p95 attempt latency never alerts below
    alert_latency_ratio: float = 3.0  # times the baseline (and the peers') p95
    alert_canary_failures_in_row: int = 2  # failed/lost/late canary probes of a place
    alert_canary_passes_min: int = 2  # canary passes after the last evidence to resolve
    alert_complaint_hold_s: float = 600.0
    alert_places_max: int = 512  # places in the live windows (least recently seen go)
    alert_place_idle_s: float = 600.0  # a place not seen this long leaves the windows
    live_window_s: int = 120  # the per-second series of GET /v1/live
    alert_retention_s: float = 90 * 24 * 3600.0  # resolved and acknowledged alerts kept
    alert_webhook_url: str = ""  # "": no webhook
    alert_webhook_secret_file: str = ""  # "": <home>/webhook.key, made once (0600)
    alert_webhook_queue_max: int = 1000  # changes waiting; one more is dropped (counted)
    alert_webhook_tries_max: int = 8
    alert_webhook_backoff_s_min: float = 0.5  # doubling between tries...
    alert_webhook_backoff_s_max: float = 30.0  # ...up to this
    alert_webhook_timeout_s: float = 5.0
    # routing rules (routing/router.py's dicts; e.g. a prefix to a second netsim-kind route)
    routing_rules: tuple[dict[str, object], ...] = ()


    # care and operator views (issue 10, helper C)
    care_complaint_window_s: float = 3600.0  # candidates submitted within this of "about when"
    care_complaint_window_s_max: float = 7 * 86400.0  # the widest window a person may ask for
    care_complaint_candidates_max: int = 10_000  # messages of the sender read per complaint
    care_lookup_messages_max: int = 1000  # messages one lookup answers with (newest first)


    # interconnect (issue 11; docs/interconnect.md)
    interconnect_refresh_s: float = 1.0  # routes and connectors read from the store this often
    connector_response_timeout_s: float = 10.0  # a submit_sm unanswered this long: unanswered
    connector_reconnect_s_min: float = 1.0  # reconnect backoff, doubling with jitter...
    connector_reconnect_s_max: float = 30.0  # ...up to this
    connector_down_s_max: float = 10.0  # not bound longer: a connector_down episode
    forwarded_grace_s: float = 3600.0  # FORWARDED past validity end + this: UNKNOWN
    partner_receipt_hold_s: float = 300.0  # a receipt without a mapping this long: alarm
    hops_max: int = 5  # SMSC hops (our vendor TLV) a message may have made; more: a loop

    # HTTP messages API (issue 12, lead; docs/http-api.md)
    http_body_octets_max: int = 256 * 1024  # a request body larger: 413 (a batch of 1,000)
    http_auth_cache_s: float = 2.0  # a revoked key stops working within this

    # status callbacks out (issue 12, helper W; ingress/callbacks.py)
    callback_timeout_s: float = 10.0  # one request, connect to the last octet of the answer
    callback_concurrency_max: int = 64  # requests in flight at once, all receivers together
    callback_connections_per_host_max: int = 8  # open connections to one receiver's host
    callback_poll_s: float = 0.5  # the outbox is read this often (and at once on a wake)
    callback_poll_gap_s: float = 0.02  # ...but not sooner than this after the last read
    callback_batch_max: int = 100  # requests started per poll, at most
    callback_read_rows_max: int = 1000  # the widest outbox read of a poll (one busy host)
    callback_retry_delay_s_min: float = 1.0  # backoff ceiling after the first failed try...
    callback_retry_delay_s_max: float = 3600.0  # ...doubling up to this (full jitter below)
    callback_keep_s: float = 86400.0  # tried for this long after the event, then given up

    # Kannel-compatible sendsms (issue 12, helper K; ingress/sendsms.py)
    sendsms_auth_cache_s: float = 60.0  # a successful password check is reused this long
    sendsms_auth_cache_max: int = 10_000  # successful checks kept at once (oldest go first)
    sendsms_account_cache_s: float = 1.0  # an account record is read again after this
    sendsms_receivers_max: int = 1000  # receivers in one request's "to"
    sendsms_body_bytes_max: int = 256 * 1024  # a POST's body, at most

    # credentials and guessing (issue 13, helper bind; docs/architecture.md "Credentials and
    # guessing"): one lockout for SMPP binds and sendsms (per account name), one for HTTP API
    # keys (per key id); every limit below is validated when the node starts
    bind_failure_statuses: str = "uniform"  # "uniform": ESME_RBINDFAIL for every refused
    #   bind; "distinct": ESME_RINVSYSID / ESME_RINVPASWD (tells which names exist)
    credential_failures_max: int = 10  # per (name, address) in the window, then locked
    credential_address_failures_max: int = 50  # per address, every name
    credential_principal_failures_max: int = 200  # per name, from addresses not trusted for it
    credential_failure_window_s: float = 600.0  # failures counted over this
    credential_lockout_s_min: float = 60.0  # the first lockout, doubling with each next...
    credential_lockout_s_max: float = 3600.0  # ...up to this
    credential_forget_s: float = 86400.0  # no failure this long: earlier lockouts forgotten
    credential_trusted_s: float = 30 * 86400.0  # a success trusts its (name, address) this long
    credential_rows_max: int = 20_000  # lockout counters kept (memory and store); oldest go
    credential_flush_s: float = 0.5  # counter changes written at most this often (one op)
    credential_refusal_delay_s: float = 1.0  # a bind refused unchecked (locked, busy) waits
    #   this long for its answer (a tarpit: no reconnect storm); 0: at once
    password_checks_max: int = 1  # scrypt checks at once (16 MiB each), a thread each
    password_checks_waiting_max: int = 16  # admitted checks; one more: refused unchecked

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def store_path(self) -> Path:
        return self.home / "adressat.db"
