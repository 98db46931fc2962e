"""Load for metrics_cost.sh: `setup` registers a user with one account-data entry and keeps
its token in ./token; `run N` GETs that entry N times on one connection."""

import http.client
import json
import sys

CONNECTION = http.client.HTTPConnection("127.0.0.1", 8008)
ENTRY = "/_matrix/client/v3/user/@cg:localhost/account_data/x.y"


def request(method, path, body=None, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    CONNECTION.request(method, path, body=None if body is None else json.dumps(body),
                       headers=headers)
    response = CONNECTION.getresponse()
    data = response.read()
    return response.status, json.loads(data) if data else None


if sys.argv[1] == "setup":
    user = {"username": "cg", "password": "a password for cg"}
    _, first = request("POST", "/_matrix/client/v3/register", user)
    user["auth"] = {"type": "m.login.dummy", "session": first["session"]}
    _, done = request("POST", "/_matrix/client/v3/register", user)
    request("PUT", ENTRY, {"a": 1}, done["access_token"])
    with open("token", "w", encoding="utf-8") as out:
        out.write(done["access_token"])
else:
    with open("token", encoding="utf-8") as saved:
        token = saved.read()
    for _ in range(int(sys.argv[2])):
        status, _ = request("GET", ENTRY, None, token)
        assert status == 200, status
