"""A bounded schemathesis run against the running node's ``/openapi.json``: every generated
request (valid, invalid, and stateful sequences following the document's links) is answered
without a 5xx, with the status codes, content types, headers and bodies the document says.

``positive_data_acceptance`` is left out on purpose: a JSON Schema cannot say "a number that
exists in the numbering plan" or "exactly one of text and binary", so schema-valid bodies are
rightly refused 422 by validation the schema cannot express."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_e2e_http_api import new_key

from adressat.testing.server import ServerProcess, adressat

pytestmark = pytest.mark.slow


def test_schemathesis_finds_no_server_error_and_no_schema_break(tmp_path: Path) -> None:
    st = shutil.which("schemathesis") or str(Path(sys.executable).with_name("schemathesis"))
    assert Path(st).exists(), "schemathesis is a test dependency (pip install -e .[test])"
    home = tmp_path / "home"
    assert adressat(home, "account", "add", "demo", "--password", "pw").returncode == 0
    key = new_key(home, "demo")
    with ServerProcess(home, None, "--quiet-network") as server:
        out = subprocess.run(
            [st, "run", f"http://127.0.0.1:{server.http_port}/openapi.json",
             "-H", f"Authorization: Bearer {key}", "--checks", "all",
             "--exclude-checks", "positive_data_acceptance", "--max-examples", "60",
             "--seed", "1", "--request-timeout", "10", "--no-color"],
            capture_output=True, text=True, timeout=300, check=False)
        log = server.log_path.read_text(errors="replace")
    assert out.returncode == 0, out.stdout[-6000:]
    assert " passed" in out.stdout and "Selected: 5/5" in out.stdout, out.stdout[-3000:]
    # no exception of ours behind any answer (aiohttp's own parser refusing a malformed
    # request line or header with a 400 is logged by aiohttp, with no frame of ours)
    ours = [line for line in log.splitlines()
            if "Error handling request" in line and "adressat/" in line]
    assert not ours, ours[:3]
