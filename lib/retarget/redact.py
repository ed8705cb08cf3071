"""Email addresses out of log lines, error columns and exception texts (issue #14, personal data).

One function, :func:`redact`, used wherever text leaves the retargeting code for a log or a table
column other than the two that must hold addresses (``retarget/subscribers``, ``retarget/unsubscribes``):
it replaces every address-like substring with a stable pseudonym ``<email:xxxxxxxx>`` — the first
8 hex digits of sha256 of the lower-cased address. The same address always gives the same pseudonym,
so an operator who *has* an address can find its log lines (``pseudonym(addr)``); the pseudonym alone
does not say whose it is (32 bits: many addresses share one, and it names nobody), but it is not a
secret either — someone holding a candidate address can confirm it. Text that is not an address is
left as it is.

``known`` addresses (the recipient of the message that failed) are replaced first and exactly, also
when they are not address-shaped (``check_address`` refuses ``a..b@x`` or ``no-at-sign``: the
pattern alone would leave part of such a string behind).

:func:`install` adds a logging filter to a logger that redacts every record it emits — message,
arguments and exception text (tracebacks of smtplib quote the recipient, too).
"""

from __future__ import annotations

import hashlib
import logging
import re

# local part: RFC 5322 atext and dots, except the quote characters and '=' (a match must not swallow the
# quote of a repr() or the 'to=' of a log field: the pseudonym would change); domain: labels or a literal.
# Deliberately wide: a false positive costs a readable token, a miss costs an address in a log.
_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&*+/?^_{|}~.\-\u0080-\uffff]+@"
    r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\u0080-\uffff](?:[A-Za-z0-9\-\u0080-\uffff.]*[A-Za-z0-9\u0080-\uffff])?)"
)


def pseudonym(address: str) -> str:
    """``<email:xxxxxxxx>``: stable for an address (case-insensitive), 8 hex digits of its sha256."""
    digest = hashlib.sha256(address.strip().lower().encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"<email:{digest}>"


def redact(text: object, *known: str | None) -> str:
    """``text`` (anything: str() of it) with every address — the ``known`` ones and any address-like
    substring — replaced by its pseudonym."""
    out = str(text)
    for addr in sorted({k for k in known if k and k.strip()}, key=len, reverse=True):
        # also the repr()/bytes forms an exception may hold (quotes, escaped control characters), and the
        # first 80 characters (check_address quotes no more)
        for form in sorted({addr, repr(addr)[1:-1], addr.encode("unicode_escape").decode("ascii"),
                            repr(addr[:80])[1:-1]}, key=len, reverse=True):
            out = re.sub(re.escape(form), pseudonym(addr), out, flags=re.IGNORECASE)
    return _ADDRESS.sub(lambda m: m.group(0) if m.group(0).startswith("<email:") else pseudonym(m.group(0)), out)


def contains_address(text: str) -> bool:
    return _ADDRESS.search(text) is not None


class RedactingFilter(logging.Filter):
    """Redacts each record of the logger it is installed on (message, args, exception text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a bad format string: keep what there is
            message = f"{record.msg} {record.args}"
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install(logger: logging.Logger | str) -> logging.Logger:
    """Add the redacting filter to ``logger`` (once)."""
    logger = logging.getLogger(logger) if isinstance(logger, str) else logger
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())
    return logger
