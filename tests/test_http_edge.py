"""The HTTP edge in-process (functions-framework's `create_app(...).test_client()`, no emulator):
routing, 404/405, bodies and their limits, uploads, public query parameters, streamed and
redirect replies, the error shape, request ids, the request log written at close, and the
Cloud Tasks caller check. The scenario function is `tests/test_functions/edge/main.py`.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import random
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import functions_framework
import jwt
import pytest
from flask.testing import FlaskClient
from pydantic import BaseModel
from werkzeug.test import TestResponse

from bench.edge import hostile_body
from common import instance, models, validation
from common.errors import ApiError, Code
from tests import tokens
from tests.conftest import ROOT, Instance

pytestmark = pytest.mark.fast  # in-process, no emulator: `make test-fast` runs it

SOURCE = str(ROOT / "tests/test_functions/edge/main.py")
WORKER_URL = "https://worker.example/execute_action"
TASKS_ACCOUNT = "cscx-tasks@cscx-test.iam.gserviceaccount.com"


@pytest.fixture(scope="module")
def app_client() -> Iterator[FlaskClient]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("GOOGLE_CLOUD_PROJECT", "demo-cscx")
            instance.reset()
            app = functions_framework.create_app("edge", SOURCE)  # type: ignore[no-untyped-call]
        instance.reset()
        yield app.test_client()
    finally:
        # Loading the function configures its JSON logging on the root logger: undo that.
        root.handlers[:], root.level = handlers, level  # type: ignore[assignment]


Settings = Instance


@pytest.fixture
def settings(fresh_instance: Instance) -> Instance:
    """Settings for this test only, those of a demo project: `settings(NAME="value", ...)` changes them."""
    unset = ("CSCX_TASKS_SERVICE_ACCOUNT", "CSCX_WORKER_URL", "CSCX_OIDC_CERTS_URL", "CSCX_CORS_ORIGINS")
    fresh_instance(GOOGLE_CLOUD_PROJECT="demo-cscx", **dict.fromkeys(unset))
    return fresh_instance


@pytest.fixture
def client(app_client: FlaskClient, settings: Settings) -> FlaskClient:
    return app_client


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def request_lines(self) -> list[dict[str, Any]]:
        return [dict(getattr(r, "fields", {})) for r in self.records if "httpRequest" in getattr(r, "fields", {})]


@pytest.fixture
def http_log() -> Iterator[Records]:
    handler = Records()
    logger = logging.getLogger("common.http")
    # INFO whatever the root logger's level: JSON logging is configured once per process, so a
    # test that loaded a function before (and restored the root's level) must not silence it.
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def assert_error(response: TestResponse, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    body = response.get_json()
    assert set(body) == {"error"}
    assert body["error"]["status"] == code
    assert body["error"]["message"]
    return dict(body["error"])


# -- routing -------------------------------------------------------------------------------


def test_healthz_answers_with_any_query_and_json_headers(client: FlaskClient) -> None:
    response = client.get("/healthz?probe=1&probe=2")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_unknown_path_is_a_json_404(client: FlaskClient) -> None:
    assert_error(client.get("/nowhere"), 404, "NOT_FOUND")


def test_path_with_a_line_break_is_a_json_404(client: FlaskClient) -> None:
    assert_error(client.get("/private%0A"), 404, "NOT_FOUND")


def test_wrong_method_is_405_with_allow(client: FlaskClient) -> None:
    response = client.put("/greetings")
    assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert response.headers["Allow"] == "POST"


def test_authenticated_route_without_a_token_is_401(client: FlaskClient) -> None:
    assert_error(client.get("/private"), 401, "UNAUTHENTICATED")
    assert_error(client.get("/private", headers={"Authorization": "Basic abc"}), 401, "UNAUTHENTICATED")


def test_public_route_takes_its_declared_query_parameters(client: FlaskClient) -> None:
    response = client.get("/callback?code=abc&state=xyz")
    assert response.status_code == 302, response.get_data(as_text=True)
    assert response.headers["Location"] == "https://app.example/settings?code=abc"


def test_public_route_refuses_undeclared_and_repeated_parameters(client: FlaskClient) -> None:
    error = assert_error(client.get("/callback?code=abc&debug=1"), 400, "INVALID_ARGUMENT")
    assert error["details"] == [{"field": "debug", "message": "unknown query parameter"}]
    assert_error(client.get("/callback?code=a&code=b"), 400, "INVALID_ARGUMENT")


def test_unexpected_error_is_500_internal_without_internals(client: FlaskClient) -> None:
    response = client.get("/crash")
    error = assert_error(response, 500, "INTERNAL")
    assert error == {"status": "INTERNAL", "message": "Internal error."}
    assert "secret internal detail" not in response.get_data(as_text=True)


# -- JSON bodies -----------------------------------------------------------------------------


def test_valid_json_body_reaches_the_route_as_a_model(client: FlaskClient) -> None:
    response = client.post("/greetings", json={"name": "Ada", "times": 2})
    assert response.status_code == 201
    assert response.get_json() == {"text": "hello Ada hello Ada"}


@pytest.mark.parametrize(
    ("data", "content_type", "status", "code"),
    [
        (b'{"name": "Ada"}', "text/plain", 415, "UNSUPPORTED_MEDIA_TYPE"),
        (b"{not json", "application/json", 400, "INVALID_ARGUMENT"),
        (b"[1]", "application/json", 400, "INVALID_ARGUMENT"),
        (b"", "application/json", 400, "INVALID_ARGUMENT"),
    ],
    ids=["wrong type", "not JSON", "not an object", "empty"],
)
def test_unusable_json_body_is_refused(
    client: FlaskClient, data: bytes, content_type: str, status: int, code: str
) -> None:
    assert_error(client.post("/greetings", data=data, content_type=content_type), status, code)


def test_invalid_fields_are_listed_in_details(client: FlaskClient) -> None:
    error = assert_error(client.post("/greetings", json={"name": "", "times": 9}), 400, "INVALID_ARGUMENT")
    assert sorted(d["field"] for d in error["details"]) == ["name", "times"]


def test_a_few_unknown_fields_are_named_with_every_other_bad_field(client: FlaskClient) -> None:
    error = assert_error(client.post("/greetings", json={"name": "", "color": "red"}), 400, "INVALID_ARGUMENT")
    assert sorted(detail["field"] for detail in error["details"]) == ["color", "name"]


def test_more_unknown_fields_than_an_answer_lists_are_refused_before_the_rest_is_validated(
    client: FlaskClient,
) -> None:
    body = {"name": "", **{f"k{n:02d}": 0 for n in range(21)}}
    error = assert_error(client.post("/greetings", json=body), 400, "INVALID_ARGUMENT")
    assert [detail["field"] for detail in error["details"]] == [f"k{n:02d}" for n in range(20)]
    assert error["message"] == "The request has 21 invalid fields; the first 20 are listed."


def test_a_body_of_eighty_thousand_unknown_keys_gets_a_small_answer_quickly(client: FlaskClient) -> None:
    body = json.dumps({f"k{n}": 0 for n in range(80_000)}).encode()  # just under 1 MiB
    started = time.perf_counter()
    response = client.post("/greetings", data=body, content_type="application/json")
    elapsed = time.perf_counter() - started
    error = assert_error(response, 400, "INVALID_ARGUMENT")
    assert "more than 5000 values" in error["message"]
    assert len(response.get_data()) <= 16 * 1024
    assert elapsed < 2.0


def test_thousands_of_unknown_fields_list_twenty_and_count_the_rest(client: FlaskClient) -> None:
    response = client.post("/greetings", json={"name": "Ada", **{f"k{n}": 0 for n in range(4_000)}})
    error = assert_error(response, 400, "INVALID_ARGUMENT")
    assert len(error["details"]) == 20
    assert error["message"] == "The request has 4000 invalid fields; the first 20 are listed."
    assert len(response.get_data()) <= 16 * 1024


def test_an_error_raised_with_more_details_than_an_answer_lists_answers_twenty() -> None:
    details = [{"field": f"f{n}", "message": "bad"} for n in range(25)]
    body = ApiError(Code.INVALID_ARGUMENT, "The request has invalid fields.", details).to_body()
    assert body["error"]["details"] == details[:20]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"name": "Ada", "times": [0] * 5_000}, id="list"),
        pytest.param({"name": "Ada", "times": [[0] * 2_000] * 3}, id="nested lists"),
    ],
)
def test_a_body_holding_more_values_than_any_object_takes_is_400(client: FlaskClient, body: Any) -> None:
    error = assert_error(client.post("/greetings", json=body), 400, "INVALID_ARGUMENT")
    assert "more than 5000 values" in error["message"]


def _values_decoded(value: Any) -> int:
    """The values a decoded JSON value holds, members and items, nested ones too: the reference."""
    inner = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return sum(1 + _values_decoded(item) for item in inner)


def _tricky_string(rng: random.Random) -> str:
    """A string of the characters that structure JSON, which encoding escapes or leaves alone."""
    return "".join(
        rng.choice(['"', "\\", ",", "[", "{", "]", "}", ":", " ", "\n", "é", "中", "a"])
        for _ in range(rng.randrange(6))
    )


def _tricky_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(6 if depth < 4 else 3)
    if kind == 0:
        return _tricky_string(rng)
    if kind == 1:
        return rng.choice([0, -1.5e3, True, None])
    if kind == 2:
        return rng.choice([[], {}, ""])
    if kind in (3, 4):
        return [_tricky_value(rng, depth + 1) for _ in range(rng.randrange(5))]
    return {_tricky_string(rng): _tricky_value(rng, depth + 1) for _ in range(rng.randrange(4))}


def _tricky_texts() -> list[bytes]:
    rng = random.Random(19)
    texts = [
        b'{"a": [1, 2, {"b": []}], "c": {}}',
        b'{ "a" : [ ] , "b" : [ 1 ,\n 2 ] ,"c":{ }}',
        b'{"a": "x,y[z{\\"q\\"}", "b": ["\\\\", "\\\\\\"", ","]}',
        b'{"a": "\\u0022,\\u005c", "b": "\\\\"}',
        '{"é": "ü,", "k": ["中,文", "]"]}'.encode(),
        b"[[], {}, [[]], [{}], [0]]",
    ]
    for _ in range(300):
        value = {"top": _tricky_value(rng)}
        texts.append(json.dumps(value, ensure_ascii=rng.random() < 0.5, indent=rng.choice([None, 1])).encode())
    return texts


def test_the_values_of_a_body_are_counted_from_its_bytes_as_its_decoded_form_holds_them() -> None:
    for text in _tricky_texts():
        count = _values_decoded(json.loads(text))

        class Holding(BaseModel):
            max_values: ClassVar[int] = count

        validation.check_value_count(Holding, text)  # exactly at the limit: taken
        Holding.max_values = count - 1
        with pytest.raises(validation.InvalidInputError, match=f"more than {count - 1} values"):
            validation.check_value_count(Holding, text)


# The bodies whose decoding costs most (an object per tiny value): counting them takes about a thirtieth of it.
@pytest.mark.parametrize("name", ["unknown top-level keys", "stakeholders far over 100"])
def test_a_mebibyte_of_tiny_values_is_refused_for_less_than_decoding_it_costs(name: str) -> None:
    body = hostile_body(name)

    def fastest(step: Callable[[], object]) -> float:
        times = []
        for _ in range(5):
            started = time.perf_counter()
            with contextlib.suppress(validation.InvalidInputError):
                step()
            times.append(time.perf_counter() - started)
        return min(times)

    counted = fastest(lambda: validation.check_value_count(models.CustomerCreate, body))
    with pytest.raises(validation.InvalidInputError, match="more than 5000 values"):
        validation.check_value_count(models.CustomerCreate, body)
    assert counted < fastest(lambda: json.loads(body)) / 4


def test_json_body_over_the_limit_is_413(client: FlaskClient, settings: Settings) -> None:
    settings(CSCX_MAX_BODY_BYTES="1024")
    body = json.dumps({"name": "Ada", "pad": "x" * 2000}).encode()
    response = client.post("/greetings", data=body, content_type="application/json")
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")


def test_chunked_json_body_over_the_limit_is_413(client: FlaskClient, settings: Settings) -> None:
    settings(CSCX_MAX_BODY_BYTES="1024")
    body = b'{"name": "Ada", "pad": "' + b"x" * 4000 + b'"}'
    response = client.post("/greetings", content_type="application/json", **chunked(body))
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")


def chunked(body: bytes) -> dict[str, Any]:
    """A request body without a length, as a server hands over a chunked body."""
    return {
        "input_stream": io.BytesIO(body),
        "headers": {"Transfer-Encoding": "chunked"},
        "environ_overrides": {"wsgi.input_terminated": True, "CONTENT_LENGTH": ""},
    }


# -- uploads ---------------------------------------------------------------------------------


def test_upload_gives_the_route_its_fields_and_files(client: FlaskClient) -> None:
    response = client.post(
        "/uploads",
        data={"customer_id": "c1", "file": (io.BytesIO(b"%PDF-1.7 contract"), "msa.pdf", "application/pdf")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json() == {"fields": {"customer_id": "c1"}, "files": {"file": 17}}


def test_upload_over_the_limit_is_413(client: FlaskClient) -> None:
    response = client.post(
        "/uploads",
        data={"file": (io.BytesIO(b"x" * (65 * 1024)), "big.pdf", "application/pdf")},
        content_type="multipart/form-data",
    )
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")


def test_chunked_upload_over_the_limit_is_413_not_500(client: FlaskClient) -> None:
    boundary = "b0undary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.pdf"\r\n'
            "Content-Type: application/pdf\r\n\r\n"
        ).encode()
        + b"x" * (80 * 1024)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = client.post("/uploads", content_type=f"multipart/form-data; boundary={boundary}", **chunked(body))
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")


def test_upload_that_is_not_multipart_is_415(client: FlaskClient) -> None:
    assert_error(client.post("/uploads", json={"file": "x"}), 415, "UNSUPPORTED_MEDIA_TYPE")


# -- streamed and redirect replies -----------------------------------------------------------


def test_stream_reply_sends_its_chunks_with_its_headers(client: FlaskClient, http_log: Records) -> None:
    response = client.get("/stream?parts=3")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Request-Id"]
    assert response.is_streamed
    body = response.get_data()
    response.close()
    assert body == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
    [line] = http_log.request_lines()
    assert line["httpRequest"]["status"] == 200
    assert line["httpRequest"]["responseSize"] == str(len(body))


def test_request_log_is_written_when_the_stream_closes(client: FlaskClient, http_log: Records) -> None:
    response = client.get("/stream?parts=2&pause=0.3", buffered=False)
    assert http_log.request_lines() == [], "logged before the stream was sent"
    chunks = [bytes(chunk) for chunk in response.iter_encoded()]
    response.close()
    [line] = http_log.request_lines()
    assert b"".join(chunks) == b"data: 0\n\ndata: 1\n\n"
    assert float(line["httpRequest"]["latency"].removesuffix("s")) >= 0.3, "the duration stops before the stream"
    assert line["httpRequest"]["responseSize"] == str(len(b"".join(chunks)))


def test_error_before_the_first_chunk_is_a_json_error(client: FlaskClient) -> None:
    error = assert_error(client.get("/stream?fail_at=0"), 409, "ABORTED")
    assert error["message"] == "Refused before the first byte."


def test_producer_failing_mid_stream_ends_the_stream_and_is_logged(client: FlaskClient, http_log: Records) -> None:
    response = client.get("/stream?parts=3&fail_at=2")
    assert response.status_code == 200
    assert response.get_data() == b"data: 0\n\ndata: 1\n\n"
    response.close()
    assert any(r.getMessage() == "stream failed after it started" for r in http_log.records)


def test_redirect_reply_is_not_cached(client: FlaskClient) -> None:
    response = client.get("/callback?code=x")
    assert response.status_code == 302
    assert response.headers["Cache-Control"] == "no-store"
    assert response.get_data() == b""


# -- request ids and the log line ------------------------------------------------------------


def test_request_is_logged_with_status_bytes_duration_and_the_callers_id_beside_ours(
    client: FlaskClient, http_log: Records
) -> None:
    response = client.post("/greetings", json={"name": "Ada"}, headers={"X-Request-Id": "req-edge-0001"})
    response.close()
    assert len(response.headers["X-Request-Id"]) == 32
    [line] = http_log.request_lines()
    assert line["callerRequestId"] == "req-edge-0001"
    assert line["httpRequest"]["status"] == 201
    assert line["httpRequest"]["requestMethod"] == "POST"
    assert line["httpRequest"]["responseSize"] == str(len(response.get_data()))
    assert line["httpRequest"]["latency"].endswith("s")
    assert next(r for r in http_log.records if "httpRequest" in getattr(r, "fields", {})).levelname == "INFO"


def test_generated_request_id_when_the_callers_is_unusable(client: FlaskClient) -> None:
    response = client.get("/healthz", headers={"X-Request-Id": "bad id with spaces"})
    assert len(response.headers["X-Request-Id"]) == 32


# -- the Cloud Tasks worker's caller ---------------------------------------------------------


def test_worker_accepts_the_emulators_unsigned_delivery_in_a_demo_project(client: FlaskClient) -> None:
    response = client.post("/execute", json={"action_id": "a1"})
    assert response.status_code == 200, response.get_data(as_text=True)


@pytest.fixture
def google_oidc(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[tokens.SigningKey]:
    """The worker configured as deployed, with Google's OIDC certificates served locally."""
    key = tokens.make_signing_key("oidc-key-1")
    server = tokens.CertificateServer(key).start()
    for name in [name for name in os.environ if name.endswith("_EMULATOR_HOST")]:
        monkeypatch.delenv(name)  # the suite's stack sets them; the platform refuses them beside K_SERVICE
    for name in ("K_SERVICE", "CSCX_BEHIND_IAM"):
        monkeypatch.delenv(name, raising=False)
    try:
        settings(
            CSCX_TASKS_SERVICE_ACCOUNT=TASKS_ACCOUNT,
            CSCX_WORKER_URL=WORKER_URL,
            CSCX_OIDC_CERTS_URL=server.certs_url,
        )
        yield key
    finally:
        server.stop()


