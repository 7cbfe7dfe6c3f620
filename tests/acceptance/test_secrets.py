"""Passwords in database URLs are never printed, whatever they contain, and a database that
cannot be opened is one line on stderr for ``serve``, ``worker`` and ``migrate`` alike."""

from __future__ import annotations

import os
import string
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from runplane.cli import redact_url

from support import APPS, free_port

#: Passwords: anything printable but the mask itself, the URL delimiters included.
PASSWORD = st.text(
    alphabet=st.sampled_from([c for c in string.printable if c not in "*\t\n\r\x0b\x0c"]),
    min_size=3, max_size=24)
NAME = st.text(alphabet=string.ascii_lowercase + string.digits + "_-.", min_size=1,
               max_size=10)


def _leaks(password: str, shown: str, public: str) -> list[str]:
    """Substrings of ``password`` (three characters or more) that ``shown`` prints and that
    the URL's other parts (``public``) do not explain."""
    return sorted({password[a:b] for a in range(len(password))
                   for b in range(a + 3, len(password) + 1)
                   if password[a:b] in shown and password[a:b] not in public})


@given(password=PASSWORD, user=NAME, host=NAME, db=NAME,
       port=st.none() | st.integers(1, 65535),
       scheme=st.sampled_from(["postgresql", "postgres"]),
       params=st.lists(st.tuples(NAME, NAME), max_size=3))
@example(password="se#cret", user="u", host="h", db="d", port=5432, scheme="postgresql",
         params=[])
@example(password="p@ss/w?rd#x:y", user="u", host="h", db="d", port=None,
         scheme="postgresql", params=[("sslmode", "require")])
def test_a_password_in_the_user_info_is_never_printed(
        password: str, user: str, host: str, db: str, port: int | None, scheme: str,
        params: list[tuple[str, str]]) -> None:
    netloc = host if port is None else f"{host}:{port}"
    query = "&".join(f"{k}={v}" for k, v in params)
    tail = f"{netloc}/{db}" + (f"?{query}" if query else "")
    url = f"{scheme}://{user}:{password}@{tail}"
    shown = redact_url(url)
    assert _leaks(password, shown, f"{scheme}://{user}:@{tail}") == []
    assert shown == f"{scheme}://{user}:***@{tail}"


@given(password=PASSWORD.filter(lambda p: "&" not in p), host=NAME, db=NAME,
       before=st.lists(st.tuples(NAME, NAME), max_size=2),
       after=st.lists(st.tuples(NAME, NAME), max_size=2),
       key=st.sampled_from(["password", "PASSWORD", "Password"]))
@example(password="a@b#c/d?e:f", host="h", db="d", before=[("user", "u")], after=[],
         key="password")
def test_a_password_parameter_is_never_printed(
        password: str, host: str, db: str, before: list[tuple[str, str]],
        after: list[tuple[str, str]], key: str) -> None:
    """Up to the next ``&``: a raw ``&`` ends a parameter for every URL parser."""
    def url_with(secret: str) -> str:
        params = [f"{k}={v}" for k, v in before] + [f"{key}={secret}"] + [
            f"{k}={v}" for k, v in after]
        return f"postgresql://{host}/{db}?{'&'.join(params)}"

    shown = redact_url(url_with(password))
    assert _leaks(password, shown, url_with("")) == []
    assert f"{key}=***" in shown
    assert all(f"{k}={v}" in shown for k, v in before + after)


def test_urls_without_passwords_are_shown_as_they_are() -> None:
    for url in ("sqlite:////tmp/x.db", "sqlite:///./rel.db", "sqlite:///:memory:",
                "sqlite:////tmp/a@b.db", "postgresql://u@h/db", "postgresql://h:5432/db?x=1",
                "postgresql:///db?host=/var/run/postgresql", "not a url"):
        assert redact_url(url) == url


def _run(*args: str, cwd: Path = APPS) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-m", "runplane.cli", *args], cwd=cwd, env=env,
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
    assert result.returncode == 1, (result.stdout, result.stderr)
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
    assert result.returncode in (1, 2), (result.stdout, result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "hunter2" not in result.stdout + result.stderr, result
    assert "Traceback" not in result.stdout + result.stderr
