"""Email senders behind one interface: SMTP (local: a real SMTP server on 127.0.0.1 storing a
Maildir, see scripts/smtp.sh) and SendGrid's v3 API (GCP; API key from the environment).

``send`` returns the provider's id for the message, or raises what the dispatcher needs to know:

* :class:`TransientSendError` — not sent, trying again later may work. ``scope`` says who waits:
  ``"server"`` (server down, SMTP 421/4xx to MAIL or DATA, HTTP 429: every message waits, for
  ``retry_after`` seconds when the provider said so) or ``"recipient"`` (a 4xx to RCPT: this address only).
* :class:`AmbiguousSendError` (a transient error) — the provider *may* have accepted the message: a
  timeout or dropped connection after the message went out, an HTTP 5xx. Never retried blind: the
  dispatcher first asks :meth:`reconcile`.
* :class:`AccountError` — nothing will go out with these credentials (HTTP 401/403, SMTP 530/534/535):
  the dispatcher pauses sending (its circuit) and builds a new sender (the key is read again).
* :class:`PermanentSendError` — this message never will (recipient refused, HTTP 400/413).

``reconcile(message_id, session_id, attempted_at)`` asks the receiving side whether it holds a message
whose outcome was not seen (a crash between "started" and the outcome, an ambiguous error):
:data:`PRESENT` (with the provider's id), :data:`ABSENT` (proven: safe to send again), :data:`UNKNOWN`
(ask again later) or :data:`UNSUPPORTED` (this side cannot tell: the send stays ``uncertain``; so does a
send of a sender without ``reconcile``). The
local SMTP server answers ``XHAS <message-id>`` (scripts/smtp_server.py); SendGrid's Email Activity API
is queried by the ``session_id`` custom argument every message carries (a paid add-on; without it the
answer is UNSUPPORTED). Message-IDs are one per session (``lib.retarget.message.message_id``), so one
question covers every attempt.

Error texts never carry the recipient's address: servers quote it (``550 5.1.1 <a@b>: Recipient
address rejected``, SMTPRecipientsRefused's dict, SendGrid's 4xx bodies), so every exception text
is passed through :func:`lib.retarget.redact.redact` here, at the source (``<email:xxxxxxxx>``).
"""

from __future__ import annotations

import email.utils
import smtplib
import time
import urllib.error
from datetime import UTC, datetime
from typing import Protocol

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

from lib.retarget.message import Email
from lib.retarget.redact import redact
from lib.retarget.secrets import sendgrid_api_key

PRESENT, ABSENT, UNKNOWN, UNSUPPORTED = "present", "absent", "unknown", "unsupported"
# SMTP replies that mean "these credentials / this client will not be served" (RFC 4954)
SMTP_ACCOUNT_CODES = frozenset({530, 534, 535, 538})


class SendError(Exception):
    pass


class TransientSendError(SendError):
    def __init__(self, message: str, *, scope: str = "server", retry_after: float | None = None):
        super().__init__(message)
        self.scope, self.retry_after = scope, retry_after


class AmbiguousSendError(TransientSendError):
    pass


class PermanentSendError(SendError):
    pass


class AccountError(SendError):
    pass


class EmailSender(Protocol):
    name: str

    def send(self, msg: Email) -> str: ...

    def reconcile(self, message_id: str, session_id: str, attempted_at: datetime) -> tuple[str, str | None]: ...

    def close(self) -> None: ...


def _smtp_error(code: int, text: str, *, stage: str, to_addr: str, from_addr: str) -> SendError:
    err = redact(f"SMTP {code} {text!r} ({stage})", to_addr, from_addr)
    if stage == "RCPT" and code >= 500 and code not in SMTP_ACCOUNT_CODES:
        err = f"recipient refused: {err}"
    if code in SMTP_ACCOUNT_CODES:
        return AccountError(err)
    if 400 <= code < 500:
        return TransientSendError(err, scope="recipient" if stage == "RCPT" else "server")
    return PermanentSendError(err)


class _Dropped(Exception):
    """The server closed the pooled connection before anything of the message was sent (not during DATA)."""


