"""What a collection is (`Kind`), and every collection the product keeps in Firestore, declared once.

`firestore.rules` and `firestore.indexes.json` are held against this list
(`tests/test_collections.py`): a collection added here without its rule, or a rule or an index
for a collection that is not here, fails the suite. A collection is either one a signed-in
client may read its own documents of (`OWNER_READABLE`), or the server's alone (`SERVER_ONLY`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Order:
    """A list order: the fields Firestore sorts by, the document id breaking ties."""

    name: str
    fields: tuple[tuple[str, bool], ...]  # (field, descending)


@dataclass(frozen=True)
class Kind:
    """A kind of stored object: its name in messages, its collection, and how it may be listed.

    A kind with a `parent` lives in a subcollection of one of the parent's documents
    (a session's messages): its calls name that document's id as `parent_id`. A `counted` kind's
    documents are counted per user as they are created and deleted (`common/store/counts.py`):
    CSCX_MAX_DOCUMENTS caps them.
    """

    name: str
    collection: str
    orders: Mapping[str, Order] = field(default_factory=dict)
    default_order: str = ""
    parent: Kind | None = None
    counted: bool = False

    def path(self, parent_id: str | None = None) -> str:
        if self.parent is None:
            return self.collection
        if not parent_id:
            raise ValueError(f"a {self.name} lives under a {self.parent.name}: name its id")
        return f"{self.parent.path()}/{parent_id}/{self.collection}"


_NEWEST_FIRST = {"-created_at": Order("-created_at", (("created_at", True),))}

# -- what the CSM keeps ----------------------------------------------------------------------

PROFILES = Kind("profile", "profiles")
CUSTOMERS = Kind(
    "customer",
    "customers",
    {
        "name": Order("name", (("name_lower", False),)),
        "-arr": Order("-arr", (("arr", True),)),
        "renewal_date": Order("renewal_date", (("renewal_key", False),)),
        "-updated_at": Order("-updated_at", (("updated_at", True),)),
    },
    "name",
    counted=True,
)
CONTRACTS = Kind("contract", "contracts", _NEWEST_FIRST, "-created_at", counted=True)
TASKS = Kind("task", "tasks", {"due_date": Order("due_date", (("due_key", False),))}, "due_date", counted=True)
SESSIONS = Kind(
    "session", "sessions", {"-updated_at": Order("-updated_at", (("updated_at", True),))}, "-updated_at", counted=True
)
MESSAGES = Kind(
    "message",
    "messages",
    {
        "created_at": Order("created_at", (("created_at", False),)),
        "-created_at": Order("-created_at", (("created_at", True),)),  # the latest, for the model's history
    },
    "created_at",
    parent=SESSIONS,
)
ACTIONS = Kind("action", "actions", _NEWEST_FIRST, "-created_at")

# -- the server's own bookkeeping -----------------------------------------------------------

INTEGRATIONS = Kind("Google connection", "integrations")  # sealed Google tokens, keyed by uid
OAUTH_STATES = Kind("OAuth state", "oauth_states")  # a connection being made (its PKCE verifier)
GOOGLE_GRANTS = Kind("Google grant", "google_grants")  # sealed grants parked for completion, or owed a revoke
QUOTAS = Kind("daily quota", "quotas")  # e-mails sent and meetings booked, per user and UTC day
USAGE = Kind("daily model usage", "usage")  # model tokens spent, per user and UTC day (common/usage.py)
IDEMPOTENCY_KEYS = Kind("idempotency key", "idempotency_keys")  # first answers, kept 24 h
# How many documents of a counted kind each user has, `{uid}-{collection}` (common/store/counts.py).
DOCUMENT_COUNTS = Kind("document count", "document_counts")
# A chat turn's parts in batches, `{turn}-{seq}`, for streams resumed on another instance.
PART_LOG = Kind("part log batch", "part_log", {"seq": Order("seq", (("seq", False),))}, "seq")

OWNER_READABLE = (PROFILES, CUSTOMERS, CONTRACTS, TASKS, SESSIONS, MESSAGES, ACTIONS)
SERVER_ONLY = (INTEGRATIONS, OAUTH_STATES, GOOGLE_GRANTS, QUOTAS, USAGE, IDEMPOTENCY_KEYS, PART_LOG, DOCUMENT_COUNTS)
EVERY_COLLECTION = (*OWNER_READABLE, *SERVER_ONLY)
