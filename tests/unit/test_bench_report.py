"""The report of ``make bench`` (tools/bench_report.py): the summary of issue #15's figures, the sizing
table derived from them and the plots, from kept part results (no benchmark runs here)."""

from __future__ import annotations

import json

import pytest

from tools import bench_report


def _keep(results, part, figures):
    bench_report.write_part(results, part, figures, command=["python", "-m", f"bench.{part}"], seconds=1.0,
                            exit_code=0)


@pytest.fixture
def kept(tmp_path):
    _keep(tmp_path, "kafka", {"kafka_consume_eps": 410_000, "spark_kafka_read_eps": 150_000})
    _keep(tmp_path, "backfill", {"rows": 1_000_000, "rows_per_s": 28_400, "backfill_s": 35.2, "duckdb_clean_s": 3.7,
                                 "spark_duckdb_ratio": 9.5, "spark_duckdb_cleaning_ratio": 7.8,
                                 "laps_s": {"bronze": 5.5, "validate": 12.9}})
    _keep(tmp_path, "state", {"state_mb_per_100k_live": 76.0, "python_us_per_live_session": 19.4})
    _keep(tmp_path, "streaming", {"streaming_eps_sustained": 1990.0, "gap_minutes": 30, "freshness_p95_s": 6.1,
                                  "email_p99_s": 41.0, "missed": 0, "duplicates": 0, "cores": 2, "steps": [
                                      {"eps": 1000.0, "freshness_p95_s": 4.0, "email_p99_s": 35.0,
                                       "batch_s": {"sessions": {"p95": 3.0}}},
                                      {"eps": 1990.0, "freshness_p95_s": 6.1, "email_p99_s": 41.0,
                                       "batch_s": {"sessions": {"p95": 4.5}}},
                                      {"eps": 2980.0, "freshness_p95_s": None, "email_p99_s": 200.0,
                                       "batch_s": {"sessions": {"p95": 9.0}}}]})
    _keep(tmp_path, "batch_5000000", {"total_s": 1000.0, "stages_s": {"backfill": 200.0, "gold": 300.0}})
    _keep(tmp_path, "batch_1000000", {"total_s": 400.0, "stages_s": {"backfill": 40.0, "gold": 60.0}})
    return tmp_path


def test_the_summary_carries_each_figure_of_the_issue_from_its_part(kept):
    s = bench_report.summarize(bench_report.read_parts(kept), cores=2)
    assert s["streaming_eps_sustained"] == 1990.0
    assert (s["gap_minutes"], s["freshness_p95_s"], s["email_p99_s"]) == (30, 6.1, 41.0)
    assert (s["batch_rows"], s["batch_full_s"]) == (5_000_000, 1000.0)  # the biggest run, not the last written
    assert (s["spark_duckdb_ratio"], s["kafka_consume_eps"], s["backfill_rows_per_s"]) == (9.5, 410_000, 28_400)
    assert [st["eps"] for st in s["streaming_steps"]] == [1000.0, 1990.0, 2980.0]
    assert set(s["measured_at"]) == {"kafka", "backfill", "state", "streaming", "batch_1000000", "batch_5000000"}


def test_each_target_says_whether_it_is_met_in_its_direction(kept):
    t = bench_report.summarize(bench_report.read_parts(kept), cores=2)["targets"]
    assert t["streaming_eps_sustained"] == {"target": 2000, "value": 1990.0, "met": False}  # higher is better
    assert t["freshness_p95_s"]["met"] is True and t["email_p99_s"]["met"] is True  # lower is better
    assert t["spark_duckdb_ratio"]["met"] is False
    assert t["backfill_rows_per_s"] == {"target": 100_000, "value": 28_400, "met": False,  # higher is better
                                        "rows": 1_000_000}  # judged at the headline size
    assert t["batch_full_s"]["met"] is None  # 1000 s <= 20 min, but at 5M rows: the target is for 20.7M


