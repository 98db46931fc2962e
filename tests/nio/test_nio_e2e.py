"""End-to-end encryption through a real client library: matrix-nio with its e2e extra
(vodozemac), against Myelin (issue 10).

Two users, Alice with two devices and Bob with one, each running nio's own sync loop
(which uploads keys, queries and claims them, and shares room keys over to-device
messages). In an encrypted room Alice's message reaches Bob and her other device
decrypted, and Bob's reaches her. Then Alice renames a device, adds one and deletes one
through device_management.yaml: each time Bob's sync lists her in device_lists.changed,
his device store follows (the new name, the new device, the deleted one gone), and the
messages sent afterwards still decrypt on every device that should read them.
"""

import asyncio
import contextlib
import os
import tempfile
import time
import uuid

from nio import (
    AsyncClient,
    AsyncClientConfig,
    DeleteDevicesAuthResponse,
    DeleteDevicesResponse,
    JoinResponse,
    LoginResponse,
    MegolmEvent,
    RegisterResponse,
    RoomCreateResponse,
    RoomMessageText,
    RoomSendResponse,
    UpdateDeviceResponse,
)

PASSWORD = "nio e2e password"


def homeserver() -> str:
    url = os.environ.get("MYELIN_URL")
    assert url, "set MYELIN_URL to the base URL of a Myelin server with open registration"
    return url


