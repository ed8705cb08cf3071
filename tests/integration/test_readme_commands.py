"""The README's commands, run as a user runs them: ``make demo``, then ``make status``, ``make mail``,
``make sql``, ``make uplift``, ``make batch`` and ``make stop`` — on a fresh lake, on an empty one and
after ``make demo`` on the same lake. Each exits 0 or says in one line why not (no traceback, no
panic), and ``make stop`` leaves no process behind.

Each scenario runs in a throwaway copy of the checkout with its own ports (tests/checkout.py), so the
developer's own demo, or the test session's broker, is never touched. ``make run-once`` is covered
by tests/integration/test_run_once.py through the same ``make`` target.

The tests of a scenario build on each other in file order (module-scoped checkouts), as the README's
commands do: run the module, not one test of it.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request

import pytest

from lib.batch import stages
from lib.config import load_config
from tests.checkout import Checkout, make_checkout

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEMO_EVENTS = 4000
# a small history the chain can learn from in a minute or two (the backtest needs >= 49 days here)
SMALL_BATCH = ["ROWS=20000", "BATCH_DAYS=50"]
SMALL_ML = {"SHOP__ML__MAX_PRODUCTS": "40", "SHOP__ML__GBT_MAX_ITER": "10", "SHOP__ML__GBT_MAX_DEPTH": "3",
            "SHOP__ML__BACKTEST_FOLDS": "2", "SHOP__ML__CLV_HORIZON_DAYS": "14", "SHOP__ML__TOP_K": "10"}
SMALL_PEERS = load_config("local", environ=SMALL_ML).ml.peers  # the chain's candidates besides the model


def reason(proc) -> str:
    """The command's last word on stderr: its last line before make's own ``make: *** ...`` summary."""
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not re.match(r"make(\[\d+\])?: \*\*\*", line)]
    return lines[-1] if lines else ""


def ok_or_one_line(proc, expect: str | None = None) -> None:
    """Exit 0, or a non-zero exit whose last word is one line of reason (matching ``expect``) — and
    never a Python traceback or a Rust panic, whatever the exit code. (Progress and the JVM's own log
    lines may stand before it.)"""
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out and "panicked" not in out, out[-4000:]
    if proc.returncode == 0:
        return
    said = reason(proc)
    assert said, f"exit {proc.returncode} without a word on stderr"
    if expect:
        assert re.search(expect, said), f"exit {proc.returncode}; last line of stderr: {said!r}"


def status_json(c: Checkout, proc: subprocess.CompletedProcess | None = None) -> dict:
    """``make status`` (or its result ``proc``, already run) exits 0; the figures through the module's --json."""
    proc = proc or c.make("status")  # the target prints the table; --json through the module for the figures
    ok_or_one_line(proc)
    assert proc.returncode == 0, proc.stderr
    out = subprocess.run([".venv/bin/python", "-m", "jobs.ops.status", "--json"], cwd=c.root, env=c.env, text=True,
                         capture_output=True, timeout=120, check=True).stdout
    return json.loads(out)


def reading_commands(c: Checkout, status: subprocess.CompletedProcess | None = None) -> dict[str, object]:
    """status, mail, sql, uplift: what a user looks at; each must exit 0 or give one line. ``status``: the
    result of a ``make status`` just run on the same lake (not run twice)."""
    results = {}
    for args, expect in ((["status"], None), (["mail"], None),
                         (["sql", "SQL=select count(*) as n from silver.events"], r"^error: .*TABLE_OR_VIEW_NOT_FOUND"),
                         (["uplift"], None)):
        proc = status if args == ["status"] and status is not None else c.make(*args, timeout=300)
        ok_or_one_line(proc, expect)
        results[args[0]] = proc
    return results


@pytest.fixture(scope="module")
def demo_checkout(tmp_path_factory):
    c = make_checkout(tmp_path_factory.mktemp("readme") / "shop")
    try:
        yield c
    finally:
        c.close()


def test_commands_on_a_fresh_lake(demo_checkout):
    r = reading_commands(demo_checkout)
    assert "no Delta tables under" in r["status"].stdout
    assert r["mail"].returncode == 0 and "0 messages" in r["mail"].stderr
    assert "nothing to compare yet" in r["uplift"].stdout
    assert not (demo_checkout.root / "var" / "lake" / "silver").exists(), "a reading command created a table"


