"""Settings refuse what the service would refuse run by run, at start-up."""

from __future__ import annotations

import pytest

from runplane.config import Settings
from runplane.limits import MAX_ATTEMPTS


def test_max_attempts_beyond_the_service_bound_is_refused_at_load(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings.load(max_attempts=MAX_ATTEMPTS).max_attempts == MAX_ATTEMPTS
    with pytest.raises(ValueError, match=f"between 1 and {MAX_ATTEMPTS}"):
        Settings.load(max_attempts=MAX_ATTEMPTS + 1)
    monkeypatch.setenv("RUNPLANE_MAX_ATTEMPTS", str(MAX_ATTEMPTS * 5))
    with pytest.raises(ValueError, match="max_attempts"):
        Settings.load()
