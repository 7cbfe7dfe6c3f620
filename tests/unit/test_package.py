"""The package's public names: each lives where ``runplane._HOMES`` says and is imported
when first used, so that the CLI's client commands start without the engine."""

from __future__ import annotations

import importlib
import subprocess
import sys

import runplane


def test_every_public_name_resolves_to_its_home():
    assert sorted(runplane.__all__) == sorted(runplane._HOMES)
    for name, home in runplane._HOMES.items():
        assert getattr(runplane, name) is getattr(importlib.import_module(home), name)


def test_importing_the_package_loads_neither_the_engine_nor_the_web_stack():
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, runplane; print(' '.join(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True).stdout.split()
    assert {"runplane.app", "runplane.service", "fastapi", "langgraph"}.isdisjoint(loaded)
