"""The README's set-up commands and CI cannot drift apart."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _setup_commands():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Set-up.*?```bash\n(.*?)```", readme, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_readme_gives_two_commands_and_ci_runs_the_test_one():
    demo, test = _setup_commands()
    assert "examples/quickstart.py" in demo and "python3 -m venv" in demo
    assert "pytest" in test and "python3 -m venv" in test
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test in ci_lines
