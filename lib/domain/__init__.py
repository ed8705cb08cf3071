"""The business rules, each defined once (issue #17): what a purchase, an order, a sale, a duplicate, a top
product and an abandoned cart are.

Each concept has one module that states the rule as data (column names, the predicate's value, the key,
the ordering) and holds its driver-side form (pandas / Arrow, no Spark: the dashboard imports them):

* :mod:`lib.domain.sales` — purchase, order, the sale measures (units, revenue, orders) per product and
  minute / day, the serving increments, top-k;
* :mod:`lib.domain.dedupe` — the exact-duplicate key and which copy wins;
* :mod:`lib.domain.carts` — the cart of a session and its outcome (abandoned / checked out / emptied),
  what the cart-recovery emails act on; and what the batch table ``carts_without_purchase_daily``
  counts instead (not abandonment).

:mod:`lib.domain.spark` holds the Spark forms of the same rules (batch, the Spark path of the
lakehouse), built from the same constants; ``tests/unit/test_domain.py`` runs both forms on the same
rows and asserts equal results. The recomputations the tests check the pipelines against (oracles) live
in ``tests/``.
"""
