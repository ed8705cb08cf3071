"""Deterministic synthetic events shaped like the REES46 "eCommerce Events History in Cosmetics Shop".

The generator is calibrated to ``/work/shared/dataset-facts.md`` (see ``docs/data.md`` for the model,
the parameters and measured statistics). It simulates *shoppers*, not rows:

* users with heavy-tailed visit counts (log-normal visit rate, Poisson visits in the window), a
  "home" position in time so that a user's visits and orders cluster (days between repeat orders
  ~ weeks), and correlated cart / purchase propensities;
* sessions of three kinds - browse (views), cart (views, adds, removes) and order (a few views,
  adds, then ~8 purchase rows at checkout) - with gaps of seconds to minutes between events;
* a per-user interest set (products drawn from a price-tilted Zipf popularity) shared by the
  user's sessions, so items added in one visit are often bought in a later one;
* a fixed catalogue (54,571 products, 525 categories, 273 brands, 12 category codes, 662
  always-free products, gift certificates with negative prices, occasional price changes, a few
  products with a trend or a holiday season) that does not depend on the seed;
* the shop's rhythm: hour-of-day profile, weekday/weekend, monthly levels, Black Friday,
  the Christmas drop;
* the data-quality quirks: exact duplicate rows (mostly ``remove_from_cart``), rows without a
  session, zero and negative prices, missing brand and category code.

Everything is drawn from one ``numpy.random.Generator`` (PCG64) seeded with ``seed`` and
vectorised, so the same arguments give a byte-identical file. The modules, in dependency order:

* ``calibration``: every parameter (``EVENTS_PER_DAY``, ``DEFAULT_SEED``, ``DEFAULT_START``, ...),
  ``default_days``, the shop's rhythm and the per-session plan derived from the targets;
* ``catalogue``: the fixed catalogue (``_catalog()``);
* ``shoppers``: a batch's shoppers and their sessions (kinds, times, sizes, interest sets);
* ``session_events``: the events of those sessions (products, order, duplicates, times);
* ``simulation``: one run (``_events``): the window, the batches of shoppers (the steps of the two
  modules above, in order), the run-wide finishing steps;
* ``writers``: ``generate_events``, ``iter_events``, ``write_csv`` (and ``GenerationSummary``);
* ``subscribers``: ``generate_subscribers``, ``write_subscribers_csv``.

The command line is ``tools/generate.py``::

    python -m tools.generate --rows 1000000 --out var/data/events.csv
    python -m tools.generate --rows 60000 --minutes 30 --seed 7 --out var/data/stream.csv
"""
