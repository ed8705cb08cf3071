"""The dispatcher: abandoned carts in the outbox -> one decision each -> email for those decided ``send``.

Runs without Spark (delta-rs reads/writes), as a thread of the streaming app (woken by the sessions
sink right after it wrote the outbox) or on its own: ``python -m jobs.streaming.dispatcher [--once]``.

Never the same abandonment twice, and none silently lost (docs/reliability.md, "Email"):

* a session with a decision is never looked at again; before a batch of emails goes out a ``started``
  attempt row is committed for each (with the session's one Message-ID), and the outcome rows after.
  Before the ``started`` rows, the offer code each email carries is committed to ``retarget/offers``
  (once per session; a retry reuses the code and its expiry), so the shop can check every code that
  may have gone out.
* a send whose outcome was not seen — ``started`` without an outcome after a crash, or an ambiguous
  error (a timeout or dropped connection after DATA, an HTTP 5xx) — is never sent again blind: the
  sender's ``reconcile`` asks the receiving side (the SMTP server's ``XHAS``, SendGrid's Email Activity
  API). Present: decided ``sent``. Proven absent: sent again. Cannot tell: asked again with backoff;
  decided ``uncertain`` (and reported) when the side cannot tell at all or the offer turns stale.
* outcome and decision rows are committed before a session leaves the queue: rows wait in memory
  (``_unwritten``) until their append succeeds, each cycle retries the append first and sends nothing
  new until it succeeds; a session with a pending decision is never decided or sent again.
* account-level errors (HTTP 401/403, SMTP 530/535) open a circuit: sending pauses, carts stay
  pending, an ``ALERT`` line and an ``ops/sender_health`` row say why; every
  ``retarget.circuit_probe_seconds`` a new sender (the API key read again: a rotated key works without
  a restart) tries one message, and the circuit closes when it goes through.
* transient errors: a server-level one (server down, SMTP 421, HTTP 429) pauses everyone with
  exponential backoff or the provider's ``Retry-After``; a recipient-level one (a 4xx to RCPT) backs
  off that session only. An offer not sent ``retarget.stale_after_hours`` after its cart expired is
  decided ``stale`` instead.

One dispatcher at a time (``lib.retarget.lease``): with a lease (``from_config`` always makes one) the
dispatcher reads, decides and sends only while it holds ``retarget/dispatcher_lease``; it recovers the
tables' state each time it acquires it, checks it before every send batch, and releases it on a clean stop.

No recipient address reaches ``attempts.error``, ``decisions.detail`` or a log line: every exception
text is redacted (``lib.retarget.redact``, ``<email:xxxxxxxx>``) where it becomes one, and this
module's logger redacts whatever it emits (tracebacks included).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from lib.retarget import rules as R
from lib.retarget.catalogue import CATALOGUE, Product
from lib.retarget.catalogue import load as load_catalogue
from lib.retarget.lease import Lease
from lib.retarget.message import Branding, Email, InvalidAddress, Rendered, message_id, render
from lib.retarget.offers import new_offer
from lib.retarget.redact import install as _install_redaction
from lib.retarget.redact import redact
from lib.retarget.secrets import signing_key
from lib.retarget.senders import (
    ABSENT,
    PRESENT,
    UNSUPPORTED,
    AccountError,
    AmbiguousSendError,
    EmailSender,
    PermanentSendError,
    TransientSendError,
    make_sender,
)
from lib.retarget.store import (
    ATTEMPTS,
    DECISIONS,
    OFFERS,
    OUTBOX,
    SENDER_HEALTH,
    SUBSCRIBERS,
    UNSUBSCRIBES,
    RetargetStore,
)
from lib.schema import arrow_schema

log = _install_redaction(logging.getLogger("shop.dispatcher"))


@dataclass
class _Queued:
    cart: dict
    subscriber: R.Subscriber
    attempts: int = 0
    not_before: float = 0.0  # monotonic: this session's own backoff (a recipient-level error, a reconcile)
    failures: int = 0  # consecutive recipient-level failures / unanswered reconciliations
    # set when a send's outcome was not seen: ask the receiving side before anything else
    reconcile: bool = False
    attempted_at: datetime | None = None
    message_id: str | None = None


@dataclass
class CycleResult:
    decided: Counter = field(default_factory=Counter)
    attempted: int = 0
    failed_attempts: int = 0
    reconciled: Counter = field(default_factory=Counter)
    pending: int = 0


class Dispatcher:
    def __init__(self, store: RetargetStore, sender: EmailSender, rules: R.Rules, branding: Branding, key: bytes, *,
                 batch_size: int = 200, retry_initial: float = 1.0, retry_max: float = 60.0,
                 clock=lambda: datetime.now(UTC), monotonic=time.monotonic, more_senders: tuple = (),
                 lease: Lease | None = None, stale_after: timedelta | None = None, probe_seconds: float = 30.0,
                 sender_factory=None):
        self.store, self.sender, self.rules, self.branding, self.key = store, sender, rules, branding, key
        # one connection per sending thread: a burst of expiries (a busy hour ending) goes out in parallel
        self.senders = (sender, *more_senders)
        self.batch_size, self.retry_initial, self.retry_max = batch_size, retry_initial, retry_max
        self.clock, self.monotonic = clock, monotonic
        self.lease = lease
        self.stale_after = stale_after  # None: an offer never turns stale
        # the circuit: open while the provider refuses the account; sender_factory builds a new sender
        # (the key read again) before each probe
        self.probe_seconds, self.sender_factory = probe_seconds, sender_factory
        self.circuit_reason: str | None = None
        self.next_probe = 0.0
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
        self.failures = 0  # consecutive server-level transient failures -> everyone backs off
        self.next_try = 0.0
        # rows whose append failed (disk full, object store down): retried first in every cycle; the
        # sessions they decide are already in ``decided`` (never decided or sent twice meanwhile)
        self._unwritten: list[tuple[str, list[dict]]] = []
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
        rc = cfg.retarget
        more = () if sender is not None else tuple(make_sender(cfg) for _ in range(rc.send_concurrency - 1))
        store = RetargetStore(cfg.lake.root)
        return cls(store, sender or make_sender(cfg), R.Rules.from_config(rc),
                   Branding.from_config(rc), signing_key(cfg), batch_size=rc.batch_size,
                   retry_initial=rc.retry_initial_seconds, retry_max=rc.retry_max_seconds, more_senders=more,
                   lease=Lease(store, rc.lease_seconds),
                   stale_after=timedelta(hours=rc.stale_after_hours) if rc.stale_after_hours else None,
                   probe_seconds=rc.circuit_probe_seconds,
                   sender_factory=None if sender is not None else lambda: make_sender(cfg))

    # --- state -----------------------------------------------------------------------------------------
    def _recover(self) -> None:
        decisions = self.store.read(DECISIONS, ["user_session", "user_id", "decision", "expired_at"]).to_pylist()
        for d in decisions:
            self.decided.add(d["user_session"])
            if d["decision"] in R.OFFERED:
                self._offered(d["user_id"], d["expired_at"])
        attempts = self.store.read(ATTEMPTS, ["user_session", "attempt", "status", "at", "message_id"]).to_pylist()
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
        rows, unseen = [], 0
        domain = self.branding.from_address.rpartition("@")[2]
        for sid, a in last.items():
            if sid in self.decided or sid not in outbox:
                continue
            cart = outbox[sid]
            if sid in accepted:
                rows.append(self._decision(cart, R.SENT, "recovered: accepted before a restart",
                                           message_id=accepted[sid]["message_id"], attempts=self.attempt_no[sid]))
            elif a["status"] in ("started", "ambiguous"):  # its outcome was never seen: ask the mail side
                sub = self.subscribers.get(cart["user_id"])
                if sub is None:  # erased since: nothing to send to, and nobody to ask about
                    rows.append(self._decision(cart, R.UNCERTAIN, "a send was in flight during a crash; the "
                                               "subscriber is gone", attempts=self.attempt_no[sid]))
                    continue
                self.queue[sid] = _Queued(cart, sub, attempts=self.attempt_no[sid], reconcile=True,
                                          attempted_at=a["at"], message_id=a["message_id"] or message_id(sid, domain))
                if cart["user_id"] is not None:
                    self._offered(cart["user_id"], cart["expired_at"])
                unseen += 1
        if rows or unseen:
            log.warning("recovered %d sessions after a restart; %d sends in flight to reconcile", len(rows), unseen)
        if rows:
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
            for r in sorted(new.to_pylist(), key=lambda r: r["expired_at"]):  # one cart per session id
                if r["user_session"] not in self.decided and r["user_session"] not in pending:
                    self._outbox.append(r)
                    pending.add(r["user_session"])

    # --- one cycle -----------------------------------------------------------------------------------
    def run_once(self) -> CycleResult:
        """Decide every new cart, then send what is due. Returns what happened."""
        res = CycleResult()
        if self.lease is not None and not self._holding(self.lease):
            return res
        if not self._flush():  # rows of an earlier cycle still not committed: nothing new until they are
            res.pending = len(self.queue)
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
        if self.queue:
            self._expire_stale(res)
        if (self.queue and self.monotonic() >= self.next_try and not self._unwritten
                and (self.lease is None or self.lease.may_send())):
            self._send_due(res)
        self._outbox = [c for c in self._outbox if c["user_session"] not in self.decided]
        res.pending = len(self.queue)
        return res

    def _holding(self, lease: Lease) -> bool:
        """Lease held (renewed when due)? On each new acquisition the state is read again from the tables
        (the previous holder wrote decisions meanwhile): nothing is decided or sent without it."""
        if not lease.ensure():
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

    def _expire_stale(self, res: CycleResult) -> None:
        """Offers whose cart expired more than ``stale_after`` ago are not sent any more (an outage, an
        open circuit): decided ``stale`` — unless a send may already have gone out (reconcile first)."""
        if self.stale_after is None:
            return
        now = self.clock()
        rows = [self._decision(q.cart, R.STALE, f"not sent within {self.stale_after} of the cart's expiry",
                               attempts=q.attempts, subscriber=q.subscriber)
                for q in self.queue.values() if not q.reconcile and now - q.cart["expired_at"] > self.stale_after]
        if rows:
            log.warning("%d offers turned stale before they could be sent", len(rows))
            self._write_decisions(rows)
            res.decided.update(r["decision"] for r in rows)

    def _reconcile(self, due: list[tuple[str, _Queued]], res: CycleResult, outcomes: list, decisions: list) -> None:
        """Ask the receiving side about each send whose outcome was not seen. Present: ``sent``; proven
        absent: back to the send list; cannot tell: asked again later (``uncertain`` when it never can,
        or once the offer is stale)."""
        now, mono = self.clock(), self.monotonic()
        ask = getattr(self.sender, "reconcile", None)  # a sender without it cannot tell
        for sid, q in due:
            state, provider_id = ask(q.message_id, sid, q.attempted_at or now) if ask else (UNSUPPORTED, None)
            res.reconciled[state] += 1
            if state == PRESENT:
                outcomes.append(self._attempt(sid, "accepted", now, message_id=q.message_id, provider_id=provider_id,
                                              error="reconciled: the receiving side holds it"))
                decisions.append(self._decision(q.cart, R.SENT, "reconciled: the receiving side holds it",
                                                attempts=q.attempts, subscriber=q.subscriber,
                                                message_id=q.message_id))
            elif state == ABSENT:
                outcomes.append(self._attempt(sid, "absent", now, message_id=q.message_id,
                                              error="reconciled: the receiving side does not hold it"))
                q.reconcile, q.failures, q.not_before = False, 0, 0.0
                continue
            elif state == UNSUPPORTED or (self.stale_after is not None
                                          and now - q.cart["expired_at"] > self.stale_after):
                why = ("the receiving side cannot tell whether it arrived" if state == UNSUPPORTED
                       else f"its fate was still unknown {self.stale_after} after the cart expired")
                log.error("ALERT send %s uncertain: %s; not retried", sid, why)
                decisions.append(self._decision(q.cart, R.UNCERTAIN, f"a send's outcome was not seen; {why}",
                                                attempts=q.attempts, subscriber=q.subscriber))
            else:  # unknown for now (the server is down, the activity feed lags): ask again later
                q.failures += 1
                q.not_before = mono + min(self.retry_max, self.retry_initial * 2 ** (q.failures - 1))
                continue
            del self.queue[sid]

    def _send_due(self, res: CycleResult) -> None:
        mono = self.monotonic()
        due = [(sid, q) for sid, q in self.queue.items() if q.not_before <= mono]
        if self.circuit_reason is not None:  # paused: one probe message now and then, with a new sender
            if mono < self.next_probe:
                return
            self.next_probe = mono + self.probe_seconds
            self._renew_senders()
        outcomes: list[dict] = []
        decisions: list[dict] = []
        if to_reconcile := [(sid, q) for sid, q in due if q.reconcile]:
            self._reconcile(to_reconcile, res, outcomes, decisions)
        batch = [(sid, q) for sid, q in due if sid in self.queue and not q.reconcile][: self.batch_size]
        if self.circuit_reason is not None:
            batch = batch[:1]
        if batch:
            self._send_batch(batch, res, outcomes, decisions)
        self._commit(ATTEMPTS, outcomes)
        if decisions:
            self._write_decisions(decisions)
            res.decided.update(d["decision"] for d in decisions)

    def _send_batch(self, batch: list[tuple[str, _Queued]], res: CycleResult, outcomes: list, decisions: list) -> None:
        now = self.clock()
        started = []
        rendered_all: dict[str, Rendered | PermanentSendError] = {}
        for sid, q in batch:
            self.attempt_no[sid] += 1
            q.attempts += 1
            offer = self.offers.get(sid) or new_offer(self.key, q.cart, now, self.branding.offer_valid_days)
            try:  # rendering sends nothing: done first, so an address no server takes gets no offer row
                rendered_all[sid] = made = render(q.cart, q.subscriber, key=self.key, brand=self.branding, now=now,
                                                  offer_expires_at=offer["expires_at"], code=offer["code"],
                                                  catalogue=self.catalogue)
            except InvalidAddress as exc:  # no server would take it: fails for good, like a refused recipient
                rendered_all[sid] = PermanentSendError(redact(exc, q.subscriber.email))
                started.append(self._attempt(sid, "started", now))
                continue
            self.offers[sid] = offer
            started.append(self._attempt(sid, "started", now, message_id=made.message_id))
        # every code that may go out is known to the shop before the send: offers, then "started" (if
        # either append fails nothing is sent: the exception ends the cycle before the send)
        new_offers = [self.offers[sid] for sid, _ in batch if sid in self.offers and sid not in self.offers_written]
        self.store.append(OFFERS, pa.Table.from_pylist(new_offers, schema=arrow_schema(OFFERS)))
        self.offers_written.update(o["user_session"] for o in new_offers)
        self.store.append(ATTEMPTS, pa.Table.from_pylist(started, schema=arrow_schema(ATTEMPTS)))
        server_wait: float | None = None  # a server-level transient error: everyone waits (at least this)
        account_error: str | None = None
        sent = self._send_all([(sid, r.email) for sid, r in rendered_all.items() if not isinstance(r, Exception)])
        mono = self.monotonic()
        for sid, q in batch:
            rendered = rendered_all[sid]
            mid = None if isinstance(rendered, Exception) else rendered.message_id
            res.attempted += 1
            result = rendered if isinstance(rendered, Exception) else sent[sid]
            if not isinstance(result, Exception):
                outcomes.append(self._attempt(sid, "accepted", self.clock(), message_id=mid,
                                              provider_id=result))
                decisions.append(self._decision(q.cart, R.SENT, "", attempts=q.attempts, subscriber=q.subscriber,
                                                rendered=rendered))
                del self.queue[sid]
                continue
            error = redact(result, q.subscriber.email)
            if isinstance(result, PermanentSendError):
                outcomes.append(self._attempt(sid, "failed", self.clock(), error=error))
                decisions.append(self._decision(q.cart, R.FAILED, error[:500], attempts=q.attempts,
                                                subscriber=q.subscriber))
                del self.queue[sid]
                log.error("send %s rejected for good: %s", sid, error)
                continue
            res.failed_attempts += 1
            if isinstance(result, AmbiguousSendError):  # may have arrived: never resent before reconciling
                outcomes.append(self._attempt(sid, "ambiguous", self.clock(), message_id=mid,
                                              error=error))
                q.reconcile, q.attempted_at, q.message_id = True, now, mid
                log.warning("send %s attempt %d: outcome unknown (%s); reconciling before any retry", sid,
                            self.attempt_no[sid], error)
                server_wait = max(server_wait or 0.0, result.retry_after or 0.0)
                continue
            outcomes.append(self._attempt(sid, "failed", self.clock(), error=error))
            if isinstance(result, AccountError):
                account_error = error
            elif isinstance(result, TransientSendError) and result.scope == "recipient":
                q.failures += 1  # this address only: the others go on
                q.not_before = mono + min(self.retry_max, self.retry_initial * 2 ** (q.failures - 1))
                log.warning("send %s attempt %d failed for this recipient (will retry): %s", sid,
                            self.attempt_no[sid], error)
            else:
                server_wait = max(server_wait or 0.0, getattr(result, "retry_after", None) or 0.0)
                log.warning("send %s attempt %d failed (will retry): %s", sid, self.attempt_no[sid], error)
        if account_error is not None:
            self._open_circuit(account_error)
        elif self.circuit_reason is not None and any(  # the provider answered about a message: the account works
                not (isinstance(r, TransientSendError) and r.scope == "server") for r in sent.values()):
            self._close_circuit()
        if server_wait is not None:
            self.failures += 1
            delay = min(self.retry_max, self.retry_initial * 2 ** (self.failures - 1))
            self.next_try = mono + max(delay, server_wait)  # Retry-After may ask for more than the backoff
            for sender in self.senders:
                sender.close()
        elif account_error is None:
            self.failures = 0

    # --- sender health -----------------------------------------------------------------------------------
    def _open_circuit(self, reason: str) -> None:
        self.next_probe = self.monotonic() + self.probe_seconds
        if self.circuit_reason is None:
            self.circuit_reason = reason
            log.error("ALERT email sending paused: the %s account is refused (%s); %d carts wait, a new sender "
                      "tries one message every %.0f s", self.sender.name, reason, len(self.queue), self.probe_seconds)
            self._health("open", reason)

    def _close_circuit(self) -> None:
        log.warning("email sending resumed: the %s account is accepted again", self.sender.name)
        self.circuit_reason = None
        self._health("closed", "")

    def _renew_senders(self) -> None:
        """A new sender per connection, built from the config again (the API key read again)."""
        if self.sender_factory is None:
            return
        try:
            new = tuple(self.sender_factory() for _ in self.senders)
        except Exception as exc:  # noqa: BLE001 — e.g. Secret Manager unreachable: the old ones stay
            log.warning("could not build a new sender (%s): %s", type(exc).__name__, redact(exc))
            return
        for old in self.senders:
            old.close()
        self.senders, self.sender = new, new[0]

    def _health(self, state: str, reason: str) -> None:
        row = {"at": self.clock(), "sender": self.sender.name, "state": state, "reason": reason[:500],
               "pending": len(self.queue)}
        try:
            self.store.append(SENDER_HEALTH, pa.Table.from_pylist([row], schema=arrow_schema(SENDER_HEALTH)))
        except Exception as exc:  # noqa: BLE001 — the ALERT line is out; the ops row is a record of it
            log.warning("ops/sender_health not written (%s)", type(exc).__name__)

    def _send_all(self, messages: list[tuple[str, Email]]) -> dict[str, str | Exception]:
        """Send in order, spread over the senders (one thread each); session id -> provider id or
        the exception the send raised. Each sender sends its share one by one."""
        out: dict[str, str | Exception] = {}
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
        with ThreadPoolExecutor(max_workers=n, thread_name_prefix="send") as pool:
            list(pool.map(run, range(n)))  # every share sent (or its error kept) before the results are read
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
        """Decided from here on (never decided or sent again), committed now or by a later cycle."""
        for r in rows:
            self.decided.add(r["user_session"])
            self.queue.pop(r["user_session"], None)
            log.info("decision %s: %s%s", r["user_session"], r["decision"], f" ({r['detail']})" if r["detail"] else "")
        self._commit(DECISIONS, rows)
        for r in rows:
            self.offers.pop(r["user_session"], None)
            self.offers_written.discard(r["user_session"])

    def _commit(self, table: str, rows: list[dict]) -> None:
        if rows:
            self._unwritten.append((table, rows))
        self._flush()

    def _flush(self) -> bool:
        """Append the rows waiting in memory, in order; True when none is left. A failed append (disk
        full, object store down) is logged and retried by the next cycle — never dropped."""
        while self._unwritten:
            table, rows = self._unwritten[0]
            try:
                self.store.append(table, pa.Table.from_pylist(rows, schema=arrow_schema(table)))
            except Exception as exc:  # noqa: BLE001 — kept; the next cycle tries again
                log.error("ALERT %d %s rows not committed (%s: %s); retrying, nothing new is sent meanwhile",
                          len(rows), table, type(exc).__name__, redact(exc))
                return False
            self._unwritten.pop(0)
        return True

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
                soonest = max(self.next_try, min(q.not_before for q in self.queue.values()))
                if self.circuit_reason is not None:
                    soonest = max(soonest, self.next_probe)
                timeout = max(0.05, min(poll, soonest - self.monotonic()))
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