# Deployed without a public invoker: Cloud Run (K_SERVICE) checks every caller's token first.
BEHIND_IAM = {"K_SERVICE": "cscx-execute-action", "CSCX_BEHIND_IAM": "true"}


@pytest.fixture(params=["anywhere", "behind Cloud Run's IAM check"])
def worker(request: pytest.FixtureRequest, google_oidc: tokens.SigningKey, settings: Settings) -> tokens.SigningKey:
    """The deployed worker, where tokens arrive as signed and behind Cloud Run's IAM check."""
    if request.param != "anywhere":
        settings(**BEHIND_IAM)
    return google_oidc


@pytest.fixture
def behind_iam(google_oidc: tokens.SigningKey, settings: Settings) -> tokens.SigningKey:
    settings(**BEHIND_IAM)
    return google_oidc


def oidc_token(key: tokens.SigningKey, **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": "https://accounts.google.com",
        "aud": WORKER_URL,
        "sub": "1234567890",
        "email": TASKS_ACCOUNT,
        "email_verified": True,
        "iat": now,
        "exp": now + 3600,
        **overrides,
    }
    return tokens.sign_rs256(claims, key)


def deliver(client: FlaskClient, token: str | None) -> TestResponse:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post("/execute", json={"action_id": "a1"}, headers=headers)


