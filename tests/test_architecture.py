"""The rules of "How it fits together" (docs/architecture.md), checked on the source."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "fnn_tui"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_core_imports_no_ui_and_no_store() -> None:
    code = (
        "import sys, fnn_tui.core.trainer, fnn_tui.core.catalog, fnn_tui.core.status;"
        "import fnn_tui.core.engines.fused_engine, fnn_tui.core.engines.torch_engine;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'rich', 'typer')"
        " or m.startswith(('fnn_tui.store', 'fnn_tui.runs', 'fnn_tui.tui', 'fnn_tui.cli', 'fnn_tui.report'))];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_store_neither_trains_nor_spawns_nor_signals() -> None:
    forbidden = ("subprocess", "signal", "multiprocessing", "concurrent.futures", "fnn_tui.core.trainer",
                 "fnn_tui.runs", "fnn_tui.cli", "fnn_tui.tui")
    for path in (PACKAGE / "store").glob("*.py"):
        found = {m for m in _imports(path) if m.startswith(forbidden)}
        assert not found, f"{path.name} imports {found}"
        assert "os.kill" not in path.read_text(encoding="utf-8"), path.name


def test_sql_lives_in_the_store_only() -> None:
    sql = re.compile(r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|BEGIN\s+IMMEDIATE)\b")
    offenders = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                 if "store" not in p.parts and sql.search(p.read_text(encoding="utf-8"))]
    assert offenders == []


def test_statuses_are_not_spelled_out_outside_their_type() -> None:
    """Status words as string literals compared or listed belong to RunStatus alone."""
    words = "queued|running|finished|diverged|failed|cancelled|interrupted|crashed"
    literal = re.compile(rf"""(==|!=|\bin\b)\s*\(?["']({words})["']|\(["']({words})["'],\s*["']({words})["']""")
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "status.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if literal.search(line):
                offenders.append(f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}")
    assert offenders == []
