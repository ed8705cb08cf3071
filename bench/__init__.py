"""Benchmarks (``make bench`` and its parts); see docs/performance.md."""

from __future__ import annotations

import os

from lib.config import ENV_PREFIX, Config, load_config


def bench_config(**overrides: str) -> Config:
    """The local config as a benchmark runs it: the shell's ``SHOP__…`` overrides (an A/B such as
    ``env 'SHOP__SPARK__EXTRA__spark.x=v' make bench-gold``) with the benchmark's own on top (its
    lake, run folder: ``overrides``, by their variable names)."""
    shell = {k: v for k, v in os.environ.items() if k.upper().startswith(ENV_PREFIX.upper())}
    return load_config("local", environ={**shell, **overrides})
