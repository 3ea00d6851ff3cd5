"""The original contract files, kept privately in Cloud Storage (`CSCX_CONTRACTS_BUCKET`).

Objects live at `contracts/{uid}/{contract_id}/{file_name}` and are reached only through their
owner's contract: nothing here lists a bucket or takes a path from a client. Locally the
`google-cloud-storage` client goes to the emulator named by `STORAGE_EMULATOR_HOST` (its own
setting), with no credentials.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from common.errors import ApiError, Code
from common.instance import per_instance
from common.log import get_logger
from common.settings import get_settings

if TYPE_CHECKING:
    from google.cloud.storage import Bucket

logger = get_logger(__name__)


@per_instance
def _bucket() -> Bucket:
    from google.cloud import storage  # type: ignore[attr-defined]

    settings = get_settings()
    if "STORAGE_EMULATOR_HOST" in settings.emulators:
        from google.auth.credentials import AnonymousCredentials

        client = storage.Client(project=settings.project_id, credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
    else:
        client = storage.Client(project=settings.project_id)
    return client.bucket(settings.contracts_bucket)


def object_path(uid: str, contract_id: str, file_name: str) -> str:
    """Where a contract's file is kept; the file name is reduced to safe characters."""
    safe = re.sub(r"[^A-Za-z0-9._ -]+", "_", file_name).strip(" .") or "contract"
    return f"contracts/{uid}/{contract_id}/{safe[:200]}"


def _unavailable(error: Exception) -> ApiError:
    logger.warning("Cloud Storage unavailable", extra={"fields": {"error": type(error).__name__}})
    return ApiError(Code.UNAVAILABLE, "The file store is unavailable right now; try again.")


def put(path: str, data: bytes, content_type: str) -> None:
    from google.api_core import exceptions as gexc

    try:
        _bucket().blob(path).upload_from_string(data, content_type=content_type, timeout=60)
    except (gexc.GoogleAPICallError, OSError) as error:
        raise _unavailable(error) from None


def get(path: str) -> bytes:
    from google.api_core import exceptions as gexc

    try:
        return bytes(_bucket().blob(path).download_as_bytes(timeout=60))
    except gexc.NotFound:
        raise ApiError(Code.NOT_FOUND, "The contract's file is missing; upload it again.") from None
    except (gexc.GoogleAPICallError, OSError) as error:
        raise _unavailable(error) from None


def delete_file_of(contract: Mapping[str, Any]) -> None:
    """Delete a contract's stored file, if it has one."""
    if contract.get("storage_path"):
        delete(str(contract["storage_path"]))


def delete(path: str) -> None:
    """Delete a file; one already gone is fine."""
    from google.api_core import exceptions as gexc

    try:
        _bucket().blob(path).delete(timeout=60)
    except gexc.NotFound:
        return
    except (gexc.GoogleAPICallError, OSError) as error:
        raise _unavailable(error) from None
