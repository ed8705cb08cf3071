"""Carts and abandonment: the cart of a session and its outcome (pure Python), what the emails act on.

A session (``user_session``) ends after ``sessions.gap_minutes`` without any event (event time;
``lib.sessions`` runs that on the stream). At its end its cart — adds, minus removes (never below
zero), minus what was purchased (:func:`fold_cart`) — decides the **outcome**: ``checked_out`` when a
purchase happened at or after the last add-to-cart, else ``abandoned`` when the cart is not empty, else
``emptied``. Only ``abandoned`` sessions are candidates for a cart-recovery email (``lib.retarget``).

A cart event is counted once (exact duplicates, :data:`CART_EVENT_KEY`): the dedupe key of
:mod:`lib.domain.dedupe` restricted to one session — the key's fields but the two that are the same
for every event of a session (:data:`SESSION_FIELDS`), with ``t`` for ``event_time``.

Not abandonment: the batch table ``gold/carts_without_purchase_daily`` (:func:`lib.batch.analyst.
carts_without_purchase_daily`) counts, per day, the sessions with an add-to-cart and no purchase in the
whole session (no inactivity gap, removes ignored, a purchase before the add counts) and the users who
added to a cart and bought nothing that day: a day-level conversion figure for analysts, named for what it
counts so that it is not read as the emails' abandonment rate.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from lib.domain.sales import PURCHASE

ADD, REMOVE = "cart", "remove_from_cart"
CART_TYPES = (ADD, REMOVE, PURCHASE)
# at the same instant: adds, then removes, then purchases (a purchase in the same second as the last
# add is a checkout, not an abandonment)
TYPE_RANK = {ADD: 0, REMOVE: 1, PURCHASE: 2}
ABANDONED, CHECKED_OUT, EMPTIED = "abandoned", "checked_out", "emptied"
# what makes two cart events of one session the same event (CartEvent's fields; ``t`` is event_time)
CART_EVENT_KEY = ("t", "event_type", "product_id", "price", "brand", "category_code", "category_id")
SESSION_FIELDS = ("user_id", "user_session")  # the dedupe key's fields that one session's events share


@dataclass(frozen=True)
class CartEvent:
    """One cart action; ``t`` in epoch milliseconds (event time)."""

    t: int
    event_type: str
    product_id: int
    price: float
    brand: str | None = None
    category_code: str | None = None
    category_id: int | None = None

    def as_list(self) -> list:
        return [self.t, self.event_type, self.product_id, self.price, self.brand, self.category_code,
                self.category_id]

    @classmethod
    def from_list(cls, v: list) -> CartEvent:
        return cls(*v)


@dataclass(frozen=True)
class CartItem:
    product_id: int
    qty: int
    price: float  # the price of its latest add-to-cart
    brand: str | None
    category_code: str | None
    category_id: int | None

    def as_dict(self) -> dict:
        return {"product_id": self.product_id, "qty": self.qty, "price": self.price, "brand": self.brand,
                "category_code": self.category_code, "category_id": self.category_id}


@dataclass(frozen=True)
class Cart:
    items: tuple[CartItem, ...]
    last_cart_ms: int | None  # latest add-to-cart
    last_purchase_ms: int | None  # latest purchase in the session

    @property
    def value(self) -> float:
        return round(sum(i.price * i.qty for i in self.items), 2)

    @property
    def units(self) -> int:
        return sum(i.qty for i in self.items)

    @property
    def outcome(self) -> str:
        """``checked_out`` (a purchase at/after the last add), ``abandoned`` or ``emptied``."""
        if self.last_purchase_ms is not None and (self.last_cart_ms is None
                                                  or self.last_purchase_ms >= self.last_cart_ms):
            return CHECKED_OUT
        return ABANDONED if self.items else EMPTIED


def fold_cart(events: Iterable[CartEvent]) -> Cart:
    """The cart after ``events`` applied in event-time order (ties: add, remove, purchase).

    ``cart`` adds one unit, ``remove_from_cart`` takes one away (never below zero; removing what is
    not in the cart does nothing), ``purchase`` clears the purchased product. Exact duplicate events
    count once.
    """
    qty: dict[int, int] = {}
    info: dict[int, CartEvent] = {}
    last_cart = last_purchase = None
    for e in sorted(set(events), key=lambda e: (e.t, TYPE_RANK.get(e.event_type, 9), e.product_id)):
        if e.event_type == ADD:
            qty[e.product_id] = qty.get(e.product_id, 0) + 1
            info[e.product_id] = e
            last_cart = e.t
        elif e.event_type == REMOVE:
            if qty.get(e.product_id, 0) > 0:
                qty[e.product_id] -= 1
        elif e.event_type == PURCHASE:
            qty[e.product_id] = 0
            last_purchase = e.t
    items = tuple(
        CartItem(p, n, info[p].price, info[p].brand, info[p].category_code, info[p].category_id)
        for p, n in sorted(qty.items()) if n > 0
    )
    return Cart(items, last_cart, last_purchase)
