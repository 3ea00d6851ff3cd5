"""`firestore.rules` and `firestore.indexes.json` name exactly the collections of
`common.collections`, the one list of what the product keeps, read offline (no emulator): the
rules' behaviour is proven against the emulator in `tests/rules/`, over the same list.
"""

from __future__ import annotations

import json
import re

import pytest

from common.collections import EVERY_COLLECTION, OWNER_READABLE, SERVER_ONLY, Kind
from scripts.stack import ROOT
from tests.rules import test_firestore_rules as rules_spec

pytestmark = pytest.mark.fast  # in-process, no emulator: `make test-fast` runs it

_MATCH = re.compile(r"^\s*match\s+/(?P<path>\S+)\s*\{\s*$")
_DOCUMENTS = "databases/{database}/documents"


def _rule_blocks() -> dict[str, tuple[str, str]]:
    """Each `match` under the documents root: the collection it names → (its path, its body)."""
    lines = (ROOT / "firestore.rules").read_text(encoding="utf-8").splitlines()
    blocks: dict[str, tuple[str, str]] = {}
    for number, line in enumerate(lines):
        found = _MATCH.match(line)
        if found is None or found["path"] == _DOCUMENTS:
            continue
        depth, body = 0, []
        for inner in lines[number:]:
            depth += inner.count("{") - inner.count("}")
            body.append(inner)
            if depth == 0:
                break
        path = found["path"]
        collection = path.split("/")[-2]  # .../<collection>/{id}
        assert collection not in blocks, f"{collection} is matched twice in firestore.rules"
        blocks[collection] = (path, "\n".join(body[1:-1]))
    return blocks


def _allows(body: str) -> list[str]:
    return [" ".join(line.split()) for line in body.splitlines() if line.strip().startswith("allow ")]


def test_the_rules_match_every_collection_and_nothing_else() -> None:
    assert set(_rule_blocks()) == {kind.collection for kind in EVERY_COLLECTION}


@pytest.mark.parametrize("kind", OWNER_READABLE, ids=lambda kind: kind.collection)
def test_an_owner_readable_collection_is_read_by_its_owner_only_and_written_by_no_client(kind: Kind) -> None:
    path, body = _rule_blocks()[kind.collection]
    allows = _allows(body)
    reads = [allow for allow in allows if re.match(r"allow (read|get|list)\b", allow)]
    assert reads, f"{kind.collection}: no read rule"
    assert all("isOwner()" in allow for allow in reads), reads
    assert "allow write: if false;" in allows
    assert len(allows) == len(reads) + 1, allows
    if kind.parent is not None:  # read by collection-group queries too: matched at any depth
        assert path == f"{{path=**}}/{kind.collection}/{{id}}"
    else:
        assert path.startswith(f"{kind.collection}/{{")


@pytest.mark.parametrize("kind", SERVER_ONLY, ids=lambda kind: kind.collection)
def test_a_server_only_collection_is_closed_to_every_client(kind: Kind) -> None:
    path, body = _rule_blocks()[kind.collection]
    assert path.startswith(f"{kind.collection}/{{")
    assert _allows(body) == ["allow read, write: if false;"]


def test_every_index_is_on_a_collection_the_product_keeps() -> None:
    document = json.loads((ROOT / "firestore.indexes.json").read_text(encoding="utf-8"))
    named = {entry["collectionGroup"] for entry in (*document["indexes"], *document.get("fieldOverrides", []))}
    assert named <= {kind.collection for kind in EVERY_COLLECTION}


def test_the_rules_specification_covers_the_same_collections() -> None:
    assert [str(c.collection_id) for c in rules_spec.CLIENT_READABLE] == [k.collection for k in OWNER_READABLE]
    assert [str(c.collection_id) for c in rules_spec.SERVER_ONLY] == [k.collection for k in SERVER_ONLY]
