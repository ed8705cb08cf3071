"""Unsubscribe links of the cart-recovery emails: the dashboard app verifies the signed token and
records the unsubscribe in ``retarget/unsubscribes`` (the dispatcher honours it from its next cycle)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pyarrow as pa

from lib.retarget.message import read_unsubscribe_token
from lib.retarget.store import UNSUBSCRIBES, RetargetStore
from lib.schema import arrow_schema


def make_handler(store: RetargetStore, key: bytes, clock=lambda: datetime.now(UTC)) -> Callable[[str], bool]:
    """``handler(token) -> bool``: True when the token is genuine (the user is unsubscribed, now or
    already), False for a forged or malformed token."""

    def handle(token: str) -> bool:
        who = read_unsubscribe_token(key, token)
        if who is None:
            return False
        user_id, email = who
        known = store.read(UNSUBSCRIBES, ["user_id"]).column(0).to_pylist()
        if user_id not in known:
            store.append(UNSUBSCRIBES, pa.Table.from_pylist(
                [{"user_id": user_id, "email": email, "unsubscribed_at": clock(), "source": "email_link"}],
                schema=arrow_schema(UNSUBSCRIBES)))
        return True

    return handle


def handler_from_config(cfg) -> Callable[[str], bool]:
    from lib.retarget.secrets import signing_key

    return make_handler(RetargetStore(cfg.lake.root), signing_key(cfg))
