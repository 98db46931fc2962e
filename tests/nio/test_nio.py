"""Device management and account data driven by a real client library, matrix-nio.

The server under test is at $MYELIN_URL and must allow open registration
(tests/nio/run.sh starts one). Three scenarios:
- register, log in twice, list, rename, and delete a device through nio's
  user-interactive-auth handling, then check that the deleted device's client
  is logged out;
- one device writes account data and another device sees it arrive through
  nio's own sync loop (sync_forever with an account-data callback);
- two users in a room, each with nio's sync loop running: one creates the room
  inviting the other, who sees the invite and joins; they exchange messages;
  per-room account data reaches the writer's other device and never the other
  user;
- media and presence: an image uploaded by one user is downloaded byte for byte
  and thumbnailed by the other through nio's media calls, and a presence set
  through nio reaches the room-mate's sync and presence lookup.
"""

import asyncio
import contextlib
import json
import os
import struct
import uuid
import zlib
from urllib.parse import quote

import aiohttp

from nio import (
    AccountDataEvent,
    AsyncClient,
    UnknownAccountDataEvent,
    AsyncClientConfig,
    DeleteDevicesAuthResponse,
    DeleteDevicesResponse,
    DevicesResponse,
    InviteMemberEvent,
    JoinResponse,
    LoginResponse,
    MemoryDownloadResponse,
    PresenceGetResponse,
    PresenceSetResponse,
    RegisterResponse,
    ResizingMethod,
    RoomCreateResponse,
    RoomMessageText,
    RoomSendResponse,
    SyncError,
    SyncResponse,
    TagEvent,
    ThumbnailResponse,
    UpdateDeviceResponse,
    UploadResponse,
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


def room_account_data_url(client: AsyncClient, user_id: str, room_id: str, event_type: str) -> str:
    return (
        f"{client.homeserver}/_matrix/client/v3/user/{quote(user_id, safe='')}"
        f"/rooms/{quote(room_id, safe='')}/account_data/{quote(event_type, safe='')}"
    )


async def put_room_account_data(client: AsyncClient, room_id: str, event_type: str, content: dict) -> None:
    """nio has no call to write room account data (not even m.tag); a client would PUT it like this."""
    url = room_account_data_url(client, client.user_id, room_id, event_type)
    headers = {"Authorization": f"Bearer {client.access_token}"}
    async with aiohttp.ClientSession() as session:
        async with session.put(url, data=json.dumps(content), headers=headers) as resp:
            assert resp.status == 200, await resp.text()
        async with session.get(url, headers=headers) as resp:
            assert resp.status == 200, await resp.text()
            assert await resp.json() == content


async def raw_request(client: AsyncClient, method: str, url: str, content=None) -> tuple:
    headers = {"Authorization": f"Bearer {client.access_token}"}
    data = None if content is None else json.dumps(content)
    async with aiohttp.ClientSession() as session:
        async with session.request(method, url, data=data, headers=headers) as resp:
            return resp.status, await resp.json()


def account_data_item(room, event) -> tuple:
    """(room ID, type, content) of a room account-data event as nio parsed it."""
    if isinstance(event, TagEvent):
        return (room.room_id, "m.tag", {"tags": event.tags})
    if isinstance(event, UnknownAccountDataEvent):
        return (room.room_id, event.type, event.content)
    return (room.room_id, type(event).__name__, repr(event))


class Seen:
    """What one client's callbacks received, in order, and a way to wait for an item."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.items: list = []
        self._changed = asyncio.Condition()

    async def add(self, item) -> None:
        async with self._changed:
            self.items.append(item)
            self._changed.notify_all()

    async def wait_for(self, what: str, predicate, timeout: float = 10):
        def found():
            return next((i for i in self.items if predicate(i)), None)

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: found() is not None), timeout)
            except asyncio.TimeoutError:
                raise AssertionError(f"{self.name} did not see {what} within {timeout} s; it saw {self.items}")
            return found()


@contextlib.asynccontextmanager
async def sync_loop(client: AsyncClient):
    """Runs nio's sync_forever for the block; enters once the first (initial) sync is done."""
    first = asyncio.ensure_future(client.synced.wait())
    loop = asyncio.ensure_future(client.sync_forever(timeout=30000))
    try:
        done, _ = await asyncio.wait({first, loop}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if loop in done:
            loop.result()  # raises what ended the loop
        assert first in done, f"{client.user_id} {client.device_id}: no initial sync within 10 s"
        yield
    finally:
        for task in (first, loop):
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass


async def rooms_scenario() -> None:
    url = homeserver()
    alice_name, bob_name = f"nio_a_{uuid.uuid4().hex[:12]}", f"nio_b_{uuid.uuid4().hex[:12]}"
    clients = []

    def client(localpart: str) -> AsyncClient:
        c = AsyncClient(url, localpart, config=CONFIG)
        clients.append(c)
        return c

    try:
        alice, alice_other, bob = client(alice_name), client(alice_name), client(bob_name)
        for c, name, device in ((alice, alice_name, "nio-alice"), (bob, bob_name, "nio-bob")):
            resp = await c.register(name, PASSWORD, device)
            assert isinstance(resp, RegisterResponse), resp
        assert isinstance(await alice_other.login(PASSWORD, device_name="nio-alice-other"), LoginResponse)
        assert alice.user_id == alice_other.user_id == f"@{alice_name}:localhost"
        assert alice.device_id != alice_other.device_id

        # Each client's callbacks record what its sync loop delivers.
        messages = {c: Seen(f"{c.user_id} {c.device_id} (messages)") for c in clients}
        room_data = {c: Seen(f"{c.user_id} {c.device_id} (room account data)") for c in clients}
        global_data = {c: [] for c in clients}
        invites = Seen(f"{bob.user_id} (invites)")

        for c in clients:

            async def on_message(room, event, c=c):
                await messages[c].add((room.room_id, event))

            async def on_room_data(room, event, c=c):
                await room_data[c].add(account_data_item(room, event))

            def on_global_data(event, c=c):
                global_data[c].append(event)

            c.add_event_callback(on_message, RoomMessageText)
            # Every kind nio parses room account data into, so nothing sent to Bob goes unnoticed.
            c.add_room_account_data_callback(on_room_data, AccountDataEvent)
            c.add_global_account_data_callback(on_global_data, AccountDataEvent)

        async def on_invite(room, event):
            await invites.add((room.room_id, event))

        bob.add_event_callback(on_invite, InviteMemberEvent)

        async with contextlib.AsyncExitStack() as loops:
            for c in clients:
                await loops.enter_async_context(sync_loop(c))

            created = await alice.room_create(name="nio room", topic="rooms through nio", invite=[bob.user_id])
            assert isinstance(created, RoomCreateResponse), created
            room_id = created.room_id

            # Bob's loop delivers the invite (stripped state, nio's invite callback) and he joins.
            _, invite = await invites.wait_for(
                "his invite",
                lambda i: i[0] == room_id and i[1].state_key == bob.user_id and i[1].membership == "invite",
            )
            assert invite.sender == alice.user_id, invite
            invited = bob.invited_rooms[room_id]
            assert invited.inviter == alice.user_id
            assert invited.name == "nio room", invited.name
            joined = await bob.join(room_id)
            assert isinstance(joined, JoinResponse), joined
            assert joined.room_id == room_id

            async def send(sender: AsyncClient, body: str) -> tuple[str, dict]:
                content = {"msgtype": "m.text", "body": body}
                resp = await sender.room_send(room_id, "m.room.message", content)
                assert isinstance(resp, RoomSendResponse), resp
                return resp.event_id, content

            async def arrives(receiver: AsyncClient, sender: AsyncClient, event_id: str, content: dict) -> None:
                _, event = await messages[receiver].wait_for(
                    f"message {event_id}", lambda m: m[0] == room_id and m[1].event_id == event_id
                )
                assert event.sender == sender.user_id, event
                assert event.body == content["body"], event
                assert event.source["content"] == content, event.source
                assert event.source["type"] == "m.room.message", event.source

            from_bob = await send(bob, "hello from bob")
            for receiver in (alice, alice_other, bob):
                await arrives(receiver, bob, *from_bob)
            from_alice = await send(alice, "hello from alice")
            for receiver in (bob, alice_other, alice):
                await arrives(receiver, alice, *from_alice)
            # The timelines carried the membership too: both are joined members for everyone.
            for c in clients:
                room = c.rooms[room_id]
                assert set(room.users) == {alice.user_id, bob.user_id}, (c.device_id, room.users)
                assert room.name == "nio room" and room.topic == "rooms through nio", (room.name, room.topic)
            assert room_id not in bob.invited_rooms

            # Alice tags the room and stores a setting in it from her first device.
            tag = {"tags": {"u.work": {"order": 0.25}}}
            alice_setting = {"colour": "teal", "nested": {"list": [1, 2, 3], "none": None}}
            await put_room_account_data(alice, room_id, "m.tag", tag)
            await put_room_account_data(alice, room_id, "org.example.room", alice_setting)
            expected_alice = [(room_id, "m.tag", tag), (room_id, "org.example.room", alice_setting)]
            for c in (alice_other, alice):
                for item in expected_alice:
                    await room_data[c].wait_for(f"{item[1]}", lambda i, item=item: i == item)
                assert c.rooms[room_id].tags == tag["tags"], c.rooms[room_id].tags

            # Bob may neither read nor write Alice's room account data.
            alice_url = room_account_data_url(bob, alice.user_id, room_id, "org.example.room")
            status, body = await raw_request(bob, "GET", alice_url)
            assert (status, body.get("errcode")) == (403, "M_FORBIDDEN"), (status, body)
            status, body = await raw_request(bob, "PUT", alice_url, {"colour": "hijacked"})
            assert (status, body.get("errcode")) == (403, "M_FORBIDDEN"), (status, body)

            # Bob stores the same type in the same room: his loop sees his own value, which
            # also shows his loop has gone past Alice's writes without being given them.
            bob_setting = {"colour": "plum"}
            await put_room_account_data(bob, room_id, "org.example.room", bob_setting)
            await room_data[bob].wait_for("his own setting", lambda i: i == (room_id, "org.example.room", bob_setting))
            assert room_data[bob].items == [(room_id, "org.example.room", bob_setting)], room_data[bob].items
            assert bob.rooms[room_id].tags == {}, bob.rooms[room_id].tags

            # A message after Bob's write shows Alice's loops have gone past it: they have
            # exactly Alice's room account data, each item once.
            last = await send(bob, "last from bob")
            for c in (alice, alice_other):
                await arrives(c, bob, *last)
                assert sorted(room_data[c].items, key=repr) == sorted(expected_alice, key=repr), room_data[c].items

        # Nothing of this is global account data.
        for c in clients:
            types = {e.type for e in global_data[c] if isinstance(e, UnknownAccountDataEvent)}
            assert not types & {"m.tag", "org.example.room"}, (c.device_id, global_data[c])

        # An initial sync gives each user the room's account data as it now is: their own only.
        for c, expected in (
            (alice_other, {"m.tag": tag, "org.example.room": alice_setting}),
            (bob, {"org.example.room": bob_setting}),
        ):
            status, body = await raw_request(c, "GET", f"{c.homeserver}/_matrix/client/v3/sync?timeout=0")
            assert status == 200, body
            events = body["rooms"]["join"][room_id]["account_data"]["events"]
            assert sorted(events, key=lambda e: e["type"]) == [
                {"type": t, "content": expected[t]} for t in sorted(expected)
            ], (c.user_id, events)
    finally:
        for c in clients:
            await c.close()


def test_room_messages_and_room_account_data_with_matrix_nio():
    asyncio.run(rooms_scenario())


def png(width: int, height: int) -> bytes:
    """A gradient PNG, written by hand so the test needs no imaging library."""
    rows = b"".join(
        b"\x00" + bytes(v for x in range(width) for v in (x % 256, y % 256, 128))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


async def media_and_presence_scenario() -> None:
    url = homeserver()
    alice_name, bob_name = f"nio_ma_{uuid.uuid4().hex[:12]}", f"nio_mb_{uuid.uuid4().hex[:12]}"
    alice, bob = AsyncClient(url, alice_name, config=CONFIG), AsyncClient(url, bob_name, config=CONFIG)
    try:
        for c, name in ((alice, alice_name), (bob, bob_name)):
            assert isinstance(await c.register(name, PASSWORD, f"{name}-device"), RegisterResponse)

        image = png(400, 300)
        uploaded, _keys = await alice.upload(
            lambda *_: image, content_type="image/png", filename="gradient.png", filesize=len(image)
        )
        assert isinstance(uploaded, UploadResponse), uploaded
        assert uploaded.content_uri.startswith("mxc://localhost/"), uploaded.content_uri

        downloaded = await bob.download(uploaded.content_uri)
        assert isinstance(downloaded, MemoryDownloadResponse), downloaded
        assert downloaded.body == image
        assert downloaded.content_type == "image/png"
        assert downloaded.filename == "gradient.png"

        server_name, media_id = uploaded.content_uri[len("mxc://"):].split("/")
        for method, size in ((ResizingMethod.crop, (32, 32)), (ResizingMethod.scale, (320, 240))):
            thumb = await bob.thumbnail(server_name, media_id, size[0], size[1], method)
            assert isinstance(thumb, ThumbnailResponse), thumb
            assert thumb.content_type == "image/png"
            assert thumb.body.startswith(b"\x89PNG"), thumb.body[:8]
            width, height = struct.unpack(">II", thumb.body[16:24])
            assert (width, height) == size, (method, width, height)

        # Presence reaches a room-mate, in a sync and by lookup.
        created = await alice.room_create(invite=[bob.user_id])
        assert isinstance(created, RoomCreateResponse), created
        assert isinstance(await bob.join(created.room_id), JoinResponse)
        first = await bob.sync(timeout=0, set_presence="offline")
        assert isinstance(first, SyncResponse), first
        assert isinstance(await alice.set_presence("unavailable", "At lunch"), PresenceSetResponse)
        later = await bob.sync(timeout=10000, since=first.next_batch, set_presence="offline")
        assert isinstance(later, SyncResponse), later
        seen = [e for e in later.presence_events if e.user_id == alice.user_id]
        assert seen and seen[-1].presence == "unavailable", later.presence_events
        assert seen[-1].status_msg == "At lunch"
        looked_up = await bob.get_presence(alice.user_id)
        assert isinstance(looked_up, PresenceGetResponse), looked_up
        assert looked_up.presence == "unavailable" and looked_up.status_msg == "At lunch"
    finally:
        for c in (alice, bob):
            await c.close()


def test_media_and_presence_with_matrix_nio():
    asyncio.run(media_and_presence_scenario())
