"""The one "wait until X or give up" of the tooling and the tests (tenacity): the local stack's services,
run-once's stages and the tests' conditions all poll through :func:`wait_until`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tenacity import RetryError, Retrying, retry_if_not_result, stop_before_delay, wait_fixed

T = TypeVar("T")


def wait_until(ready: Callable[[], T], timeout: float, interval: float = 0.5, what: str = "condition", *,
               error: type[Exception] = TimeoutError) -> T:
    """Call ``ready()`` every ``interval`` seconds until it returns something true, and return that. No call
    starts after ``timeout`` seconds: then ``error("timed out after N s waiting for <what>")``. An exception
    ``ready()`` raises ends the wait at once (a service that died, a stop signal)."""
    try:
        return Retrying(stop=stop_before_delay(timeout), wait=wait_fixed(interval),
                        retry=retry_if_not_result(bool))(ready)
    except RetryError:
        raise error(f"timed out after {timeout:.0f} s waiting for {what}") from None
