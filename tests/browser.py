"""Real-browser helpers for tests: the dashboard server in a subprocess and a page in headless Chromium.

Chromium is Debian's ``/usr/bin/chromium`` (installed by ``scripts/setup_browser.sh``), driven by
Playwright for Python through ``executable_path`` — Playwright's own browser downloads
(``playwright install``) are never used.

    from tests.browser import chromium_missing, dashboard_server, open_page

    pytestmark = pytest.mark.skipif(chromium_missing(), reason=chromium_missing() or "")

    with dashboard_server(lake_root) as url, open_page(url) as page:
        page.get_by_test_id("top-products").locator("[data-product-id='42']").wait_for()
        assert not page.dialogs and not page.errors

``open_page`` yields a :class:`BrowserPage`: Playwright's ``Page`` (every attribute is forwarded, so
``page.goto(...)``, ``page.get_by_test_id(...)`` work) plus what the page did that a test should
look at: ``dialogs`` (alert/confirm/prompt messages, dismissed automatically), ``errors`` (uncaught
exceptions) and ``console_errors``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lib.config import PROJECT_ROOT
from tools.wait import wait_until

CHROMIUM = os.environ.get("SHOP_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--mute-audio",
]


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here (None when Chromium is installed)."""
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is not installed: run scripts/setup_browser.sh (apt-get install chromium)"
    return None


class BrowserPage:
    """A Playwright ``Page`` plus the dialogs, uncaught errors and console errors it produced."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.console_errors: list[str] = []
        page.on("dialog", self._on_dialog)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("console", lambda msg: self.console_errors.append(msg.text) if msg.type == "error" else None)

    def _on_dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.page, name)


@contextmanager
def open_page(url: str | None = None, *, width: int = 1400, height: int = 1000,
              timeout_ms: int = 15_000) -> Iterator[BrowserPage]:
    """Headless Chromium with one page (opened at ``url`` if given); closed on exit."""
    from playwright.sync_api import sync_playwright

    reason = chromium_missing()
    if reason:
        raise RuntimeError(reason)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": width, "height": height}, locale="en-US",
                                          timezone_id="UTC")
            page = context.new_page()
            page.set_default_timeout(timeout_ms)
            tab = BrowserPage(page)
            if url:
                page.goto(url, wait_until="domcontentloaded")
            yield tab
        finally:
            browser.close()


_SERVING = re.compile(r"\[dashboard\] serving (http://\S+?)/? ")


@contextmanager
def dashboard_server(lake_root: str | Path, *, port: int = 0, log: Path | None = None,
                     env: dict[str, str] | None = None, timeout: float = 60) -> Iterator[str]:
    """``python -m jobs.serving.dashboard`` on 127.0.0.1 over ``lake_root``; yields its base URL (no trailing /).

    ``port=0`` lets the server take a free port (it prints the one it got). Stopped with SIGTERM
    (SIGKILL if it does not stop within 10 s). Its output goes to ``log`` if given.
    """
    environ = dict(os.environ, SHOP__LAKE__ROOT=str(lake_root), PYTHONUNBUFFERED="1", **(env or {}))
    out = open(log, "ab", buffering=0) if log else None  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "jobs.serving.dashboard", "--host", "127.0.0.1", "--port", str(port)],
                            cwd=PROJECT_ROOT, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        url = _wait_for_url(proc, timeout, out)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        if out:
            out.close()


def _wait_for_url(proc: subprocess.Popen, timeout: float, out: Any) -> str:
    import selectors
    import threading

    seen: list[str] = []
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)

    def next_line_url() -> str | None:
        """One line of the server's output (waiting up to 0.2 s for it): the URL it serves at, if it says."""
        line = proc.stdout.readline() if sel.select(timeout=0.2) else b""
        if not line:
            if proc.poll() is not None:
                raise ChildProcessError
            return None
        text = line.decode(errors="replace")
        seen.append(text)
        if out:
            out.write(line)
            out.flush()
        m = _SERVING.search(text)
        return m.group(1).rstrip("/") if m else None

    try:
        url = wait_until(next_line_url, timeout, interval=0)
    except (ChildProcessError, TimeoutError):
        raise RuntimeError(f"dashboard did not start within {timeout:.0f} s (exit code {proc.poll()}): "
                           f"{''.join(seen)[-2000:]}") from None
    finally:
        sel.close()
    # keep draining the server's output so it never blocks on a full pipe (a background pump for the
    # server's life, not parallel work: a plain daemon thread)
    threading.Thread(target=_drain, args=(proc, out), daemon=True).start()
    return url


def _drain(proc: subprocess.Popen, out: Any) -> None:
    for line in iter(proc.stdout.readline, b""):
        if out and not out.closed:
            try:
                out.write(line)
                out.flush()
            except ValueError:
                pass
