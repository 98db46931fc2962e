// End-to-end encryption through matrix-js-sdk's Rust crypto (initRustCrypto: the
// matrix-sdk-crypto WebAssembly build, what Element Web uses) against the server at
// $MYELIN_URL (issue 10). Alice and Bob, each with the SDK's sync loop, in an encrypted room:
// each reads the other's message decrypted; then Alice adds a device and deletes it through
// device_management.yaml, Bob's crypto sees the device come and go through device lists,
// and the messages after still decrypt. Exits non-zero at the first failed check.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";

import { RoomEvent } from "matrix-js-sdk";

import { PASSWORD, login, register, startSyncing, withPassword } from "./lib.mjs";

// The crypto module's WebAssembly logs every step at debug level straight to the console.
console.debug = () => {};

/** Polls `check` until it answers something true; fails after `ms`. */
async function waitFor(what, check, ms = 20000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = await check();
    if (found) {
      return found;
    }
    if (Date.now() > deadline) {
      assert.fail(`timed out waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Records the clear text of every message the client's timeline decrypts. */
function watchMessages(client) {
  const seen = [];
  client.on(RoomEvent.Timeline, async (event) => {
    if (event.getType() !== "m.room.encrypted" && event.getType() !== "m.room.message") {
      return;
    }
    await client.decryptEventIfNeeded(event);
    if (event.getType() === "m.room.message" && event.isEncrypted()) {
      seen.push({ sender: event.getSender(), body: event.getContent().body });
    }
  });
  // Events decrypted later (keys that arrive after the message) are announced again.
  client.on("Event.decrypted", (event) => {
    if (event.getType() === "m.room.message" && !event.isDecryptionFailure()) {
      seen.push({ sender: event.getSender(), body: event.getContent().body });
    }
  });
  return seen;
}

async function withCrypto(client) {
  await client.initRustCrypto({ useIndexedDB: false });
  return client;
}

const suffix = randomBytes(6).toString("hex");
const aliceName = `jsc_a_${suffix}`;
const bobName = `jsc_b_${suffix}`;
const clients = [];

try {
  const alice = await withCrypto(await register(aliceName));
  const bob = await withCrypto(await register(bobName));
  clients.push(alice, bob);
  const aliceSeen = watchMessages(alice);
  const bobSeen = watchMessages(bob);
  await startSyncing(alice);
  await startSyncing(bob);

  const { room_id: roomId } = await alice.createRoom({
    invite: [bob.getUserId()],
    initial_state: [
      { type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } },
    ],
  });
  await waitFor("Bob's invite", () => bob.getRoom(roomId)?.getMyMembership() === "invite");
  await bob.joinRoom(roomId);
  await waitFor("Alice to see Bob joined", () =>
    alice.getRoom(roomId)?.getMember(bob.getUserId())?.membership === "join");
  assert.ok(await alice.getCrypto().isEncryptionEnabledInRoom(roomId));

  const says = async (from, to, seen, body) => {
    await from.sendTextMessage(roomId, body);
    await waitFor(`${to.getUserId()} to decrypt ${JSON.stringify(body)}`, () =>
      seen.some((m) => m.sender === from.getUserId() && m.body === body));
  };
  await says(alice, bob, bobSeen, "a secret for Bob");
  await says(bob, alice, aliceSeen, "a secret for Alice");

  // A new device of Alice's: Bob's crypto learns of it through device lists.
  const second = (await login(aliceName, PASSWORD)).client;
  await withCrypto(second);
  clients.push(second);
  await startSyncing(second);
  const secondId = second.getDeviceId();
  const bobKnows = async (deviceId) => {
    const devices = await bob.getCrypto().getUserDeviceInfo([alice.getUserId()], true);
    return devices.get(alice.getUserId())?.has(deviceId);
  };
  await waitFor("Bob's crypto to see Alice's new device", () => bobKnows(secondId));

  // Deleted through device_management.yaml with the password: gone from Bob's crypto.
  second.stopClient();
  await withPassword(alice, PASSWORD, (auth) => alice.deleteDevice(secondId, auth));
  await waitFor("Bob's crypto to drop the deleted device", async () => !(await bobKnows(secondId)));

  // Both still read each other after all of it.
  await says(alice, bob, bobSeen, "still secret");
  await says(bob, alice, aliceSeen, "still secret, back");
  console.log("matrix-js-sdk Rust crypto scenario: ok");
} finally {
  for (const client of clients) {
    client.stopClient();
  }
}
// The crypto module keeps timers of its own that stopClient does not end.
process.exit(0);