def test_the_sizing_table_is_per_vcpu_and_rounds_vcpus_up(kept):
    z = bench_report.summarize(bench_report.read_parts(kept), cores=2)["sizing"]
    assert z["events_per_s_per_vcpu"] == 995
    assert z["vcpus_for_eps"] == {"2000": 3, "5000": 6, "10000": 11}
    assert z["batch_rows_per_vcpu_s"] == {"1000000": 1250, "5000000": 2500}
    assert z["vcpus_for_full_history_in_20_min"] == round(20_700_000 / (2500 * 1200), 1)
    assert z["state_mb_per_100k_live_sessions"] == 76.0
    assert z["backfill_rows_per_s_per_vcpu"] == 14_200


def test_when_no_step_held_the_latencies_are_those_of_the_highest_step_tried(tmp_path):
    _keep(tmp_path, "streaming", {"streaming_eps_sustained": 0.0, "freshness_p95_s": None, "email_p99_s": None,
                                  "steps": [{"eps": 1996.0, "holds": False, "freshness_p95_s": 10.98, "email_p99_s": 44.3}]})
    s = bench_report.summarize(bench_report.read_parts(tmp_path), cores=2)
    assert (s["freshness_p95_s"], s["email_p99_s"]) == (10.98, 44.3)
    assert s["targets"]["freshness_p95_s"]["met"] is False and s["targets"]["email_p99_s"]["met"] is True
    assert s["targets"]["streaming_eps_sustained"]["met"] is False


def test_the_batch_target_is_judged_on_the_full_five_months_only(kept):
    _keep(kept, "batch_20700000", {"total_s": 1500.0, "stages_s": {"backfill": 700.0}})
    s = bench_report.summarize(bench_report.read_parts(kept), cores=2)
    assert (s["batch_rows"], s["targets"]["batch_full_s"]["met"]) == (20_700_000, False)


def test_backfill_sizes_are_listed_beside_the_headline_which_alone_is_judged(kept):
    _keep(kept, bench_report.backfill_part(20_700_000), {
        "rows": 20_700_000, "rows_per_s": 68_416, "backfill_s": 302.6, "duckdb_clean_s": 60.3,
        "spark_duckdb_ratio": 5.0, "spark_duckdb_cleaning_ratio": 4.2, "laps_s": {"bronze": 42.4}})
    s = bench_report.summarize(bench_report.read_parts(kept), cores=2)
    assert [(r["part"], r["rows"], r["spark_duckdb_ratio"]) for r in s["backfill_by_rows"]] == [
        ("backfill", 1_000_000, 9.5), ("backfill_20700000", 20_700_000, 5.0)]
    assert s["spark_duckdb_ratio"] == 9.5 and s["backfill_rows_per_s"] == 28_400  # the headline: 1M
    assert s["targets"]["spark_duckdb_ratio"] == {"target": 5, "value": 9.5, "met": False, "rows": 1_000_000}
    written = bench_report.plot(bench_report.read_parts(kept), kept)
    assert "backfill_vs_duckdb.png" in [p.name for p in written]


def test_a_part_never_measured_is_none_not_zero(tmp_path):
    _keep(tmp_path, "kafka", {"kafka_consume_eps": 410_000})
    s = bench_report.summarize(bench_report.read_parts(tmp_path), cores=2)
    assert s["streaming_eps_sustained"] is None and s["batch_full_s"] is None
    assert s["targets"]["streaming_eps_sustained"]["met"] is None
    assert s["sizing"]["events_per_s_per_vcpu"] is None and s["sizing"]["vcpus_for_eps"] is None


def test_a_kept_part_says_how_and_when_it_was_measured_and_the_summary_is_not_a_part(kept):
    body = json.loads((kept / "kafka.json").read_text())
    assert body["command"] == ["python", "-m", "bench.kafka"] and body["exit_code"] == 0 and body["measured_at"]
    (kept / "summary.json").write_text(json.dumps({"bench": "all"}))
    assert "summary" not in bench_report.read_parts(kept)


def test_the_plots_are_png_files_of_the_steps_the_batch_growth_and_the_backfill(kept):
    written = bench_report.plot(bench_report.read_parts(kept), kept)
    assert sorted(p.name for p in written) == ["backfill_vs_duckdb.png", "batch_growth.png", "streaming_steps.png"]
    for p in written:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5_000


def test_no_plot_for_parts_that_were_not_kept(tmp_path):
    _keep(tmp_path, "kafka", {"kafka_consume_eps": 410_000})
    assert bench_report.plot(bench_report.read_parts(tmp_path), tmp_path) == []
