"""The imports that must never exist (docs/architecture.md),
read from the source: every `import` and `from ... import`, lazy ones inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# (room, what it must never import, why)
NEVER = [
    ("variants", ("harness",), "a variant only trains; its line count is a reported result"),
    ("variants/base.py", ("harness", "variants."), "the contract stands alone"),
    ("harness/report", ("harness.run", "harness.cli", "variants"),
     "a report is rebuilt from a results folder alone, not from today's code"),
    ("harness/results", ("harness.run", "harness.cli", "harness.report", "variants"),
     "storage never drives a run nor reads today's variants"),
    ("harness/measure", ("harness.run", "harness.cli", "harness.report"),
     "measurement never drives a run"),
    ("harness/task.py", ("harness.run", "harness.cli", "harness.report", "harness.results"),
     "the task is made from data and a seed alone"),
    ("harness/datasets.py", ("harness.", "variants"), "data loading stands alone"),
    ("harness/run", ("harness.cli", "harness.report"), "a run never prints or reports"),
]  # fmt: skip


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def files(room: str) -> list[Path]:
    path = ROOT / room
    return [path] if path.suffix == ".py" else sorted(path.rglob("*.py"))


def offending(room: str, forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for file in files(room):
        for name in sorted(imports(file)):
            under = (f.rstrip(".") for f in forbidden)
            if any(name == f or name.startswith(f + ".") for f in under):
                if not (room == "variants/base.py" and name.startswith("variants.base")):
                    bad.append(f"{file.relative_to(ROOT)} imports {name}")
    return bad


@pytest.mark.parametrize(("room", "forbidden", "why"), NEVER, ids=[r for r, _, _ in NEVER])
def test_no_room_imports_what_it_must_not(room, forbidden, why):
    assert files(room), f"{room} holds no Python file: the rule checks nothing"
    bad = offending(room, forbidden)
    assert not bad, f"{why}:\n" + "\n".join(bad)


def test_the_rule_sees_a_lazy_import(tmp_path):
    """The check reads imports inside functions too: a forbidden one there is found."""
    file = tmp_path / "lazy.py"
    file.write_text("def f():\n    from harness.run import suite\n    import variants.tf2_tape\n")
    assert {"harness.run", "harness.run.suite", "variants.tf2_tape"} <= imports(file)
