"""The benchmarks' config: the shell's SHOP__ overrides reach them (an A/B of a Spark setting), and a
benchmark's own settings (its lake, its run folder) win over the shell's."""

from __future__ import annotations

import os

from bench import bench_config


def test_a_shell_override_reaches_a_benchmark_and_its_own_settings_win(monkeypatch, tmp_path):
    monkeypatch.setenv("SHOP__SPARK__EXTRA__spark.sql.optimizer.canChangeCachedPlanOutputPartitioning", "false")
    monkeypatch.setenv("SHOP__LAKE__ROOT", str(tmp_path / "shell-lake"))
    monkeypatch.setenv("UNRELATED_VARIABLE", "x")
    cfg = bench_config(SHOP__LAKE__ROOT=str(tmp_path / "bench-lake"))
    assert cfg.spark.extra == {"spark.sql.optimizer.canChangeCachedPlanOutputPartitioning": "false"}
    assert str(cfg.lake.root) == str(tmp_path / "bench-lake")


def test_without_shell_overrides_a_benchmark_runs_the_local_defaults(monkeypatch):
    for name in [k for k in os.environ if k.upper().startswith("SHOP__")]:
        monkeypatch.delenv(name)
    assert bench_config().spark.extra == {}
