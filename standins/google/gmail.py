"""Gmail v1 as the stand-in serves it: drafts created, listed (and searched), read and sent; messages
sent, searched by Message-ID (`rfc822msgid:`) and read in each format, with Gmail's threading and
header stamping. Which scope allows which method is `scopes.METHOD_SCOPES`, checked around every
handler; what a scope allows within a method (gmail.metadata: no `q`, no message bodies) is
checked here.
"""

from __future__ import annotations

import base64
import email
import email.policy
import email.utils
import html
import re
import secrets
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage, Message
from typing import Any, cast
from urllib.parse import unquote

from standins.google.routing import Call, route
from standins.google.scopes import GMAIL_FULL_READ, GMAIL_METADATA, METHOD_SCOPES
from standins.google.state import Account, GoogleState, StoredMessage, addresses, text_of
from standins.google.wire import ADDRESS, Reply, api_error, b64url, json_reply

GMAIL_ID = re.compile(r"[0-9a-f]{1,32}")
_USER = r"/gmail/v1/users/(?P<user>[^/]+)"


def _gmail_user(call: Call) -> Account:
    """userId is "me" or the signed-in address; anyone else's mailbox is delegation."""
    account = call.account
    user = unquote(call.params["user"])
    if user != "me" and user.lower() != account.email:
        raise api_error(403, f"Delegation denied for {account.email}", "forbidden")
    return account


def create_draft(call: Call) -> Reply:
    account = _gmail_user(call)
    message = call.json().get("message")
    if not isinstance(message, dict):
        message = {}
    with call.state.lock:
        stored = _store_message(call.state, account, message, ["DRAFT"], sending=False)
        stored.draft_id = f"r-{secrets.randbelow(9 * 10**18) + 10**18}"
    return json_reply(
        200,
        {"id": stored.draft_id, "message": {"id": stored.id, "threadId": stored.thread_id, "labelIds": ["DRAFT"]}},
    )


def send_message(call: Call) -> Reply:
    account = _gmail_user(call)
    with call.state.lock:
        stored = _store_message(call.state, account, call.json(), ["SENT"], sending=True)
    return json_reply(200, {"id": stored.id, "threadId": stored.thread_id, "labelIds": ["SENT"]})


def send_draft(call: Call) -> Reply:
    """drafts.send: the draft is deleted and its message sent as a new message (a new id, the
    SENT label, the draft's thread), which is what Gmail answers; a draft sent (or deleted)
    already is not found."""
    account = _gmail_user(call)
    body = call.json()
    draft_id = body.get("id")
    if not isinstance(draft_id, str) or not draft_id:
        raise api_error(400, "Invalid draft", "invalidArgument")
    with call.state.lock:
        draft = next((m for m in account.messages if m.draft_id == draft_id), None)
        if draft is None:
            raise api_error(404, "Requested entity was not found.", "notFound")
        if body.get("message"):
            # Gmail would replace the draft's content first; nothing here sends a draft that way.
            raise api_error(400, "The Google stand-in sends drafts as they are (no message)", "invalidArgument")
        mime = draft.parsed
        if not [*addresses(mime, "To"), *addresses(mime, "Cc"), *addresses(mime, "Bcc")]:
            raise api_error(400, "Recipient address required", "invalidArgument")
        if call.state.quirks.get("gmail_send_rewrites_message_id"):
            del mime["Message-ID"]
            mime["Message-ID"] = f"<CA+{secrets.token_urlsafe(33)}@mail.gmail.com>"
        account.messages.remove(draft)
        sent = StoredMessage(
            id=_new_gmail_id(),
            thread_id=draft.thread_id,
            label_ids=["SENT"],
            raw=mime.as_bytes(),
            internal_date_ms=int(time.time() * 1000),
            history_id=account.next_history_id(),
        )
        account.messages.append(sent)
    return json_reply(200, {"id": sent.id, "threadId": sent.thread_id, "labelIds": ["SENT"]})