async def wait_until(what: str, check, timeout: float = 15.0):
    """Polls `check` until it returns something true; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def sync_loop(client: AsyncClient):
    """nio's sync_forever for the block, entered once its first sync is done."""
    first = asyncio.ensure_future(client.synced.wait())
    loop = asyncio.ensure_future(client.sync_forever(timeout=5000, full_state=True))
    try:
        done, _ = await asyncio.wait({first, loop}, timeout=15, return_when=asyncio.FIRST_COMPLETED)
        if loop in done:
            loop.result()
        assert first in done, f"{client.user_id} {client.device_id}: no first sync within 15 s"
        yield
    finally:
        for task in (first, loop):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def raw_sync(client: AsyncClient, since: str | None) -> dict:
    """A /sync of the client's token beside its loop (its own since, so the loop's is kept)."""
    url = f"{client.homeserver}/_matrix/client/v3/sync?timeout=0"
    if since:
        url += f"&since={since}"
    async with client.client_session.get(
        url, headers={"Authorization": f"Bearer {client.access_token}"}
    ) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def scenario() -> None:
    url = homeserver()
    alice_name, bob_name = f"e2e_a_{uuid.uuid4().hex[:10]}", f"e2e_b_{uuid.uuid4().hex[:10]}"
    stores = tempfile.TemporaryDirectory()
    clients = []

    def client(localpart: str) -> AsyncClient:
        path = os.path.join(stores.name, uuid.uuid4().hex)
        os.mkdir(path)
        config = AsyncClientConfig(
            encryption_enabled=True, store_sync_tokens=True, max_timeouts=3,
            max_limit_exceeded=0, request_timeout=30,
        )
        c = AsyncClient(url, localpart, store_path=path, config=config)
        clients.append(c)
        return c

    # What each client's loop decrypted, and what it could not.
    texts: dict = {}
    undecrypted: dict = {}

    def watch(c: AsyncClient) -> None:
        texts[c], undecrypted[c] = [], []

        async def on_text(room, event, c=c):
            texts[c].append((room.room_id, event.sender, event.body, event.decrypted))

        async def on_megolm(room, event, c=c):
            undecrypted[c].append(event.session_id)

        c.add_event_callback(on_text, RoomMessageText)
        c.add_event_callback(on_megolm, MegolmEvent)

    try:
        alice, alice2, bob = client(alice_name), client(alice_name), client(bob_name)
        for c, name, device in ((alice, alice_name, "alice-one"), (bob, bob_name, "bob-one")):
            resp = await c.register(name, PASSWORD, device)
            assert isinstance(resp, RegisterResponse), resp
        assert isinstance(await alice2.login(PASSWORD, device_name="alice-two"), LoginResponse)
        for c in clients:
            watch(c)

        async with contextlib.AsyncExitStack() as loops:
            for c in (alice, alice2, bob):
                await loops.enter_async_context(sync_loop(c))

            created = await alice.room_create(
                name="secret room",
                invite=[bob.user_id],
                initial_state=[{
                    "type": "m.room.encryption", "state_key": "",
                    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
                }],
            )
            assert isinstance(created, RoomCreateResponse), created
            room_id = created.room_id
            await wait_until("Bob's invite", lambda: room_id in bob.invited_rooms)
            joined = await bob.join(room_id)
            assert isinstance(joined, JoinResponse), joined
            for c in (alice, alice2, bob):
                await wait_until(
                    f"{c.device_id} to see both members",
                    lambda c=c: room_id in c.rooms and set(c.rooms[room_id].users) == {alice.user_id, bob.user_id},
                )
                assert c.rooms[room_id].encrypted

            async def send(sender: AsyncClient, body: str) -> None:
                resp = await sender.room_send(
                    room_id, "m.room.message", {"msgtype": "m.text", "body": body},
                    ignore_unverified_devices=True,
                )
                assert isinstance(resp, RoomSendResponse), resp

            async def decrypts(receiver: AsyncClient, sender: AsyncClient, body: str) -> None:
                await wait_until(
                    f"{receiver.device_id} to decrypt {body!r}",
                    lambda: (room_id, sender.user_id, body, True) in texts[receiver],
                )

            # Both directions, and Alice's other device.
            await send(alice, "the first secret")
            for c in (bob, alice2):
                await decrypts(c, alice, "the first secret")
            await send(bob, "a secret reply")
            for c in (alice, alice2):
                await decrypts(c, bob, "a secret reply")
            # The server saw only ciphertext.
            raw = await raw_sync(bob, None)
            timeline = raw["rooms"]["join"][room_id]["timeline"]["events"]
            assert all(e["type"] != "m.room.message" for e in timeline), timeline
            assert any(e["type"] == "m.room.encrypted" for e in timeline), timeline

            def bob_sees(device_id: str):
                devices = bob.device_store.active_user_devices(alice.user_id)
                return next((d for d in devices if d.device_id == device_id), None)

            since = raw["next_batch"]

            async def bob_hears_of_alice(what: str) -> None:
                nonlocal since
                for _ in range(50):
                    sync = await raw_sync(bob, since)
                    since = sync["next_batch"]
                    if alice.user_id in sync.get("device_lists", {}).get("changed", []):
                        return
                    await asyncio.sleep(0.1)
                raise AssertionError(f"Bob's sync never listed Alice after {what}")

            # A rename: listed, and the new name in Bob's device store.
            renamed = await alice.update_device(alice2.device_id, {"display_name": "alice renamed"})
            assert isinstance(renamed, UpdateDeviceResponse), renamed
            await bob_hears_of_alice("the rename")
            await wait_until(
                "Bob's store to have the new name",
                lambda: (bob_sees(alice2.device_id) or None)
                and bob_sees(alice2.device_id).display_name == "alice renamed",
            )

            # A new device: listed, in Bob's store, and it reads what is sent from then on.
            alice3 = client(alice_name)
            watch(alice3)
            assert isinstance(await alice3.login(PASSWORD, device_name="alice-three"), LoginResponse)
            await loops.enter_async_context(sync_loop(alice3))
            await wait_until("the new device's keys", lambda: not alice3.should_upload_keys)
            await bob_hears_of_alice("the new device")
            await wait_until("Bob's store to have the new device", lambda: bob_sees(alice3.device_id))

            # A deletion through device_management.yaml, with the password: listed, gone from
            # Bob's store, and its client is logged out.
            challenge = await alice.delete_devices([alice2.device_id])
            assert isinstance(challenge, DeleteDevicesAuthResponse), challenge
            auth = {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": alice.user_id},
                "password": PASSWORD,
                "session": challenge.session,
            }
            deleted = await alice.delete_devices([alice2.device_id], auth)
            assert isinstance(deleted, DeleteDevicesResponse), deleted
            await bob_hears_of_alice("the deletion")
            await wait_until("Bob's store to drop the deleted device", lambda: not bob_sees(alice2.device_id))

            # Messages after all of it still decrypt where they should.
            await send(bob, "after the changes")
            for c in (alice, alice3):
                await decrypts(c, bob, "after the changes")
            await send(alice, "still secret")
            await decrypts(bob, alice, "still secret")
            await decrypts(alice3, alice, "still secret")
            # Nothing failed to decrypt but, on the new device, what was sent before it
            # existed (no room key was ever shared with it: the history in its first sync).
            for c in (alice, bob):
                assert not undecrypted[c], (c.device_id, undecrypted[c])
            assert len(undecrypted[alice3]) <= 2, undecrypted[alice3]
    finally:
        for c in clients:
            await c.close()
        stores.cleanup()


def test_encrypted_messages_survive_device_changes_with_matrix_nio():
    asyncio.run(scenario())
