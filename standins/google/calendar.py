"""Calendar v3 as the stand-in serves it: events inserted (with a Meet conference), read and
deleted on the signed-in user's primary calendar, and freeBusy over the accounts it knows.
"""

from __future__ import annotations

import re
import secrets
import string
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, tzinfo
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from standins.google.routing import Call, insufficient_scopes, route
from standins.google.scopes import CALENDAR_APP_CREATED, METHOD_SCOPES
from standins.google.state import Account, StoredEvent
from standins.google.wire import ADDRESS, Reply, api_error, b64url, json_reply, rfc3339

EVENT_ID = re.compile(r"[a-v0-9]{5,1024}")
BASE32HEX = "0123456789abcdefghijklmnopqrstuv"
_EVENTS = r"/calendar/v3/calendars/(?P<calendar>[^/]+)/events"


def new_event_id() -> str:
    """An event id as Calendar makes one: 26 characters of base32hex."""
    return "".join(secrets.choice(BASE32HEX) for _ in range(26))


def _calendar_owner(call: Call, api: str) -> Account:
    """calendarId is "primary" or the signed-in address; other calendars are not served."""
    account = call.account
    assert call.token is not None
    calendar_id = unquote(call.params["calendar"])
    if calendar_id not in {"primary", account.email}:
        raise api_error(404, "Not Found", "notFound")
    # calendar.app.created reaches only calendars the app made, never the user's primary one.
    if not (METHOD_SCOPES[api] - {CALENDAR_APP_CREATED}) & set(call.token.scopes):
        raise insufficient_scopes(METHOD_SCOPES[api])
    return account


def insert_event(call: Call) -> Reply:
    account = _calendar_owner(call, "calendar.events.insert")
    version = call.arg("conferenceDataVersion") or "0"
    if version not in {"0", "1"}:
        raise api_error(400, f"Invalid value for: conferenceDataVersion = {version}", "invalid")
    send_updates = call.arg("sendUpdates")
    if send_updates not in {None, "all", "externalOnly", "none"}:
        raise api_error(400, f"Invalid value for: sendUpdates = {send_updates}", "invalid")
    body = call.json()
    event_id = body.get("id")
    if event_id is not None and (not isinstance(event_id, str) or not EVENT_ID.fullmatch(event_id)):
        raise api_error(400, "Invalid resource id value.", "invalid")
    start, start_view = event_time(body.get("start"), "start")
    end, end_view = event_time(body.get("end"), "end")
    if end < start:
        raise api_error(400, "The specified time range is empty.", "timeRangeEmpty")
    attendees = body.get("attendees") or []
    if not isinstance(attendees, list) or any(
        not isinstance(a, dict) or not ADDRESS.fullmatch(str(a.get("email", ""))) for a in attendees
    ):
        raise api_error(400, "Invalid attendee email.", "invalid")
    conference = _conference(body.get("conferenceData")) if version == "1" else None
    with call.state.lock:
        event_id = event_id or new_event_id()
        # Ids stay taken after the event is deleted, as at Google.
        if event_id in account.events:
            raise api_error(409, "The requested identifier already exists.", "duplicate")
        stored = StoredEvent(
            resource=event_resource(
                account,
                event_id,
                body=body,
                start=start_view,
                end=end_view,
                attendees=attendees,
                conference=conference,
            ),
            start=start,
            end=end,
            send_updates=send_updates,
            conference_data_version=int(version),
        )
        account.events[event_id] = stored
        return json_reply(200, stored.resource)


def event_time(value: object, which: str) -> tuple[datetime, dict[str, Any]]:
    if not isinstance(value, dict) or not ({"dateTime", "date"} & value.keys()):
        raise api_error(400, f"Missing {which} time.", "required")
    zone_name = value.get("timeZone")
    zone = _zone(zone_name, f"Invalid time zone definition for {which} time.") if zone_name else None
    view = {k: value[k] for k in ("date", "dateTime", "timeZone") if k in value}
    try:
        if "dateTime" in value:
            moment = datetime.fromisoformat(str(value["dateTime"]))
            if moment.tzinfo is None:
                if zone is None:
                    raise api_error(400, f"Missing time zone definition for {which} time.", "required")
                moment = moment.replace(tzinfo=zone)
            return moment.astimezone(UTC), view
        # All-day events are busy from midnight in their zone, UTC when none is named.
        day = date.fromisoformat(str(value["date"]))
        return datetime(day.year, day.month, day.day, tzinfo=zone or UTC).astimezone(UTC), view
    except ValueError as exc:
        raise api_error(400, f"Invalid {which} time.", "invalid") from exc


