"""The benchmark report of ``make bench`` (bench/run_all.py): each part's last JSON line kept as
``bench/results/<part>.json``, one summary (the figures issue #15 asks for, a Dataproc sizing table
derived from them) and PNG plots of each figure against load or volume.

Pure functions over the parts' JSON, so that the summary and the plots can be redrawn from kept results
(``make bench-report``) and tested without running a benchmark.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# The targets of issue #15, beside each figure in the summary
TARGETS = {"streaming_eps_sustained": 2000, "freshness_p95_s": 10, "email_p99_s": 60, "batch_full_s": 1200,
           "backfill_rows_per_s": 100_000, "spark_duckdb_ratio": 5}
FULL_HISTORY_ROWS = 20_700_000  # the real five months (docs/dataset-facts)
# the backfill size the summary's headline figures and targets are judged at (the strictest: Spark's fixed
# costs weigh most on a small file); other sizes are kept as ``backfill_<rows>`` and listed beside it
HEADLINE_BACKFILL_ROWS = 1_000_000
BACKFILL_FIGURES = ("backfill_s", "rows_per_s", "duckdb_clean_s", "spark_duckdb_ratio", "spark_duckdb_cleaning_ratio")
# the step-load runs drawn: 30 min of shop time at the measured rate live (the summary's), and a run
# whose warm-up was at a lower rate (more steps, less live state)
STREAMING_PARTS = ("streaming", "streaming_fast_warmup")


def write_part(results: Path, part: str, figures: dict, *, command: list[str], seconds: float, exit_code: int) -> Path:
    """Keep one part's figures with how and when they were measured."""
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{part}.json"
    body = {"part": part, "measured_at": datetime.now(UTC).isoformat(timespec="seconds"), "command": command,
            "seconds": round(seconds, 1), "exit_code": exit_code, "figures": figures}
    path.write_text(json.dumps(body, indent=1, default=str) + "\n")
    return path


def read_parts(results: Path) -> dict[str, dict]:
    """Every kept part (``<part>.json`` except the summary), by part name."""
    parts = {}
    for path in sorted(results.glob("*.json")):
        if path.stem == "summary":
            continue
        body = json.loads(path.read_text())
        parts[body.get("part", path.stem)] = body
    return parts


def _figures(parts: dict[str, dict], name: str) -> dict[str, Any]:
    return (parts.get(name) or {}).get("figures") or {}


def batch_runs(parts: dict[str, dict]) -> list[dict]:
    """The batch chain runs (parts ``batch_<rows>``), smallest first: rows, total and per-stage seconds."""
    runs = []
    for name, body in parts.items():
        if not name.startswith("batch_"):
            continue
        f = body.get("figures") or {}
        if f.get("total_s") is None:
            continue
        runs.append({"rows": int(name.split("_", 1)[1]), "total_s": f["total_s"], "stages_s": f.get("stages_s") or {}})
    return sorted(runs, key=lambda r: r["rows"])


def backfill_part(rows: int) -> str:
    """The name a backfill-profile run of ``rows`` events is kept under (1M: ``backfill``, the headline)."""
    return "backfill" if rows == HEADLINE_BACKFILL_ROWS else f"backfill_{rows}"


def backfill_runs(parts: dict[str, dict]) -> list[dict]:
    """The backfill-profile runs (parts ``backfill`` and ``backfill_<rows>``), smallest first."""
    runs = []
    for name, body in parts.items():
        if name != "backfill" and not name.startswith("backfill_"):
            continue
        f = body.get("figures") or {}
        if f.get("backfill_s") is None:
            continue
        runs.append({"part": name, "rows": f.get("rows"), **{k: f.get(k) for k in BACKFILL_FIGURES}})
    return sorted(runs, key=lambda r: r["rows"] or 0)


