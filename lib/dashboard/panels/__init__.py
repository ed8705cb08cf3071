"""Dashboard panels. A panel = an API router here + a section of the page + a script in ``static/panels/``.

To add one (say ``demand``):

1. ``lib/dashboard/panels/demand.py``: pydantic response models and an ``APIRouter`` whose endpoints
   read through the :class:`~lib.dashboard.tables.LakeReader` (``Depends(get_reader)``); a table
   that does not exist yet must give empty data, not an error. Add its ``TableRef`` and contract schema
   to ``lib/dashboard/tables.py``.
2. Append the router to :data:`PANELS` below.
3. ``lib/dashboard/static/index.html``: a ``<section data-panel="demand">`` and a
   ``<script src="/static/panels/demand.js">`` tag; in that script call ``Dashboard.register("demand", refresh)``
   where ``refresh(ctx)`` fetches the endpoint and fills the section (with ``textContent`` only).
4. Tests in ``tests/unit/test_dashboard_api.py`` (values, empty lake) and, if it shows something new, the browser test.

``docs/dashboard.md`` walks through it in more detail.
"""

from __future__ import annotations

from fastapi import APIRouter

from lib.dashboard.panels import outlook, quality, recovery, sales

PANELS: list[APIRouter] = [sales.router, quality.router, recovery.router, outlook.router]
