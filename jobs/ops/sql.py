"""``make sql``: a Spark SQL shell over the lake, every Delta table registered as ``<layer>.<name>``.

    python -m jobs.ops.sql [--env local] [-e "SELECT ..."]...

With ``-e`` it runs the statements and exits (scriptable); without, it reads statements ending in
``;`` from the terminal (``quit;`` or Ctrl-D to leave). A failing statement prints one line and the
shell goes on; with ``-e`` the exit code is 1. Why this and not Spark's own ``spark-sql``: docs/decisions.md
("make sql").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pyspark.errors import PySparkException

if __package__ in (None, ""):  # run as a file: make lib/ importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from jobs.ops._cli import open_session  # noqa: E402
from lib.batch.tables import register_tables  # noqa: E402

MAX_ROWS = 200


def _run(spark, statement: str) -> bool:
    try:
        df = spark.sql(statement)
        if df.columns:
            df.show(MAX_ROWS, truncate=False)
        return True
    except PySparkException as exc:
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        print(f"error: {first}", file=sys.stderr)
        return False


def _statements(stream):
    buf: list[str] = []
    prompt = "spark-sql> " if stream.isatty() else ""
    while True:
        try:
            line = input(prompt if not buf else "         > " if prompt else "")
        except EOFError:
            break
        buf.append(line)
        text = "\n".join(buf).strip()
        if text.endswith(";"):
            buf = []
            yield text.rstrip(";").strip()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m jobs.ops.sql", description=__doc__.splitlines()[0])
    p.add_argument("--env", default=None)
    p.add_argument("-e", "--execute", action="append", default=[], help="statement to run (repeatable)")
    args = p.parse_args(argv)
    opened = open_session(args.env, "shop-sql")
    if opened is None:
        return 2
    cfg, spark = opened
    names = register_tables(spark, cfg)
    if args.execute:
        return 0 if all([_run(spark, s) for s in args.execute]) else 1
    print(f"{len(names)} tables: {', '.join(names) or '(none yet: run make batch)'}", file=sys.stderr)
    for statement in _statements(sys.stdin):
        if statement.lower() in ("quit", "exit"):
            break
        if statement:
            _run(spark, statement)
    return 0


if __name__ == "__main__":
    sys.exit(main())
