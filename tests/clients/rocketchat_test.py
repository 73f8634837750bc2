"""Rocket.Chat's PyPI client (rocketchat-api) against the Rocket.Chat dialect of a running
server (INTAKE_URL, owner key INTAKE_KEY; started by run.sh), unchanged but for its
server_url. Every endpoint the dialect page lists goes through the client's own call_api_get,
which parses each answer (and raises on an error answer): a shape it cannot read fails here.
Imports are made with Intake's native API, then followed as Rocket.Chat's admin page follows
an import. The imports made here are forgotten at the end, so the next client test starts from
an empty workspace.
"""

import os
import sys
import time
import traceback

import requests
from rocketchat_API.APIExceptions.RocketExceptions import RocketApiException
from rocketchat_API.rocketchat import RocketChat

BASE = os.environ["INTAKE_URL"]
OWNER = os.environ["INTAKE_KEY"]
SERVER_URL = f"{BASE}/compat/rocketchat"
TABLE = "messages"
ROWS = 40000

# Rocket.Chat's importer steps, in the order an import goes through them.
STEPS = [
    "importer_new",
    "importer_uploading",
    "importer_downloading_file",
    "importer_file_loaded",
    "importer_preparing_started",
    "importer_preparing_users",
    "importer_preparing_channels",
    "importer_preparing_messages",
    "importer_user_selection",
    "importer_importing_started",
    "importer_importing_users",
    "importer_importing_channels",
    "importer_importing_messages",
    "importer_importing_files",
    "importer_finishing",
    "importer_done",
    "importer_import_failed",
    "importer_import_cancelled",
]
ENDED = {"importer_done", "importer_import_failed", "importer_import_cancelled"}

made = []


def native(method, route, **kwargs):
    """Intake's native API as the owner (setting up what the dialect only reads)."""
    r = requests.request(
        method, f"{BASE}{route}", headers={"Authorization": f"Bearer {OWNER}"}, timeout=30, **kwargs
    )
    return r.status_code, (r.json() if r.content else None)


def key_id(secret):
    """A key's id, as `GET /v1/keys` lists it: Rocket.Chat's user id for that key."""
    status, body = native("GET", "/v1/keys")
    assert status == 200, body
    return next(k["id"] for k in body["data"] if secret.startswith(k["prefix"]))


def new_key(role):
    status, body = native("POST", "/v1/keys", json={"name": f"{role} key", "role": role})
    assert status == 201, body
    return body["key"]


def client(secret, user_id=None):
    """The vendor's client, pointed at Intake: only server_url changes."""
    return RocketChat(user_id=user_id or key_id(secret), auth_token=secret, server_url=SERVER_URL)


def upload(query, rows, bad_rows=0):
    lines = ["id,author,text"]
    lines += [f"{n},user{n % 97},message number {n}" for n in range(1, rows + 1)]
    lines += [f"x{n},bad,not an id" for n in range(bad_rows)]
    r = requests.post(
        f"{BASE}/v1/imports?table={TABLE}&{query}",
        headers={"Authorization": f"Bearer {OWNER}", "Content-Type": "text/csv"},
        data=("\n".join(lines) + "\n").encode(),
        timeout=60,
    )
    assert r.status_code == 202, r.text
    made.append(r.json()["id"])
    return r.json()["id"]


def follow(rocket):
    """getImportProgress until the current import ends: every answer seen, in order."""
    seen = []
    deadline = time.monotonic() + 120
    while True:
        p = rocket.call_api_get("getImportProgress")
        seen.append(p)
        if p["step"] in ENDED:
            return seen
        assert time.monotonic() < deadline, f"the import did not end: {p}"
        # A short pause between reads, as Rocket.Chat's admin page polls.
        time.sleep(0.02)


def assert_forward(seen):
    """Steps never go backwards; completed never decreases and never passes total."""
    order = [STEPS.index(p["step"]) for p in seen]
    assert order == sorted(order), [p["step"] for p in seen]
    done = [p["count"]["completed"] for p in seen]
    assert done == sorted(done), done
    for p in seen:
        assert p["count"]["completed"] <= p["count"]["total"], p


def test_no_operation_yet():
    rocket = client(OWNER)
    try:
        rocket.call_api_get("getImportProgress")
    except RocketApiException as e:
        assert e.status_code == 400, e.response
        assert e.error_type == "error-operation-not-found", e.response_json
        assert e.response_json["success"] is False
    else:
        raise AssertionError("getImportProgress answered without an import")
    assert rocket.call_api_get("getCurrentImportOperation") == {"success": True}
    assert rocket.call_api_get("getLatestImportOperations") == []


