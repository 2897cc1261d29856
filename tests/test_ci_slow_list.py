"""tests/ci_slow.txt names tests that exist: an entry left behind by a renamed or removed test would let the
renamed test back into `make test` unnoticed (and its time with it)."""

import ast
import pathlib

TESTS = pathlib.Path(__file__).parent


def _entries(text: str):
    for line in text.splitlines():
        entry = line.split("#")[0].strip()
        if entry:
            yield entry


def _test_functions(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.name.startswith("test")}


def _stale(text: str) -> list[tuple[str, str]]:
    """Entries (node ids, ids with parameters, or whole files) that name no test file or function."""
    stale = []
    for entry in _entries(text):
        file, _, name = entry.partition("::")
        path = TESTS.parent / file
        if not path.is_file():
            stale.append((entry, "no such file"))
        elif name and name.split("[")[0] not in _test_functions(path):
            stale.append((entry, f"no test function {name.split('[')[0]!r} in {file}"))
    return stale


def test_every_listed_slow_test_exists():
    assert _stale((TESTS / "ci_slow.txt").read_text()) == []


def test_a_stale_entry_is_found():
    text = ("tests/test_two_level.py::test_two_level_is_exact_where_its_surrogate_is_not  # 17 s\n"
            "tests/test_two_level.py::test_two_level_matches_nuts_on_the_fine_model[fine-mala]\n"
            "tests/test_two_level.py\n"
            "tests/test_two_level.py::test_renamed_away[a-b]  # 5 s\n"
            "tests/test_gone.py  # 4 s\n")
    assert [e for e, _ in _stale(text)] == ["tests/test_two_level.py::test_renamed_away[a-b]", "tests/test_gone.py"]
