"""Passwords in database URLs are never printed, whatever they contain: redact_url."""

from __future__ import annotations

import string

from hypothesis import example, given
from hypothesis import strategies as st

from runplane.cli import redact_url

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


def test_redact_url_hides_passwords() -> None:
    assert redact_url("postgresql://u:pw@h:5432/db?schema=s") == (
        "postgresql://u:***@h:5432/db?schema=s")
    assert redact_url("postgresql://u@h/db") == "postgresql://u@h/db"
    assert redact_url("postgresql://h/db?user=u&password=pw") == (
        "postgresql://h/db?user=u&password=***")
    for unchanged in ("sqlite:////tmp/x.db", "sqlite:///./rel.db", "sqlite:///:memory:"):
        assert redact_url(unchanged) == unchanged