def test_make_demo_runs_end_to_end_and_accounts_for_every_event(demo_checkout):
    c = demo_checkout
    proc = c.make("demo", env={"DEMO_EVENTS": str(DEMO_EVENTS)}, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    assert "Traceback" not in proc.stdout + proc.stderr and "panicked" not in proc.stderr
    # the printed table accounts for every event
    m = re.search(r"records: bronze ([\d,]+) = silver ([\d,]+) \+ quarantine ([\d,]+) \+ duplicates removed ([\d,]+)$",
                  proc.stdout, re.M)
    assert m, proc.stdout[-3000:]
    bronze, silver, quarantined, duplicates = (int(g.replace(",", "")) for g in m.groups())
    assert bronze == DEMO_EVENTS == silver + quarantined + duplicates
    assert silver > 0.9 * DEMO_EVENTS and quarantined > 0 and duplicates > 0
    assert "gold/sales_per_minute" in proc.stdout and "retarget/unsubscribes" in proc.stdout
    # the dashboard answers, with the demo's sales
    port = c.env["DASHBOARD_PORT"]
    assert f"http://127.0.0.1:{port}" in proc.stdout
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as page:
        assert page.status == 200 and b"<html" in page.read().lower()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/openapi.json", timeout=30) as api:
        assert api.status == 200 and json.loads(api.read())["paths"]
    # abandoned carts were mailed while the replay moved event time on
    mails = list((c.root / "var" / "mail" / "new").iterdir())
    assert mails, "no email in the demo's Maildir"


def test_commands_after_the_demo(demo_checkout):
    c = demo_checkout
    r = reading_commands(c)
    assert r["mail"].returncode == 0 and re.search(r"[1-9]\d* messages", r["mail"].stderr)
    assert r["uplift"].returncode == 0 and "[uplift] mailed:" in r["uplift"].stdout
    # sql answers now that silver exists (the reading commands' `make sql`: the same statement)
    assert r["sql"].returncode == 0, r["sql"].stderr[-2000:]
    status = status_json(c, r["status"])
    assert status["records"]["bronze"] == DEMO_EVENTS and status["records"]["pending"] == 0
    assert all(t["state"] == "ok" for t in status["tables"])


def test_batch_after_the_demo_refuses_a_split_history_in_one_line(demo_checkout):
    """The README's next command on the demo's lake: five months of history (2019) beside today's
    events must not become a model trained across the empty years."""
    proc = demo_checkout.make("batch", *SMALL_BATCH, env=SMALL_ML, timeout=900)
    assert proc.returncode != 0
    ok_or_one_line(proc, r"^batch: gold: history: silver holds 2 separate stretches .* SHOP__ML__HISTORY_FROM=")
    assert "train_demand done" not in proc.stderr


def test_make_stop_leaves_no_process_behind(demo_checkout):
    proc = demo_checkout.make("stop", timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert demo_checkout.processes() == []


@pytest.fixture(scope="module")
def batch_checkout(tmp_path_factory):
    c = make_checkout(tmp_path_factory.mktemp("readme-batch") / "shop")
    try:
        yield c
    finally:
        c.close()


def test_batch_on_a_lake_without_events_refuses_in_one_line(batch_checkout):
    c = batch_checkout
    empty = c.root / "var" / "data" / "empty.csv"
    empty.parent.mkdir(parents=True, exist_ok=True)
    empty.write_text("event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n")
    proc = c.make("batch", f"INPUT={empty}", env=SMALL_ML, timeout=600)
    assert proc.returncode != 0
    ok_or_one_line(proc, r"^batch: gold: history: no silver events")


def test_commands_on_an_empty_lake(batch_checkout):
    """The lake now holds the tables the backfill created, with no rows in them."""
    status_proc = batch_checkout.make("status")
    status = status_json(batch_checkout, status_proc)
    assert status["tables"] and all(t["rows"] == 0 for t in status["tables"] if t["table"] != "ops/quality_batches")
    r = reading_commands(batch_checkout, status=status_proc)
    assert r["status"].returncode == 0 and "records: bronze 0" in r["status"].stdout


def test_batch_on_a_small_history_learns_sound_models_or_refuses_to_crown_them(batch_checkout):
    """The whole chain through ``make batch`` on a small, continuous history. On so little data the
    demand model may not beat its baselines: then it gets no champion alias and ``score`` stops the
    chain in one line, rather than serving a model worse than naive — either way, decided by the rule."""
    proc = batch_checkout.make("batch", *SMALL_BATCH, env=SMALL_ML, timeout=1200)
    ok_or_one_line(proc, r"^batch: score: no 'champion' version of model \S+")
    gold = json.loads(re.search(r"^\[batch\] gold done in [\d.]+ s: (\{\"history\": \{[^}]*\})", proc.stderr, re.M)
                      .group(1) + "}")
    history = gold["history"]
    assert history["days"] == 50 and history["left_out_events"] == 0
    assert len(history["fold_shares"]) == 2 and all(s >= 0.25 for s in history["fold_shares"])
    assert "train_demand done" in proc.stderr and "train_clv done" in proc.stderr
    # mlflow's failed direct save of a Spark model to the local server (before its upload) logs no ERROR
    assert "No FileSystem for scheme" not in proc.stderr and " ERROR " not in proc.stderr
    # nor XGBoost's loss of every boosting round (its fit prints them unless told not to)
    assert not re.search(r"^\[[\d:]+\] \[\d+\]\s+training-", proc.stderr, re.M), "XGBoost's per-round log"
    if proc.returncode == 0:
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        assert report["events"]["bronze"] == 20000 and report["history"] == history
        assert list(report["stages_s"]) == stages.CHAIN  # every stage of conf/batch_chain.yaml, in order
        assert "nothing to compare yet" in proc.stdout  # uplift: a batch-only lake has no decisions
        demand = report["demand"]
        candidates = ["model", *SMALL_PEERS]
        best = min(candidates, key=lambda c: (demand[c]["wape"], candidates.index(c)))
        crowned = demand[best]["wape"] < min(demand["naive"]["wape"], demand["seasonal_naive"]["wape"])
        assert demand["champion"] == (best if crowned else None)
    else:  # refused at score, after training: a model that lost to its baseline is not served
        assert "score done" not in proc.stderr and "maintain done" not in proc.stderr
