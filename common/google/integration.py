"""A user's Google connection as stored: the typed `integrations/{uid}` record, read as its owner,
and what the web app may see of it. Nothing here opens a token (`common.google.tokens` does), so
a function that only needs to know whom the CSM is connected as holds no token key.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict

from pydantic import BaseModel, ConfigDict

from common import lease
from common.collections import INTEGRATIONS
from common.google import ReauthRequired, utc
from common.store import Repository

REFRESH_MARGIN = timedelta(minutes=5)  # DESIGN §6: refreshed when it expires within 5 minutes
REFRESH_LEASE_FIELD = "refresh_lease"


class Status(enum.StrEnum):
    CONNECTED = "connected"
    NEEDS_REAUTH = "needs_reauth"


CONNECTED = Status.CONNECTED
NEEDS_REAUTH = Status.NEEDS_REAUTH


class Integration(BaseModel):
    """`integrations/{uid}` as the server keeps it: one user's Google connection (DESIGN §3)."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    owner_id: str
    google_email: str = ""
    google_sub: str = ""  # the account's stable id at Google (its e-mail may change)
    scopes: tuple[str, ...] = ()
    access_token_enc: str = ""
    refresh_token_enc: str = ""
    expires_at: datetime | None = None  # of the access token
    status: Status = Status.NEEDS_REAUTH
    last_error: str | None = None
    refresh_lease: dict[str, Any] | None = None  # common.lease's {holder, until} while a refresh runs

    def fresh(self, now: datetime | None = None) -> bool:
        """Whether the access token is good for more than the refresh margin."""
        return self.expires_at is not None and utc(self.expires_at) > (now or datetime.now(UTC)) + REFRESH_MARGIN

    def refreshing(self) -> bool:
        return lease.held({REFRESH_LEASE_FIELD: self.refresh_lease}, REFRESH_LEASE_FIELD)

    def require_connected(self) -> None:
        if self.status is not Status.CONNECTED:
            raise ReauthRequired()

    def public(self) -> dict[str, Any]:
        """What the web app may see: never a token, nor the refresh bookkeeping."""
        return {"status": self.status.value, "google_email": self.google_email or None, "scopes": list(self.scopes)}


class IntegrationFields(TypedDict, total=False):
    """The fields of `integrations/{uid}` the server writes (keys checked by mypy)."""

    google_email: str
    google_sub: str
    scopes: list[str]
    access_token_enc: str
    refresh_token_enc: str
    expires_at: datetime
    status: str
    last_error: str | None
    refresh_lease: None


def read(repo: Repository) -> Integration | None:
    """The user's connection, None when there is none."""
    stored = repo.find(INTEGRATIONS, repo.uid)
    return None if stored is None else Integration.model_validate(stored)


def connection(repo: Repository) -> dict[str, Any] | None:
    """The user's connection as the web app may see it ({status, google_email, scopes}), None when there is none."""
    stored = read(repo)
    return None if stored is None else stored.public()