def test_worker_accepts_the_tasks_service_accounts_token(client: FlaskClient, worker: tokens.SigningKey) -> None:
    response = deliver(client, oidc_token(worker))
    assert response.status_code == 200, response.get_data(as_text=True)


@pytest.mark.parametrize(("max_age", "fetched"), [(3600, 1), (None, 3)])
def test_oidc_certificates_are_kept_while_their_max_age_runs_and_only_then(
    settings: Settings, max_age: int | None, fetched: int
) -> None:
    """Kept in memory as their Cache-Control allows, not fetched for every delivery; without a
    max-age, fetched for each token."""
    from common import auth

    key = tokens.make_signing_key("oidc-kept")
    server = tokens.CertificateServer(key, max_age=max_age).start()
    try:
        settings(
            CSCX_TASKS_SERVICE_ACCOUNT=TASKS_ACCOUNT, CSCX_WORKER_URL=WORKER_URL, CSCX_OIDC_CERTS_URL=server.certs_url
        )
        for _ in range(3):
            assert auth.verify_cloud_tasks_token(f"Bearer {oidc_token(key)}")["email"] == TASKS_ACCOUNT
        assert server.fetched == fetched
    finally:
        server.stop()


OTHER_TOKENS = {
    "another audience": {"aud": "https://elsewhere.example/execute"},
    "another account": {"email": "someone@cscx-test.iam.gserviceaccount.com"},
    "unverified e-mail": {"email_verified": False},
    "another issuer": {"iss": "https://evil.example"},
    "Firebase's issuer": {"iss": "https://securetoken.google.com/cscx-test"},
    "expired": {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200},
    "issued in the future": {"iat": int(time.time()) + 3600, "exp": int(time.time()) + 7200},
}


