"""Every ```python block of README.md runs as written (in order, sharing one namespace, as a reader would)."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_readme_python_snippets_run(capsys):
    blocks = python_blocks(README.read_text())
    assert blocks, "README.md has no ```python block: the tour is gone or its fence changed"
    namespace: dict = {"__name__": "readme"}
    for i, code in enumerate(blocks):
        exec(compile(code, f"README.md python block {i + 1}", "exec"), namespace)
    out = capsys.readouterr().out
    # the tour's last report compares with posteriordb reference draws: a W2 and its floor, not "not available"
    assert "Wasserstein-2" in out and "noise floor" in out and "not available" not in out, out[-3000:]