def summarize(parts: dict[str, dict], cores: int) -> dict[str, Any]:
    """The figures of issue #15 and the sizing table, from the parts kept; a part never measured gives None."""
    stream, state = _figures(parts, "streaming"), _figures(parts, "state")
    backfill, kafka = _figures(parts, "backfill"), _figures(parts, "kafka")
    runs = batch_runs(parts)
    biggest = runs[-1] if runs else None
    eps = stream.get("streaming_eps_sustained")
    # the latencies at the sustained rate; when no step held, those of the highest step tried (why none held)
    steps = stream.get("steps") or []
    top = max(steps, key=lambda st: st.get("eps") or 0) if steps and not eps else {}
    summary: dict[str, Any] = {
        "bench": "all",
        "streaming_eps_sustained": eps,
        "gap_minutes": stream.get("gap_minutes"),
        "freshness_p95_s": stream.get("freshness_p95_s") if eps else top.get("freshness_p95_s"),
        "email_p99_s": stream.get("email_p99_s") if eps else top.get("email_p99_s"),
        # every step tried (the sustained rate is the highest that held; none held = 0.0)
        "streaming_steps": [{k: st.get(k) for k in ("eps", "holds", "freshness_p95_s", "email_p99_s", "live_sessions_max")}
                            for st in stream.get("steps") or []],
        "missed": stream.get("missed"),
        "duplicates": stream.get("duplicates"),
        "batch_full_s": biggest["total_s"] if biggest else None,
        "batch_rows": biggest["rows"] if biggest else None,
        "backfill_rows_per_s": backfill.get("rows_per_s"),
        "spark_duckdb_ratio": backfill.get("spark_duckdb_ratio"),
        "spark_duckdb_cleaning_ratio": backfill.get("spark_duckdb_cleaning_ratio"),
        # the same figures at every size measured (the ones above are the headline size's)
        "backfill_by_rows": backfill_runs(parts),
        "kafka_consume_eps": kafka.get("kafka_consume_eps"),
        "session_window_batch_s_p95": _figures(parts, "session_window").get("after_gap_batch_s_p95"),
        "session_python_s_p95": state.get("python_s_p95"),
        "spark_kafka_read_eps": kafka.get("spark_kafka_read_eps"),
        "cores": cores,
        "measured_at": {name: body.get("measured_at") for name, body in sorted(parts.items())},
    }
    summary["targets"] = {k: {"target": v, "value": summary.get(k), "met": _met(k, summary.get(k), v)}
                          for k, v in TARGETS.items()}
    if (summary["batch_rows"] or 0) < FULL_HISTORY_ROWS:  # the 20-min target is for the five months only
        summary["targets"]["batch_full_s"]["met"] = None
    for key in ("backfill_rows_per_s", "spark_duckdb_ratio"):  # judged at the headline size, whatever else ran
        summary["targets"][key]["rows"] = backfill.get("rows")
    summary["sizing"] = sizing(summary, state, runs, cores)
    return summary


HIGHER_IS_BETTER = {"streaming_eps_sustained", "backfill_rows_per_s"}


def _met(key: str, value, target) -> bool | None:
    if value is None:
        return None
    return value >= target if key in HIGHER_IS_BETTER else value <= target


