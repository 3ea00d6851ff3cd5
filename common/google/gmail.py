"""Gmail for approved e-mail actions: the MIME message, drafts, sending, and finding what was sent.

A message carries a Message-ID and an X-CSCX-Action-Id header derived from its action, so a
later attempt can tell whether an earlier one already sent it: first by `rfc822msgid:` in the
Sent folder, then, because Gmail is reported to replace a client's Message-ID on send, by the
action header of what was sent since the first attempt. Sending and drafting are not retried
here (a retry after a lost answer would send twice); searches are.
"""

from __future__ import annotations

import base64
import email.errors
import email.utils
import hashlib
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

from common.google import GoogleError, InvalidMessage, execute, service, utc
from common.log import get_logger

logger = get_logger(__name__)

ACTION_HEADER = "X-CSCX-Action-Id"
MESSAGE_ID_DOMAIN = "cscx.app"
_READ_RETRIES = 2
_PAGE_SIZE = 100
# The Sent-folder scan after a rewritten Message-ID stops after this many messages: far more
# than a user sends between two attempts of one action.
_SCAN_LIMIT = 500
# Gmail's internalDate is its clock, sent_after ours: allow for the difference.
_CLOCK_SKEW = timedelta(minutes=2)
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,200}")
# Gmail's reasons for a 400 that refuses the message itself ("Invalid To header", "Recipient
# address required"); another 400 (failedPrecondition: no Gmail for the account) is not about it.
_REFUSED_MESSAGE_REASONS = frozenset({"invalidArgument", "badRequest", "invalid"})
# What the MIME library raises for a header or address it cannot write (HeaderWriteError, a
# MessageError, in later Pythons; ValueError in 3.11).
_UNWRITABLE = (ValueError, TypeError, email.errors.MessageError)


def message_id_for(action_id: str) -> str:
    """The RFC 5322 Message-ID of the action's e-mail; the same on every attempt."""
    local = action_id if _SAFE_ID.fullmatch(action_id) else hashlib.sha256(action_id.encode()).hexdigest()[:40]
    return f"<action-{local}@{MESSAGE_ID_DOMAIN}>"


def build_message(
    *,
    sender: str,
    to: list[str],
    cc: list[str],
    subject: str,
    body: str,
    message_id: str,
    action_id: str,
) -> EmailMessage:
    """A plain-text UTF-8 e-mail; InvalidMessage for an address or header that cannot be written.

    Addresses go out with their domains in ASCII (IDNA, `xn--`): the MIME library would write an
    internationalised domain as an RFC 2047 encoded word, which is no address at all.
    """
    try:
        message = EmailMessage()
        if sender:
            message["From"] = sender  # Gmail sends as the signed-in account whatever this says
        if to:
            message["To"] = ", ".join(_ascii_address(address) for address in to)
        if cc:
            message["Cc"] = ", ".join(_ascii_address(address) for address in cc)
        message["Subject"] = _one_line(subject)
        message["Date"] = email.utils.format_datetime(datetime.now(UTC))
        message["Message-ID"] = message_id
        message[ACTION_HEADER] = action_id
        message.set_content(body, subtype="plain", charset="utf-8")
    except _UNWRITABLE as error:
        raise InvalidMessage(f"The e-mail cannot be written: {error}") from None
    return message


def _ascii_address(address: str) -> str:
    """`address` with its domain in ASCII; ValueError when it has no ASCII form at all."""
    if address.isascii():
        return address
    import email_validator  # as the payload's addresses were validated: the same IDNA form

    ascii_address = email_validator.validate_email(address, check_deliverability=False).ascii_email
    if ascii_address is None:
        raise ValueError(f"{address} has no ASCII form")
    return str(ascii_address)


def create_draft(token: str, message: EmailMessage) -> dict[str, Any]:
    """Save `message` as a draft: {"draft_id", "message_id"} (Gmail's ids)."""
    drafts = service("gmail", "v1", token).users().drafts()
    draft = _unless_refused(lambda: execute(drafts.create(userId="me", body={"message": {"raw": _raw(message)}})))
    return {"draft_id": str(draft.get("id", "")), "message_id": str((draft.get("message") or {}).get("id", ""))}


def send(token: str, message: EmailMessage) -> dict[str, Any]:
    """Send `message`: {"message_id", "thread_id"} (Gmail's ids)."""
    messages = service("gmail", "v1", token).users().messages()
    sent = _unless_refused(lambda: execute(messages.send(userId="me", body={"raw": _raw(message)})))
    return {"message_id": str(sent.get("id", "")), "thread_id": str(sent.get("threadId", ""))}


