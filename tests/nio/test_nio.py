"""Device management and account data driven by a real client library, matrix-nio.

The server under test is at $MYELIN_URL and must allow open registration
(tests/nio/run.sh starts one). Two scenarios:
- register, log in twice, list, rename, and delete a device through nio's
  user-interactive-auth handling, then check that the deleted device's client
  is logged out;
- one device writes account data and another device sees it arrive through
  nio's own sync loop (sync_forever with an account-data callback).
"""

import asyncio
import json
import os
import uuid

import aiohttp

from nio import (
    AsyncClient,
    UnknownAccountDataEvent,
    AsyncClientConfig,
    DeleteDevicesAuthResponse,
    DeleteDevicesResponse,
    DevicesResponse,
    LoginResponse,
    RegisterResponse,
    SyncError,
    UpdateDeviceResponse,
    WhoamiError,
    WhoamiResponse,
)

PASSWORD = "nio test password"

# Fail instead of retrying forever when the server is down or stuck; a 429 is a failure too.
CONFIG = AsyncClientConfig(max_timeouts=2, max_limit_exceeded=0, request_timeout=30)


def homeserver() -> str:
    url = os.environ.get("MYELIN_URL")
    assert url, "set MYELIN_URL to the base URL of a Myelin server with open registration"
    return url


async def devices_by_id(client: AsyncClient) -> dict:
    resp = await client.devices()
    assert isinstance(resp, DevicesResponse), resp
    return {d.id: d for d in resp.devices}


async def scenario() -> None:
    url = homeserver()
    localpart = f"nio_{uuid.uuid4().hex[:12]}"
    clients = []

    def client() -> AsyncClient:
        c = AsyncClient(url, localpart, config=CONFIG)
        clients.append(c)
        return c

    try:
        registering = client()
        registered = await registering.register(localpart, PASSWORD, "nio-register")
        assert isinstance(registered, RegisterResponse), registered
        user_id = registered.user_id
        assert user_id == f"@{localpart}:localhost", user_id

        main, other = client(), client()
        for c, name in ((main, "nio-main"), (other, "nio-other")):
            resp = await c.login(PASSWORD, device_name=name)
            assert isinstance(resp, LoginResponse), resp
        assert main.device_id != other.device_id

        devices = await devices_by_id(main)
        assert {main.device_id, other.device_id, registered.device_id} == set(devices), devices
        assert devices[other.device_id].display_name == "nio-other"
        assert devices[main.device_id].last_seen_ip == "127.0.0.1"

        renamed = await main.update_device(other.device_id, {"display_name": "renamed"})
        assert isinstance(renamed, UpdateDeviceResponse), renamed
        assert (await devices_by_id(main))[other.device_id].display_name == "renamed"

        # First round: no auth, so the server answers with the UIA challenge.
        challenge = await main.delete_devices([other.device_id])
        assert isinstance(challenge, DeleteDevicesAuthResponse), challenge
        assert challenge.transport_response.status == 401
        assert {"stages": ["m.login.password"]} in challenge.flows, challenge.flows
        assert challenge.params == {}
        assert challenge.session

        auth = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user_id},
            "password": "wrong password",
            "session": challenge.session,
        }
        # A wrong password is another 401 challenge, and the device stays.
        refused = await main.delete_devices([other.device_id], auth)
        assert isinstance(refused, DeleteDevicesAuthResponse), refused
        assert refused.transport_response.status == 401
        assert other.device_id in await devices_by_id(main)
        me = await other.whoami()
        assert isinstance(me, WhoamiResponse), me
        assert me.device_id == other.device_id

        auth["password"] = PASSWORD
        deleted = await main.delete_devices([other.device_id], auth)
        assert isinstance(deleted, DeleteDevicesResponse), deleted
        assert other.device_id not in await devices_by_id(main)

        # The deleted device's client is logged out; the others are not.
        gone = await other.whoami()
        assert isinstance(gone, WhoamiError), gone
        assert gone.status_code == "M_UNKNOWN_TOKEN", gone
        assert gone.soft_logout is False, gone
        synced = await other.sync(timeout=0)
        assert isinstance(synced, SyncError), synced
        assert synced.status_code == "M_UNKNOWN_TOKEN", synced
        assert isinstance(await main.whoami(), WhoamiResponse)
    finally:
        for c in clients:
            await c.close()


def test_devices_with_matrix_nio():
    asyncio.run(scenario())


async def put_account_data(client: AsyncClient, event_type: str, content: dict) -> None:
    """nio reads account data but has no call to write it; a client would PUT it like this."""
    url = f"{client.homeserver}/_matrix/client/v3/user/{client.user_id}/account_data/{event_type}"
    headers = {"Authorization": f"Bearer {client.access_token}"}
    async with aiohttp.ClientSession() as session:
        async with session.put(url, data=json.dumps(content), headers=headers) as resp:
            assert resp.status == 200, await resp.text()
        async with session.get(url, headers=headers) as resp:
            assert resp.status == 200, await resp.text()
            assert await resp.json() == content


async def account_data_scenario() -> None:
    url = homeserver()
    localpart = f"nio_{uuid.uuid4().hex[:12]}"
    writer, reader = AsyncClient(url, localpart, config=CONFIG), AsyncClient(url, localpart, config=CONFIG)
    try:
        registered = await writer.register(localpart, PASSWORD, "nio-writer")
        assert isinstance(registered, RegisterResponse), registered
        assert isinstance(await reader.login(PASSWORD, device_name="nio-reader"), LoginResponse)

        await put_account_data(writer, "org.example.before", {"early": True})
        first = await reader.sync(timeout=0, full_state=True)
        assert not isinstance(first, SyncError), first
        types = {e.type: e.content for e in first.account_data_events if isinstance(e, UnknownAccountDataEvent)}
        assert types.get("org.example.before") == {"early": True}, first.account_data_events

        seen = asyncio.get_running_loop().create_future()

        async def on_account_data(event):
            if isinstance(event, UnknownAccountDataEvent) and event.type == "org.example.settings":
                if not seen.done():
                    seen.set_result(event.content)

        reader.add_global_account_data_callback(on_account_data, UnknownAccountDataEvent)
        loop = asyncio.ensure_future(reader.sync_forever(timeout=30000))
        await asyncio.sleep(0.3)  # the reader is now waiting in a long-poll
        content = {"theme": "dark", "nested": {"list": [1, 2, 3]}}
        await put_account_data(writer, "org.example.settings", content)
        try:
            arrived = await asyncio.wait_for(seen, timeout=10)
        finally:
            loop.cancel()
            try:
                await loop
            except asyncio.CancelledError:
                pass
        assert arrived == content, arrived
    finally:
        await writer.close()
        await reader.close()


def test_account_data_reaches_another_devices_sync_loop():
    asyncio.run(account_data_scenario())
