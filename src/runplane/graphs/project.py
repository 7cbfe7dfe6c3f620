"""A LangGraph project: ``langgraph.json`` read the way ``langgraph dev`` reads it.

What runplane honours:

- ``graphs``: graph id -> ``"./dir/file.py:attr"`` (a file, relative to the config file,
  told apart by its ``/``) or ``"package.module:attr"`` (imported from ``sys.path``), or
  ``{"path": ..., "description": ...}``; what a target may be: :mod:`runplane.graphs.sources`.
  A file is imported once under a name of its own, its directory first on ``sys.path``
  (its sibling imports work as when it runs as a script);
- ``dependencies``: the local directories among them (``"."``, ``"./src"``, relative to
  the config file) go first on ``sys.path``; a package name (``"langchain_openai"``,
  ``"git+..."``) is an install instruction, left to whoever installs the project. The
  config file's directory is on ``sys.path`` anyway (last, as ``langgraph dev`` adds its
  working directory);
- ``env``: a mapping, or a ``KEY=VALUE`` file relative to the config file, applied to
  ``os.environ`` before anything is imported. As in ``langgraph dev`` its values win over
  variables already set (they are the project's settings; command-line options still win
  over both);
- ``http.app``: the user's Starlette or FastAPI app, its routes served beside runplane's;
- ``auth.path``: a ``langgraph_sdk.Auth`` (same path forms as a graph), its handlers
  deciding who calls and what each caller may see and do (:mod:`runplane.auth_handlers`);
  ``http.enable_custom_route_auth`` makes them guard ``http.app``'s routes too.

Build-only keys (``python_version``, ``base_image``, ``dockerfile_lines``, ...) are about
images, not serving, and are ignored; every other key present (``store``,
``checkpointer``, ``http.cors``, ``auth.cache``, a typo) is named in
:attr:`Project.unhonoured`, for one warning at start-up.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

from runplane.errors import ConfigError
from runplane.graphs.sources import GraphSource, with_article

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from runplane.auth_handlers import Handlers

T = TypeVar("T")

#: Keys about building an image, meaningless to a server: ignored without a word.
BUILD_ONLY = frozenset({
    "$schema", "python_version", "node_version", "base_image", "image_distro",
    "pip_config_file", "pip_installer", "source", "dockerfile_lines", "keep_pkg_tools",
})
#: Keys runplane serves.
HONOURED = frozenset({"graphs", "dependencies", "env", "http", "auth"})
#: The prefix of the names the project's files are imported under.
_MODULES = "_runplane_project"
#: A quoted ``.env`` value, maybe followed by a comment.
_QUOTED = re.compile(r"""^(['"])(.*?)\1(\s+#.*)?$""")


@dataclass(frozen=True, slots=True)
class Project:
    """A loaded ``langgraph.json``: its graphs imported, its env applied, its dependencies
    on ``sys.path``."""

    path: Path
    #: graph id -> source, in the file's order
    graphs: dict[str, GraphSource]
    #: The variables the project set (already in ``os.environ``).
    env: dict[str, str]
    #: The directories the project put on ``sys.path``.
    dependencies: list[Path]
    http_app: Starlette | None
    #: The project's auth handlers (``auth.path``), if any.
    auth: Handlers | None
    #: Keys present that runplane does not honour yet (``store``, ``http.cors``, ...).
    unhonoured: list[str]

    @classmethod
    def load(cls, path: Path) -> Project:
        """Read, apply and import the project at ``path``; ConfigError, one line naming the
        file and the key, on any problem."""
        loader = _Loader(path)
        config = loader.read()
        if str(loader.folder) not in sys.path:  # as `langgraph dev` adds its working directory
            sys.path.append(str(loader.folder))
        env = loader.env(config.get("env"))
        dependencies = loader.dependencies(config.get("dependencies", []))
        graphs = loader.graphs(config.get("graphs"))
        http = {} if config.get("http") is None else config["http"]
        if not isinstance(http, Mapping):
            raise loader.error("http", f"expected an object, got {_kind(http)}")
        app = loader.http_app(http["app"]) if "app" in http else None
        auth = {} if config.get("auth") is None else config["auth"]
        if not isinstance(auth, Mapping):
            raise loader.error("auth", f"expected an object, got {_kind(auth)}")
        guarded = http.get("enable_custom_route_auth", False)
        if not isinstance(guarded, bool):
            raise loader.error("http.enable_custom_route_auth", f"expected true or false, "
                               f"got {_kind(guarded)}")
        handlers = loader.auth(auth["path"], guarded) if "path" in auth else None
        unhonoured = [key for key in config if key not in HONOURED | BUILD_ONLY]
        unhonoured += [*loader.unhonoured,
                       *(f"http.{key}" for key in http
                         if key not in ("app", "enable_custom_route_auth")),
                       *(f"auth.{key}" for key in auth if key != "path")]
        return cls(path, graphs, env, dependencies, app, handlers, unhonoured)


class _Loader:
    """The steps of :meth:`Project.load`, each raising ConfigError with the file's name."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.folder = path.resolve().parent
        self.modules: dict[Path, ModuleType] = {}
        #: Keys met inside honoured ones that runplane does not honour.
        self.unhonoured: list[str] = []

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.path}: {key}: {message}")

    def read(self) -> dict[str, Any]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{self.path}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{self.path}: cannot be read ({_line(exc)})") from None
        try:
            config = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{self.path}: not valid JSON: {exc}") from None
        if not isinstance(config, dict):
            raise ConfigError(f"{self.path}: expected a JSON object, got {_kind(config)}")
        return config

    def env(self, given: object) -> dict[str, str]:
        if given is None:
            return {}
        if isinstance(given, str):
            file = self.folder / given
            try:
                values = parse_env(file.read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise self.error("env", f"{given}: no such file") from None
            except (OSError, UnicodeDecodeError) as exc:
                raise self.error("env", f"{given} cannot be read ({_line(exc)})") from None
        elif isinstance(given, Mapping) and all(isinstance(v, str) for v in given.values()):
            values = dict(given)
        else:
            raise self.error("env", "expected a file path or an object of strings, got "
                             + _kind(given))
        os.environ.update(values)
        return values

    def dependencies(self, given: object) -> list[Path]:
        if not isinstance(given, list) or not all(isinstance(d, str) for d in given):
            raise self.error("dependencies", f"expected a list of strings, got {_kind(given)}")
        folders = []
        for entry in given:
            if not entry.startswith((".", "/")):
                continue  # a package to install, not a folder to import from
            folder = (self.folder / entry).resolve()
            if not folder.is_dir():
                raise self.error("dependencies", f"{entry} is not a directory")
            folders.append(folder)
        for folder in reversed(folders):
            _first_on_path(folder)
        return folders

    def graphs(self, given: object) -> dict[str, GraphSource]:
        if not isinstance(given, Mapping):
            raise self.error("graphs", "expected an object of graph ids to "
                             f"\"path:attr\" strings, got {_kind(given)}")
        graphs = {}
        for graph_id, spec in given.items():
            where = f"{self.path}: graph \"{graph_id}\": "
            description = None
            if isinstance(spec, Mapping) and isinstance(spec.get("path"), str):
                description = spec.get("description")
                self.unhonoured += [f"graphs.{graph_id}.{key}" for key in spec
                                    if key not in ("path", "description")]
                spec = spec["path"]
            if not isinstance(spec, str):
                raise ConfigError(f"{where}expected \"./file.py:attr\", \"package.module:attr\" "
                                  f"or {{\"path\": ...}}, got {_kind(spec)}")
            value = self.target(spec, where)
            graphs[graph_id] = GraphSource.classify(graph_id, spec, value,
                                                    description=description, where=where)
        return graphs

    def http_app(self, spec: object) -> Starlette:
        from starlette.applications import Starlette

        return self.instance("http.app", spec, Starlette, "a Starlette or FastAPI app")

    def auth(self, spec: object, custom_routes: bool) -> Handlers:
        from langgraph_sdk import Auth

        from runplane.auth_handlers import Handlers

        found = self.instance("auth.path", spec, Auth, "a langgraph_sdk.Auth")
        try:
            return Handlers(found, f"{self.path}: auth.path: {spec}",
                            custom_routes=custom_routes)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def instance(self, key: str, spec: object, kind: type[T], what: str) -> T:
        """The ``kind`` object ``spec`` (a path string at ``key``) names."""
        where = f"{self.path}: {key}: "
        if not isinstance(spec, str):
            raise ConfigError(f"{where}expected \"./file.py:attr\" or \"package.module:attr\", "
                              f"got {_kind(spec)}")
        found = self.target(spec, where)
        if not isinstance(found, kind):
            raise ConfigError(f"{where}{spec} is {with_article(type(found).__name__)}, "
                              f"not {what}")
        return found

    def target(self, spec: str, where: str) -> object:
        """The attribute ``spec`` (``./file.py:attr`` or ``package.module:attr``) names."""
        source, sep, attr = spec.rpartition(":")
        if not sep or not source or not attr:
            raise ConfigError(f"{where}{spec!r} names no attribute (expected ./file.py:attr "
                              "or package.module:attr)")
        module = self.file(source, where) if "/" in source else _module(source, where)
        found: object = module
        for name in attr.split("."):
            try:
                found = getattr(found, name)
            except AttributeError:
                raise ConfigError(f"{where}{source} has no attribute {attr!r}") from None
        return found

    def file(self, source: str, where: str) -> ModuleType:
        """The file ``source`` (relative to the config file) imported, once per load."""
        file = (self.folder / source).resolve()
        if file in self.modules:
            return self.modules[file]
        if not file.is_file():
            raise ConfigError(f"{where}{source}: no such file")
        digest = hashlib.sha256(str(file).encode()).hexdigest()[:12]
        name = f"{_MODULES}_{file.stem.replace('.', '_')}_{digest}"
        spec = importlib.util.spec_from_file_location(name, file)
        if spec is None or spec.loader is None:
            raise ConfigError(f"{where}{source}: not a Python file")
        module = importlib.util.module_from_spec(spec)
        _first_on_path(file.parent)
        sys.modules[name] = module  # dataclasses and typing look their module up there
        try:
            spec.loader.exec_module(module)
        except BaseException as exc:
            del sys.modules[name]
            raise _import_error(where, source, exc) from exc
        self.modules[file] = module
        return module


def _module(name: str, where: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise ConfigError(f"{where}no module named {exc.name!r} (sys.path holds the "
                              "dependencies' folders and the installed packages)") from None
        raise _import_error(where, name, exc) from exc
    except BaseException as exc:
        raise _import_error(where, name, exc) from exc


def _import_error(where: str, source: str, exc: BaseException) -> BaseException:
    """What importing the user's ``source`` raising ``exc`` is: a ConfigError naming where,
    but for an interrupt, which stays one."""
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        return exc
    if isinstance(exc, SyntaxError):
        place = f"{Path(exc.filename or source).name}:{exc.lineno}"
        return ConfigError(f"{where}{source} does not compile: {exc.msg} ({place})")
    return ConfigError(f"{where}importing {source} failed: {type(exc).__name__}: {_line(exc)}")


def _first_on_path(folder: Path) -> None:
    entry = str(folder)
    if entry in sys.path:
        sys.path.remove(entry)
    sys.path.insert(0, entry)


def parse_env(text: str) -> dict[str, str]:
    """``KEY=VALUE`` lines as python-dotenv reads them, without ``${VAR}`` expansion: blank
    lines and ``#`` comments skipped, an ``export`` prefix allowed, a value in single quotes
    taken as it is, one in double quotes with its ``\\n \\t \\" \\\\`` escapes, an unquoted one up
    to a `` #``."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            continue
        quoted = _QUOTED.match(value)
        if quoted and quoted.group(1) == "'":
            value = quoted.group(2)
        elif quoted:
            value = re.sub(r'\\(.)', lambda m: _ESCAPES.get(m.group(1), m.group(0)),
                           quoted.group(2))
        else:
            value = value.split(" #", 1)[0].rstrip()
        values[key] = value
    return values


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


def _kind(value: object) -> str:
    return "null" if value is None else {dict: "an object", list: "a list", str: "a string",
                                         bool: "a boolean", int: "a number",
                                         float: "a number"}.get(type(value),
                                                                with_article(type(value).__name__))


def _line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
