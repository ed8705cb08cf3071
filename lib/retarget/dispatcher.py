"""The dispatcher: abandoned carts in the outbox -> one decision each -> email for those decided ``send``.

Runs without Spark (delta-rs reads/writes), as a thread of the streaming app (woken by the sessions
sink right after it wrote the outbox) or on its own: ``python -m lib.retarget.dispatcher [--once]``.

Never the same abandonment twice: a session with a decision is never looked at again; before a
batch of emails goes out a ``started`` attempt row is committed for each, and the outcome rows
after. Before the ``started`` rows, the offer code each email carries is committed to
``retarget/offers`` (once per session; a retry reuses the code and its expiry), so the shop can
check every code that may have gone out. A crash between the two leaves ``started`` without an outcome: on restart that session is
decided ``uncertain`` and not sent again (at most once beats a duplicate offer). A session whose
attempt was ``accepted`` but whose decision did not get written is decided ``sent`` on restart.
While the mail server is down, attempts fail, are logged, and are retried with exponential backoff.

One dispatcher at a time (``lib.retarget.lease``): with a lease (``from_config`` always makes one) the
dispatcher reads, decides and sends only while it holds ``retarget/dispatcher_lease``; it recovers the
tables' state each time it acquires it, checks it before every send batch, and releases it on a clean stop.

No recipient address reaches ``attempts.error``, ``decisions.detail`` or a log line: every exception
text is redacted (``lib.retarget.redact``, ``<email:xxxxxxxx>``) where it becomes one, and this
module's logger redacts whatever it emits (tracebacks included).
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from lib.retarget import rules as R
from lib.retarget.catalogue import CATALOGUE, Product
from lib.retarget.catalogue import load as load_catalogue
from lib.retarget.lease import Lease
from lib.retarget.message import Branding, InvalidAddress, render
from lib.retarget.offers import new_offer
from lib.retarget.redact import install as _install_redaction
from lib.retarget.redact import redact
from lib.retarget.senders import EmailSender, PermanentSendError, TransientSendError
from lib.retarget.store import ATTEMPTS, DECISIONS, OFFERS, OUTBOX, SUBSCRIBERS, UNSUBSCRIBES, RetargetStore
from lib.schema import arrow_schema

log = _install_redaction(logging.getLogger("shop.dispatcher"))


@dataclass
class _Queued:
    cart: dict
    subscriber: R.Subscriber
    attempts: int = 0


@dataclass
class CycleResult:
    decided: Counter = field(default_factory=Counter)
    attempted: int = 0
    failed_attempts: int = 0
    pending: int = 0


class Dispatcher:
    def __init__(self, store: RetargetStore, sender: EmailSender, rules: R.Rules, branding: Branding, key: bytes, *,
                 batch_size: int = 200, retry_initial: float = 1.0, retry_max: float = 60.0,
                 clock=lambda: datetime.now(UTC), monotonic=time.monotonic, more_senders: tuple = (),
                 lease: Lease | None = None):
        self.store, self.sender, self.rules, self.branding, self.key = store, sender, rules, branding, key
        # one connection per sending thread: a burst of expiries (a busy hour ending) goes out in parallel
        self.senders = (sender, *more_senders)
        self.batch_size, self.retry_initial, self.retry_max = batch_size, retry_initial, retry_max
        self.clock, self.monotonic = clock, monotonic
        self.lease = lease
        for name in (DECISIONS, ATTEMPTS, OFFERS):
            store.ensure(name)
        self._reset()
        if lease is None:
            self._recover()
        elif lease.ensure():
            self._recover()
        self._recovered = lease is None or lease.held

    def _reset(self) -> None:
        """Empty in-memory state; ``_recover`` fills it from the tables."""
        self._versions: dict[str, int | None] = {}
        self.subscribers: dict[int, R.Subscriber] = {}
        self.unsub_users: set[int] = set()
        self.unsub_emails: set[str] = set()
        self.decided: set[str] = set()
        self.last_offer: dict[int, datetime] = {}
        self.queue: dict[str, _Queued] = {}
        self.attempt_no: Counter = Counter()
        self.failures = 0  # consecutive transient failures -> backoff
        self.next_try = 0.0
        self._outbox: list[dict] = []  # carts not decided yet
        self._outbox_mark = None  # newest written_at read: later reads fetch only rows from there on
        # offer rows of the sessions not decided yet: the code and expiry their email carries (a retry
        # reuses them); ``offers_written``: those committed to retarget/offers
        self.offers: dict[str, dict] = {}
        self.offers_written: set[str] = set()
        # what the emails say about products (gold/product_catalogue; re-read when its version changes)
        self.catalogue: dict[int, Product] = {}

    @classmethod
    def from_config(cls, cfg, sender: EmailSender | None = None) -> Dispatcher:
        from lib.retarget.secrets import signing_key
        from lib.retarget.senders import make_sender

        rc = cfg.retarget
        more = () if sender is not None else tuple(make_sender(cfg) for _ in range(rc.send_concurrency - 1))
        store = RetargetStore(cfg.lake.root)
        return cls(store, sender or make_sender(cfg), R.Rules.from_config(rc),
                   Branding.from_config(rc), signing_key(cfg), batch_size=rc.batch_size,
                   retry_initial=rc.retry_initial_seconds, retry_max=rc.retry_max_seconds, more_senders=more,
                   lease=Lease(store, rc.lease_seconds))

    # --- state -----------------------------------------------------------------------------------------
    def _recover(self) -> None:
        decisions = self.store.read(DECISIONS, ["user_session", "user_id", "decision", "expired_at"]).to_pylist()
        for d in decisions:
            self.decided.add(d["user_session"])
            if d["decision"] in R.OFFERED:
                self._offered(d["user_id"], d["expired_at"])
        attempts = self.store.read(ATTEMPTS, ["user_session", "attempt", "status", "message_id"]).to_pylist()
        last: dict[str, dict] = {}
        accepted: dict[str, dict] = {}
        for a in attempts:
            self.attempt_no[a["user_session"]] = max(self.attempt_no[a["user_session"]], a["attempt"])
            if a["status"] == "accepted":
                accepted[a["user_session"]] = a
            prev = last.get(a["user_session"])
            if prev is None or (a["attempt"], a["status"] != "started") >= (prev["attempt"], prev["status"] != "started"):
                last[a["user_session"]] = a
        self._refresh()
        outbox = {c["user_session"]: c for c in self._outbox}
        if outbox:  # offers of carts not decided yet (written before a crash): the retry keeps them
            where = pc.field("user_session").isin(pa.array(sorted(outbox), pa.string()))
            for o in self.store.read(OFFERS, where=where).to_pylist():
                if o["user_session"] not in self.offers or o["issued_at"] < self.offers[o["user_session"]]["issued_at"]:
                    self.offers[o["user_session"]] = o
            self.offers_written.update(self.offers)
        rows = []
        for sid, a in last.items():
            if sid in self.decided or sid not in outbox:
                continue
            cart = outbox[sid]
            if sid in accepted:
                rows.append(self._decision(cart, R.SENT, "recovered: accepted before a restart",
                                           message_id=accepted[sid]["message_id"], attempts=self.attempt_no[sid]))
            elif a["status"] == "started":
                rows.append(self._decision(cart, R.UNCERTAIN, "a send was in flight during a crash; not retried",
                                           attempts=self.attempt_no[sid]))
        if rows:
            log.warning("recovered %d sessions after a restart", len(rows))
            self._write_decisions(rows)

    def _offered(self, user_id: int, at: datetime) -> None:
        if user_id not in self.last_offer or at > self.last_offer[user_id]:
            self.last_offer[user_id] = at

    def _changed(self, name: str) -> bool:
        v = self.store.version(name)
        if v != self._versions.get(name, -2):
            self._versions[name] = v
            return True
        return False

    def _refresh(self) -> None:
        if self._changed(CATALOGUE):
            try:
                self.catalogue = load_catalogue(self.store)
            except Exception as exc:  # noqa: BLE001 — emails go on with the catalogue we have; retried next cycle
                self._versions.pop(CATALOGUE, None)
                log.warning("product catalogue not readable (%s): keeping the one read before", type(exc).__name__)
        if self._changed(SUBSCRIBERS):
            self.subscribers = {
                r["user_id"]: R.Subscriber(r["user_id"], r["email"], bool(r["consent"]), r["first_name"], r["locale"])
                for r in self.store.read(SUBSCRIBERS).to_pylist()
            }
        if self._changed(UNSUBSCRIBES):
            rows = self.store.read(UNSUBSCRIBES, ["user_id", "email"]).to_pylist()
            self.unsub_users = {r["user_id"] for r in rows if r["user_id"] is not None}
            self.unsub_emails = {r["email"].lower() for r in rows if r["email"]}
        if self._changed(OUTBOX):
            # only what the sink wrote since the last read (one writer, written_at never goes back);
            # rows of the mark's own instant come again and are skipped by id
            where = (None if self._outbox_mark is None else
                     pc.field("written_at") >= pa.scalar(self._outbox_mark, pa.timestamp("us", tz="UTC")))
            new = self.store.read(OUTBOX, where=where)
            if new.num_rows:
                self._outbox_mark = pc.max(new.column("written_at")).as_py()
            pending = {c["user_session"] for c in self._outbox}
            self._outbox += [r for r in new.to_pylist()
                             if r["user_session"] not in self.decided and r["user_session"] not in pending]

    # --- one cycle -----------------------------------------------------------------------------------
    def run_once(self) -> CycleResult:
        """Decide every new cart, then send what is due. Returns what happened."""
        res = CycleResult()
        if self.lease is not None and not self._holding():
            return res
        self._refresh()
        fresh = sorted((c for c in self._outbox if c["user_session"] not in self.decided
                        and c["user_session"] not in self.queue), key=lambda c: (c["expired_at"], c["user_session"]))
        rows = []
        for cart in fresh:
            d = self._decide(cart)
            if d == R.SEND:
                self.queue[cart["user_session"]] = _Queued(cart, self.subscribers[cart["user_id"]])
            else:
                rows.append(self._decision(cart, d))
            if d in R.OFFERED:
                self._offered(cart["user_id"], cart["expired_at"])
        if rows:
            self._write_decisions(rows)
            res.decided.update(r["decision"] for r in rows)
        if self.queue and self.monotonic() >= self.next_try and (self.lease is None or self.lease.may_send()):
            self._send_due(res)
        self._outbox = [c for c in self._outbox if c["user_session"] not in self.decided]
        res.pending = len(self.queue)
        return res

    def _holding(self) -> bool:
        """Lease held (renewed when due)? On each new acquisition the state is read again from the tables
        (the previous holder wrote decisions meanwhile): nothing is decided or sent without it."""
        if not self.lease.ensure():
            if self._recovered:  # lost it: forget the state, whoever holds it now owns those carts
                self._reset()
                self._recovered = False
            return False
        if not self._recovered:
            self._reset()
            self._recover()
            self._recovered = True
        return True

    def _decide(self, cart: dict) -> str:
        sub = self.subscribers.get(cart["user_id"])
        unsub = cart["user_id"] in self.unsub_users or (sub is not None and sub.email.lower() in self.unsub_emails)
        return R.decide(user_id=cart["user_id"], expired_at=cart["expired_at"], last_cart_at=cart["last_cart_at"],
                        user_purchased_at=cart["user_purchased_at"], subscriber=sub, unsubscribed=unsub,
                        last_offer_at=self.last_offer.get(cart["user_id"]), rules=self.rules)

    def _send_due(self, res: CycleResult) -> None:
        batch = list(self.queue.items())[: self.batch_size]
        now = self.clock()
        started = []
        rendered_all: dict[str, object] = {}
        for sid, q in batch:
            self.attempt_no[sid] += 1
            q.attempts += 1
            started.append(self._attempt(sid, "started", now))
            offer = self.offers.get(sid) or new_offer(self.key, q.cart, now, self.branding.offer_valid_days)
            try:  # rendering sends nothing: done first, so an address no server takes gets no offer row
                rendered_all[sid] = render(q.cart, q.subscriber, key=self.key, brand=self.branding, now=now,
                                           offer_expires_at=offer["expires_at"], code=offer["code"],
                                           catalogue=self.catalogue)
            except InvalidAddress as exc:  # no server would take it: fails for good, like a refused recipient
                rendered_all[sid] = PermanentSendError(redact(exc, q.subscriber.email))
                continue
            self.offers[sid] = offer
        # every code that may go out is known to the shop before the send: offers, then "started"
        new_offers = [self.offers[sid] for sid, _ in batch if sid in self.offers and sid not in self.offers_written]
        self.store.append(OFFERS, pa.Table.from_pylist(new_offers, schema=arrow_schema(OFFERS)))
        self.offers_written.update(o["user_session"] for o in new_offers)
        self.store.append(ATTEMPTS, pa.Table.from_pylist(started, schema=arrow_schema(ATTEMPTS)))
        outcomes, decisions = [], []
        transient = False
        sent = self._send_all([(sid, r.email) for sid, r in rendered_all.items() if not isinstance(r, Exception)])
        for sid, q in batch:
            rendered = rendered_all[sid]
            try:
                provider_id = rendered if isinstance(rendered, Exception) else sent[sid]
                if isinstance(provider_id, Exception):
                    raise provider_id
            except TransientSendError as exc:
                transient = True
                error = redact(exc, q.subscriber.email)
                outcomes.append(self._attempt(sid, "failed", self.clock(), error=error))
                res.failed_attempts += 1
                log.warning("send %s attempt %d failed (will retry): %s", sid, self.attempt_no[sid], error)
                continue
            except PermanentSendError as exc:
                error = redact(exc, q.subscriber.email)
                outcomes.append(self._attempt(sid, "failed", self.clock(), error=error))
                decisions.append(self._decision(q.cart, R.FAILED, error[:500], attempts=q.attempts,
                                                subscriber=q.subscriber))
                del self.queue[sid]
                log.error("send %s rejected for good: %s", sid, error)
                continue
            finally:
                res.attempted += 1
            outcomes.append(self._attempt(sid, "accepted", self.clock(), message_id=rendered.message_id,
                                          provider_id=provider_id))
            decisions.append(self._decision(q.cart, R.SENT, "", attempts=q.attempts, subscriber=q.subscriber,
                                            rendered=rendered))
            del self.queue[sid]
        self.store.append(ATTEMPTS, pa.Table.from_pylist(outcomes, schema=arrow_schema(ATTEMPTS)))
        if decisions:
            self._write_decisions(decisions)
            res.decided.update(d["decision"] for d in decisions)
        if transient:
            self.failures += 1
            delay = min(self.retry_max, self.retry_initial * 2 ** (self.failures - 1))
            self.next_try = self.monotonic() + delay
            for sender in self.senders:
                sender.close()
        else:
            self.failures = 0

    def _send_all(self, messages: list[tuple[str, object]]) -> dict[str, object]:
        """Send in order, spread over the senders (one thread each); session id -> provider id or
        the exception the send raised. Each sender sends its share one by one."""
        out: dict[str, object] = {}
        n = min(len(self.senders), len(messages))

        def run(k: int) -> None:
            for sid, msg in messages[k::n]:
                try:
                    out[sid] = self.senders[k].send(msg)
                except Exception as exc:  # noqa: BLE001 — handed back; the caller decides (as if sent inline)
                    out[sid] = exc
        if n <= 1:
            if n:
                run(0)
            return out
        threads = [threading.Thread(target=run, args=(k,), name=f"send-{k}") for k in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return out

    # --- rows ------------------------------------------------------------------------------------------
    def _attempt(self, sid: str, status: str, at: datetime, *, message_id: str | None = None,
                 provider_id: str | None = None, error: str | None = None) -> dict:
        return {"user_session": sid, "attempt": self.attempt_no[sid], "status": status, "at": at,
                "sender": self.sender.name, "message_id": message_id, "provider_id": provider_id,
                "error": error}

    def _decision(self, cart: dict, decision: str, detail: str = "", *, attempts: int = 0,
                  subscriber: R.Subscriber | None = None, rendered=None, message_id: str | None = None) -> dict:
        sub = subscriber or self.subscribers.get(cart["user_id"])
        offer = self.offers.get(cart["user_session"]) if decision in (R.SENT, R.UNCERTAIN) else None
        return {
            "user_session": cart["user_session"], "user_id": cart["user_id"], "decision": decision,
            "detail": detail, "decided_at": self.clock(), "expired_at": cart["expired_at"],
            "last_cart_at": cart["last_cart_at"], "cart_value": cart["cart_value"],
            "email_domain": sub.email.rpartition("@")[2] if sub else None,
            "offer_code": rendered.offer_code if rendered else offer["code"] if offer else None,
            "offer_expires_at": rendered.offer_expires_at if rendered else offer["expires_at"] if offer else None,
            "message_id": rendered.message_id if rendered else message_id,
            "sender": self.sender.name if decision in (R.SENT, R.FAILED, R.UNCERTAIN) else None,
            "attempts": attempts,
        }

    def _write_decisions(self, rows: list[dict]) -> None:
        self.store.append(DECISIONS, pa.Table.from_pylist(rows, schema=arrow_schema(DECISIONS)))
        for r in rows:
            self.decided.add(r["user_session"])
            self.offers.pop(r["user_session"], None)
            self.offers_written.discard(r["user_session"])
            log.info("decision %s: %s%s", r["user_session"], r["decision"], f" ({r['detail']})" if r["detail"] else "")

    # --- loop ------------------------------------------------------------------------------------------
    def run_forever(self, stop: threading.Event, wake: threading.Event | None = None, poll: float = 1.0) -> None:
        wake = wake or threading.Event()
        waiting_for = None  # the lease holder we last logged waiting for
        while not stop.is_set():
            try:
                self.run_once()
            except Exception:  # noqa: BLE001 — keep dispatching; the next cycle retries from the tables
                log.exception("dispatcher cycle failed; retrying in %.0f s", poll)
            timeout = poll
            if self.queue:
                timeout = max(0.05, min(poll, self.next_try - self.monotonic()))
            if self.lease is not None and not self.lease.held:
                timeout = poll  # waiting for the lease: the wake-ups are for its holder
                holder = self.lease.holder.owner if self.lease.holder else None
                if holder != waiting_for:
                    log.warning("%s; waiting to take it over when it expires", self.lease.refusal())
                    waiting_for = holder
            wake.wait(timeout)
            wake.clear()
        for sender in self.senders:
            sender.close()
        if self.lease is not None:
            self.lease.release()


REFUSED = 3  # exit code: another dispatcher holds the lease


def main(argv: list[str] | None = None) -> int:
    from lib.config import ConfigError, load_config

    p = argparse.ArgumentParser(description="Decide and send the cart-recovery emails of the outbox.")
    p.add_argument("--env", help="config environment (default local)")
    p.add_argument("--once", action="store_true", help="one cycle (decide + send what is due), then exit")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stdout)
    try:
        cfg = load_config(args.env)
        disp = Dispatcher.from_config(cfg)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if disp.lease is not None and not disp.lease.held:  # e.g. the streaming app's dispatcher runs
        print(f"dispatcher: {disp.lease.refusal()}", file=sys.stderr)
        return REFUSED
    if args.once:
        try:
            res = disp.run_once()
        finally:
            disp.lease.release()
        print(f"decided {dict(res.decided)}, attempted {res.attempted}, failed {res.failed_attempts}, "
              f"pending {res.pending}")
        return 0
    stop = threading.Event()
    import signal

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    disp.run_forever(stop, poll=cfg.retarget.poll_seconds)
    return 0


if __name__ == "__main__":
    code = main()
    if code == REFUSED:  # skip teardown: delta-rs' runtime sometimes aborts it (SIGABRT instead of this code)
        from lib.delta_log import exit_without_teardown

        exit_without_teardown(code)
    sys.exit(code)
