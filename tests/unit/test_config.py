"""Settings: keyword arguments (options), else ``RUNPLANE_*`` variables, else defaults; a bad
value is refused at start-up, naming the variable it came from."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runplane import Runplane
from runplane.cli import app as cli_app
from runplane.config import ClientSettings, ProcessSettings, Settings, env_name
from runplane.limits import MAX_ATTEMPTS
from runplane.server.settings import ServerSettings
from runplane.store import open_store
from runplane.store.sqlite import sqlite_path

ALL = (Settings, ServerSettings, ProcessSettings, ClientSettings)
README = Path(__file__).parents[2] / "README.md"


def test_max_attempts_beyond_the_service_bound_is_refused_at_load(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings.load(max_attempts=MAX_ATTEMPTS).max_attempts == MAX_ATTEMPTS
    with pytest.raises(ValueError, match=f"between 1 and {MAX_ATTEMPTS}"):
        Settings.load(max_attempts=MAX_ATTEMPTS + 1)
    monkeypatch.setenv("RUNPLANE_MAX_ATTEMPTS", str(MAX_ATTEMPTS * 5))
    with pytest.raises(ValueError, match="max_attempts"):
        Settings.load()


def test_variables_override_defaults_and_keywords_override_variables(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"WORKER": "false", "SHUTDOWN_GRACE": "2.5", "PORT": "9000",
                        "SSE_HEARTBEAT": "0.5", "CORS_ORIGINS": "https://a.example, *",
                        "ALLOWED_HOSTS": "api.example", "LOG_LEVEL": "debug",
                        "METRICS_PORT": "9100", "URL": "http://rp:1", "API_KEY": "k"}.items():
        monkeypatch.setenv(f"RUNPLANE_{name}", value)
    settings = Settings.load()
    assert settings.worker is False and settings.shutdown_grace == 2.5
    server = ServerSettings.load()
    assert (server.port, server.sse_heartbeat) == (9000, 0.5)
    assert server.cors_origins == ("https://a.example", "*")
    assert server.allowed_hosts == ("api.example",)
    assert ProcessSettings.load() == ProcessSettings(log_level="debug", metrics_port=9100)
    assert ClientSettings.load() == ClientSettings(url="http://rp:1", api_key="k")
    assert Settings.load(worker=True, shutdown_grace=0).worker is True
    assert ServerSettings.load(port=8124, cors_origins=("x",)).cors_origins == ("x",)
    assert ClientSettings.load(url="http://other:2").url == "http://other:2"


def test_the_app_takes_its_worker_flag_and_grace_from_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNPLANE_WORKER", "0")
    monkeypatch.setenv("RUNPLANE_SHUTDOWN_GRACE", "1.5")
    app = Runplane("sqlite:///:memory:")
    assert app.run_worker is False and app.shutdown_grace == 1.5
    app = Runplane("sqlite:///:memory:", worker=True, shutdown_grace=0)
    assert app.run_worker is True and app.shutdown_grace == 0
    app.reconfigure(worker=False)
    assert app.run_worker is False and app.settings.worker is False


def test_without_variables_every_setting_has_its_default(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for cls in ALL:
        for f in dataclasses.fields(cls):
            monkeypatch.delenv(env_name(f.name), raising=False)
        loaded = cls.load()
        for f in dataclasses.fields(cls):
            if f.name != "worker_id":
                assert getattr(loaded, f.name) == f.default, (cls.__name__, f.name)


@pytest.mark.parametrize("variable, value, error", [
    ("RUNPLANE_PORT", "http", "RUNPLANE_PORT='http' is not a valid int"),
    ("RUNPLANE_PORT", "70000", "RUNPLANE_PORT='70000': port must be between 0 and 65535"),
    ("RUNPLANE_WORKER", "maybe", "RUNPLANE_WORKER='maybe': expected one of 1, true"),
    ("RUNPLANE_SHUTDOWN_GRACE", "-1", "RUNPLANE_SHUTDOWN_GRACE='-1': shutdown_grace must be"),
    ("RUNPLANE_SSE_HEARTBEAT", "0", "RUNPLANE_SSE_HEARTBEAT='0': sse_heartbeat must be >="),
    ("RUNPLANE_MAX_BODY_BYTES", "0", "RUNPLANE_MAX_BODY_BYTES='0': max_body_bytes must be"),
    ("RUNPLANE_LEASE_TTL", "5",
     "RUNPLANE_LEASE_TTL='5': heartbeat_interval (10.0) must be shorter than lease_ttl (5.0)"),
    ("RUNPLANE_LOG_LEVEL", "loud", "RUNPLANE_LOG_LEVEL='loud': unknown log level 'loud'"),
    ("RUNPLANE_METRICS_PORT", "x", "RUNPLANE_METRICS_PORT='x' is not a valid int"),
    ("RUNPLANE_API_KEYS", "/no/such/keys.txt",
     "RUNPLANE_API_KEYS='/no/such/keys.txt': cannot read the API key file"),
])
def test_a_bad_variable_is_refused_naming_it(
        monkeypatch: pytest.MonkeyPatch, variable: str, value: str, error: str) -> None:
    monkeypatch.setenv(variable, value)
    cls = next(c for c in ALL if variable.removeprefix("RUNPLANE_").lower()
               in {f.name for f in dataclasses.fields(c)})
    with pytest.raises(ValueError, match=re.escape(error)):
        cls.load()


def test_a_bad_keyword_is_refused_by_the_same_check_without_a_variable() -> None:
    with pytest.raises(ValueError, match=r"^concurrency must be >= 1, got 0$"):
        Settings.load(concurrency=0)
    with pytest.raises(ValueError, match=r"^port must be between 0 and 65535, got -1$"):
        ServerSettings.load(port=-1)
    with pytest.raises(TypeError, match="unknown setting"):
        ServerSettings.load(bogus=1)


def test_the_cli_refuses_a_bad_variable_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNPLANE_PORT", "http")
    result = CliRunner().invoke(cli_app, ["serve"])
    assert result.exit_code == 2
    assert result.output.strip() == "Error: RUNPLANE_PORT='http' is not a valid int"


def test_an_option_beats_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """--log-level wins over a bad RUNPLANE_LOG_LEVEL, so the next bad value is reported."""
    monkeypatch.setenv("RUNPLANE_LOG_LEVEL", "loud")
    monkeypatch.setenv("RUNPLANE_MAX_BODY_BYTES", "0")
    result = CliRunner().invoke(cli_app, ["serve", "--log-level", "info"])
    assert result.exit_code == 2
    assert "RUNPLANE_MAX_BODY_BYTES='0'" in result.output and "log" not in result.output
    result = CliRunner().invoke(cli_app, ["serve", "--log-level", "info",
                                          "--max-body-bytes", "0"])
    assert result.exit_code == 2
    assert result.output.strip() == "Error: max_body_bytes must be >= 1, got 0"


def test_the_readme_lists_every_setting_with_its_variable_and_default() -> None:
    section = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    for cls in ALL:
        for f in dataclasses.fields(cls):
            assert f"`{env_name(f.name)}`" in section, f.name


def test_sqlite_urls():
    assert sqlite_path("sqlite:///./runplane.db") == "./runplane.db"
    assert sqlite_path("sqlite:////abs/path.db") == "/abs/path.db"
    assert sqlite_path("sqlite:///:memory:") == ":memory:"
    with pytest.raises(ValueError, match="names no file"):
        sqlite_path("sqlite:///")
    with pytest.raises(ValueError, match="unsupported database URL scheme 'mysql'") as err:
        open_store("mysql://me:s3cret@localhost/db")
    assert "s3cret" not in str(err.value)


def test_default_database_comes_from_the_environment(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("RUNPLANE_DATABASE_URL", f"sqlite:///{tmp_path}/env.db")
    monkeypatch.setenv("RUNPLANE_CONCURRENCY", "3")
    app = Runplane()
    assert app.settings.database_url == f"sqlite:///{tmp_path}/env.db"
    assert app.settings.concurrency == 3
    assert Runplane(concurrency=5).settings.concurrency == 5
    monkeypatch.delenv("RUNPLANE_DATABASE_URL")
    assert Runplane().settings.database_url == "sqlite:///./runplane.db"


def test_bad_environment_values_are_named(monkeypatch):
    monkeypatch.setenv("RUNPLANE_POLL_INTERVAL", "fast")
    with pytest.raises(ValueError, match="RUNPLANE_POLL_INTERVAL='fast' is not a valid float"):
        Runplane()


def test_reconfigure_overrides_settings_before_open():
    app = Runplane("sqlite:///:memory:")
    app.reconfigure(database_url="sqlite:///other.db", concurrency=3, shutdown_grace=1.5)
    assert app.settings.database_url == "sqlite:///other.db"
    assert app.settings.concurrency == 3 and app.shutdown_grace == 1.5
    with pytest.raises(TypeError, match="unknown setting"):
        app.reconfigure(bogus=1)
