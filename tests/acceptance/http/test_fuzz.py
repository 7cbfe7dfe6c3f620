"""The HTTP API fuzzed from its own OpenAPI document (schemathesis), on both stores.

A real ``runplane serve`` of the demo assistants takes every operation of
``/openapi.json`` with generated valid and invalid requests, plus schemathesis' stateful
sequences (create, then read, cancel, delete what was created). The seed is fixed and the
examples per operation bounded, so the run is a regression test: the same requests every
time. It must find no server error, no answer the document does not describe (status code,
content type, body schema), and leave the worker working: afterwards a probe run still
completes and the server logged no traceback.

``make fuzz`` runs the same test longer (``RUNPLANE_FUZZ_EXAMPLES``, ``RUNPLANE_FUZZ_SEED``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from acceptance.http.helpers import Server, http_server

from support.databases import STORES, database_for_processes

EXAMPLES = int(os.environ.get("RUNPLANE_FUZZ_EXAMPLES", "25"))
SEED = int(os.environ.get("RUNPLANE_FUZZ_SEED", "20261201"))
#: What every answer is checked for. Left out, and why:
#: - positive_data_acceptance: a valid request may still name a run or thread that does not
#:   exist (404) or that is busy (409); the document lists those answers, and the
#:   status_code_conformance check holds them to it.
#: - ensure_resource_availability: it takes any 404 after a create for the created thread
#:   going missing, but a run on a thread also answers 404 for an unknown assistant.
#: - ignored_auth, object_level_authorization: need API keys; tests/acceptance/test_auth.py tries
#:   every route as a stranger.
CHECKS = ",".join((
    "not_a_server_error", "status_code_conformance", "content_type_conformance",
    "response_headers_conformance", "response_schema_conformance", "negative_data_rejection",
    "missing_required_header", "unsupported_method", "use_after_free",
))
#: The demo's research agent sleeps in its steps: many at once keep the queue short, so that
#: the fuzzer's ``wait`` and ``join`` calls answer within the request timeout.
ARGS = ("--concurrency", "64")


@pytest.fixture(params=STORES)
def fuzzed(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """``runplane serve`` of the demo assistants on a fresh database of each store."""
    with (database_for_processes(request, request.param, tmp_path, "fuzz") as database,
          http_server(request.param, database, tmp_path, *ARGS, target=None) as server):
        yield server


def _schemathesis(server: Server, report: Path) -> subprocess.CompletedProcess[str]:
    st = Path(sys.executable).with_name("st")
    return subprocess.run(
        [str(st), "--config-file", str(Path(__file__).with_name("schemathesis.toml")), "run",
         f"{server.url}/openapi.json", "--checks", CHECKS,
         "--max-examples", str(EXAMPLES), "--seed", str(SEED), "--workers", "1",
         "--generation-database", "none", "--request-timeout", "30", "--no-color",
         "--report", "junit", "--report-junit-path", str(report)],
        capture_output=True, text=True, timeout=600, check=False, cwd=report.parent,
        env={**os.environ, "SCHEMATHESIS_HOOKS": str(Path(__file__).with_name("fuzz_hooks.py"))},
    )


def _tail(text: str, limit: int = 15_000) -> str:
    return text if len(text) <= limit else "...\n" + text[-limit:]


@pytest.mark.slow
@pytest.mark.timeout(max(300, 20 * EXAMPLES))  # a marker wins over --timeout (make fuzz)
def test_fuzzing_the_openapi_finds_no_server_error_and_no_undocumented_answer(
    fuzzed: Server, tmp_path: Path
) -> None:
    result = _schemathesis(fuzzed, tmp_path / "schemathesis.xml")
    assert result.returncode == 0, (
        f"schemathesis found failures (seed {SEED}, {EXAMPLES} examples per operation):\n"
        f"{_tail(result.stdout + result.stderr)}\n--- server ---\n{fuzzed.output()}")

    with httpx.Client(base_url=fuzzed.url, timeout=60) as http:
        # what the fuzzer left running is stopped; the worker must still take a new run
        assert http.post("/runs/cancel", json={"status": "all"}).status_code == 200
        probe = http.post("/runs/wait", json={"assistant_id": "summarise",
                                             "input": {"text": "One. Two words. Three."}})
        assert probe.status_code == 200, probe.text
        assert "summary" in probe.json(), probe.text
    log = fuzzed.output()
    assert "Traceback" not in log, f"the server logged a traceback while fuzzed:\n{log}"