def _zone(name: object, message: str) -> tzinfo:
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise api_error(400, message, "invalid") from exc


def _conference(data: object) -> dict[str, Any] | None:
    """Creates a Meet conference for ``conferenceData.createRequest``; no request, no conference."""
    if not isinstance(data, dict) or not isinstance(data.get("createRequest"), dict):
        return None
    request = data["createRequest"]
    kind = (request.get("conferenceSolutionKey") or {}).get("type")
    if not request.get("requestId"):
        raise api_error(400, "Invalid conference create request.", "invalid")
    if kind != "hangoutsMeet":
        raise api_error(400, "Invalid conference type value.", "invalid")
    letters = string.ascii_lowercase
    meet = "-".join("".join(secrets.choice(letters) for _ in range(n)) for n in (3, 4, 3))
    pin = "".join(secrets.choice(string.digits) for _ in range(9))
    return {
        "createRequest": {
            "requestId": request["requestId"],
            "conferenceSolutionKey": {"type": "hangoutsMeet"},
            "status": {"statusCode": "success"},
        },
        # Clients should pick the entry point by type: Google lists phone entries beside the video one.
        "entryPoints": [
            {"entryPointType": "video", "uri": f"https://meet.google.com/{meet}", "label": f"meet.google.com/{meet}"},
            {"entryPointType": "more", "uri": f"https://tel.meet/{meet}?pin={pin}", "pin": pin},
            {
                "entryPointType": "phone",
                "uri": "tel:+1-555-010-0199",
                "label": "+1 555-010-0199",
                "pin": pin,
                "regionCode": "US",
            },
        ],
        "conferenceSolution": {
            "key": {"type": "hangoutsMeet"},
            "name": "Google Meet",
            "iconUri": "https://fonts.gstatic.com/s/i/productlogos/meet_2020q4/v6/web-512dp/logo_meet_2020q4_color_2x_web_512dp.png",
        },
        "conferenceId": meet,
    }


def event_resource(
    account: Account,
    event_id: str,
    *,
    body: dict[str, Any],
    start: dict[str, Any],
    end: dict[str, Any],
    attendees: Sequence[dict[str, Any]] = (),
    conference: dict[str, Any] | None = None,
) -> dict[str, Any]:
    now = rfc3339(time.time())
    eid = b64url(f"{event_id} {account.email}".encode(), pad=False)
    resource: dict[str, Any] = {
        "kind": "calendar#event",
        "etag": f'"{time.time_ns() // 1000}"',
        "id": event_id,
        "status": "confirmed",
        "htmlLink": f"https://www.google.com/calendar/event?eid={eid}",
        "created": now,
        "updated": now,
    }
    for key in ("summary", "description", "location", "transparency", "visibility", "colorId"):
        if key in body:
            resource[key] = body[key]
    resource.update(
        creator={"email": account.email, "self": True},
        organizer={"email": account.email, "self": True},
        start=start,
        end=end,
        iCalUID=f"{event_id}@google.com",
        sequence=0,
    )
    if attendees:
        resource["attendees"] = [
            {
                "email": str(a["email"]).lower(),
                **({"displayName": a["displayName"]} if "displayName" in a else {}),
                **({"optional": True} if a.get("optional") else {}),
                "responseStatus": a.get("responseStatus", "needsAction"),
            }
            for a in attendees
        ]
    if conference is not None:
        resource["hangoutLink"] = conference["entryPoints"][0]["uri"]
        resource["conferenceData"] = conference
    resource["reminders"] = body.get("reminders") or {"useDefault": True}
    resource["eventType"] = "default"
    return resource


def get_event(call: Call) -> Reply:
    account = _calendar_owner(call, "calendar.events.get")
    with call.state.lock:
        stored = account.events.get(unquote(call.params["event"]))
        if stored is None:
            raise api_error(404, "Not Found", "notFound")
        return json_reply(200, stored.resource)


