"""``make setup`` leaves the virtualenvs compiled to bytecode (scripts/setup.sh, scripts/setup_tools.sh).

uv installs without compiling, and where ``PYTHONDONTWRITEBYTECODE`` is set (CI and container images
often set it) Python never writes a ``.pyc`` itself: every process — each ``make`` command, the
streaming app, Spark's Python workers, ``mlflow server`` — would compile pandas, pyspark and mlflow
from source again (``import mlflow`` 9.0 s instead of 4.0 s on the 2-core machine). Checked on every
file of the heavy packages, not only on what this test process happened to import.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from .conftest import ROOT

HEAVY = ("pyspark", "pandas", "pyarrow", "mlflow", "sklearn", "xgboost", "delta", "deltalake")


def _uncompiled(package_dir: Path) -> list[Path]:
    return [py for py in package_dir.rglob("*.py") if not Path(importlib.util.cache_from_source(str(py))).is_file()]


@pytest.mark.parametrize("name", HEAVY)
def test_the_virtualenv_holds_bytecode_for_every_file_of(name):
    spec = importlib.util.find_spec(name)  # located, not imported
    assert spec is not None and spec.submodule_search_locations, f"{name} is not installed in this virtualenv"
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    missing = _uncompiled(package_dir)
    assert not missing, f"{len(missing)} files of {name} without bytecode (run make setup), e.g. {missing[:3]}"


def test_the_tools_virtualenv_holds_bytecode():
    found = sorted((ROOT / ".venv-tools" / "lib").glob("python3*/site-packages/checkov"))
    assert found, "no checkov in .venv-tools (run make setup)"
    missing = _uncompiled(found[0])
    assert not missing, f"{len(missing)} files of checkov without bytecode (run make setup), e.g. {missing[:3]}"
