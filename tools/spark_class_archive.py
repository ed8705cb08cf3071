"""Write the JVM class archive of a local Spark driver (``lib.spark.CLASS_ARCHIVE``), used by every
local Spark process afterwards (``lib.spark.session_conf``): ``make setup`` runs it once the jars and
the virtualenv are in place.

    python -m tools.spark_class_archive [--out var/jars/spark/classes.jsa]

It starts a local session the way the jobs do, runs what they all run first (a Spark job, a small Delta
table written, registered and read back in a throwaway lake), and lets the JVM dump the classes it
loaded at exit (``-XX:ArchiveClassesAtExit``, Java 13+). The archive is valid only for this JDK and this
classpath: a JVM that differs ignores it (quietly) and starts as before.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from pyspark import SparkContext

from lib.config import load_config
from lib.spark import CLASS_ARCHIVE, build_session


def build(out: Path) -> float:
    t0 = time.monotonic()
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")  # two setups at once must not share it
    tmp.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="shop-cds-") as work:
        cfg = load_config("local", environ={"SHOP__LAKE__ROOT": f"{work}/lake", "SHOP__PATHS__RUN_DIR": f"{work}/run",
                                            "SHOP__LAKE__CHECKPOINTS": f"{work}/checkpoints"})
        spark = build_session(cfg, "shop-class-archive", java_options=f"-XX:ArchiveClassesAtExit={tmp} -Xlog:cds=error")
        spark.sparkContext.setLogLevel("ERROR")
        table = f"{work}/lake/probe"
        spark.range(1000).selectExpr("id", "id % 7 AS k").write.format("delta").partitionBy("k").save(table)
        spark.sql(f"CREATE TABLE probe USING DELTA LOCATION '{table}'")
        spark.sql("SELECT k, count(*) FROM probe GROUP BY k").collect()
        spark.read.format("delta").load(table).where("k = 1").count()
        gateway = SparkContext._gateway
        if gateway is None:
            raise RuntimeError("no JVM gateway after the session started")
        proc = getattr(gateway, "proc", None)
        spark.stop()
        gateway.shutdown()
        if proc is not None:  # the JVM writes the archive as it exits
            proc.stdin.close()
            proc.wait(timeout=300)
    if not tmp.is_file() or tmp.stat().st_size == 0:
        raise RuntimeError(f"the JVM wrote no class archive at {tmp}")
    tmp.replace(out)
    return time.monotonic() - t0


def main(argv: list[str] | None = None) -> int:
    cfg = load_config("local")
    p = argparse.ArgumentParser(prog="python -m tools.spark_class_archive", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path(cfg.spark.jars_dir) / CLASS_ARCHIVE)
    args = p.parse_args(argv)
    seconds = build(args.out)
    print(f"class archive {args.out} ({args.out.stat().st_size / 1e6:.0f} MB) in {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
