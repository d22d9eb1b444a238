"""Rendering an ``OutboundMessage`` as MIME and delivering it by SMTP.

The Message-ID is derived from the outbox row's idempotency key, so a retried send
carries the same id and the resident's client shows one message. ``send`` makes
exactly one attempt: retries belong to the caller's job, which reads the error
class (``TransientDeliveryError`` or ``PermanentDeliveryError``).
"""

from __future__ import annotations

import re
import smtplib
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses
from urllib.parse import parse_qs, unquote, urlsplit

from channels.base import (
    DeliveryResult,
    OutboundMessage,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from channels.email.decoding import message_ids, normalize_message_id

# OutboundMessage.metadata flag marking an automatic notification (an
# acknowledgement, a status update), as opposed to an agent's personal reply.
AUTOMATIC_FLAG = "automatic"
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.]")
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to connect, read from ``SMTP_URL``."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    use_ssl: bool = False
    starttls: bool = False


def parse_smtp_url(url: str) -> SmtpSettings:
    """Read ``smtp://user:pass@host:port``, ``smtps://...`` (TLS from the start) or
    ``smtp://...?starttls=1``. User and password are percent-decoded. Raises
    ``ValueError`` for anything else: that is a configuration error, not a delivery."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("smtp", "smtps"):
        raise ValueError(f"SMTP_URL must start with smtp:// or smtps://, not {scheme!r}")
    if not parts.hostname:
        raise ValueError("SMTP_URL has no host")
    query = parse_qs(parts.query)
    starttls = any(v.lower() in _TRUE for v in query.get("starttls", []))
    use_ssl = scheme == "smtps"
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"SMTP_URL has an invalid port: {exc}") from exc
    return SmtpSettings(
        host=parts.hostname,
        port=port or (465 if use_ssl else 587 if starttls else 25),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        use_ssl=use_ssl,
        starttls=starttls and not use_ssl,
    )


def message_id_for(idempotency_key: str, domain: str) -> str:
    """``<key@domain>``, with characters a Message-ID may not hold replaced."""
    left = _ID_UNSAFE.sub(".", idempotency_key.strip()).strip(".") or "message"
    left = re.sub(r"\.{2,}", ".", left)
    return f"<{left}@{domain.strip().strip('.')}>"


def _one_line(value: str) -> str:
    return re.sub(r"[\r\n]+\s*", " ", value).strip()


def build_message(out: OutboundMessage, *, from_addr: str, domain: str) -> EmailMessage:
    """Render ``out`` as a MIME message ready for SMTP.

    ``from_addr`` is ``help@city.gov`` or ``City Help <help@city.gov>``. Non-ASCII
    subjects and names are RFC 2047-encoded when the message is serialized. Adds
    ``Auto-Submitted: auto-replied`` when ``out.metadata[AUTOMATIC_FLAG]`` is true.
    Attachments with ``content`` are attached; ones that only have a ``url`` are not.
    """
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = _one_line(from_addr)
    msg["To"] = _one_line(out.to)
    if out.subject:
        msg["Subject"] = _one_line(out.subject)
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = message_id_for(out.idempotency_key, domain)
    parent = normalize_message_id(out.in_reply_to)
    references = [i for ref in out.references for i in message_ids(ref)]
    if parent:
        msg["In-Reply-To"] = parent
        if parent not in references:
            references.append(parent)
    if references:
        msg["References"] = " ".join(dict.fromkeys(references))
    if out.metadata.get(AUTOMATIC_FLAG):
        msg["Auto-Submitted"] = "auto-replied"
        # Asks Exchange not to answer with its own out-of-office note.
        msg["X-Auto-Response-Suppress"] = "All"
    msg.set_content(out.text or "", subtype="plain", charset="utf-8", cte="quoted-printable")
    if out.html:
        msg.add_alternative(out.html, subtype="html", charset="utf-8", cte="quoted-printable")
    for attachment in out.attachments:
        if attachment.content is None:
            continue
        maintype, _, subtype = attachment.content_type.partition("/")
        msg.add_attachment(
            attachment.content,
            maintype=maintype or "application",
            subtype=subtype or "octet-stream",
            filename=attachment.filename or "attachment",
        )
    return msg


def _envelope_sender(from_addr: str) -> str:
    pairs = getaddresses([from_addr])
    address = pairs[0][1] if pairs and pairs[0][1] else from_addr
    return Address(addr_spec=address.strip()).addr_spec


def _classify(code: int | None, message: str) -> Exception:
    """4xx and unknown codes may pass later; 5xx never will as addressed."""
    label = str(code) if code is not None else None
    if code is not None and 500 <= code < 600:
        return PermanentDeliveryError(message, code=label)
    return TransientDeliveryError(message, code=label)


def _reply_text(response: bytes | str) -> str:
    if isinstance(response, bytes):
        return response.decode("utf-8", "replace")
    return str(response)


def send(
    out: OutboundMessage,
    smtp_url: str,
    *,
    from_addr: str,
    domain: str,
    timeout: float = 10,
) -> DeliveryResult:
    """Deliver ``out`` by SMTP once.

    Raises ``TransientDeliveryError`` for SMTP 4xx replies and network trouble
    (refused connections, timeouts, disconnects, TLS failures) and
    ``PermanentDeliveryError`` for 5xx replies, including a refused recipient. The
    error's ``code`` is the SMTP reply code (``"network"`` when there was none).
    """
    settings = parse_smtp_url(smtp_url)
    msg = build_message(out, from_addr=from_addr, domain=domain)
    message_id = str(msg["Message-ID"])
    recipient = Address(addr_spec=_envelope_sender(out.to)).addr_spec
    client: smtplib.SMTP | None = None
    try:
        if settings.use_ssl:
            client = smtplib.SMTP_SSL(
                settings.host, settings.port, timeout=timeout,
                context=ssl.create_default_context(),
            )
        else:
            client = smtplib.SMTP(settings.host, settings.port, timeout=timeout)
        client.ehlo_or_helo_if_needed()
        if settings.starttls:
            client.starttls(context=ssl.create_default_context())
            client.ehlo()
        if settings.username:
            client.login(settings.username, settings.password or "")
        client.send_message(msg, from_addr=_envelope_sender(from_addr), to_addrs=[recipient])
    except smtplib.SMTPRecipientsRefused as exc:
        code, reply = next(iter(exc.recipients.values()), (None, b""))
        detail = f"recipient {recipient} refused: {code} {_reply_text(reply)}"
        raise _classify(code, detail) from exc
    except smtplib.SMTPResponseException as exc:
        # Sender refused, data refused, authentication failed, a 421 at connect...
        raise _classify(
            exc.smtp_code, f"SMTP server answered {exc.smtp_code} {_reply_text(exc.smtp_error)}"
        ) from exc
    except smtplib.SMTPNotSupportedError as exc:
        raise PermanentDeliveryError(
            f"SMTP server does not support: {exc}", code="unsupported"
        ) from exc
    except (TimeoutError, smtplib.SMTPException, OSError) as exc:
        # Disconnects, refused connections, timeouts, DNS and TLS failures.
        raise TransientDeliveryError(
            f"SMTP delivery to {settings.host}:{settings.port} failed: {exc!r}", code="network"
        ) from exc
    finally:
        if client is not None:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                client.close()
    return DeliveryResult(
        provider_id=message_id,
        status="sent",
        detail={"smtp_host": settings.host, "smtp_port": settings.port},
    )
