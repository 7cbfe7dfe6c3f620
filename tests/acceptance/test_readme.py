"""The README's Python examples run as written (on a temporary database)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).parents[2] / "README.md"


def _run_example(section: str, tmp_path: Path) -> list[str]:
    """The first Python block of the README's ``section``, run as a script on a temporary
    database; what it printed."""
    text = README.read_text().split(f"## {section}\n", 1)[1]
    block = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    code = block.replace("sqlite:///runplane.db", f"sqlite:///{tmp_path}/readme.db")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_readme_api_example_runs(tmp_path: Path):
    assert _run_example("The Python API", tmp_path) == [
        "cannot cancel, run is success",
        "cancelled interrupted",
        "{'plan': ['search', 'summarise']}",
    ]


def test_readme_human_in_the_loop_example_runs(tmp_path: Path):
    assert _run_example("Human in the loop for workflows", tmp_path) == [
        "{'send this?': 'Dear Ada, the report is ready.'}",
        "interrupted",
        "{'sent': True} ['Dear Ada, the report is ready.']",
    ]
