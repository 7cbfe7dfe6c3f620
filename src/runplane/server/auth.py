"""Who is calling, and from where: API keys mapped to owners (or, for a LangGraph
project with ``auth.path``, its authenticate handler: :mod:`runplane.auth_handlers`), and
the browser rules.

With API keys configured every request but ``/ok`` (and public assets) must carry one
(``Authorization: Bearer KEY`` or ``x-api-key: KEY``, what ``langgraph_sdk``
sends with ``api_key=``; the console's pages, the key a person signed in with, kept in
an HttpOnly, SameSite=Strict cookie that counts only on requests from this server's own
pages; a console page without one sends the person to ``/ui/login``); the key's owner
becomes the request's
:class:`~runplane.models.Caller`, which the routes hand to the service, where
the ownership rules live. Keys are kept as SHA-256 digests and compared with
``hmac.compare_digest`` against every configured key, so neither the memory
of the process nor the time an answer takes tells a key apart.

Browsers get three more rules, because a page on any site can make a browser
send requests to a server on ``localhost``:

- ``Host`` must be on an allow-list (DNS rebinding: an attacker's name
  resolving to 127.0.0.1 still sends its own name);
- CORS answers only allowed origins (loopback ones on any port by default);
- requests a page may send without a CORS preflight are refused when they
  could change something: a form content type (415), or an ``Origin`` that is
  neither allowed nor the server's own, or a cross-site ``Sec-Fetch-Site``
  subresource load (403).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from typing import Any

from fastapi.responses import JSONResponse, RedirectResponse
from starlette.applications import Starlette
from starlette.datastructures import Headers

from runplane.auth_handlers import Handlers, Unauthenticated
from runplane.models import Caller
from runplane.server.custom_routes import custom_route

#: Paths anyone may read: a load balancer's health check carries no key.
OPEN_PATHS = frozenset({"/ok", "/ui/login"})
#: Public files (the Swagger UI's and the console's assets), open without a key too.
OPEN_PREFIXES = ("/docs/assets/", "/ui/static/")
#: The cookie the console keeps a signed-in person's key in (HttpOnly, SameSite=Strict).
KEY_COOKIE = "runplane_key"
#: Host names a loopback-bound server answers to by default.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
#: Origins allowed by default: pages served from this machine, on any port.
LOOPBACK_ORIGINS = r"https?://(localhost|127\.0\.0\.1|\[::1\])(:\d{1,5})?"
#: Raw keys shorter than this are refused: they could be guessed.
MIN_KEY_LENGTH = 16
#: The content types a page may POST cross-site without a preflight.
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")
_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
_DIGEST = re.compile(r"^sha256:([0-9a-fA-F]{64})$")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class ApiKeys:
    """The configured keys, as digests, each with the caller it stands for."""

    def __init__(self, keys: list[tuple[bytes, Caller]]) -> None:
        if not keys:
            raise ValueError("no API keys configured")
        self._keys = keys

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def owners(self) -> list[str]:
        return sorted({caller.owner for _, caller in self._keys})

    def caller(self, key: str) -> Caller | None:
        """The caller ``key`` belongs to; every configured key is compared, whichever
        matches."""
        digest = key_digest(key)
        found = None
        for stored, caller in self._keys:
            if hmac.compare_digest(digest, stored):
                found = caller
        return found

    @classmethod
    def load(cls, path: str | Path) -> ApiKeys:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ValueError(f"cannot read the API key file {path}: {exc.strerror}") from None
        return cls.parse(text, str(path))

    @classmethod
    def parse(cls, text: str, source: str = "API key file") -> ApiKeys:
        """One key a line: ``KEY OWNER [admin]``; ``#`` starts a comment. KEY is the key
        itself or ``sha256:HEX``, its SHA-256 digest, so the file need not hold secrets."""
        keys: list[tuple[bytes, Caller]] = []
        seen: set[bytes] = set()
        for number, line in enumerate(text.splitlines(), 1):
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            where = f"{source}, line {number}"
            if len(words) not in (2, 3) or (len(words) == 3 and words[2] != "admin"):
                raise ValueError(f"{where}: expected 'KEY OWNER' or 'KEY OWNER admin'")
            key, owner = words[0], words[1]
            hashed = _DIGEST.match(key)
            if hashed is None and len(key) < MIN_KEY_LENGTH:
                raise ValueError(f"{where}: a key needs at least {MIN_KEY_LENGTH} characters")
            digest = bytes.fromhex(hashed.group(1)) if hashed else key_digest(key)
            if digest in seen:
                raise ValueError(f"{where}: this key is already configured")
            seen.add(digest)
            keys.append((digest, Caller(owner, admin=len(words) == 3)))
        if not keys:
            raise ValueError(f"{source} configures no API keys")
        return cls(keys)


@dataclass(frozen=True)
class Origins:
    """The origins whose pages may call the API (CORS): loopback ones by default, else the
    ones configured (``*``: any)."""

    configured: tuple[str, ...] = ()

    def allows(self, origin: str) -> bool:
        if not self.configured:
            return re.fullmatch(LOOPBACK_ORIGINS, origin) is not None
        return "*" in self.configured or origin in self.configured

    def cors_options(self) -> dict[str, Any]:
        """Keyword arguments of Starlette's CORSMiddleware for these origins."""
        if self.configured:
            where: dict[str, Any] = {"allow_origins": list(self.configured)}
        else:
            where = {"allow_origin_regex": LOOPBACK_ORIGINS}
        return {**where, "allow_methods": ["*"], "allow_headers": ["*"],
                "expose_headers": ["Content-Location", "Location"]}


