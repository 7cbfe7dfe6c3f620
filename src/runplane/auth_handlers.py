"""A LangGraph project's own auth (``auth.path`` in ``langgraph.json``: a
``langgraph_sdk.Auth``), run as the LangGraph server runs it.

- ``@auth.authenticate`` turns each request into an identity. The identity is the
  :class:`~runplane.models.Caller`'s owner: what it creates is its own, and it sees and
  changes only what it owns, the rule API keys' owners follow too (one isolation rule).
- ``@auth.on...`` handlers run in the service before it acts, once a request per resource
  (``threads``, which runs belong to; ``assistants``, ``crons``, ``store``), the most
  specific handler for the resource and action. A handler may change the value it is
  given (the metadata it adds is stored), refuse (``False`` or an ``AssertionError``: 403;
  ``Auth.exceptions.HTTPException``: its status), or return a filter that the resource's
  metadata must then match on every read and write of the request (a store item's value,
  for a store search). A resource the filter does not match is not found, as in LangGraph.

A filter is ``{key: value}`` or ``{key: {"$eq": value}}`` (equal), ``{key: {"$contains":
v}}`` (a list holding v, or every item of a list v), ``$or``/``$and`` lists of filters;
keys together must all hold. It is kept as alternatives of documents the metadata must
contain as PostgreSQL's jsonb ``@>`` does (:func:`runplane.models.contains`), so both
stores and Python answer alike.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import inspect
import json
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from langgraph_sdk import Auth
from langgraph_sdk.auth.exceptions import HTTPException
from starlette.datastructures import Headers, QueryParams
from starlette.requests import Request

from runplane.errors import AccessDenied
from runplane.models import Caller, Where

#: What an authenticate handler may ask for by parameter name (LangGraph's names).
AUTHENTICATE_PARAMETERS = frozenset({
    "request", "scope", "path", "method", "headers", "authorization", "query_params",
    "path_params", "scopes", "user"})
#: How deep ``$or``/``$and`` may nest in a filter (LangGraph's limit).
MAX_NESTING = 2
#: The ``configurable`` keys a graph run reads its user from, as on the LangGraph server:
#: set from the run's caller, never from what a client sends.
USER_KEYS = ("langgraph_auth_user", "langgraph_auth_user_id", "langgraph_auth_permissions")


class Unauthenticated(Exception):
    """The authenticate handler refused the request: answer ``status`` with ``detail``."""

    def __init__(self, status: int, detail: str, headers: Mapping[str, str] | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})


class User(Mapping[str, Any]):
    """Who a request authenticated as, as handlers see it (``ctx.user``): ``identity``,
    ``display_name``, ``is_authenticated``, ``permissions`` and whatever else the
    authenticate handler returned, by attribute or by key."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self._fields = {"is_authenticated": True, "display_name": fields["identity"],
                        "permissions": [], **fields}

    def __getattr__(self, name: str) -> Any:
        try:
            return self._fields[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, key: str) -> Any:
        return self._fields[key]

    def __iter__(self) -> Any:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def dict(self) -> dict[str, Any]:
        return dict(self._fields)

    def stored(self) -> builtins.dict[str, Any]:
        """The fields JSON can hold: what a run keeps of its user for its graph."""
        kept = {}
        for key, value in self._fields.items():
            with contextlib.suppress(TypeError, ValueError):
                json.dumps(value, allow_nan=False)
                kept[key] = value
        return kept


class Handlers:
    """A project's ``Auth`` object, ready to authenticate requests and authorize actions."""

    def __init__(self, auth: Auth, where: str = "auth.path", *,
                 custom_routes: bool = False) -> None:
        authenticate = auth._authenticate_handler
        if authenticate is None:
            raise ValueError(f"{where}: the Auth object has no @auth.authenticate handler")
        wanted = inspect.signature(authenticate).parameters
        unknown = [name for name, p in wanted.items()
                   if name not in AUTHENTICATE_PARAMETERS and p.default is p.empty]
        if unknown:
            raise ValueError(f"{where}: the authenticate handler asks for {', '.join(unknown)}; "
                             f"it may ask for {', '.join(sorted(AUTHENTICATE_PARAMETERS))}")
        self.auth = auth
        #: Whether the project's own routes (``http.app``) need authenticating too
        #: (``http.enable_custom_route_auth``; LangGraph leaves them open by default).
        self.custom_routes = custom_routes
        self._authenticate = authenticate
        self._wanted = [name for name in wanted if name in AUTHENTICATE_PARAMETERS]

    async def authenticate(self, scope: MutableMapping[str, Any]) -> Caller:
        """The caller a request is, by the authenticate handler; Unauthenticated if it
        refuses (its HTTPException's status, 401 by default; an AssertionError: 403)."""
        headers = Headers(scope=scope)
        parts: dict[str, Callable[[], Any]] = {
            "request": lambda: Request(scope),
            "scope": lambda: scope, "path": lambda: scope["path"],
            "method": lambda: scope.get("method"),
            "headers": lambda: dict(scope.get("headers", [])),
            "authorization": lambda: headers.get("authorization"),
            "query_params": lambda: QueryParams(scope.get("query_string", b"")),
            "path_params": lambda: dict(scope.get("path_params", {})),
            "scopes": lambda: [], "user": lambda: None}
        try:
            found = await _call(self._authenticate, **{n: parts[n]() for n in self._wanted})
        except HTTPException as exc:
            raise Unauthenticated(exc.status_code, str(exc.detail), exc.headers) from None
        except AssertionError as exc:
            raise Unauthenticated(403, str(exc) or "Forbidden") from None
        permissions, user = _user(found)
        return Caller(user.identity, handlers=self, user=user, permissions=permissions)

    def handler(self, resource: str, action: str) -> Callable[..., Any] | None:
        """The most specific handler: resource and action, the resource's, the action's,
        everything's; the last one registered of its kind."""
        handlers = self.auth._handlers
        for key in ((resource, action), (resource, "*"), ("*", action), ("*", "*")):
            if handlers.get(key):
                return handlers[key][-1]
        return self.auth._global_handlers[-1] if self.auth._global_handlers else None

    async def authorize(self, caller: Caller, resource: str, action: str,
                        value: dict[str, Any]) -> Where:
        """Run the handler for ``resource``/``action`` on ``value`` (which it may change);
        what the resource's metadata must then match (None: anything); AccessDenied if it
        refuses."""
        found = await self.decide(caller, resource, action, value)
        return None if found is None else alternatives(found)

    async def decide(self, caller: Caller, resource: str, action: str,
                     value: dict[str, Any]) -> Mapping[str, Any] | None:
        """The filter the handler for ``resource``/``action`` returns on ``value``, as it
        is (None: no condition); AccessDenied if it refuses."""
        handler = self.handler(resource, action)
        if handler is None:
            return None
        context = Auth.types.AuthContext(user=caller.user, permissions=list(caller.permissions),
                                         resource=resource, action=action)  # type: ignore[arg-type]
        try:
            result = await _call(handler, ctx=context, value=value)
        except HTTPException as exc:
            raise AccessDenied(str(exc.detail), exc.status_code, exc.headers) from None
        except AssertionError as exc:
            raise AccessDenied(str(exc) or "Forbidden") from None
        if result is None or result is True:
            return None
        if result is False:
            raise AccessDenied("Forbidden")
        if not isinstance(result, Mapping):
            raise TypeError(f"the auth handler for {resource}.{action} returned "
                            f"{type(result).__name__}: expected a filter dict, None or a bool")
        return result


