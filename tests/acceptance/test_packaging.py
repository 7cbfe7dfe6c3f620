"""The wheel a user builds (``python -m build``) holds everything runplane reads at run
time, and a server run from it alone migrates its database, runs a workflow and serves
the console and the API docs."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest

from support import REPO
from support.processes import Processes, child_env

pytestmark = pytest.mark.slow


def _tracked() -> list[str]:
    """The repository's files under version control (what a fresh clone holds)."""
    assert shutil.which("git"), "git is needed to list the repository's files"
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                         check=True).stdout.decode()
    return [name for name in out.split("\0") if name]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the tracked files, as from a fresh clone."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    for name in _tracked():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, source / name)
    result = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir",
                             str(root / "dist"), str(source)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    [built] = (root / "dist").glob("runplane-*-py3-none-any.whl")
    return built


def test_the_wheel_holds_every_file_of_the_package_and_the_license(wheel: Path):
    names = set(zipfile.ZipFile(wheel).namelist())
    package = [name.removeprefix("src/") for name in _tracked()
               if name.startswith("src/runplane/")]
    assert len(package) > 60
    assert [name for name in package if name not in names] == []
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    assert any(name.endswith("entry_points.txt") for name in names)


def test_a_server_run_from_the_wheel_alone_works(wheel: Path, tmp_path: Path):
    installed = tmp_path / "installed"
    zipfile.ZipFile(wheel).extractall(installed)
    env = child_env({"PYTHONPATH": str(installed)}, apps_on_path=False)
    where = subprocess.run([sys.executable, "-c", "import runplane; print(runplane.__file__)"],
                           env=env, cwd=tmp_path, capture_output=True, text=True, check=True)
    assert where.stdout.startswith(f"{installed}/runplane/"), where.stdout  # not the checkout
    with Processes(tmp_path) as processes:
        server = processes.serve("from-wheel", "runplane.demo:app", "--database",
                                 f"sqlite:///{tmp_path}/wheel.db", env=env, cwd=tmp_path)
        with httpx.Client(base_url=server.url, timeout=30) as http:
            run = http.post("/runs/wait", json={"assistant_id": "summarise",
                                                "input": {"text": "a b c"}})
            assert run.status_code == 200, run.text
            for path in ("/ui", "/ui/static/console.js", "/docs",
                         "/docs/assets/swagger-ui-bundle.js"):
                assert http.get(path).status_code == 200, path