def _store_message(
    state: GoogleState, account: Account, message: dict[str, Any], labels: list[str], *, sending: bool
) -> StoredMessage:
    encoded = message.get("raw")
    if not isinstance(encoded, str) or not encoded:
        raise api_error(
            400,
            "'raw' RFC822 payload message string or uploading message via /upload/* URL required",
            "invalidArgument",
        )
    try:
        # The raw field is proto bytes: Google takes either base64 alphabet, padded or not.
        raw = base64.urlsafe_b64decode(encoded.replace("+", "-").replace("/", "_") + "=" * (-len(encoded) % 4))
    except ValueError as exc:
        raise api_error(400, "Invalid value at 'message.raw' (TYPE_BYTES), Base64 decoding failed", "invalid") from exc
    mime = email.message_from_bytes(raw, policy=email.policy.default)
    recipients = [*addresses(mime, "To"), *addresses(mime, "Cc"), *addresses(mime, "Bcc")]
    if sending and not recipients:
        raise api_error(400, "Recipient address required", "invalidArgument")
    for header in ("To", "Cc", "Bcc"):
        if any(not ADDRESS.fullmatch(a) for a in addresses(mime, header)):
            raise api_error(400, f"Invalid {header} header", "invalidArgument")
    # Gmail sends as the signed-in user, stamps a Date and invents a Message-ID when there is none.
    if addresses(mime, "From") != [account.email]:
        del mime["From"]
        mime["From"] = account.email
    if "Date" not in mime:
        mime["Date"] = email.utils.format_datetime(datetime.now(UTC))
    if "Message-ID" not in mime or (sending and state.quirks.get("gmail_send_rewrites_message_id")):
        del mime["Message-ID"]
        mime["Message-ID"] = f"<CA+{secrets.token_urlsafe(33)}@mail.gmail.com>"
    message_id = _new_gmail_id()
    thread_id = _thread_for(account, mime, message.get("threadId")) or message_id
    stored = StoredMessage(
        id=message_id,
        thread_id=thread_id,
        label_ids=labels,
        raw=mime.as_bytes(),
        internal_date_ms=int(time.time() * 1000),
        history_id=account.next_history_id(),
    )
    account.messages.append(stored)
    return stored


def _thread_for(account: Account, mime: EmailMessage, thread_id: object) -> str | None:
    """Gmail joins a thread when asked for a known threadId, or when the message replies into one."""
    threads = {m.thread_id for m in account.messages}
    if isinstance(thread_id, str) and thread_id in threads:
        return thread_id
    referenced = f"{mime.get('In-Reply-To', '')} {mime.get('References', '')}".split()
    if not referenced:
        return None
    for earlier in account.messages:
        if earlier.message_id and earlier.message_id in referenced:
            return earlier.thread_id
    return None


def get_draft(call: Call) -> Reply:
    account = _gmail_user(call)
    fmt = _message_format(call)
    with call.state.lock:
        stored = next((m for m in account.messages if m.draft_id == call.params["id"]), None)
        if stored is None:
            raise api_error(404, "Requested entity was not found.", "notFound")
        return json_reply(200, {"id": stored.draft_id, "message": _message_resource(stored, fmt, [])})


def list_drafts(call: Call) -> Reply:
    """Every draft, newest first, or those the ``q`` search finds (every scope of the method may search)."""
    account = _gmail_user(call)
    matches = _search(call.arg("q") or "", set())
    with call.state.lock:
        drafts = [m for m in reversed(account.messages) if m.draft_id and matches(m)]
        items = [{"id": m.draft_id, "message": {"id": m.id, "threadId": m.thread_id}} for m in drafts]
    return json_reply(200, _page(call, "drafts", items))


def list_messages(call: Call) -> Reply:
    """Searches by Message-ID (``rfc822msgid:``), optionally narrowed by ``in:sent``/``in:drafts`` and labelIds."""
    account = _gmail_user(call)
    assert call.token is not None
    query = call.arg("q") or ""
    if query and not set(call.token.scopes) & (METHOD_SCOPES["gmail.messages.list"] - {GMAIL_METADATA}):
        raise api_error(403, "Metadata scope does not support 'q' parameter", "forbidden")
    matches = _search(query, {label.upper() for label in call.query.get("labelIds", [])})
    with call.state.lock:
        items = [{"id": m.id, "threadId": m.thread_id} for m in reversed(account.messages) if matches(m)]
    return json_reply(200, _page(call, "messages", items))


def _search(query: str, labels: set[str]) -> Callable[[StoredMessage], bool]:
    """What a Gmail search finds, for the terms the stand-in knows: ``rfc822msgid:`` and ``in:``/
    ``is:``/``label:`` sent or drafts, all of them required."""
    wanted_ids: list[str] = []
    for term in query.split():
        name, _, value = term.partition(":")
        if name.lower() == "rfc822msgid" and value:
            wanted_ids.append(value.strip("<>").lower())
        elif name.lower() in {"in", "label", "is"} and value.lower() in {"sent", "draft", "drafts"}:
            labels.add("SENT" if value.lower() == "sent" else "DRAFT")
        else:
            raise api_error(400, f"The Google stand-in does not support the search term {term!r}", "invalidArgument")

    def matches(message: StoredMessage) -> bool:
        found = message.message_id.strip("<>").lower()
        return labels <= set(message.label_ids) and all(found == wanted for wanted in wanted_ids)

    return matches


