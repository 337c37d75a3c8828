"""The README's Python examples run as written."""

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


@pytest.mark.parametrize("source", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(source, tmp_path, capsys):
    # From a file, as a user's script would be: jitgrad converts control flow from source.
    path = tmp_path / "example.py"
    path.write_text(source)
    exec(compile(source, str(path), "exec"), {"__name__": "readme_example"})  # noqa: S102
