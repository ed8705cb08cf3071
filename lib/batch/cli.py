"""What the batch entry points share (``jobs/batch/run.py`` and ``make batch``): ``--env``, one-line
errors, the result as one JSON line.

``jobs/batch/run.py <stage>`` parses the stage's options with :func:`parser`, then ``sys.exit(main(...))``.
Exit codes: 0 done, 2 a configuration or command-line mistake, 1 the data or the registry is not in
a state the job can work from (one line saying which); other failures keep their stack trace.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from lib.config import ConfigError, load_config
from lib.spark import build_session  # light: pyspark loads when a session is built


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        self.exit(2, f"{self.prog}: {message}\n")


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = _Parser(prog=prog, description=description)
    p.add_argument("--env", default=None, help="config: conf/<env>.yaml (default SHOP_ENV or local)")
    return p


def expected_errors() -> tuple[type[Exception], ...]:
    """Failures with a one-line message meant for the user (not bugs)."""
    # deferred: a command-line mistake is answered before pyspark loads (the models' refusals: ml/errors.py, light)
    from lib.batch.maintain import MaintenanceError
    from lib.batch.stages import MissingInput
    from lib.data.files import DataFileError
    from ml.errors import InsufficientData, NoChampion

    return DataFileError, InsufficientData, NoChampion, MaintenanceError, MissingInput


def main(prog: str, stage: str | Callable[..., dict], args: argparse.Namespace, options: Sequence[str] = ()) -> int:
    """Load the config, build the session, run ``stage(spark, cfg, **options)``, print its JSON.
    ``stage``: the function, or its name in ``lib.batch.stages`` (loaded once the config is right)."""
    try:
        cfg = load_config(args.env)
        if isinstance(stage, str):
            # deferred: pyspark loads once the config is right (each stage then loads its own pipeline)
            from lib.batch.stages import STAGES

            stage = STAGES[stage]
        spark = build_session(cfg, app_name=f"shop-{prog}", batch=True)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        result = stage(spark, cfg, **{k: getattr(args, k) for k in options})
    except expected_errors() as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, default=str))
    return 0