def test_an_import_followed_to_done():
    status, body = native(
        "POST",
        "/v1/tables",
        json={
            "name": TABLE,
            "columns": [
                {"name": "id", "type": "integer", "required": True},
                {"name": "author", "type": "string"},
                {"name": "text", "type": "string"},
            ],
            "primary_key": ["id"],
        },
    )
    assert status == 201, body
    rocket = client(OWNER)
    upload("platform=pending-avatars", ROWS)
    seen = follow(rocket)
    assert_forward(seen)
    last = seen[-1]
    assert last == {
        "key": "pending-avatars",
        "name": "Pending Avatars",
        "step": "importer_done",
        "count": {"completed": ROWS, "total": ROWS},
        "success": True,
    }, last


def test_an_atomic_import_prepares_before_it_imports():
    rocket = client(OWNER)
    upload("mode=upsert&on_error=atomic", ROWS)
    seen = follow(rocket)
    assert_forward(seen)
    assert seen[-1]["step"] == "importer_done"
    assert seen[-1]["count"] == {"completed": ROWS, "total": ROWS}, seen[-1]
    assert seen[-1]["key"] == "csv" and seen[-1]["name"] == "CSV"


def test_a_failed_import_reports_its_final_count():
    rocket = client(OWNER)
    upload("mode=upsert&on_error=atomic", 10, bad_rows=1)
    seen = follow(rocket)
    assert_forward(seen)
    assert seen[-1]["step"] == "importer_import_failed", seen[-1]
    op = rocket.call_api_get("getCurrentImportOperation")["operation"]
    assert op["valid"] is False
    assert op["count"]["error"] == 1, op
    assert op["count"]["completed"] == op["count"]["total"], op


def test_a_cancelled_import_reports_its_final_count():
    rocket = client(OWNER)
    status, body = native("POST", "/v1/imports", json={"table": TABLE, "start": False, "file_name": "later.csv"})
    assert status == 202, body
    made.append(body["id"])
    p = rocket.call_api_get("getImportProgress")
    assert p["step"] == "importer_new", p
    status, body = native("POST", f"/v1/imports/{body['id']}/cancel")
    assert status == 200, body
    p = rocket.call_api_get("getImportProgress")
    assert p["step"] == "importer_import_cancelled", p
    assert p["count"] == {"completed": 0, "total": 0}, p


def test_the_current_operation():
    rocket = client(OWNER)
    body = rocket.call_api_get("getCurrentImportOperation")
    assert body["success"] is True
    op = body["operation"]
    assert op["_id"] == made[-1], op
    assert op["status"] == "importer_import_cancelled"
    assert op["importerKey"] == op["type"]
    assert op["user"] == key_id(OWNER)
    for f in ("ts", "_updatedAt"):
        assert op[f].endswith("Z") and "T" in op[f], op
    assert set(op["count"]) == {"total", "completed", "error"}


def test_the_latest_operations_newest_first():
    rocket = client(OWNER)
    ops = rocket.call_api_get("getLatestImportOperations")
    assert [o["_id"] for o in ops] == list(reversed(made)), ops
    assert [o["status"] for o in ops] == [
        "importer_import_cancelled",
        "importer_import_failed",
        "importer_done",
        "importer_done",
    ]
    assert ops[-1]["count"] == {"total": ROWS, "completed": ROWS, "error": 0}
    assert ops[-1]["fileSize"] > 0


def test_auth_failures_are_the_documented_bodies():
    unauthorized = {"success": False, "error": "unauthorized"}
    for rocket in (
        RocketChat(user_id=key_id(OWNER), auth_token="intake_wrong_token_0000", server_url=SERVER_URL),
        RocketChat(user_id="not-the-keys-id", auth_token=OWNER, server_url=SERVER_URL),
    ):
        try:
            rocket.call_api_get("getImportProgress")
        except RocketApiException as e:
            assert e.status_code == 401 and e.response_json == unauthorized, e.response
        else:
            raise AssertionError("a bad token was accepted")


def test_a_viewer_reads_operations_but_lacks_run_import():
    viewer = new_key("viewer")
    rocket = client(viewer)
    assert len(rocket.call_api_get("getLatestImportOperations")) == len(made)
    for method in ("getImportProgress", "getCurrentImportOperation"):
        try:
            rocket.call_api_get(method)
        except RocketApiException as e:
            assert e.status_code == 403, e.response
            assert e.error == (
                "User does not have the permissions required for this action [error-unauthorized]"
            ), e.response
        else:
            raise AssertionError(f"a viewer called {method}")
    member = new_key("member")
    assert client(member).call_api_get("getImportProgress")["success"] is True


def forget_imports():
    for id in made:
        status, body = native("DELETE", f"/v1/imports/{id}")
        assert status in (200, 204), body


def main():
    tests = [v for k, v in globals().items() if k.startswith("test_")]
    failed = 0
    for n, t in enumerate(tests, 1):
        name = t.__name__[5:].replace("_", " ")
        try:
            t()
            print(f"ok {n} - rocketchat-api: {name}")
        except Exception:  # noqa: BLE001 - every failure is reported, then the run fails
            failed += 1
            print(f"not ok {n} - rocketchat-api: {name}")
            traceback.print_exc()
    forget_imports()
    print(f"# rocketchat-api: {len(tests) - failed} of {len(tests)} passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