class SmtpSender:
    """One connection reused across messages; reconnects when the server dropped it."""

    name = "smtp"

    def __init__(self, host: str, port: int, timeout: float = 10.0):
        self.host, self.port, self.timeout = host, port, timeout
        self._conn: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        if self._conn is None:
            try:
                self._conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            except (OSError, smtplib.SMTPException) as exc:
                raise TransientSendError(f"cannot connect to SMTP {self.host}:{self.port}: {exc}") from None
        return self._conn

    def send(self, msg: Email) -> str:
        try:  # a pooled connection may have been closed by the server: one reconnect, at once
            Retrying(stop=stop_after_attempt(2), retry=retry_if_exception_type(_Dropped), reraise=True)(self._send_once, msg)
        except _Dropped:  # dropped again: transient
            raise TransientSendError("SMTP server disconnected") from None
        return str(msg.header("Message-ID"))

    def _send_once(self, msg: Email) -> None:
        conn = self._connect()
        stage = "MAIL"
        try:
            conn.ehlo_or_helo_if_needed()
            code, text = conn.mail(msg.from_addr)
            if code == 250:
                stage = "RCPT"
                code, text = conn.rcpt(msg.to_addr)
            if code in (250, 251):
                stage = "DATA"  # from here on the message may be stored even if no reply comes
                code, text = conn.data(msg.data)
            if code != 250:
                self.close()
                raise _smtp_error(code, text.decode("utf-8", "replace"), stage=stage, to_addr=msg.to_addr,
                                  from_addr=msg.from_addr)
        except smtplib.SMTPServerDisconnected:
            self._conn = None
            if stage == "DATA":
                raise AmbiguousSendError("SMTP server disconnected during DATA") from None
            raise _Dropped from None  # nothing was sent: a fresh connection (once)
        except smtplib.SMTPResponseException as exc:  # e.g. DATA answered without 354
            self.close()
            raise _smtp_error(exc.smtp_code, str(exc.smtp_error), stage=stage, to_addr=msg.to_addr,
                              from_addr=msg.from_addr) from None
        except (OSError, smtplib.SMTPException) as exc:  # a timeout, a reset
            self.close()
            err = redact(f"SMTP error during {stage}: {type(exc).__name__} {exc}", msg.to_addr)
            raise (AmbiguousSendError(err) if stage == "DATA" else TransientSendError(err)) from None

    def reconcile(self, message_id: str, session_id: str, attempted_at: datetime) -> tuple[str, str | None]:
        """Does the server hold ``message_id``? (``XHAS``, on a connection of its own)"""
        try:
            conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            try:
                code, _ = conn.docmd("XHAS", message_id)
            finally:
                try:
                    conn.quit()
                except (OSError, smtplib.SMTPException):
                    pass
        except (OSError, smtplib.SMTPException):
            return UNKNOWN, None
        if code == 250:
            return PRESENT, message_id
        if code == 550:
            return ABSENT, None
        if code in (500, 502, 504):  # a server without XHAS (any other MTA): it cannot tell
            return UNSUPPORTED, None
        return UNKNOWN, None

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.quit()
            except (OSError, smtplib.SMTPException):
                pass
            self._conn = None


# headers SendGrid refuses in the v3 "headers" object (it sets them itself)
_SENDGRID_RESERVED = {"from", "to", "subject", "content-type", "cc", "bcc", "reply-to", "date", "message-id",
                      "x-sg-id", "x-sg-eid", "received", "dkim-signature", "content-transfer-encoding",
                      "mime-version", "return-path", "sender"}


def sendgrid_payload(msg: Email) -> dict:
    """An :class:`Email` -> the SendGrid v3 /mail/send JSON body."""

    def addr(email: str, name: str) -> dict:
        return {"email": email, "name": name} if name else {"email": email}

    headers = {k: v for k, v in msg.headers if k.lower() not in _SENDGRID_RESERVED}
    return {
        "personalizations": [{"to": [addr(msg.to_addr, msg.to_name)],
                              "custom_args": {"session_id": msg.header("X-Session-Id") or ""}}],
        "from": addr(msg.from_addr, msg.from_name),
        "subject": msg.subject,
        "content": [{"type": "text/plain", "value": msg.text}, {"type": "text/html", "value": msg.html}],
        "headers": headers,
        "categories": ["cart_recovery"],
    }


