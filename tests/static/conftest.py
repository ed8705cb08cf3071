"""Shared helpers of the static infrastructure checks (no cloud, no network)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TF_DIR = ROOT / "terraform"
WORKFLOWS_DIR = ROOT / ".github" / "workflows"


def unquote(key: str) -> str:
    """python-hcl2 >= 8 keeps the quotes of block labels ("google_x"); 7.x drops them."""
    return key[1:-1] if len(key) >= 2 and key[0] == key[-1] == '"' else key


def clean(node):
    """Drop python-hcl2 8.x metadata keys (__comments__, __is_block__, __start_line__, ...)."""
    if isinstance(node, dict):
        return {k: clean(v) for k, v in node.items() if not (k.startswith("__") and k.endswith("__"))}
    if isinstance(node, list):
        return [clean(v) for v in node]
    return node


def strip_hcl_comments(text: str) -> str:
    """Remove #, // and /* */ comments outside string literals (good enough for our HCL: no heredocs)."""
    out: list[str] = []
    i, n, in_str = 0, len(text), False
    while i < n:
        c = text[i]
        if in_str:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if c == '"':
                in_str = False
            i += 1
            continue
        if c == '"':
            in_str = True
            out.append(c)
            i += 1
        elif c == "#" or text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def tf_files() -> list[Path]:
    return sorted(TF_DIR.glob("*.tf"))


@pytest.fixture(scope="session")
def hcl2():
    return pytest.importorskip("hcl2", reason="python-hcl2 is not installed (requirements/dev.txt)")


@pytest.fixture(scope="session")
def parsed(hcl2) -> dict[str, dict]:
    docs = {}
    for path in tf_files():
        with path.open() as fh:
            docs[path.name] = clean(hcl2.load(fh))
    return docs


def make_targets() -> set[str]:
    """Targets of the main Makefile and the mk/*.mk files it includes."""
    files = [p for p in [ROOT / "Makefile", *sorted((ROOT / "mk").glob("*.mk"))] if p.is_file()]
    targets: set[str] = set()
    rule = re.compile(r"^([A-Za-z0-9_.%/-]+(?:[ \t]+[A-Za-z0-9_.%/-]+)*)[ \t]*:(?!=)")
    for path in files:
        for line in path.read_text().splitlines():
            if line.startswith(("\t", "#", " ")):
                continue
            m = rule.match(line)
            if m:
                targets.update(m.group(1).split())
    return targets