def sizing(summary: dict, state: dict, runs: list[dict], cores: int) -> dict[str, Any]:
    """Per-vCPU figures a Dataproc cluster is sized from (linear in vCPUs: an assumption the table
    states, not a measurement of a cluster)."""
    eps = summary.get("streaming_eps_sustained")
    out: dict[str, Any] = {
        "events_per_s_per_vcpu": round(eps / cores) if eps else None,
        "state_mb_per_100k_live_sessions": state.get("state_mb_per_100k_live"),
        "session_python_us_per_live_session": state.get("python_us_per_live_session"),
        "backfill_rows_per_s_per_vcpu": round(summary["backfill_rows_per_s"] / cores)
        if summary.get("backfill_rows_per_s") else None,
        "batch_rows_per_vcpu_s": {str(r["rows"]): round(r["rows"] / r["total_s"] / cores) for r in runs if r["total_s"]},
    }
    per_vcpu = out["batch_rows_per_vcpu_s"].get(str(runs[-1]["rows"])) if runs else None
    out["vcpus_for_full_history_in_20_min"] = (round(FULL_HISTORY_ROWS / (per_vcpu * 1200), 1) if per_vcpu else None)
    out["vcpus_for_eps"] = ({str(target): max(1, -(-target // out["events_per_s_per_vcpu"]))
                             for target in (2000, 5000, 10000)} if out["events_per_s_per_vcpu"] else None)
    return out


def plot(parts: dict[str, dict], results: Path) -> list[Path]:
    """PNG plots of the figures against load and volume; returns the files written."""
    # deferred: matplotlib loads in ~1 s and only the report draws; Agg before pyplot (no display here)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # deferred: after matplotlib.use("Agg"), which must come first

    written = []
    stream_runs = {name: _figures(parts, name).get("steps") or [] for name in STREAMING_PARTS}
    if any(stream_runs.values()):
        fig, ax = plt.subplots(figsize=(7, 4))
        for (name, steps), color in zip(stream_runs.items(), ("C0", "C1"), strict=True):
            if not steps:
                continue
            x = [s["eps"] for s in steps]
            ax.plot(x, _nums(s.get("freshness_p95_s") for s in steps), "o-", color=color,
                    label=f"{name}: freshness p95 (s)")
            ax.plot(x, _nums(s.get("email_p99_s") for s in steps), "s--", color=color, label=f"{name}: email p99 (s)")
            ax.plot(x, _nums(((s.get("batch_s") or {}).get("sessions") or {}).get("p95") for s in steps), "^:",
                    color=color, label=f"{name}: sessions batch p95 (s)")
        ax.axhline(10, color="grey", lw=0.8, ls=":")
        ax.axhline(60, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("load, events/s (1:1 event-time pacing)")
        ax.set_ylabel("seconds")
        ax.set_title(f"Full app on {_figures(parts, 'streaming').get('cores', '?')} cores, "
                     f"{_figures(parts, 'streaming').get('gap_minutes')}-min session gap")
        ax.legend(fontsize=8)
        written.append(_save(fig, results / "streaming_steps.png"))
    runs = batch_runs(parts)
    if runs:
        fig, ax = plt.subplots(figsize=(7, 4))
        rows = [r["rows"] / 1e6 for r in runs]
        stages = sorted({s for r in runs for s in r["stages_s"]}, key=lambda s: -max(r["stages_s"].get(s, 0) for r in runs))
        for stage in stages:
            ax.plot(rows, _nums(r["stages_s"].get(stage) for r in runs), "o-", label=stage)
        ax.plot(rows, [r["total_s"] for r in runs], "k*-", label="total")
        ax.axhline(1200, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("rows (millions)")
        ax.set_ylabel("seconds")
        ax.set_title("make batch: stage durations against volume")
        ax.legend(fontsize=7)
        written.append(_save(fig, results / "batch_growth.png"))
    backfills = [(r["rows"], _figures(parts, r["part"])) for r in backfill_runs(parts) if r["duckdb_clean_s"]]
    if backfills:
        fig, axes = plt.subplots(1, len(backfills), figsize=(6 * len(backfills), 3.5), squeeze=False)
        for ax, (rows, f) in zip(axes[0], backfills, strict=True):
            laps = f.get("laps_s") or {}
            names = ["DuckDB cleaning", *[f"Spark {k}" for k in laps], "Spark backfill (all)"]
            ax.barh(names, [f["duckdb_clean_s"], *laps.values(), f["backfill_s"]])
            ax.set_xlabel(f"seconds for {(rows or 0) / 1e6:.1f}M rows (warm)")
            ax.set_title(f"Backfill against DuckDB: ratio {f.get('spark_duckdb_ratio')} "
                         f"(cleaning {f.get('spark_duckdb_cleaning_ratio')})", fontsize=9)
        written.append(_save(fig, results / "backfill_vs_duckdb.png"))
    plt.close("all")
    return written


def _nums(values) -> list[float]:
    """Plot values, a missing one (None; inf = never seen) as a gap."""
    return [float("nan") if v is None or v == float("inf") else float(v) for v in values]


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    fig.clf()
    return path
