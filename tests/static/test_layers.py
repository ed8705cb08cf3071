"""The layer contract of pyproject.toml ([tool.importlinter]: entry points -> pipelines -> domain -> io/config)
holds on the repository, and breaks, naming the import, when a lower layer imports a higher one."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("lib", "ml", "jobs", "tools", "bench")  # the contract's root packages


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300)


def _python_only(folder: str, names: list[str]) -> set[str]:
    return {n for n in names if n == "__pycache__" or (not n.endswith(".py") and not (Path(folder) / n).is_dir())}


def test_the_repository_keeps_the_layers():
    proc = lint_imports(ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "1 kept, 0 broken" in proc.stdout


def test_a_planted_back_import_breaks_the_contract(tmp_path):
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=_python_only)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    assert lint_imports(tmp_path).returncode == 0, "the copy must pass before the plant"
    config = tmp_path / "lib" / "config.py"
    config.write_text(config.read_text() + "\nimport lib.batch.stages  # planted: io/config importing a pipeline\n")

    proc = lint_imports(tmp_path)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "BROKEN" in proc.stdout
    assert "lib.config -> lib.batch.stages" in proc.stdout
