"""A contract's record and its file: reading, listing, correcting and deleting contracts.

The upload and the extraction of terms are in `parsing.py`. The original file is kept in the
file store at `file_path(...)`, named in the record's `storage_path`, and goes with the record.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from common import files, models
from common.collections import CONTRACTS
from common.errors import ApiError, Code, NotFoundError
from common.lease import held
from common.resources import list_by_customer, require_customer, update_record
from common.store import ListPage, Repository
from common.validation import InvalidInputError, parse_value


def public(contract: Mapping[str, Any]) -> models.ContractPublic:
    """The contract as clients see it: `failed` once the lease of a parse whose process died ran out
    (it left `parsing` behind; reparse takes it up again)."""
    if contract.get("status") == models.ContractStatus.PARSING and not held(contract):
        message = "The parse stopped before it finished; reparse the contract."
        contract = {**contract, "status": models.ContractStatus.FAILED.value, "parse_error": message}
    return models.ContractPublic.of(contract)


def get_contract(repo: Repository, contract_id: str) -> models.ContractPublic:
    return public(repo.get(CONTRACTS, contract_id))


def list_contracts(repo: Repository, query: Mapping[str, str]) -> ListPage[models.ContractPublic]:
    return list_by_customer(repo, CONTRACTS, query).map(public)


def update_contract(
    repo: Repository, contract_id: str, update: models.ContractUpdate, if_match: int | None
) -> models.ContractPublic:
    changes = update.changes()
    corrections = changes.pop("extracted", None)
    if corrections is None:
        return public(update_record(repo, CONTRACTS, contract_id, changes, if_match))
    from common.contracts import terms  # the terms' models are large: loaded when corrections come

    checked = _corrections(corrections)

    def correct(current: dict[str, Any]) -> dict[str, Any]:
        if current.get("status") != models.ContractStatus.PARSED:
            raise ApiError(Code.ABORTED, "Only a parsed contract's terms can be corrected; reparse it first.")
        return {**changes, "extracted": terms.apply_corrections(current.get("extracted"), checked)}

    if changes.get("customer_id"):
        require_customer(repo, changes["customer_id"])
    return public(repo.update(CONTRACTS, contract_id, correct, if_match=if_match))


def _corrections(corrections: dict[str, Any]) -> dict[str, Any]:
    """The CSM's corrections, validated per field (a 400 names `extracted.<field>`)."""
    from common.contracts import terms

    try:
        return parse_value(terms.Corrections, corrections).model_dump(mode="json", exclude_unset=True)
    except InvalidInputError as error:
        for detail in error.details:
            detail["field"] = f"extracted.{detail['field']}"
        raise


def delete_contract(repo: Repository, contract_id: str, if_match: int | None) -> None:
    """Delete a contract, and its stored file with it."""
    files.delete_file_of(repo.delete(CONTRACTS, contract_id, if_match=if_match))


def file_path(uid: str, contract_id: str, file_name: str) -> str:
    """Where a contract's file is kept; the file name is reduced to safe characters."""
    safe = re.sub(r"[^A-Za-z0-9._ -]+", "_", file_name).strip(" .") or "contract"
    return f"contracts/{uid}/{contract_id}/{safe[:200]}"


def read_file(contract: Mapping[str, Any]) -> bytes:
    """The contract's original file, as uploaded."""
    try:
        return files.get(str(contract["storage_path"]))
    except FileNotFoundError:
        raise NotFoundError("The contract's file is missing; upload it again.") from None