def _page(call: Call, key: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """One page of a Gmail list; an empty list has no ``messages``/``drafts`` key at all, as in Gmail."""
    try:
        size = min(int(call.arg("maxResults") or 100), 500)
        start = int(call.arg("pageToken") or 0)
    except ValueError as exc:
        raise api_error(400, "Invalid maxResults or pageToken", "invalidArgument") from exc
    page: dict[str, Any] = {"resultSizeEstimate": len(items)}
    if items[start : start + size]:
        page[key] = items[start : start + size]
    if start + size < len(items):
        page["nextPageToken"] = str(start + size)
    return page


def get_message(call: Call) -> Reply:
    account = _gmail_user(call)
    fmt = _message_format(call)
    assert call.token is not None
    if fmt in {"full", "raw"} and not set(call.token.scopes) & GMAIL_FULL_READ:
        raise api_error(403, f"Metadata scope doesn't allow format {fmt.upper()}", "forbidden")
    if not GMAIL_ID.fullmatch(call.params["id"]):
        raise api_error(400, "Invalid id value", "invalidArgument")
    with call.state.lock:
        stored = next((m for m in account.messages if m.id == call.params["id"]), None)
        if stored is None:
            raise api_error(404, "Requested entity was not found.", "notFound")
        return json_reply(200, _message_resource(stored, fmt, call.query.get("metadataHeaders", [])))


def _message_format(call: Call) -> str:
    fmt = (call.arg("format") or "full").lower()
    if fmt not in {"full", "metadata", "minimal", "raw"}:
        raise api_error(400, f"Invalid value for format: {fmt}", "invalidArgument")
    return fmt


def _message_resource(stored: StoredMessage, fmt: str, metadata_headers: Sequence[str]) -> dict[str, Any]:
    mime = stored.parsed
    text = " ".join(text_of(mime.get_body(preferencelist=("plain", "html"))).split())
    resource: dict[str, Any] = {
        "id": stored.id,
        "threadId": stored.thread_id,
        "labelIds": list(stored.label_ids),
        "snippet": html.escape(text[:200]).replace("&#x27;", "&#39;"),
        "sizeEstimate": len(stored.raw),
        "historyId": stored.history_id,
        "internalDate": str(stored.internal_date_ms),
    }
    if fmt == "raw":
        resource["raw"] = b64url(stored.raw)
    elif fmt == "full":
        resource["payload"] = _part_resource(mime, "")
    elif fmt == "metadata":
        wanted = {h.lower() for h in metadata_headers}
        headers = [
            {"name": name, "value": str(value)} for name, value in mime.items() if not wanted or name.lower() in wanted
        ]
        resource["payload"] = {"mimeType": mime.get_content_type(), "headers": headers}
    return resource


def _part_resource(part: Message, part_id: str) -> dict[str, Any]:
    """Gmail's MessagePart: the top part's id is "", its children "0", "1", theirs "0.0", ..."""
    resource: dict[str, Any] = {
        "partId": part_id,
        "mimeType": part.get_content_type(),
        "filename": part.get_filename() or "",
        "headers": [{"name": name, "value": str(value)} for name, value in part.items()],
    }
    if part.is_multipart():
        children = cast(list[Message], part.get_payload())
        resource["body"] = {"size": 0}
        resource["parts"] = [
            _part_resource(child, f"{part_id}.{i}" if part_id else str(i)) for i, child in enumerate(children)
        ]
    else:
        data = cast(bytes, part.get_payload(decode=True) or b"")
        resource["body"] = {"size": len(data), "data": b64url(data)} if data else {"size": 0}
    return resource


def _new_gmail_id() -> str:
    # Gmail ids are 16 hex digits that grow with time.
    return f"{int(time.time() * 1000):011x}{secrets.randbits(20):05x}"[-16:]


ROUTES = (
    route("POST", _USER + r"/drafts", create_draft, "gmail.drafts.create", bearer=True),
    route("GET", _USER + r"/drafts", list_drafts, "gmail.drafts.list", bearer=True),
    route("GET", _USER + r"/drafts/(?P<id>[^/]+)", get_draft, "gmail.drafts.get", bearer=True),
    route("POST", _USER + r"/drafts/send", send_draft, "gmail.drafts.send", bearer=True),
    route("POST", _USER + r"/messages/send", send_message, "gmail.messages.send", bearer=True),
    route("GET", _USER + r"/messages", list_messages, "gmail.messages.list", bearer=True),
    route("GET", _USER + r"/messages/(?P<id>[^/]+)", get_message, "gmail.messages.get", bearer=True),
)
