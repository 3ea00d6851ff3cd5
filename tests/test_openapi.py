"""openapi.yaml, the API's published contract, held against the functions that really serve it.

The document must be valid OpenAPI 3.1, name exactly the routes (and query parameters) the five
entry points route, agree with the request models, and describe what crud answers to anything a
client may send: a property-based sweep (schemathesis) calls every crud operation as a real user
and checks each response against the document.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import hypothesis
import jsonschema
import pytest
import requests
import schemathesis
import yaml
from hypothesis import strategies as st
from openapi_spec_validator import validate as validate_openapi
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from common import models
from common.collections import CONTRACTS, MESSAGES, SESSIONS
from scripts.stack import FUNCTIONS, Stack
from tests import routes
from tests.conftest import Caller, Users
from tests.routes import ServedRoute

ROOT = Path(__file__).resolve().parent.parent
OPENAPI_PATH = ROOT / "openapi.yaml"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
ENTRY_POINTS = tuple(f.entry_point for f in FUNCTIONS)
SWEEP_EXAMPLES_PER_OPERATION = int(os.environ.get("CSCX_SWEEP_EXAMPLES") or 25)
SWEEP_TIMEOUT_SECONDS = 10


def load_document() -> dict[str, Any]:
    document = yaml.safe_load(OPENAPI_PATH.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


DOCUMENT = load_document()
ErrorValidator = jsonschema.Draft202012Validator(
    {"$ref": "#/components/schemas/Error", "components": DOCUMENT["components"]}
)


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(METHOD, path, operation) for every operation of the document."""
    for path, item in document["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield method.upper(), path, item[method]


def functions_of(operation: dict[str, Any]) -> list[str]:
    """The entry points serving an operation: `x-cscx-function`, or `x-cscx-functions` when shared."""
    one, many = operation.get("x-cscx-function"), operation.get("x-cscx-functions")
    assert (one is None) != (many is None), f"{operation.get('operationId')}: name its function(s) exactly once"
    return [one] if one is not None else [str(name) for name in many or []]


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    """Follow local `$ref`s to the object they name."""
    while "$ref" in node:
        target: Any = DOCUMENT
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def json_schema(response: dict[str, Any]) -> dict[str, Any]:
    """The resolved JSON schema of a response (empty when it has no JSON body)."""
    return resolve(response.get("content", {}).get("application/json", {}).get("schema", {}))


def query_parameters(path: str, operation: dict[str, Any]) -> set[str]:
    declared = DOCUMENT["paths"][path].get("parameters", []) + operation.get("parameters", [])
    return {p["name"] for p in map(resolve, declared) if p["in"] == "query"}


def served_routes() -> dict[tuple[str, str, str], ServedRoute]:
    """(entry point, METHOD, pattern) → route, for every route the five entry points serve."""
    return {(route.function, route.method, route.pattern): route for route in routes.served_routes()}


def undocumented(served: Iterable[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """Served routes that openapi.yaml does not describe."""
    return sorted(set(served) - set(documented_routes()))


def documented_routes() -> dict[tuple[str, str, str], dict[str, Any]]:
    """(entry point, METHOD, path) → operation, for every operation of the document."""
    return {
        (entry_point, method, path): operation
        for method, path, operation in operations(DOCUMENT)
        for entry_point in functions_of(operation)
    }


# -- the document itself -------------------------------------------------------------------


def test_openapi_document_is_valid_openapi_3_1() -> None:
    assert DOCUMENT["openapi"].startswith("3.1.")
    validate_openapi(DOCUMENT)


def test_every_function_is_registered_with_its_servers() -> None:
    registry = DOCUMENT["x-cscx-functions"]
    assert set(registry) == set(ENTRY_POINTS)
    for method, path, operation in operations(DOCUMENT):
        assert set(functions_of(operation)) <= set(registry), (method, path)
        if "x-cscx-function" in operation:
            assert DOCUMENT["paths"][path]["servers"] == registry[operation["x-cscx-function"]], (method, path)


# How each kind of route's callers prove who they are, as the document says it.
SECURITY: dict[str, list[dict[str, list[str]]] | None] = {
    "FirebaseUser": None,
    "Anyone": [],
    "CloudTasks": [{"cloudTasksOidc": []}],
}


def test_every_route_but_the_public_ones_requires_a_bearer_token() -> None:
    assert DOCUMENT["security"] == [{"bearerAuth": []}]
    scheme = DOCUMENT["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    for method, path, operation in operations(DOCUMENT):
        if path == "/healthz":
            assert operation["security"] == [], "healthz is public"
            assert set(functions_of(operation)) == set(ENTRY_POINTS), "every function answers /healthz"
            continue
        assert operation.get("security") in SECURITY.values(), (method, path)
        if operation.get("security") != []:
            assert "401" in operation["responses"], (method, path)


def test_every_error_response_has_the_error_shape() -> None:
    for method, path, operation in operations(DOCUMENT):
        for status, response in operation["responses"].items():
            if int(status) < 400:
                continue
            schema = resolve(response)["content"]["application/json"]["schema"]
            assert {"$ref": "#/components/schemas/Error"} in schema.get("allOf", [schema]), (method, path, status)


def test_creates_answer_201_deletes_204_and_single_objects_carry_an_etag() -> None:
    for method, path, operation in operations(DOCUMENT):
        success = sorted(status for status in operation["responses"] if int(status) < 300)
        if method == "DELETE":
            assert success == ["204"], path
        if method == "POST" and "get" in DOCUMENT["paths"][path]:  # a create in a listable collection
            assert success == ["201"], path
        for status in success:
            response = resolve(operation["responses"][status])
            single = {"$ref": "#/components/schemas/Common"} in json_schema(response).get("allOf", [])
            assert ("ETag" in response.get("headers", {})) == single, (method, path, status)


def test_lists_page_with_limit_and_cursor_into_items_and_next_cursor() -> None:
    lists = 0
    for method, path, operation in operations(DOCUMENT):
        schema = json_schema(resolve(operation["responses"].get("200", {})))
        if "items" not in schema.get("properties", {}):
            continue
        lists += 1
        assert method == "GET", path
        assert {"limit", "cursor"} <= query_parameters(path, operation), path
        assert schema["required"] == ["items", "next_cursor"], path
        assert schema["properties"]["next_cursor"] == {"type": ["string", "null"]}, path
        assert schema["additionalProperties"] is False, path
    paged = [r for r in routes.served_routes() if r.method == "GET" and r.query and "cursor" in r.query]
    assert lists == len(paged)  # every route that pages answers a documented list


def request_models() -> dict[str, type[models.Strict]]:
    """The pydantic request models that the document names a schema after."""
    return {
        name: model
        for name, model in vars(models).items()
        if isinstance(model, type) and issubclass(model, models.Strict) and name in DOCUMENT["components"]["schemas"]
    }


def public_models() -> dict[str, type[models.Stored]]:
    """Every model of what clients see, by the name of its response schema (`CustomerPublic` → `Customer`)."""
    return {
        name.removesuffix("Public"): model
        for name, model in vars(models).items()
        if isinstance(model, type) and issubclass(model, models.Stored) and name.endswith("Public")
    }


def test_every_write_operation_takes_a_request_model_or_says_it_takes_no_body() -> None:
    writes = 0
    for method, path, operation in operations(DOCUMENT):
        if method not in {"POST", "PATCH"}:
            continue
        writes += 1
        if operation.get("x-cscx-no-body"):
            assert "requestBody" not in operation, (method, path)
            continue
        content = resolve(operation["requestBody"])["content"]
        if "multipart/form-data" in content:
            continue
        ref = content["application/json"]["schema"]["$ref"]
        if operation.get("x-cscx-auth") == "cloud-tasks":  # a task's body, or the sweep's (nothing)
            assert ref in {"#/components/schemas/WorkerTask", "#/components/schemas/SweepRequest"}, (method, path)
            continue
        assert ref.rsplit("/", 1)[-1] in request_models(), (method, path)
    assert writes >= 7


@pytest.mark.parametrize("model_name", sorted(request_models()))
def test_request_schema_has_the_fields_of_its_model(model_name: str) -> None:
    model = request_models()[model_name]
    documented = DOCUMENT["components"]["schemas"][model_name]
    assert documented["additionalProperties"] is False, "unknown fields are refused"
    names = {field.alias or name for name, field in model.model_fields.items()}  # as the JSON has them
    assert set(documented["properties"]) == names
    # useChat's body names its chat `id`: the session it writes to (DESIGN §7), not a field it sets.
    named_by_the_ai_sdk = {"id"} if model is models.ChatRequest else set()
    assert (set(documented["properties"]) - named_by_the_ai_sdk).isdisjoint(
        models.COMMON_SERVER_FIELDS | model.server_owned()
    )
    required = {field.alias or name for name, field in model.model_fields.items() if field.is_required()}
    assert set(documented.get("required", [])) == required
    if issubclass(model, models.Update):
        assert documented["minProperties"] == 1, "an update naming no field is a 400"
        nullable = {name for name, prop in documented["properties"].items() if accepts_null(prop)}
        assert nullable == set(model.model_fields) - model.not_nullable, "null clears exactly the optional fields"


def accepts_null(schema: dict[str, Any]) -> bool:
    schema = resolve(schema)
    types = schema.get("type", [])
    return "null" in types or any(accepts_null(option) for option in schema.get("oneOf", []) + schema.get("anyOf", []))


@pytest.mark.parametrize("schema_name", sorted(public_models()))
def test_response_schema_has_exactly_the_fields_of_its_public_model(schema_name: str) -> None:
    model = public_models()[schema_name]
    documented = DOCUMENT["components"]["schemas"][schema_name]
    assert documented["unevaluatedProperties"] is False, "an undocumented field in a reply fails the sweep"
    assert documented["allOf"] == [{"$ref": "#/components/schemas/Common"}]
    common = DOCUMENT["components"]["schemas"]["Common"]
    assert set(common["properties"]) == models.COMMON_SERVER_FIELDS
    assert set(documented["properties"]) | set(common["properties"]) == set(model.model_fields)
    assert not set(documented["properties"]) & model.hidden, "fields stored for sorting are never answered"
    required = {name for name, field in model.model_fields.items() if field.is_required()}
    assert set(documented.get("required", [])) | set(common["required"]) == required


def test_every_public_model_has_a_response_schema() -> None:
    schemas = DOCUMENT["components"]["schemas"]
    for name in public_models():
        assert name in schemas, f"openapi.yaml has no {name} schema for models.{name}Public"


# -- the document against the code ---------------------------------------------------------


def test_documented_routes_are_exactly_the_routes_the_functions_serve() -> None:
    served, documented = set(served_routes()), set(documented_routes())
    assert undocumented(served) == [], "served but not in openapi.yaml"
    assert sorted(documented - served) == [], "in openapi.yaml but not served"


def test_documented_query_parameters_are_exactly_those_each_route_accepts() -> None:
    served = served_routes()
    for key, operation in documented_routes().items():
        route = served.get(key)  # a missing route fails the test above
        if route is not None and route.query is not None:  # None: any parameter (health checks)
            assert query_parameters(key[2], operation) == set(route.query), key


def test_routes_that_take_an_idempotency_key_document_it() -> None:
    served = served_routes()
    keyed = {key for key, route in served.items() if route.idempotent}
    assert {(f, m, p) for f, m, p in keyed} >= {
        ("crud", "POST", "/customers"),
        ("crud", "POST", "/tasks"),
        ("contract_parse", "POST", "/contracts/upload"),
        ("approve_action", "POST", "/actions/{action_id}/approve"),
        ("approve_action", "POST", "/actions/{action_id}/reject"),
    }
    for key, operation in documented_routes().items():
        parameters = [resolve(p) for p in operation.get("parameters", [])]
        takes_key = any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in parameters)
        assert takes_key == (key in keyed), key
        if takes_key:
            assert {"409", "422"} <= set(operation["responses"]), key


def test_documented_security_matches_each_route() -> None:
    served = served_routes()
    for key, operation in documented_routes().items():
        route = served.get(key)
        if route is None:  # fails the routes test above
            continue
        assert operation.get("security") == SECURITY[route.auth], key
        assert operation.get("x-cscx-check-revoked", False) == route.check_revoked, key


def test_method_a_path_does_not_document_gets_405_with_allow(stack: Stack) -> None:
    for path, item in DOCUMENT["paths"].items():
        documented = ", ".join(sorted(method.upper() for method in HTTP_METHODS if method in item))
        url_path = path.replace("{", "").replace("}", "")  # any id: routing comes before lookup
        serving = {entry_point for _, p, op in operations(DOCUMENT) if p == path for entry_point in functions_of(op)}
        for entry_point in sorted(serving):
            reply = requests.put(stack.url(entry_point) + url_path, timeout=10)
            assert reply.status_code == 405, (entry_point, path, reply.text)
            assert reply.headers["Allow"] == documented, (entry_point, path)
            ErrorValidator.validate(reply.json())


# -- what the sweep cannot send ------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "params", "headers"),
    [
        pytest.param("GET", "/customers", {"limit": "²"}, {}, id="limit-with-a-superscript-digit"),
        pytest.param("GET", "/customers", {"limit": "1" * 40}, {}, id="limit-too-long"),
        pytest.param("PATCH", "/profile", {}, {"If-Match": '"²"'}, id="if-match-with-a-superscript-digit"),
        pytest.param("PATCH", "/profile", {}, {"If-Match": '"' + "9" * 40 + '"'}, id="if-match-too-long"),
        pytest.param("GET", "/customers/%0A", {}, {}, id="id-with-a-line-break"),
    ],
)
def test_malformed_request_gets_a_json_error_not_a_500(
    method: str, path: str, *, params: dict[str, str], headers: dict[str, str], users: Users, stack: Stack
) -> None:
    user = users.create("malformed")
    # Header values go out as latin-1 bytes, as a raw client could send them.
    all_headers: dict[str, str | bytes] = {**user.headers}
    all_headers.update({name: value.encode("latin-1") for name, value in headers.items()})
    reply = requests.request(
        method, stack.url("crud") + path, params=params, headers=all_headers, json={"display_name": "x"}, timeout=10
    )
    assert 400 <= reply.status_code < 500, reply.text
    assert reply.headers["Content-Type"].startswith("application/json"), reply.text
    ErrorValidator.validate(reply.json())


# -- property-based sweep of crud ----------------------------------------------------------

SWEEP_CONFIG = schemathesis.Config.from_dict(
    {
        # Fuzzing only: valid and invalid inputs from the document. The coverage phase would send
        # hundreds of boundary cases per operation; the stateful phase needs links we do not declare.
        "generation": {"mode": "all", "max-examples": SWEEP_EXAMPLES_PER_OPERATION},
        "phases": {"examples": {"enabled": False}, "coverage": {"enabled": False}, "stateful": {"enabled": False}},
    }
)
crud_schema = schemathesis.openapi.from_path(OPENAPI_PATH, config=SWEEP_CONFIG).include(
    lambda ctx: "crud" in functions_of(ctx.operation.definition.raw)
)


@pytest.fixture
def sweeper(users: Users, stack: Stack, repo_for: Any) -> dict[str, Any]:
    """A real user owning one object of each kind, for path ids to hit now and then."""
    user = users.create("sweeper")
    crud = stack.url("crud")
    customer = requests.post(f"{crud}/customers", json={"name": "Acme"}, headers=user.headers, timeout=10)
    customer.raise_for_status()
    customer_id = customer.json()["id"]
    task = requests.post(
        f"{crud}/tasks", json={"title": "Call", "customer_id": customer_id}, headers=user.headers, timeout=10
    )
    task.raise_for_status()
    repo = repo_for(user.uid)  # contracts and sessions have no create route in crud
    contract = repo.create(CONTRACTS, {"customer_id": customer_id, "title": "MSA", "status": "uploaded"})
    session = repo.create(SESSIONS, {"title": "Renewal", "customer_id": customer_id, "status": "idle"})
    repo.create(
        MESSAGES,
        {"role": "user", "parts": [{"type": "text", "text": "hi"}], "status": "complete"},
        parent_id=session["id"],
    )
    ids = {"customer_id": customer_id, "task_id": task.json()["id"], "contract_id": contract["id"]}
    return {"user": user, "ids": {**ids, "session_id": session["id"]}}


@crud_schema.parametrize()
@crud_schema.given(data=st.data())
@hypothesis.settings(
    max_examples=SWEEP_EXAMPLES_PER_OPERATION,
    deadline=None,
    # Reproducible by default; CSCX_SWEEP_RANDOM=1 explores new inputs on every run.
    derandomize=not os.environ.get("CSCX_SWEEP_RANDOM"),
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_crud_answers_every_generated_request_as_documented(
    case: schemathesis.Case[Any], data: st.DataObject, sweeper: dict[str, Any], stack: Stack
) -> None:
    user: Caller = sweeper["user"]
    path_parameters = case.path_parameters or {}
    for name, seeded in sweeper["ids"].items():
        if name in path_parameters and data.draw(st.booleans(), label=f"use the seeded {name}"):
            path_parameters[name] = seeded
    try:
        response = case.call(base_url=stack.url("crud"), headers=user.headers, timeout=SWEEP_TIMEOUT_SECONDS)
    except requests.Timeout:
        pytest.fail(f"{case.method} {case.formatted_path} took over {SWEEP_TIMEOUT_SECONDS} s")
    sent = f"{case.method} {case.formatted_path} {case.query!r}"
    assert response.status_code < 500, (sent, response.text)
    if response.status_code >= 400:
        content_type = response.headers.get("content-type", [""])[0]  # schemathesis: lower-case name → values
        assert content_type.startswith("application/json"), (sent, response.text)
        ErrorValidator.validate(response.json())
    case.validate_response(
        response,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_headers_conformance,
            response_schema_conformance,
        ],
    )
