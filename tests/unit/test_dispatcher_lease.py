"""One dispatcher at a time (lib/retarget/lease.py): the lease in the lake is taken by exactly one of
racing contenders (threads and processes), a second dispatcher refuses to send while the first holds it,
a SIGKILLed holder's lease is taken over after its TTL, a holder that cannot renew stops sending and one
that lost the lease sends nothing, and a clean stop releases it at once. No services: in-memory sender."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from lib.config import PROJECT_ROOT
from lib.retarget import rules as R
from lib.retarget.dispatcher import Dispatcher
from lib.retarget.lease import LEASE, LEASE_EVENTS, Lease
from lib.retarget.message import Branding
from lib.retarget.store import DECISIONS, SUBSCRIBERS, RetargetStore
from lib.schema import arrow_schema
from tests import helpers

KEY = b"test-signing-key-0123456789"
BRAND = Branding("https://shop.example", "http://127.0.0.1:8050/unsubscribe", "offers@shop.example",
                 "Cosmetics Shop", 7)
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ITEMS = [{"product_id": 4321, "qty": 1, "price": 13.0, "brand": None, "category_code": None, "category_id": 2}]


class MemorySender:
    name = "memory"

    def __init__(self):
        self.sent: list[str] = []

    def send(self, msg) -> str:
        self.sent.append(dict(msg.headers)["X-Session-Id"])
        return f"mem-{len(self.sent)}"

    def close(self) -> None:
        pass


@pytest.fixture
def store(tmp_path):
    s = RetargetStore(str(tmp_path / "lake"))
    s.append(SUBSCRIBERS, pa.Table.from_pylist(
        [{"user_id": 7, "email": "ann@example.com", "consent": True, "first_name": "Ann", "locale": "en_US",
          "loaded_at": T0}], schema=arrow_schema(SUBSCRIBERS)))
    return s


def due_cart(store, session: str = "s1") -> None:
    helpers.add_outbox(store, [helpers.outbox_row(session, 7, T0, items=ITEMS, cart_value=13.0, n_units=1)])


def dispatcher(store, sender, lease) -> Dispatcher:
    return Dispatcher(store, sender, R.Rules(control_share=0, cap_days=0), BRAND, KEY, lease=lease)


def decisions(store) -> dict[str, str]:
    return {r["user_session"]: r["decision"] for r in store.read(DECISIONS).to_pylist()}


def events(store) -> list[tuple[str, int]]:
    rows = sorted(store.read(LEASE_EVENTS).to_pylist(), key=lambda r: r["at"])
    return [(r["event"], r["epoch"]) for r in rows]


class FakeTime:
    """One shared wall clock + monotonic clock for dispatchers on 'different machines'."""

    def __init__(self):
        self.t = 0.0

    def wall(self) -> datetime:
        return T0 + timedelta(seconds=self.t)

    def mono(self) -> float:
        return self.t


# --- atomicity -----------------------------------------------------------------------------------------------
class _GatedLease(Lease):
    """Reads, then waits until every contender has read before committing: all commit on the same version."""

    def __init__(self, *a, gate: threading.Barrier, **kw):
        super().__init__(*a, **kw)
        self.gate = gate

    def _commit(self, dt, row):
        if self.gate is not None:  # the race only (not the winner's release)
            gate, self.gate = self.gate, None
            gate.wait(timeout=30)
        return super()._commit(dt, row)


def test_threads_racing_for_the_lease_exactly_one_wins_each_round(store):
    contenders, rounds = 4, 25
    Lease(store, 60)._read()  # the table exists, no row yet
    for k in range(rounds):
        gate = threading.Barrier(contenders)
        leases = [_GatedLease(store, 60, gate=gate, owner=f"t{i}-r{k}") for i in range(contenders)]
        with ThreadPoolExecutor(max_workers=contenders) as pool:  # all of them at once (the barrier waits for each)
            for race in [pool.submit(lease.ensure) for lease in leases]:
                race.result(timeout=60)
        winners = [lease for lease in leases if lease.held]
        assert len(winners) == 1, f"round {k}: {len(winners)} winners"
        assert all(lease.holder is not None and lease.holder.owner == winners[0].owner
                   for lease in leases if not lease.held)
        assert winners[0].epoch == k + 1  # fencing token: +1 per acquisition
        winners[0].release()
    assert [e for e, _ in events(store)].count("acquired") == rounds


_RACER = textwrap.dedent("""
    import os, sys, time
    from lib.retarget.lease import Lease
    from lib.retarget.store import RetargetStore

    class Gated(Lease):
        base = -1  # the version this racer read and committed on (-1: found the lease taken, no commit)

        def _commit(self, dt, row):  # commit at the slot: every racer has read the same version by then
            if self.base == -1:
                self.base = dt.version()
            time.sleep(max(0.0, self.slot - time.time()))
            return super()._commit(dt, row)

    root, me, t0, rounds = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    store = RetargetStore(root)
    Lease(store, 60)._read()  # warm up (imports, first read) before the first round
    for k in range(rounds):
        start = t0 + k * 1.0
        time.sleep(max(0.0, start - time.time()))
        lease = Gated(store, 60, owner=f"{me}-r{k}")
        lease.slot = start + 0.4
        won = lease.ensure()
        print(k, "won" if won else "lost", lease.base, flush=True)
        if won:
            time.sleep(max(0.0, start + 0.7 - time.time()))
            lease.release()
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown: delta-rs' runtime threads sometimes abort it ("terminate called")
""")


def test_processes_racing_for_the_lease_exactly_one_wins_each_round(store, tmp_path):
    racers, rounds = 3, 8
    Lease(store, 60)._read()
    script = tmp_path / "racer.py"
    script.write_text(_RACER)
    t0 = time.time() + 4
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT))
    procs = [subprocess.Popen([sys.executable, str(script), store.root, f"p{i}", str(t0), str(rounds)],  # noqa: S603
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(racers)]
    done = [p.communicate(timeout=120) for p in procs]
    outs = [out for out, _ in done]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in done]
    results: dict[int, list[tuple[str, int]]] = {}
    for out in outs:
        for line in out.split("\n"):
            if line.strip():
                k, verdict, base = line.split()
                results.setdefault(int(k), []).append((verdict, int(base)))
    assert sorted(results) == list(range(rounds))
    contested = 0
    for k, got in results.items():
        assert len(got) == racers and any(v == "won" for v, _ in got), f"round {k}: {got}"
        bases = {b for _, b in got}
        if len(bases) == 1 and -1 not in bases:  # every racer committed on the same version: a real race
            contested += 1
            assert [v for v, _ in got].count("won") == 1, f"round {k}: {got}"
    # never two winners from one version (a racer slowed down by a busy machine may read the next one)
    won_on = [b for got in results.values() for v, b in got if v == "won"]
    assert len(won_on) == len(set(won_on))
    assert contested >= rounds // 2, results


# --- a second dispatcher -------------------------------------------------------------------------------------
def test_second_dispatcher_refuses_and_sends_nothing_while_the_first_holds_the_lease(store):
    due_cart(store)
    first = dispatcher(store, MemorySender(), Lease(store, 30))
    assert first.lease.held
    second_sender = MemorySender()
    second = dispatcher(store, second_sender, Lease(store, 30))
    assert not second.lease.held
    for _ in range(3):
        res = second.run_once()
        assert res.attempted == 0 and not res.decided
    assert second_sender.sent == [] and decisions(store) == {}
    msg = second.lease.refusal()
    assert f"pid {os.getpid()}" in msg and first.lease.host in msg and "since" in msg
    first.run_once()
    second.run_once()
    assert first.sender.sent == ["s1"] and second_sender.sent == [] and decisions(store) == {"s1": "sent"}


def test_make_dispatcher_exits_with_one_line_naming_the_holder(store):
    holder = Lease(store, 30)
    assert holder.ensure()
    env = dict(os.environ, SHOP__LAKE__ROOT=store.root, UNSUBSCRIBE_SIGNING_KEY="k" * 32,
               SHOP__RETARGET__SEND_CONCURRENCY="1")
    p = subprocess.run([sys.executable, "-m", "jobs.streaming.dispatcher", "--once"], cwd=PROJECT_ROOT, env=env,  # noqa: S603
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 3, p.stderr
    line = p.stderr.strip().splitlines()[-1]
    assert line.startswith("dispatcher: another dispatcher holds the lease:")
    assert f"{holder.host} pid {os.getpid()}" in line and "since" in line
    assert decisions(store) == {}


# --- a killed holder -----------------------------------------------------------------------------------------
_HOLDER = textwrap.dedent("""
    import socket, sys, time
    root, ttl, host, after_renewal = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4] == "renewed"
    if host:  # pretend to run on another machine (its pid cannot be checked from here)
        socket.gethostname = lambda: host
    from lib.retarget.lease import Lease
    from lib.retarget.store import RetargetStore

    lease = Lease(RetargetStore(root), ttl)
    acquired_until, told = None, False
    while True:
        if lease.ensure():
            acquired_until = acquired_until or lease.valid_until
            if not told and (not after_renewal or lease.valid_until != acquired_until):
                print("held", lease.epoch, flush=True)
                told = True
        time.sleep(0.1)