@pytest.mark.parametrize("overrides", OTHER_TOKENS.values(), ids=OTHER_TOKENS)
def test_worker_refuses_other_tokens(client: FlaskClient, worker: tokens.SigningKey, overrides: dict[str, Any]) -> None:
    assert_error(deliver(client, oidc_token(worker, **overrides)), 401, "UNAUTHENTICATED")


def test_worker_refuses_missing_forged_and_unsigned_tokens(client: FlaskClient, worker: tokens.SigningKey) -> None:
    other_key = tokens.make_signing_key("oidc-key-1")  # the same kid, another key
    claims = jwt.decode(oidc_token(worker), options={"verify_signature": False})
    for token in (
        None,
        "garbage",
        tokens.sign_rs256(claims, other_key),
        tokens.unsigned(claims, kid="oidc-key-1"),
        tokens.hs256_with_public_certificate(claims, worker),
    ):
        assert_error(deliver(client, token), 401, "UNAUTHENTICATED")


# -- behind Cloud Run's IAM check: the token's signature replaced once Cloud Run verified it ------


def test_worker_behind_iam_accepts_the_token_cloud_run_verified(
    client: FlaskClient, behind_iam: tokens.SigningKey
) -> None:
    response = deliver(client, tokens.signature_removed(oidc_token(behind_iam)))
    assert response.status_code == 200, response.get_data(as_text=True)


