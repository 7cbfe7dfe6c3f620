"""The README's Python example runs as written (on a temporary database)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).parents[2] / "README.md"


def test_readme_api_example_runs(tmp_path: Path):
    section = README.read_text().split("## The Python API", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    code = block.replace("sqlite:///runplane.db", f"sqlite:///{tmp_path}/readme.db")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "cannot cancel, run is success",
        "cancelled interrupted",
        "{'plan': ['search', 'summarise']}",
    ]
