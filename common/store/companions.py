"""A write stored together with an effect's own write, or not at all: an idempotency key's record."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from common.collections import Kind


@dataclass
class Companion:
    """A write stored with an effect's own write, or not at all: an idempotency key's record,
    marked with the path of what the effect wrote. The effect's write names it (`along=`);
    `written` tells, once that write is committed, that the companion went too.

    `fields` gets the effect's document path and the fields the effect writes. A companion that
    is `created` makes its document in that commit, which holds only if the document is not
    there yet (a key someone else has: the commit stores nothing, and fails as ALREADY_EXISTS);
    any other changes a document there already."""

    kind: Kind
    doc_id: str
    fields: Callable[[str, Mapping[str, Any]], Mapping[str, Any]]
    created: bool = False
    written: bool = False
