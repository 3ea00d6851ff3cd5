"""Gmail for approved e-mail actions: the MIME message, and drafts: made, found again, sent.

Every e-mail is sent as a draft (drafts.create, then drafts.send), which makes a send exactly
once with gmail.compose alone, without reading the mailbox. A message carries a Message-ID and an
X-CSCX-Action-Id header derived from its action; its draft is found again by that Message-ID
(drafts.list with `rfc822msgid:`). Sending a draft deletes it, and Gmail sends each draft once:
a draft that is gone was sent (README, "Exactly once without reading the mailbox"). Creating
and sending are not retried here (a retry after a lost answer would make a second draft);
searches and reads are.
"""

from __future__ import annotations

import base64
import email.errors
import email.utils
import hashlib
import re
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any, TypedDict

from common.google import GoogleError, InvalidMessage, execute, resource
from common.log import get_logger

logger = get_logger(__name__)

ACTION_HEADER = "X-CSCX-Action-Id"
MESSAGE_ID_DOMAIN = "cscx.app"
_READ_RETRIES = 2
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,200}")
# Gmail's reasons for a 400 that refuses the message itself ("Invalid To header", "Recipient
# address required"); another 400 (failedPrecondition: no Gmail for the account) is not about it.
_REFUSED_MESSAGE_REASONS = frozenset({"invalidArgument", "badRequest", "invalid"})
# What the MIME library raises for a header or address it cannot write (HeaderWriteError, a
# MessageError, in later Pythons; ValueError in 3.11).
_UNWRITABLE = (ValueError, TypeError, email.errors.MessageError)


class Draft(TypedDict):
    """A draft in the user's Gmail: its id, and the id and thread of the message it holds."""

    draft_id: str
    message_id: str
    thread_id: str


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


def create_draft(token: str, message: EmailMessage) -> Draft:
    """Save `message` as a draft in the user's Gmail."""
    drafts = resource("gmail", "v1", token, "users.drafts")
    return _draft(
        _unless_refused(lambda: execute(drafts.create(userId="me", body={"message": {"raw": _raw(message)}})))
    )


def find_draft(token: str, *, message_id: str) -> Draft | None:
    """The draft holding the message with this Message-ID, None when there is none (any more)."""
    drafts = resource("gmail", "v1", token, "users.drafts")
    query = f"rfc822msgid:{message_id.strip('<>')}"
    found = execute(drafts.list(userId="me", q=query, maxResults=10), retries=_READ_RETRIES).get("drafts") or []
    return _draft(found[0]) if found else None


def send_draft(token: str, draft: Draft, *, maybe_sent: bool) -> dict[str, Any]:
    """Send the draft: {"message_id", "thread_id"} of the message Gmail sent.

    With `maybe_sent` (an earlier attempt may have sent it and lost the answer), the draft is
    looked up first. A draft that is gone was sent: sending deletes it, and the message then has
    an id of its own that only reading the mailbox could tell, so `message_id` is None and
    `thread_id` is the draft's. (The CSM sending the draft from Gmail, or discarding it, also
    makes it gone; neither is a reason to send it again.)
    """
    drafts = resource("gmail", "v1", token, "users.drafts")
    if maybe_sent and not _exists(drafts, draft["draft_id"]):
        return _sent_before(draft)
    try:
        sent = _unless_refused(lambda: execute(drafts.send(userId="me", body={"id": draft["draft_id"]})))
    except GoogleError as error:
        if error.status == 404:  # sent between the look-up and now, by an attempt beside this one
            return _sent_before(draft)
        raise
    return {"message_id": str(sent.get("id", "")), "thread_id": str(sent.get("threadId", ""))}


def _unless_refused(call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`call`'s answer; InvalidMessage when Gmail refuses the message itself."""
    try:
        return call()
    except GoogleError as error:
        if error.status == 400 and error.reason in _REFUSED_MESSAGE_REASONS:
            raise InvalidMessage(f"Gmail refused the e-mail: {error.message}") from None
        raise


def _exists(drafts: Any, draft_id: str) -> bool:
    try:
        execute(drafts.get(userId="me", id=draft_id, format="minimal"), retries=_READ_RETRIES)
    except GoogleError as error:
        if error.status == 404:
            return False
        raise
    return True


def _sent_before(draft: Draft) -> dict[str, Any]:
    logger.info("draft sent by an earlier attempt", extra={"fields": {"draft_id": draft["draft_id"]}})
    return {"message_id": None, "thread_id": draft["thread_id"]}


def _draft(resource: dict[str, Any]) -> Draft:
    message = resource.get("message") or {}
    return {
        "draft_id": str(resource.get("id", "")),
        "message_id": str(message.get("id", "")),
        "thread_id": str(message.get("threadId", "")),
    }


def _one_line(text: str) -> str:
    # A line break in a header would start another header: a subject is one line.
    return re.sub(r"\s*[\r\n]+\s*", " ", text).strip()


def _raw(message: EmailMessage) -> str:
    return base64.urlsafe_b64encode(message.as_bytes()).decode()