def _retry_after(headers, now: float | None = None) -> float | None:
    """Seconds to wait from an HTTP answer: ``Retry-After`` (seconds or an HTTP date), else SendGrid's
    ``X-RateLimit-Reset`` (epoch seconds); None when neither says."""
    if headers is None:
        return None
    now = time.time() if now is None else now
    value = headers.get("Retry-After")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - now)
            except (TypeError, ValueError):
                pass
    reset = headers.get("X-RateLimit-Reset")
    if reset:
        try:
            return max(0.0, float(reset) - now)
        except ValueError:
            pass
    return None


class SendGridSender:
    name = "sendgrid"

    def __init__(self, api_key: str, host: str = "https://api.sendgrid.com", timeout: float = 10.0,
                 activity_settle_seconds: float = 120.0):
        self.client = SendGridAPIClient(api_key=api_key, host=host)
        self.timeout = timeout
        # the Email Activity API lists a message some time after it was accepted: "absent" is believed
        # only for an attempt at least this old
        self.activity_settle_seconds = activity_settle_seconds

    def send(self, msg: Email) -> str:
        try:
            resp = self.client.client.mail.send.post(request_body=sendgrid_payload(msg), timeout=self.timeout)
        except HTTPError as exc:
            code = exc.status_code
            body = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else str(exc.body or "")
            err = redact(f"SendGrid HTTP {code}: {redact(body, msg.to_addr)[:300]}", msg.to_addr)
            if code in (401, 403):
                raise AccountError(err) from None
            if code == 429:  # refused, nothing sent: everyone waits as long as SendGrid says
                raise TransientSendError(err, retry_after=_retry_after(exc.headers)) from None
            if code >= 500:  # may have been accepted before the error: reconcile before any retry
                raise AmbiguousSendError(err, retry_after=_retry_after(exc.headers)) from None
            raise PermanentSendError(err) from None
        except urllib.error.URLError as exc:  # urllib: while connecting or sending the request — not processed
            raise TransientSendError(redact(f"SendGrid unreachable: {exc.reason}", msg.to_addr)) from None
        except OSError as exc:  # while waiting for the answer (timeout, reset): the request went out
            raise AmbiguousSendError(redact(f"SendGrid: no answer ({type(exc).__name__} {exc})",
                                            msg.to_addr)) from None
        return resp.headers.get("X-Message-Id", "") or str(msg.header("Message-ID"))

    def reconcile(self, message_id: str, session_id: str, attempted_at: datetime) -> tuple[str, str | None]:
        """Email Activity API: the messages whose ``session_id`` custom argument is this session's."""
        query = f"(unique_args['session_id']=\"{session_id}\")"
        try:
            resp = self.client.client.messages.get(query_params={"limit": 10, "query": query}, timeout=self.timeout)
            found = resp.to_dict.get("messages") or []
        except HTTPError as exc:
            # 403: no Email Activity add-on or the key lacks the scope — it cannot tell, ever
            return (UNSUPPORTED, None) if exc.status_code == 403 else (UNKNOWN, None)
        except (OSError, ValueError):
            return UNKNOWN, None
        if found:
            return PRESENT, str(found[0].get("msg_id") or message_id)
        age = (datetime.now(UTC) - attempted_at).total_seconds()
        return (ABSENT, None) if age >= self.activity_settle_seconds else (UNKNOWN, None)

    def close(self) -> None:
        pass


def make_sender(cfg) -> EmailSender:
    rc = cfg.retarget
    if rc.sender == "sendgrid":
        return SendGridSender(sendgrid_api_key(cfg), rc.sendgrid_url, rc.smtp_timeout_seconds,
                              rc.sendgrid_activity_settle_seconds)
    return SmtpSender(rc.smtp_host, rc.smtp_port, rc.smtp_timeout_seconds)
