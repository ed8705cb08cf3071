"""What the Spark command lines of ``jobs/ops`` share (``make sql``, ``make batch``): the config and a
Spark session, or the configuration mistake as one line on stderr (the caller then exits 2)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from lib.config import Config, ConfigError, load_config
from lib.spark import build_session

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def open_session(env: str | None, app_name: str) -> tuple[Config, SparkSession] | None:
    """``conf/<env>.yaml`` (default ``SHOP_ENV`` or local) and a batch session named ``app_name``; None after
    printing the :class:`~lib.config.ConfigError` (a bad setting, no jars: run make setup)."""
    try:
        cfg = load_config(env)
        return cfg, build_session(cfg, app_name=app_name, batch=True)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None
