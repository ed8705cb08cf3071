"""Imports sit at the top of the module, where they show the dependency graph. An import inside a function
is allowed only with its reason: a ``# deferred: <reason>`` comment on the import's line, or on a comment
line directly above its contiguous block of import lines (one comment covers the block). Reasons that
hold: a package the image running the module lacks, a heavy import a light command must not pay, an
import cycle, an import-time side effect that must come later (docs/architecture.md "Imports")."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

from .conftest import ROOT

PACKAGES = ("lib", "ml", "jobs", "tools")
MARK = re.compile(r"#\s*deferred:\s*\S")


def _comments(source: str) -> dict[int, str]:
    """Line number -> the comment on that line."""
    out: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            out[tok.start[0]] = tok.string
    return out


def _nested_imports(tree: ast.AST) -> list[tuple[ast.stmt, list[ast.stmt]]]:
    """Every import inside a function (at any depth), with the statement list it sits in."""
    found: list[tuple[ast.stmt, list[ast.stmt]]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        inside = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            block = getattr(node, field, None)
            if isinstance(block, list) and inside:
                found.extend((s, block) for s in block if isinstance(s, ast.Import | ast.ImportFrom))
        for child in ast.iter_child_nodes(node):
            visit(child, inside)

    visit(tree, False)
    return found


def undocumented(source: str, name: str = "<source>") -> list[str]:
    """``name:line: import ...`` for every in-function import of ``source`` without its ``# deferred:``."""
    tree = ast.parse(source)
    comments = _comments(source)
    lines = source.splitlines()
    bad = []
    for stmt, block in _nested_imports(tree):
        end = stmt.end_lineno or stmt.lineno
        if any(MARK.search(comments.get(n, "")) for n in range(stmt.lineno, end + 1)):
            continue
        # the contiguous block of import lines this one belongs to: earlier imports ending right above
        first = stmt.lineno
        for prev in reversed(block[:block.index(stmt)]):
            if isinstance(prev, ast.Import | ast.ImportFrom) and (prev.end_lineno or prev.lineno) == first - 1:
                first = prev.lineno
            else:
                break
        # the comment-only lines directly above the block
        n = first - 1
        marked = False
        while n >= 1 and lines[n - 1].strip().startswith("#"):
            marked = marked or bool(MARK.search(lines[n - 1]))
            n -= 1
        if not marked:
            bad.append(f"{name}:{stmt.lineno}: {lines[stmt.lineno - 1].strip()}")
    return bad


def scan(root: Path, packages: tuple[str, ...] = PACKAGES) -> list[str]:
    out = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            out += undocumented(path.read_text(), str(path.relative_to(root)))
    return out


def test_every_import_inside_a_function_says_why_it_is_deferred():
    bad = scan(ROOT)
    assert not bad, (f"{len(bad)} imports inside functions without a '# deferred: <reason>' comment (hoist them "
                     "to the top, or say why they cannot be):\n" + "\n".join(bad))


# --- the check itself can fail ---------------------------------------------------------------------------------
def test_an_unexplained_import_in_a_function_is_reported_with_its_line():
    source = "import os\n\n\ndef f():\n    x = 1\n    import json\n    return json, x\n"
    assert undocumented(source, "m.py") == ["m.py:6: import json"]


def test_methods_nested_functions_and_branches_count():
    source = ("class C:\n    def m(self):\n        if self:\n            from a import b\n"
              "        def g():\n            import c\n        try:\n            import d\n"
              "        except ImportError:\n            import e\n")
    assert [b.split(":")[1] for b in undocumented(source)] == ["4", "6", "8", "10"]


def test_module_level_and_type_checking_imports_are_not_in_functions():
    source = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pandas\n"
              "try:\n    import yaml\nexcept ImportError:\n    yaml = None\nclass C:\n    import json\n")
    assert undocumented(source) == []


def test_a_comment_on_the_line_or_above_the_block_explains_it():
    source = ("def f():\n    import a  # deferred: not in the image\n"
              "    # deferred: heavy, the light path skips it\n    import b\n    from c import (\n        d,\n    )\n"
              "\n    import e\n"
              "    x = 1\n    # deferred: cycle with m\n    # (m imports this module at its top)\n    import g\n"
              "    from h import (  # deferred: side effect at import\n        i,\n    )\n")
    assert undocumented(source, "m.py") == ["m.py:9: import e"]


def test_a_comment_without_a_reason_or_another_comment_does_not_count():
    source = ("def f():\n    import a  # deferred:\n    # imported here, not at the top\n    import b\n"
              "    import c  # noqa: PLC0415\n")
    assert [b.split(":")[1] for b in undocumented(source)] == ["2", "4", "5"]
