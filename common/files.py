"""Files kept privately in Cloud Storage: put, read and delete objects by path.

Nothing here lists the bucket or takes a path from a client: a stored document names its file
in `storage_path`, and the file goes with it (`delete_file_of`). The bucket is the one the
instance is configured with (`CSCX_CONTRACTS_BUCKET`). Locally the `google-cloud-storage`
client goes to the emulator named by `STORAGE_EMULATOR_HOST` (its own setting), with no
credentials. Cloud Storage's failures are a 503 here, at this one boundary.
"""

from __future__ import annotations

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
    """The object's bytes; FileNotFoundError when there is none at `path`."""
    from google.api_core import exceptions as gexc

    try:
        return bytes(_bucket().blob(path).download_as_bytes(timeout=60))
    except gexc.NotFound:
        raise FileNotFoundError(path) from None
    except (gexc.GoogleAPICallError, OSError) as error:
        raise _unavailable(error) from None


def delete(path: str) -> None:
    """Delete an object; one already gone is fine."""
    from google.api_core import exceptions as gexc

    try:
        _bucket().blob(path).delete(timeout=60)
    except gexc.NotFound:
        return
    except (gexc.GoogleAPICallError, OSError) as error:
        raise _unavailable(error) from None


def delete_file_of(document: Mapping[str, Any]) -> None:
    """Delete the file a stored document names in its `storage_path`, if it names one."""
    if document.get("storage_path"):
        delete(str(document["storage_path"]))
