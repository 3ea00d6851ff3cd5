"""Parsing is bounded whatever the file (DESIGN §8, issue 15): files made here to cost their
reader — a small DOCX declaring 90 MB unpacked, one that needs more memory than a reader may
have, a few-KB PDF whose pages share one slow content stream, documents past the page and
character bounds — uploaded to `contract_parse`. Each is a 422 naming the limit, in bounded time;
nothing is left `parsing`; the function's own memory stays small; a normal contract still parses.
A parse whose process died holds its contract only until its lease runs out."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from scripts.stack import Stack
from standins.client import StandinClient
from tests.conftest import Api, Caller, assert_error, raw_firestore
from tests.test_approvals import wait_for
from tests.test_contract_text import docx_unpacking_to, docx_with_body, pdf_of, pdf_sharing_one_stream
from tests.test_contracts import ORDER_FORM, script_terms, terms_answer, upload

# The variants' limits: small, so that the attacks end quickly here (the other limit is left
# at its default, so that a loaded machine cannot make one attack end by the other limit).
SECONDS = 5
MEMORY_MIB = 256
READER = b"common.contracts.extraction"


@pytest.fixture
def contracts(stack: Stack) -> Api:
    return Api(stack.url("contract_parse"))


@pytest.fixture(scope="module")
def short_of_time_url(stack: Stack) -> str:
    return stack.start_variant("contract_parse", "short-of-time", {"CSCX_PARSE_SECONDS": str(SECONDS)})


@pytest.fixture(scope="module")
def short_of_memory_url(stack: Stack) -> str:
    return stack.start_variant("contract_parse", "short-of-memory", {"CSCX_PARSE_MEMORY_MB": str(MEMORY_MIB)})


@pytest.fixture
def customer(crud: Api, alice: Caller) -> dict[str, Any]:
    return dict(crud.post("/customers", alice, json={"name": "Acme"}).json())


def stored_contracts(uid: str) -> list[dict[str, Any]]:
    from google.cloud.firestore import FieldFilter

    query = raw_firestore().collection("contracts").where(filter=FieldFilter("owner_id", "==", uid))
    return [{"id": snapshot.id, **(snapshot.to_dict() or {})} for snapshot in query.stream()]


def refused_in_time(api: Api, user: Caller, data: bytes, customer_id: str, name: str, within: float) -> str:
    """Upload `data`: a 422 within `within` seconds, stored `failed` with the same message; the message."""
    started = time.monotonic()
    response = upload(api, user, data, customer_id, name=name)
    elapsed = time.monotonic() - started
    message = str(assert_error(response, 422, "UNPROCESSABLE_ENTITY")["message"])
    assert elapsed < within, f"refused after {elapsed:.1f} s"
    [contract] = stored_contracts(user.uid)
    assert (contract["status"], contract["parse_error"], contract["lease"]) == ("failed", message, None)
    return message


def assert_a_normal_contract_parses(api: Api, user: Caller, customer_id: str, models: StandinClient) -> None:
    script_terms(models, terms_answer(term_months=(12, "an initial term of twelve (12) months", 2)))
    response = upload(api, user, pdf_of(ORDER_FORM), customer_id)
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "parsed"
    assert response.json()["extracted"]["term_months"] == 12
    assert [c["status"] for c in stored_contracts(user.uid)].count("parsing") == 0


def processes_of(stack: Stack, variant: str) -> list[tuple[int, bytes, int]]:
    """(pid, command line, peak resident KiB) of each live process of contract_parse's `variant`
    (its own process group: the function, gunicorn's worker, its readers)."""
    [group] = [process.pid for label, process in stack.processes if label == f"contract_parse-{variant}"]
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != group:
                continue
            command = (entry / "cmdline").read_bytes()
            status = (entry / "status").read_text()
        except (OSError, ProcessLookupError):
            continue  # gone meanwhile
        peak = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)
        found.append((int(entry.name), command, peak))
    return found


# -- the attacks -----------------------------------------------------------------------------


def test_a_small_docx_declaring_90_mb_unpacked_is_refused_at_once(
    contracts: Api, alice: Caller, customer: dict[str, Any], models: StandinClient
) -> None:
    data = docx_unpacking_to(90 * 10**6)
    assert len(data) < 200_000

    message = refused_in_time(contracts, alice, data, customer["id"], "inflated.docx", within=5)

    assert "more than 30 MiB" in message
    assert models.requests() == []


def test_a_docx_needing_more_memory_than_a_reader_has_is_refused_and_the_function_stays_small(
    stack: Stack, short_of_memory_url: str, alice: Caller, customer: dict[str, Any], models: StandinClient
) -> None:
    bounded = Api(short_of_memory_url)
    # 26 MiB of empty paragraphs (under the 30 MiB bound) deflated to 74 KB: ~650 MB as trees.
    data = docx_with_body(b"<w:p/>" * 4_500_000)
    assert len(data) < 100_000

    message = refused_in_time(bounded, alice, data, customer["id"], "paragraphs.docx", within=30)

    assert f"more than the {MEMORY_MIB} MiB of memory" in message
    function = max(peak for _, command, peak in processes_of(stack, "short-of-memory") if READER not in command)
    assert function < 300 * 1024, f"the function's own peak: {function // 1024} MiB"
    assert_a_normal_contract_parses(bounded, alice, customer["id"], models)


