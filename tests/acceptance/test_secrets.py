"""A database that cannot be opened is one line on stderr for ``serve``, ``worker`` and
``migrate`` alike, without the password of its URL (redact_url: tests/unit/test_secrets.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from runplane.cli import redact_url

from support import APPS, free_port
from support.processes import CLI, child_env


def _run(*args: str, cwd: Path = APPS) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], cwd=cwd, env=child_env(apps_on_path=False),
                          capture_output=True, text=True, timeout=60)


def _unopenable(store: str, password: str, tmp_path: Path) -> str:
    """A database URL nothing can open (nothing listens on the PostgreSQL port; the SQLite
    file's folder is a file)."""
    if store == "sqlite":
        (tmp_path / "file").write_text("")
        return f"sqlite:///{tmp_path}/file/sub/runplane.db"
    return f"postgresql://runplane:{password}@127.0.0.1:{free_port()}/runplane"


@pytest.mark.parametrize(("store", "password"), [
    ("sqlite", ""), ("postgres", "plain-s3cret"), ("postgres", "s3cr:et:pw")])
@pytest.mark.parametrize("command", ["serve", "worker", "migrate"])
def test_a_database_that_cannot_be_opened_is_one_line_without_the_password(
        command: str, store: str, password: str, tmp_path: Path) -> None:
    url = _unopenable(store, password, tmp_path)
    args = {"serve": ["serve", "cli_app:app", "--port", str(free_port())],
            "worker": ["worker", "cli_app:app"], "migrate": ["migrate"]}[command]
    result = _run(*args, "--database", url)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "serving" not in result.stdout  # serve says nothing before it failed
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("Error: cannot ") and redact_url(url) in errors[0]
    assert "Traceback" not in result.stdout + result.stderr
    if password:
        pieces = {password, *password.replace("@", ":").split(":")}
        assert not [p for p in pieces if p in result.stdout + result.stderr], result
        assert "runplane:***@127.0.0.1" in errors[0]


@pytest.mark.parametrize("password", ["hunter2#x", "hunter2/x", "hunter2?x", "hunter2@x",
                                      "hunter2:x@y/z"])
@pytest.mark.parametrize("command", ["serve", "worker", "migrate"])
def test_a_url_its_driver_misreads_is_reported_without_the_password(
        command: str, password: str) -> None:
    url = f"postgresql://runplane:{password}@127.0.0.1:{free_port()}/runplane"
    args = {"serve": ["serve", "cli_app:app", "--port", str(free_port())],
            "worker": ["worker", "cli_app:app"], "migrate": ["migrate"]}[command]
    result = _run(*args, "--database", url)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "hunter2" not in result.stdout + result.stderr, result
    assert "Traceback" not in result.stdout + result.stderr