@pytest.mark.parametrize("overrides", OTHER_TOKENS.values(), ids=OTHER_TOKENS)
def test_worker_behind_iam_refuses_other_tokens_on_their_claims(
    client: FlaskClient, behind_iam: tokens.SigningKey, overrides: dict[str, Any]
) -> None:
    token = tokens.signature_removed(oidc_token(behind_iam, **overrides))
    assert_error(deliver(client, token), 401, "UNAUTHENTICATED")


def test_worker_behind_iam_refuses_a_token_cloud_run_would_not_have_verified(
    client: FlaskClient, behind_iam: tokens.SigningKey
) -> None:
    claims = jwt.decode(oidc_token(behind_iam), options={"verify_signature": False})
    for token in (
        tokens.signature_removed(tokens.unsigned(claims, kid="oidc-key-1")),  # alg: none
        tokens.signature_removed(tokens.hs256_with_public_certificate(claims, behind_iam)),
        "SIGNATURE_REMOVED_BY_GOOGLE",
        "e30.e30.SIGNATURE_REMOVED_BY_GOOGLE",  # {} and {}
        "not-base64!.not-json.SIGNATURE_REMOVED_BY_GOOGLE",
    ):
        assert_error(deliver(client, token), 401, "UNAUTHENTICATED")


@pytest.mark.parametrize(
    "deployed",
    [{}, {"K_SERVICE": "cscx-execute-action"}, {"CSCX_BEHIND_IAM": "true"}, {**BEHIND_IAM, "CSCX_BEHIND_IAM": "false"}],
    ids=["locally", "on Cloud Run with a public invoker", "off Cloud Run", "told it is not behind IAM"],
)
def test_worker_refuses_a_token_without_its_signature_unless_behind_cloud_runs_iam_check(
    client: FlaskClient, google_oidc: tokens.SigningKey, settings: Settings, deployed: dict[str, str]
) -> None:
    settings(**deployed)
    token = tokens.signature_removed(oidc_token(google_oidc))
    assert_error(deliver(client, token), 401, "UNAUTHENTICATED")
    assert deliver(client, oidc_token(google_oidc)).status_code == 200  # the same token, signed, is fine