def _unless_refused(call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`call`'s answer; InvalidMessage when Gmail refuses the message itself."""
    try:
        return call()
    except GoogleError as error:
        if error.status == 400 and error.reason in _REFUSED_MESSAGE_REASONS:
            raise InvalidMessage(f"Gmail refused the e-mail: {error.message}") from None
        raise


def find_sent(
    token: str, *, message_id: str, action_id: str, subject: str, sent_after: datetime
) -> dict[str, Any] | None:
    """The message an earlier attempt sent, {"message_id", "thread_id"}, or None if none was.

    By Message-ID in the Sent folder first; failing that, the Sent folder newest first back
    to `sent_after`, each message's action header read (format=metadata) until one matches.
    """
    messages = service("gmail", "v1", token).users().messages()
    query = f"in:sent rfc822msgid:{message_id.strip('<>')}"
    found = execute(messages.list(userId="me", q=query, maxResults=1), retries=_READ_RETRIES).get("messages") or []
    if found:
        return {"message_id": str(found[0]["id"]), "thread_id": str(found[0].get("threadId", ""))}
    return _scan_sent(messages, action_id=action_id, subject=subject, since=utc(sent_after) - _CLOCK_SKEW)


def find_draft(token: str, *, message_id: str) -> dict[str, Any] | None:
    """The draft an earlier attempt saved with this Message-ID, {"draft_id", "message_id"}, or None."""
    users = service("gmail", "v1", token).users()
    query = f"in:drafts rfc822msgid:{message_id.strip('<>')}"
    found = execute(users.messages().list(userId="me", q=query, maxResults=10), retries=_READ_RETRIES)
    wanted = {str(m["id"]) for m in found.get("messages") or []}
    if not wanted:
        return None
    # The search gives the draft's message; the draft's own id comes from the drafts list.
    page_token: str | None = None
    while True:
        page = execute(
            users.drafts().list(userId="me", maxResults=_PAGE_SIZE, pageToken=page_token), retries=_READ_RETRIES
        )
        for draft in page.get("drafts") or []:
            message = draft.get("message") or {}
            if str(message.get("id")) in wanted:
                return {"draft_id": str(draft["id"]), "message_id": str(message["id"])}
        page_token = page.get("nextPageToken")
        if not page_token:
            return None


def _scan_sent(messages: Any, *, action_id: str, subject: str, since: datetime) -> dict[str, Any] | None:
    """The Sent folder, newest first back to `since`, searched for the action header."""
    since_ms = int(since.timestamp() * 1000)
    wanted_subject = _one_line(subject)
    page_token: str | None = None
    examined = 0
    while examined < _SCAN_LIMIT:
        page = execute(
            messages.list(userId="me", q="in:sent", maxResults=_PAGE_SIZE, pageToken=page_token),
            retries=_READ_RETRIES,
        )
        for listed in page.get("messages") or []:
            examined += 1
            headers_wanted = [ACTION_HEADER, "Subject"]
            request = messages.get(userId="me", id=listed["id"], format="metadata", metadataHeaders=headers_wanted)
            metadata = execute(request, retries=_READ_RETRIES)
            headers = {h["name"].lower(): h["value"] for h in (metadata.get("payload") or {}).get("headers") or []}
            if headers.get(ACTION_HEADER.lower()) == action_id:
                logger.info("sent message found by its action header", extra={"fields": {"action_id": action_id}})
                return {"message_id": str(metadata["id"]), "thread_id": str(metadata.get("threadId", ""))}
            if ACTION_HEADER.lower() not in headers and headers.get("subject") == wanted_subject:
                # Ours by its subject yet without our header: if Gmail ever drops the header,
                # this log line is how we learn it.
                logger.warning("sent message with the action's subject lacks the action header")
            if int(metadata.get("internalDate") or 0) < since_ms:
                return None  # older than the first attempt: nothing further back can be ours
        page_token = page.get("nextPageToken")
        if not page_token:
            return None
    logger.warning("Sent-folder scan stopped at its limit", extra={"fields": {"action_id": action_id}})
    return None


def _one_line(text: str) -> str:
    # A line break in a header would start another header: a subject is one line.
    return re.sub(r"\s*[\r\n]+\s*", " ", text).strip()


def _raw(message: EmailMessage) -> str:
    try:
        return base64.urlsafe_b64encode(message.as_bytes()).decode()
    except _UNWRITABLE as error:
        raise InvalidMessage(f"The e-mail cannot be written: {error}") from None
