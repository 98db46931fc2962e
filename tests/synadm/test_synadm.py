"""The synadm admin CLI (PyPI) against a running Myelin, unchanged (issue 14).

synadm speaks the reference server's admin API; these are the commands operators reach for
about users and sessions: list, details, whois, password reset, device listing and
pruning, registration tokens and the server version. Run by tests/synadm/run.sh, which
starts the server with MYELIN_URL and MYELIN_SHARED_SECRET set.
"""

import hashlib
import hmac
import json
import os
import subprocess
import time

import pytest
import requests

URL = os.environ["MYELIN_URL"]
SECRET = os.environ["MYELIN_SHARED_SECRET"]
CLIENT = f"{URL}/_matrix/client/v3"


def shared_secret_register(username, password, admin):
    """An account through shared-secret registration, as register_new_matrix_user makes it."""
    nonce = requests.get(f"{URL}/_synapse/admin/v1/register", timeout=10).json()["nonce"]
    role = b"admin" if admin else b"notadmin"
    message = b"\0".join([nonce.encode(), username.encode(), password.encode(), role])
    mac = hmac.new(SECRET.encode(), message, hashlib.sha1).hexdigest()
    resp = requests.post(
        f"{URL}/_synapse/admin/v1/register",
        json={"nonce": nonce, "username": username, "password": password, "admin": admin,
              "mac": mac},
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def login(user, password, device_id=None):
    body = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
            "password": password}
    if device_id:
        body["device_id"] = device_id
    return requests.post(f"{CLIENT}/login", json=body, timeout=10)


@pytest.fixture(scope="module")
def admin():
    return shared_secret_register("root", "root password here", True)


@pytest.fixture(scope="module")
def synadm(tmp_path_factory, admin):
    """Runs synadm with a configuration for the admin; returns its output, parsed."""
    config = tmp_path_factory.mktemp("synadm") / "synadm.yaml"
    # synadm reads YAML; JSON is YAML.
    config.write_text(json.dumps({
        "user": admin["user_id"], "token": admin["access_token"], "base_url": URL,
        "protocol": "http", "admin_path": "/_synapse/admin", "matrix_path": "/_matrix",
        "timeout": 10, "format": "json", "server_discovery": "well-known",
        "homeserver": "localhost", "ssl_verify": False,
    }))

    def run(*args, last=False):
        done = subprocess.run(
            ["synadm", "--batch", "-o", "minified", "-c", str(config), *args],
            capture_output=True, text=True, timeout=60, check=False,
        )
        assert done.returncode == 0, f"synadm {args}: {done.stdout} {done.stderr}"
        out = done.stdout.strip()
        if last:
            # Commands that print what they are about to act on first: the last line says
            # what they did.
            out = out.splitlines()[-1] if out else ""
        return json.loads(out) if out else None

    return run


@pytest.fixture(scope="module")
def bob():
    bob = shared_secret_register("bob", "bobs first password", False)
    for device in ["PHONE", "LAPTOP"]:
        assert login("bob", "bobs first password", device).status_code == 200
    return bob


def test_version(synadm):
    assert synadm("version")["server_version"].startswith("Myelin ")


def test_user_list_and_details(synadm, bob):
    listed = synadm("user", "list")
    names = [u["name"] for u in listed["users"]]
    assert "@root:localhost" in names and "@bob:localhost" in names
    assert listed["total"] == len(names)
    details = synadm("user", "details", "@bob:localhost")
    assert details["name"] == "@bob:localhost"
    assert details["admin"] is False and details["deactivated"] is False
    # A localpart is completed with the configured homeserver name.
    assert synadm("user", "details", "bob")["name"] == "@bob:localhost"


def test_whois(synadm, bob):
    whois = synadm("user", "whois", "@bob:localhost")
    assert whois["user_id"] == "@bob:localhost"
    assert "sessions" in whois["devices"][""]


def test_password_reset_keeps_sessions_with_no_logout(synadm, bob):
    assert synadm("user", "password", "@bob:localhost", "-p", "bobs second password",
                  "--no-logout") == {}
    headers = {"Authorization": f"Bearer {bob['access_token']}"}
    assert requests.get(f"{CLIENT}/account/whoami", headers=headers,
                        timeout=10).status_code == 200
    assert login("bob", "bobs first password").status_code == 403
    assert login("bob", "bobs second password", "PHONE").status_code == 200


def test_devices_are_listed_and_pruned(synadm, admin, bob):
    # (synadm's --min-days 0 selects nothing: it tests the number for truth. A device ID
    # names one device.)
    listed = synadm("user", "prune-devices", "@bob:localhost", "--list-only",
                    "--device-id", "LAPTOP", "--timestamp")
    assert [d["device_id"] for d in listed] == ["LAPTOP"], listed
    assert listed[0]["user_id"] == "@bob:localhost"
    synadm("user", "prune-devices", "@bob:localhost", "--device-id", "LAPTOP")
    headers = {"Authorization": f"Bearer {admin['access_token']}"}
    devices = requests.get(f"{URL}/_synapse/admin/v2/users/@bob:localhost/devices",
                           headers=headers, timeout=10).json()
    left = sorted(d["device_id"] for d in devices["devices"])
    assert left == sorted([bob["device_id"], "PHONE"]), devices


def test_registration_tokens(synadm):
    created = synadm("regtok", "new", "--token", "synadm-made", "--uses-allowed", "2")
    assert created["token"] == "synadm-made" and created["uses_allowed"] == 2
    tokens = synadm("regtok", "list")["registration_tokens"]
    assert [t["token"] for t in tokens] == ["synadm-made"]
    details = synadm("regtok", "details", "synadm-made", "--timestamp")
    assert details["pending"] == 0 and details["completed"] == 0


def test_rooms_are_blocked_and_deleted(synadm, admin, bob):
    headers = {"Authorization": f"Bearer {bob['access_token']}"}

    def create(name):
        resp = requests.post(f"{CLIENT}/createRoom", headers=headers,
                             json={"name": name, "preset": "public_chat"}, timeout=10)
        assert resp.status_code == 200, resp.text
        return resp.json()["room_id"]

    room = create("To block")
    assert synadm("room", "block", room) == {"block": True}
    status = synadm("room", "block-status", room)
    assert status == {"block": True, "user_id": admin["user_id"]}, status
    assert synadm("room", "block", "--unblock", room) == {"block": False}

    # The v1 API, answered when done: Bob is moved out and the room is gone.
    deleted = synadm("room", "delete", room, "--v1", "--block", last=True)
    assert deleted["kicked_users"] == ["@bob:localhost"], deleted
    assert deleted["failed_to_kick_users"] == [] and deleted["new_room_id"] is None
    gone = requests.get(f"{URL}/_synapse/admin/v1/rooms/{room}",
                        headers={"Authorization": f"Bearer {admin['access_token']}"},
                        timeout=10)
    assert gone.status_code == 404, gone.text
    assert synadm("room", "block-status", room)["block"] is True

    # The v2 API, in the background, with its status by delete ID and by room.
    other = create("To delete later")
    started = synadm("room", "delete", other, last=True)
    delete_id = started["delete_id"]
    for _ in range(100):
        status = synadm("room", "delete-status", "--delete-id", delete_id)
        if status["status"] in ("complete", "failed"):
            break
        time.sleep(0.05)
    assert status["status"] == "complete", status
    assert status["shutdown_room"]["kicked_users"] == ["@bob:localhost"]
    by_room = synadm("room", "delete-status", "--room-id", other)
    assert by_room["results"][0]["delete_id"] == delete_id
