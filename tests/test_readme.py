"""The README's code snippets run exactly as printed."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _snippets() -> dict[str, str]:
    text = README.read_text()
    pattern = re.compile(r"<!-- snippet: ([\w-]+)[^>]*-->\s*```python\n(.*?)```", re.S)
    return {name: code for name, code in pattern.findall(text)}


def test_readme_opens_with_the_two_commands():
    first_block = re.search(r"```bash\n(.*?)```", README.read_text(), re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]


@pytest.mark.parametrize("name", sorted(_snippets()))
def test_snippet_runs(name):
    exec(compile(_snippets()[name], f"README.md:{name}", "exec"), {"__name__": "readme"})


def test_snippets_found():
    assert {"plain-pytorch", "plugin"} <= set(_snippets())