def allowed_hosts(configured: tuple[str, ...], bound: str | None = None) -> list[str]:
    """The ``Host`` allow-list: as configured, else the loopback names and the bound host;
    a wildcard bind (``0.0.0.0``, ``::``) accepts any name (its clients' names are not
    known here: name them with ``--allowed-host`` to check them)."""
    if configured:
        return list(configured)
    if bound in ("0.0.0.0", "::", ""):
        return ["*"]
    extra = [] if bound is None else [f"[{bound}]" if ":" in bound else bound]
    return list(dict.fromkeys([*LOOPBACK_HOSTS, *extra]))


def _refuse(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status, headers=headers)


class HostCheck:
    """Answer only ``Host`` names of the allow-list (``*``: any; ``*.example.com``: its
    subdomains), against DNS rebinding. Starlette's TrustedHostMiddleware does the same but
    refuses in plain text; every runplane error is JSON."""

    def __init__(self, app: ASGIApp, allowed: list[str]) -> None:
        self.app = app
        self.allowed = [name.lower() for name in allowed]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "*" not in self.allowed:
            host = _hostname(Headers(scope=scope).get("host", ""))
            if not any(host == name or (name.startswith("*.") and host.endswith(name[1:]))
                       for name in self.allowed):
                await _refuse(400, f"Host {host!r} is not allowed here (see --allowed-host)")(
                    scope, receive, send)
                return
        await self.app(scope, receive, send)


