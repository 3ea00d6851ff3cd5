"""The matrices test themselves: a route added to a function without teaching the auth,
isolation, validation and OpenAPI matrices how to call it is reported by each of them, so it
cannot pass unexamined. The real routes are all covered."""

from __future__ import annotations

import pytest

from tests import test_auth, test_isolation, test_openapi, test_validation
from tests.routes import ServedRoute, served_routes, user_routes

# What a careless change might add to crud: a create, a read and an update of a new kind.
WIDGETS = [
    ServedRoute("crud", "POST", "/widgets", "FirebaseUser", False, ()),
    ServedRoute("crud", "GET", "/widgets/{widget_id}", "FirebaseUser", False, ()),
    ServedRoute("crud", "PATCH", "/widgets/{widget_id}", "FirebaseUser", False, ()),
]


def test_every_real_route_is_covered_by_every_matrix() -> None:
    routes = user_routes()
    assert test_auth.coverage_gaps(routes) == []
    assert test_isolation.coverage_gaps([r for r in routes if r.parameters]) == []
    assert test_validation.coverage_gaps(test_validation.write_routes()) == []
    assert test_openapi.undocumented((r.function, r.method, r.pattern) for r in served_routes()) == []


@pytest.mark.parametrize("added", WIDGETS, ids=str)
def test_an_added_route_fails_the_auth_matrix_until_it_can_be_called(added: ServedRoute) -> None:
    gaps = test_auth.coverage_gaps([*user_routes(), added])
    assert gaps
    assert all(str(added) in gap for gap in gaps)


@pytest.mark.parametrize("added", [r for r in WIDGETS if r.parameters], ids=str)
def test_an_added_route_with_an_id_fails_the_isolation_matrix(added: ServedRoute) -> None:
    gaps = test_isolation.coverage_gaps([*test_isolation.routes_with_an_id(), added])
    assert gaps
    assert all(str(added) in gap for gap in gaps)


def test_an_added_update_of_a_new_kind_fails_the_body_matrix() -> None:
    added = WIDGETS[2]
    assert test_validation.coverage_gaps([*test_validation.write_routes(), added]) == [
        f"{added}: teach target_of() and `owned` to call it"
    ]
    # A create of a new kind is called at its own path: it joins the body matrix as it is.
    assert test_validation.target_of(WIDGETS[0]) == "/widgets"


@pytest.mark.parametrize("added", WIDGETS, ids=str)
def test_an_added_route_fails_the_openapi_check_until_documented(added: ServedRoute) -> None:
    served = [(r.function, r.method, r.pattern) for r in served_routes()]
    assert test_openapi.undocumented([*served, (added.function, added.method, added.pattern)]) == [
        (added.function, added.method, added.pattern)
    ]