def delete_event(call: Call) -> Reply:
    account = _calendar_owner(call, "calendar.events.delete")
    with call.state.lock:
        stored = account.events.get(unquote(call.params["event"]))
        if stored is None:
            raise api_error(404, "Not Found", "notFound")
        if stored.resource["status"] == "cancelled":
            raise api_error(410, "Resource has been deleted", "deleted")
        stored.resource.update(status="cancelled", updated=rfc3339(time.time()))
    return Reply(204)


def query_freebusy(call: Call) -> Reply:
    """Busy ranges of the signed-in user's (and other known accounts') opaque events, merged and clipped."""
    account = call.account
    body = call.json()
    time_min, time_max = _instant(body, "timeMin"), _instant(body, "timeMax")
    if time_max < time_min:
        raise api_error(400, "The specified time range is empty.", "timeRangeEmpty")
    zone = _zone(body["timeZone"], "Invalid time zone definition.") if body.get("timeZone") else UTC
    calendars: dict[str, Any] = {}
    with call.state.lock:
        for item in body.get("items") or []:
            calendar_id = str(item.get("id", "")) if isinstance(item, dict) else ""
            owner = account if calendar_id in {"primary", account.email} else None
            owner = owner or call.state.accounts.get(calendar_id.lower())
            if owner is None:
                calendars[calendar_id] = {"errors": [{"domain": "global", "reason": "notFound"}], "busy": []}
                continue
            ranges = sorted(
                (max(e.start, time_min), min(e.end, time_max))
                for e in owner.events.values()
                if e.busy and e.start < time_max and e.end > time_min
            )
            merged: list[tuple[datetime, datetime]] = []
            for start, end in ranges:
                if merged and start <= merged[-1][1]:
                    merged[-1] = (merged[-1][0], max(merged[-1][1], end))
                else:
                    merged.append((start, end))
            calendars[calendar_id] = {
                "busy": [{"start": _busy_time(s, zone), "end": _busy_time(e, zone)} for s, e in merged]
            }
    return json_reply(
        200,
        {
            "kind": "calendar#freeBusy",
            "timeMin": rfc3339(time_min.timestamp()),
            "timeMax": rfc3339(time_max.timestamp()),
            "calendars": calendars,
        },
    )


def _instant(body: dict[str, Any], name: str) -> datetime:
    """A freeBusy bound: RFC 3339 with an offset, as the API requires."""
    if not body.get(name):
        raise api_error(400, f"Missing {name}.", "required")
    try:
        moment = datetime.fromisoformat(str(body[name]))
    except ValueError as exc:
        raise api_error(400, f"Invalid value for: {name}", "invalid") from exc
    if moment.tzinfo is None:
        raise api_error(400, f"Invalid value for: {name} (no offset)", "invalid")
    return moment.astimezone(UTC)


def _busy_time(moment: datetime, zone: tzinfo) -> str:
    local = moment.astimezone(zone)
    return local.strftime("%Y-%m-%dT%H:%M:%SZ") if zone is UTC else local.isoformat(timespec="seconds")


def missing_service_path(call: Call) -> Reply:
    """A Calendar call without /calendar/v3/: api_endpoint replaces rootUrl *and* servicePath."""
    raise api_error(
        404,
        "Not Found: a Calendar client's api_endpoint must end with /calendar/v3/ "
        "(googleapiclient uses api_endpoint in place of rootUrl + servicePath)",
        "notFound",
    )


ROUTES = (
    route("POST", _EVENTS, insert_event, "calendar.events.insert", bearer=True),
    route("GET", _EVENTS + r"/(?P<event>[^/]+)", get_event, "calendar.events.get", bearer=True),
    route("DELETE", _EVENTS + r"/(?P<event>[^/]+)", delete_event, "calendar.events.delete", bearer=True),
    route("POST", r"/calendar/v3/freeBusy", query_freebusy, "calendar.freebusy.query", bearer=True),
    route("POST", r"/(?:calendars/.*|freeBusy)", missing_service_path),
    route("GET", r"/calendars/.*", missing_service_path),
)
