from tests.conftest import Api, Caller


def test_customer_roundtrip(crud: Api, alice: Caller) -> None:
    created = crud.post("/customers", alice, json={"name": "Acme", "arr": 1200})
    assert created.status_code == 201, created.text
    got = crud.get(f"/customers/{created.json()['id']}", alice)
    assert got.status_code == 200, got.text
    assert got.json()["name"] == "Acme"
