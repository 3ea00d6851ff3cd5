"""Google Calendar for approved meetings and the agent: events with a Meet link, and free/busy.

An event's id is derived from its action, so inserting it again (a redelivered task, an answer
lost on the way back) meets Google's 409 "duplicate" and reads the event that is there: one
event per action, whatever the number of attempts.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from common.google import GoogleError, execute, resource

_READ_RETRIES = 2
# Calendar may answer a Meet request "pending" and fill in the link a moment later.
_PENDING_CHECKS = 3
_PENDING_PAUSE_SECONDS = 0.5
_EVENT_ID_LENGTH = range(5, 1025)  # Calendar's limits on a client-chosen id


def event_id_for(action_id: str) -> str:
    """The Calendar event id of the action's meeting: base32hex, lower case (Calendar's alphabet a-v, 0-9)."""
    event_id = base64.b32hexencode(action_id.encode()).decode().lower().rstrip("=")
    if len(event_id) not in _EVENT_ID_LENGTH:
        raise ValueError(f"an action id of {len(action_id)} characters makes no Calendar event id")
    return event_id


def insert_event(
    token: str,
    *,
    event_id: str,
    title: str,
    start: str,
    end: str,
    timezone: str,
    attendees: list[str],
    description: str,
    request_id: str,
) -> dict[str, Any]:
    """Put the meeting on the user's primary calendar with a Meet link, inviting the attendees.

    Returns {"event_id", "html_link", "meet_link"}, the same for a repeat with the same id.
    """
    events = resource("calendar", "v3", token, "events")
    body = {
        "id": event_id,
        "summary": title,
        "description": description,
        "start": {"dateTime": start, "timeZone": timezone},
        "end": {"dateTime": end, "timeZone": timezone},
        "attendees": [{"email": address} for address in attendees],
        # requestId is stable per action: Calendar makes one conference per request id.
        "conferenceData": {
            "createRequest": {"requestId": request_id, "conferenceSolutionKey": {"type": "hangoutsMeet"}}
        },
    }
    try:
        # Safe to retry: a second insert of this id cannot make a second event.
        event = execute(
            events.insert(calendarId="primary", body=body, conferenceDataVersion=1, sendUpdates="all"),
            retries=1,
        )
    except GoogleError as error:
        if error.status != 409:
            raise
        event = execute(events.get(calendarId="primary", eventId=event_id), retries=_READ_RETRIES)
    for _ in range(_PENDING_CHECKS):
        if _meet_link(event) or _conference_status(event) != "pending":
            break
        time.sleep(_PENDING_PAUSE_SECONDS)
        event = execute(events.get(calendarId="primary", eventId=event_id), retries=_READ_RETRIES)
    return {
        "event_id": str(event.get("id", event_id)),
        "html_link": str(event.get("htmlLink", "")),
        "meet_link": _meet_link(event),
    }


def free_busy(token: str, *, start: str, end: str, timezone: str) -> list[dict[str, Any]]:
    """The busy ranges [{"start", "end"}] of the user's primary calendar between `start` and `end`."""
    freebusy = resource("calendar", "v3", token, "freebusy")
    body = {"timeMin": start, "timeMax": end, "timeZone": timezone, "items": [{"id": "primary"}]}
    answer = execute(freebusy.query(body=body), retries=_READ_RETRIES)
    calendar = (answer.get("calendars") or {}).get("primary") or {}
    errors = calendar.get("errors") or []
    if errors:
        reason = str(errors[0].get("reason", "")) if isinstance(errors[0], dict) else ""
        message = f"Google could not read the calendar's availability ({reason})."
        raise GoogleError(message, transient=False, reason=reason)
    return [{"start": str(busy["start"]), "end": str(busy["end"])} for busy in calendar.get("busy") or []]


def _meet_link(event: dict[str, Any]) -> str | None:
    """The Meet URL: the conference's video entry point (phone entries sit beside it), else hangoutLink."""
    for entry in (event.get("conferenceData") or {}).get("entryPoints") or []:
        if entry.get("entryPointType") == "video" and entry.get("uri"):
            return str(entry["uri"])
    link = event.get("hangoutLink")
    return str(link) if link else None


def _conference_status(event: dict[str, Any]) -> str:
    request = (event.get("conferenceData") or {}).get("createRequest") or {}
    return str((request.get("status") or {}).get("statusCode", ""))
