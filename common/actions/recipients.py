"""Who an action's e-mail or meeting reaches, and whether the CSM knows them (DESIGN §6).

The approval card must hide no one: a model that read a planted instruction ("cc
someone@elsewhere") can put a stranger on an e-mail, so every address is listed with its role
and whether it is known. Known means the CSM has vouched for it already: it is the customer's
primary contact or one of its stakeholders (exact address), or it is at the customer's `domain`,
or at the CSM's own domain — the domain of the connected Google account, which is the mailbox
the e-mail leaves from and an address Google verified (the profile's e-mail is whatever the
sign-up said). A Gmail account's domain is everyone's, so there only that address itself counts.

Domains are compared in their ASCII form (IDNA), whole: a look-alike domain in another script,
or a subdomain, is unknown.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from common.collections import CUSTOMERS
from common.models import ActionType, CustomerPublic, Recipient, RecipientRole
from common.store import Repository

# Domains where anyone can have an address: the CSM's being there vouches for no one else.
SHARED_DOMAINS = frozenset({"gmail.com", "googlemail.com"})


@dataclass(frozen=True)
class Acquaintances:
    """The addresses and domains the CSM knows for one action (ASCII, lower case)."""

    addresses: frozenset[str]
    domains: frozenset[str]

    def know(self, address: str) -> bool:
        key = _key(address)
        return key is not None and (key in self.addresses or key.rpartition("@")[2] in self.domains)


def addresses_of(action_type: ActionType, payload: dict[str, Any]) -> list[tuple[str, RecipientRole]]:
    """Every address `payload` reaches, with its role, in the payload's order."""
    if action_type in {ActionType.EMAIL_DRAFT, ActionType.EMAIL_SEND}:
        return [(a, RecipientRole.TO) for a in payload["to"]] + [(a, RecipientRole.CC) for a in payload.get("cc") or []]
    if action_type is ActionType.MEETING_BOOK:
        return [(a, RecipientRole.ATTENDEE) for a in payload.get("attendees") or []]
    return []


def recipients_of(repo: Repository, action_type: ActionType, payload: dict[str, Any]) -> list[Recipient]:
    """Everyone a validated payload reaches, each judged known or not."""
    addresses = addresses_of(action_type, payload)
    if not addresses:
        return []
    known = acquaintances(repo, payload.get("customer_id"))
    return [Recipient(email=address, role=role, known=known.know(address)) for address, role in addresses]


def acquaintances(repo: Repository, customer_id: str | None) -> Acquaintances:
    """Whom the CSM knows for an action about `customer_id` (or about no customer)."""
    from common.google import integration

    addresses: set[str] = set()
    domains: set[str] = set()
    stored = repo.find(CUSTOMERS, customer_id) if customer_id else None
    if stored is not None:  # it was checked to be the caller's; deleted since, it vouches for no one
        customer = CustomerPublic.of(stored)
        contacts = [customer.primary_contact or {}, *customer.stakeholders]
        addresses |= _keys(contact.get("email") for contact in contacts)
        if customer.domain:
            domains.add(customer.domain.lower())  # validated as an ASCII domain name
    connection = integration.connection(repo)
    own = _key(str(connection.get("google_email") or "")) if connection else None
    if own is not None:
        addresses.add(own)
        domain = own.rpartition("@")[2]
        if domain not in SHARED_DOMAINS:
            domains.add(domain)
    return Acquaintances(frozenset(addresses), frozenset(domains))


def _keys(addresses: Iterable[Any]) -> set[str]:
    return {key for key in (_key(a) for a in addresses if isinstance(a, str)) if key is not None}


def _key(address: str) -> str | None:
    """`address` as compared: the local part in lower case, the domain in lower-case ASCII (IDNA);
    None for what is no address."""
    import email_validator

    try:
        parsed = email_validator.validate_email(address, check_deliverability=False)
    except email_validator.EmailNotValidError:
        return None
    return f"{parsed.local_part.lower()}@{parsed.ascii_domain.lower()}"