def _hostname(host: str) -> str:
    """``Host`` without its port: ``name:port`` or ``[v6]:port``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[:host.find("]") + 1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class Authenticate:
    """Put the request's caller in ``scope["state"]["caller"]`` (None with neither keys nor
    a project's auth handlers): a configured key's, else, with handlers, whom the
    authenticate handler says (its refusal answered with its status); a missing or unknown
    key is 401."""

    def __init__(self, app: ASGIApp, keys: ApiKeys | None, handlers: Handlers | None = None,
                 custom: Starlette | None = None) -> None:
        self.app = app
        self.keys = keys
        self.handlers = handlers
        #: the project's routes, open when its handlers do not guard them
        self.open_custom = custom if handlers is not None and not handlers.custom_routes \
            else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.keys is None and self.handlers is None) \
                or scope["path"] in OPEN_PATHS or scope["path"].startswith(OPEN_PREFIXES) \
                or (self.open_custom is not None and custom_route(self.open_custom, scope)):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        key = _presented_key(headers)
        cookie = None
        if key is None and _same_origin(scope, headers):
            cookie = _cookie_key(headers)  # the console's, sent by the browser itself
        try:
            caller = await identify(self.keys, self.handlers, scope, key, cookie)
        except Unauthenticated as refused:
            if _console_page(scope):
                await RedirectResponse("/ui/login", status_code=303)(scope, receive, send)
            else:
                await _refuse(refused.status, refused.detail, refused.headers)(
                    scope, receive, send)
            return
        scope.setdefault("state", {})["caller"] = caller
        await self.app(scope, receive, send)


async def identify(keys: ApiKeys | None, handlers: Handlers | None, scope: Scope,
                   key: str | None, cookie: str | None = None) -> Caller:
    """Who presents ``key`` (a header's) or ``cookie`` (the console's): a configured key's
    caller, else the authenticate handler's (the cookie shown to it as an ``Authorization:
    Bearer`` header); Unauthenticated if neither takes it."""
    token = key or cookie
    found = None if keys is None or token is None else keys.caller(token)
    if found is not None:
        return found
    if handlers is not None:
        if key is None and cookie is not None:
            scope = {**scope, "headers": [
                *(h for h in scope.get("headers", []) if h[0] != b"authorization"),
                (b"authorization", f"Bearer {cookie}".encode())]}
        return await handlers.authenticate(scope)
    raise Unauthenticated(401, "missing API key: send it as 'Authorization: Bearer KEY' or "
                          "'x-api-key: KEY'" if token is None else "invalid API key",
                          {"WWW-Authenticate": 'Bearer realm="runplane"'})


def _cookie_key(headers: Headers) -> str | None:
    cookies = SimpleCookie()
    with contextlib.suppress(CookieError):
        cookies.load(headers.get("cookie", ""))
    morsel = cookies.get(KEY_COOKIE)
    return morsel.value if morsel is not None and morsel.value else None


def _same_origin(scope: Scope, headers: Headers) -> bool:
    """The request comes from a page of this server (or from no page): only then does the
    console's cookie count, so that no other origin, not even another port of the same
    host (the same *site* to a browser), can act with it."""
    origin = headers.get("origin")
    if origin is not None and origin != f"{scope['scheme']}://{headers.get('host', '')}":
        return False
    return headers.get("sec-fetch-site") in (None, "same-origin", "none")


def _console_page(scope: Scope) -> bool:
    path = scope["path"]
    return scope["method"] == "GET" and (path in ("/", "/ui") or path.startswith("/ui/")) \
        and not path.endswith("/feed")


def _presented_key(headers: Headers) -> str | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("x-api-key") or None


class BrowserGuard:
    """Refuse what a page of another site can make a browser send without a preflight."""

    def __init__(self, app: ASGIApp, origins: Origins) -> None:
        self.app = app
        self.origins = origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = None if scope["type"] != "http" else self._refusal(scope)
        if refusal is None:
            await self.app(scope, receive, send)
        else:
            await refusal(scope, receive, send)

    def _refusal(self, scope: Scope) -> JSONResponse | None:
        headers = Headers(scope=scope)
        unsafe = scope["method"] not in _SAFE_METHODS
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if unsafe and content_type in _FORM_TYPES:
            return _refuse(415, f"unsupported content type {content_type!r}: send JSON "
                                "(application/json)")
        origin = headers.get("origin")
        own = f"{scope['scheme']}://{headers.get('host', '')}"
        if origin is not None and origin != own and not self.origins.allows(origin):
            return _refuse(403, f"requests from origin {origin!r} are not allowed "
                                "(allow it with --cors-origin)")
        if origin is None and headers.get("sec-fetch-site") == "cross-site" \
                and headers.get("sec-fetch-mode") != "navigate":
            return _refuse(403, "cross-site request refused")
        return None