def test_a_few_kb_pdf_whose_pages_share_one_slow_stream_is_stopped_at_the_time_limit(
    stack: Stack, short_of_time_url: str, alice: Caller, customer: dict[str, Any], models: StandinClient
) -> None:
    bounded = Api(short_of_time_url)
    # Twenty pages drawing one stream of 300,000 empty strings: about a minute of pypdf's time.
    data = pdf_sharing_one_stream(20, b"() Tj " * 300_000)
    assert len(data) < 10_000

    message = refused_in_time(bounded, alice, data, customer["id"], "slow.pdf", within=SECONDS + 15)

    assert f"longer than the {SECONDS} seconds" in message
    readers = [pid for pid, command, _ in processes_of(stack, "short-of-time") if READER in command]
    assert len(readers) <= 1, "the reader out of time is gone (one left: the next, waiting)"
    assert_a_normal_contract_parses(bounded, alice, customer["id"], models)


@pytest.mark.parametrize(
    ("name", "build", "bound"),
    [
        ("pages.pdf", lambda: pdf_sharing_one_stream(1_001, b"(Clause.) Tj"), "more than 1,000 pages"),
        ("characters.txt", lambda: b"Fees. " * 333_334, "more than 2,000,000 characters"),
    ],
    ids=["pages", "characters"],
)
def test_a_document_past_the_page_or_character_bound_is_refused_naming_it(
    contracts: Api,
    alice: Caller,
    customer: dict[str, Any],
    models: StandinClient,
    name: str,
    build: Callable[[], bytes],
    bound: str,
) -> None:
    message = refused_in_time(contracts, alice, build(), customer["id"], name, within=15)
    assert bound in message
    assert models.requests() == []


# -- a parse whose process died --------------------------------------------------------------


@pytest.fixture
def file() -> bytes:
    return pdf_of(ORDER_FORM)


@pytest.fixture
def died_mid_parse(
    stack: Stack, models: StandinClient, alice: Caller, customer: dict[str, Any], file: bytes
) -> dict[str, Any]:
    """A contract of `file` whose parse was killed with its instance while the model read it."""
    dying = Api(stack.start_variant("contract_parse", "dies", {}))
    models.script({"headers_delay_ms": 30_000, "steps": [{"text": "too late"}]})
    uploading = threading.Thread(
        target=lambda: _quietly(lambda: upload(dying, alice, file, customer["id"])), daemon=True
    )
    uploading.start()
    wait_for(lambda: bool(models.requests()), timeout=30, what="the model's call")
    stack.kill("contract_parse-dies")  # the file stored, its text read, the model reading it
    uploading.join(10)
    [contract] = stored_contracts(alice.uid)
    assert contract["status"] == "parsing"
    assert contract["lease"]["until"] > datetime.now(UTC)
    models.reset()
    return contract


def _quietly(call: Callable[[], object]) -> None:
    with contextlib.suppress(requests.RequestException):  # the instance dies under it
        call()


def lease_runs_out(contract_id: str) -> None:
    """What a minute without renewal does to a lease."""
    past = datetime.now(UTC) - timedelta(seconds=1)
    raw_firestore().collection("contracts").document(contract_id).update({"lease.until": past})


def test_a_parse_whose_process_died_can_be_reparsed_once_its_lease_runs_out(
    contracts: Api, crud: Api, models: StandinClient, alice: Caller, died_mid_parse: dict[str, Any]
) -> None:
    contract_id = died_mid_parse["id"]
    assert crud.get(f"/contracts/{contract_id}", alice).json()["status"] == "parsing"
    assert_error(contracts.post(f"/contracts/{contract_id}/reparse", alice), 409, "ABORTED")

    lease_runs_out(contract_id)

    shown = crud.get(f"/contracts/{contract_id}", alice).json()
    assert (shown["status"], shown["parse_error"]) == (
        "failed",
        "The parse stopped before it finished; reparse the contract.",
    )
    script_terms(models, terms_answer(term_months=(12, "an initial term of twelve (12) months", 2)))
    reparsed = contracts.post(f"/contracts/{contract_id}/reparse", alice)
    assert reparsed.status_code == 200, reparsed.text
    assert (reparsed.json()["status"], reparsed.json()["extracted"]["term_months"]) == ("parsed", 12)
    [stored] = stored_contracts(alice.uid)
    assert (stored["status"], stored["lease"]) == ("parsed", None)


def test_the_same_file_uploaded_after_its_parse_died_is_parsed_again(
    contracts: Api,
    models: StandinClient,
    alice: Caller,
    customer: dict[str, Any],
    file: bytes,
    died_mid_parse: dict[str, Any],
) -> None:
    script_terms(models, terms_answer(term_months=(12, "an initial term of twelve (12) months", 2)))
    while_held = upload(contracts, alice, file, customer["id"], name="again.pdf")
    assert (while_held.status_code, while_held.json()["status"]) == (200, "parsing")  # its parse may still be alive
    assert models.requests() == []

    lease_runs_out(died_mid_parse["id"])

    again = upload(contracts, alice, file, customer["id"], name="again.pdf")
    assert again.status_code == 200, again.text
    assert (again.json()["id"], again.json()["status"]) == (died_mid_parse["id"], "parsed")
    assert again.json()["extracted"]["term_months"] == 12
    [stored] = stored_contracts(alice.uid)
    assert (stored["status"], stored["lease"]) == ("parsed", None)
