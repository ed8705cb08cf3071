"""Email senders behind one interface: SMTP (local: a real SMTP server on 127.0.0.1 storing a
Maildir, see scripts/smtp.sh) and SendGrid's v3 API (GCP; API key from the environment).

``send`` returns the provider's id for the message, raises :class:`TransientSendError` when trying
again later may work (server down, 4xx SMTP replies, HTTP 429/5xx) and :class:`PermanentSendError`
when it will not (recipient refused, HTTP 400/401/403/413).

Error texts never carry the recipient's address: servers quote it (``550 5.1.1 <a@b>: Recipient
address rejected``, SMTPRecipientsRefused's dict, SendGrid's 4xx bodies), so every exception text
is passed through :func:`lib.retarget.redact.redact` here, at the source (``<email:xxxxxxxx>``).
"""

from __future__ import annotations

import smtplib
from typing import Protocol

from lib.retarget.message import Email
from lib.retarget.redact import redact


class SendError(Exception):
    pass


class TransientSendError(SendError):
    pass


class PermanentSendError(SendError):
    pass


class EmailSender(Protocol):
    name: str

    def send(self, msg: Email) -> str: ...

    def close(self) -> None: ...


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
        for attempt in (1, 2):  # a pooled connection may have been closed by the server: reconnect once
            conn = self._connect()
            try:
                refused = conn.sendmail(msg.from_addr, [msg.to_addr], msg.data)
            except smtplib.SMTPServerDisconnected:
                self._conn = None
                if attempt == 2:
                    raise TransientSendError("SMTP server disconnected") from None
                continue
            except smtplib.SMTPRecipientsRefused as exc:
                raise PermanentSendError(redact(f"recipient refused: {exc.recipients}", msg.to_addr)) from None
            except smtplib.SMTPResponseException as exc:
                self.close()
                err = redact(f"SMTP {exc.smtp_code} {exc.smtp_error!r}", msg.to_addr, msg.from_addr)
                raise (TransientSendError(err) if 400 <= exc.smtp_code < 500 else PermanentSendError(err)) from None
            except (OSError, smtplib.SMTPException) as exc:
                self.close()
                raise TransientSendError(redact(f"SMTP error: {exc}", msg.to_addr)) from None
            if refused:
                raise PermanentSendError(redact(f"recipient refused: {refused}", msg.to_addr))
            return str(msg.header("Message-ID"))
        raise TransientSendError("SMTP send failed")  # not reached

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


class SendGridSender:
    name = "sendgrid"

    def __init__(self, api_key: str, host: str = "https://api.sendgrid.com", timeout: float = 10.0):
        from sendgrid import SendGridAPIClient

        self.client = SendGridAPIClient(api_key=api_key, host=host)
        self.timeout = timeout

    def send(self, msg: Email) -> str:
        from python_http_client.exceptions import HTTPError

        try:
            resp = self.client.client.mail.send.post(request_body=sendgrid_payload(msg), timeout=self.timeout)
        except HTTPError as exc:
            code = exc.status_code
            body = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else str(exc.body or "")
            err = redact(f"SendGrid HTTP {code}: {redact(body, msg.to_addr)[:300]}", msg.to_addr)
            raise (TransientSendError(err) if code == 429 or code >= 500 else PermanentSendError(err)) from None
        except OSError as exc:  # connection refused, timeout, DNS
            raise TransientSendError(redact(f"SendGrid unreachable: {exc}", msg.to_addr)) from None
        return resp.headers.get("X-Message-Id", "") or str(msg.header("Message-ID"))

    def close(self) -> None:
        pass


def make_sender(cfg) -> EmailSender:
    rc = cfg.retarget
    if rc.sender == "sendgrid":
        from lib.retarget.secrets import sendgrid_api_key

        return SendGridSender(sendgrid_api_key(cfg), rc.sendgrid_url, rc.smtp_timeout_seconds)
    return SmtpSender(rc.smtp_host, rc.smtp_port, rc.smtp_timeout_seconds)