async def _call(fn: Callable[..., Any], **kwargs: Any) -> Any:
    """A handler's answer, sync (in a thread: it may block) or async."""
    if inspect.iscoroutinefunction(fn):
        return await fn(**kwargs)
    answer = await asyncio.to_thread(fn, **kwargs)
    return await answer if isinstance(answer, Awaitable) else answer


def _user(found: Any) -> tuple[tuple[str, ...], User]:
    """What an authenticate handler returned (an identity string, a dict or an object with
    ``identity``, or ``(permissions, user)``) as permissions and a User."""
    permissions: Any = None
    if isinstance(found, tuple) and len(found) == 2:
        permissions, found = found
    if isinstance(found, str):
        fields: dict[str, Any] = {"identity": found}
    elif isinstance(found, Mapping):
        fields = dict(found)
    elif hasattr(found, "identity"):
        fields = dict(found.model_dump()) if hasattr(found, "model_dump") \
            else dict(getattr(found, "__dict__", {}))
        fields.update({name: getattr(found, name) for name in
                       ("identity", "display_name", "is_authenticated", "permissions")
                       if hasattr(found, name)})
    else:
        raise TypeError("the authenticate handler returned "
                        f"{type(found).__name__}: expected an identity string, a dict with "
                        "'identity', an object with .identity, or (permissions, user)")
    if not isinstance(fields.get("identity"), str) or not fields["identity"]:
        raise TypeError("the authenticate handler returned no identity (a non-empty string)")
    if permissions is None:
        permissions = fields.get("permissions") or []
    fields["permissions"] = list(permissions)
    return tuple(str(p) for p in permissions), User(fields)


def alternatives(found: Mapping[str, Any], depth: int = 0) -> tuple[dict[str, Any], ...]:
    """A handler's filter as documents, one of which the metadata must contain (none: the
    filter cannot hold)."""
    if depth > MAX_NESTING:
        raise ValueError(f"an auth filter nests $or/$and deeper than {MAX_NESTING}")
    result: list[dict[str, Any]] = [{}]
    for key, value in found.items():
        if key in ("$or", "$and"):
            if not isinstance(value, list) or not value \
                    or not all(isinstance(v, Mapping) for v in value):
                raise ValueError(f"an auth filter's {key} must be a list of filters")
            groups = [alternatives(v, depth + 1) for v in value]
            if key == "$or":
                parts = [doc for group in groups for doc in group]
            else:
                parts = [{}]
                for group in groups:
                    parts = [m for a in parts for b in group if (m := _merged(a, b)) is not None]
        else:
            parts = [{key: _term(key, value)}]
        result = [m for a in result for b in parts if (m := _merged(a, b)) is not None]
    return tuple(result)


def _term(key: str, value: Any) -> Any:
    """What ``key`` must contain: a value (an object: its keys, contained), ``$eq``'s, or
    a list holding ``$contains``'s."""
    if not isinstance(value, Mapping) or not any(str(k).startswith("$") for k in value):
        return value
    if len(value) != 1 or next(iter(value)) not in ("$eq", "$contains"):
        raise ValueError(f"an auth filter's {key!r} must be a value, {{'$eq': value}} or "
                         "{'$contains': value}")
    op, operand = next(iter(value.items()))
    if op == "$eq":
        return operand
    return list(operand) if isinstance(operand, list) else [operand]


def _merged(a: Any, b: Any) -> Any:
    """One document containing both (None: they contradict)."""
    if isinstance(a, dict) and isinstance(b, dict):
        merged = dict(a)
        for key, value in b.items():
            if key in merged:
                value = _merged(merged[key], value)
                if value is None:
                    return None
            merged[key] = value
        return merged
    if isinstance(a, list) and isinstance(b, list):
        return a + b
    return a if type(a) is type(b) and a == b else None