""")


def start_holder(tmp_path, store, ttl: float, host: str = "", *, renewed: bool = False) -> subprocess.Popen:
    """A real process holding the lease (claiming ``host`` as its machine when given), once it holds it —
    with ``renewed``, once it has renewed it too: the acquisition's own bookkeeping (its first commits to
    the lease and events tables) can take a good part of a short TTL on a loaded machine, and a test that
    needs a *live* holder must not start while the acquisition's deadline is about to pass (seen in CI:
    the lease read as expired by the next statement, TTL 2 s)."""
    script = tmp_path / "holder.py"
    script.write_text(_HOLDER)
    child = subprocess.Popen([sys.executable, str(script), store.root, str(ttl), host,  # noqa: S603
                              "renewed" if renewed else ""],
                             env=dict(os.environ, PYTHONPATH=str(PROJECT_ROOT)), stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
    assert child.stdout.readline().split() == ["held", "1"]
    return child


def test_sigkilled_holder_is_taken_over_after_the_ttl(store, tmp_path, caplog):
    """A holder on another machine (a Dataproc driver that died): only its TTL can prove it gone."""
    ttl = 2.0
    due_cart(store)
    child = start_holder(tmp_path, store, ttl, "other-host", renewed=True)
    try:
        sender = MemorySender()
        d = dispatcher(store, sender, Lease(store, ttl))
        assert not d.lease.held and d.lease.holder.pid == child.pid
        until = time.monotonic() + 2 * ttl  # the child renews: still refused well past one TTL
        while time.monotonic() < until:
            d.run_once()
            time.sleep(0.1)
        assert sender.sent == [] and decisions(store) == {}
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    killed = time.monotonic()
    last = store.read(LEASE).to_pylist()[0]  # the dead child's last renewal
    assert last["pid"] == child.pid and not last["released"]
    with caplog.at_level(logging.INFO, logger="shop.dispatcher.lease"):
        helpers.wait_for(lambda: d.run_once() is not None and sender.sent == ["s1"], timeout=ttl + 10, interval=0.1,
                         what="the takeover")
    waited = time.monotonic() - killed
    assert waited <= ttl + 3
    assert d.lease.epoch == 2 and decisions(store) == {"s1": "sent"}
    assert ("takeover", 2) in events(store)
    takeover = next(r for r in store.read(LEASE_EVENTS).to_pylist() if r["event"] == "takeover")
    assert takeover["at"] >= last["expires_at"] and takeover["previous_owner"] == last["owner"]
    assert any("took over from" in r.getMessage() and f"pid {child.pid}" in r.getMessage() for r in caplog.records)


def test_sigkilled_holder_on_this_host_is_taken_over_at_once(store, tmp_path):
    """The local restart after a SIGKILL: the holder's pid is gone from this host, so the new dispatcher
    need not wait out the TTL (it would delay every email of the restart by up to 30 s)."""
    ttl = 30.0
    due_cart(store)
    child = start_holder(tmp_path, store, ttl)
    try:
        sender = MemorySender()
        d = dispatcher(store, sender, Lease(store, ttl))
        d.run_once()
        assert not d.lease.held and sender.sent == []  # alive: refused
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    # the restarted app's dispatcher: its first cycle takes over and sends
    restarted = dispatcher(store, sender, Lease(store, ttl))
    t0 = time.monotonic()
    restarted.run_once()
    assert sender.sent == ["s1"] and time.monotonic() - t0 < 5 < ttl  # no wait for the 30 s TTL
    assert restarted.lease.epoch == 2 and ("takeover", 2) in events(store)
    # and the dispatcher that was refused earlier stays refused (the lease is live again)
    d.run_once()
    assert not d.lease.held and sender.sent == ["s1"]


# --- a holder that cannot renew / lost the lease -------------------------------------------------------------
def test_holder_that_cannot_renew_stops_sending_and_one_that_lost_it_sends_nothing(store, caplog):
    clock = FakeTime()
    ttl = 3.0
    a_lease = Lease(store, ttl, clock=clock.wall, monotonic=clock.mono)
    a_sender, b_sender = MemorySender(), MemorySender()
    a = dispatcher(store, a_sender, a_lease)
    assert a_lease.held and a_lease.epoch == 1
    real_read = a_lease._read

    def unreachable():
        raise OSError("lake unreachable")

    a_lease._read = unreachable
    clock.t = 2.1  # renewal due at 1.0 failed; 0.9 s left < margin 1.0: no batch goes out
    due_cart(store)
    with caplog.at_level(logging.INFO, logger="shop.dispatcher.lease"):
        res = a.run_once()
    assert res.attempted == 0 and a_sender.sent == []
    assert [r.getMessage() for r in caplog.records if "stopped sending" in r.getMessage()]
    clock.t = 3.5  # expired: B (another machine, same time) takes over and sends
    b = dispatcher(store, b_sender, Lease(store, ttl, clock=clock.wall, monotonic=clock.mono))
    assert b.lease.held and b.lease.epoch == 2
    b.run_once()
    assert b_sender.sent == ["s1"]
    a_lease._read = real_read  # A reaches the lake again: finds B, has lost the lease, sends nothing
    due_cart(store, "s2")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="shop.dispatcher.lease"):
        for _ in range(3):
            clock.t += 0.5
            assert a.run_once().attempted == 0
    assert not a_lease.held and a_sender.sent == []
    lost = [r.getMessage() for r in caplog.records if "LOST" in r.getMessage()]
    assert len(lost) == 1 and "epoch 2" in lost[0]
    b.run_once()
    assert b_sender.sent == ["s1", "s2"] and decisions(store) == {"s1": "sent", "s2": "sent"}
    assert [e for e, _ in events(store)] == ["acquired", "takeover", "lost"]


def test_lost_lease_mid_run_stops_the_next_batch(store):
    """The holder renews, finds another owner in the row (e.g. its clock ran slow): not one more batch."""
    clock = FakeTime()
    a_lease = Lease(store, 3.0, clock=clock.wall, monotonic=clock.mono)
    sender = MemorySender()
    a = dispatcher(store, sender, a_lease)
    assert a_lease.held
    intruder = Lease(store, 30.0, clock=lambda: T0 + timedelta(hours=1))  # sees A's lease as expired
    assert intruder.ensure() and intruder.epoch == 2
    due_cart(store)
    clock.t = 1.1  # renewal due: A reads the row, finds the intruder
    assert a.run_once().attempted == 0 and sender.sent == [] and not a_lease.held
    assert a_lease.holder.owner == intruder.owner


# --- clean stop ----------------------------------------------------------------------------------------------
def test_clean_stop_releases_the_lease_and_the_next_dispatcher_starts_at_once(store):
    due_cart(store)
    sender = MemorySender()
    a = dispatcher(store, sender, Lease(store, 30))
    stop = threading.Event()
    t = threading.Thread(target=a.run_forever, args=(stop, None, 0.05))
    t.start()
    helpers.wait_for(lambda: sender.sent == ["s1"], timeout=20, interval=0.05, what="the first send")
    stop.set()
    t.join(timeout=20)
    assert not t.is_alive()
    row = store.read(LEASE).to_pylist()[0]
    assert row["released"] and row["epoch"] == 1
    b_sender = MemorySender()
    started = time.monotonic()
    b = dispatcher(store, b_sender, Lease(store, 30))
    assert b.lease.held and b.lease.epoch == 2 and time.monotonic() - started < 5  # no TTL wait
    due_cart(store, "s2")
    b.run_once()
    assert b_sender.sent == ["s2"] and sender.sent == ["s1"]
    assert [e for e, _ in events(store)] == ["acquired", "released", "acquired"]


def test_without_a_lease_a_dispatcher_behaves_as_before(store):
    """Dispatchers built directly (tests, tools) take no lease: run-once style single dispatcher unchanged."""
    due_cart(store)
    sender = MemorySender()
    dispatcher(store, sender, None).run_once()
    assert sender.sent == ["s1"] and store.version(LEASE) is None
