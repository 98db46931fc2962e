// The account around a user, driven by matrix-js-sdk (the library under Element Web and
// Cinny) against the server at $MYELIN_URL (tests/jssdk/run.sh starts one): the sync loop
// starts and reaches PREPARED, capabilities, profile, presence, the user directory, 3PIDs,
// refresh tokens, a password change through the SDK's UIA calls that signs the other device
// out, and deactivation. Exits non-zero at the first failed check.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";

import {
  NEW_PASSWORD,
  PASSWORD,
  expectError,
  login,
  register,
  startSyncing,
  withPassword,
} from "./lib.mjs";

const suffix = randomBytes(6).toString("hex");
const aliceName = `js_a_${suffix}`;
const bobName = `js_b_${suffix}`;
const clients = [];

try {
  const alice = await register(aliceName);
  const bob = await register(bobName);
  clients.push(alice, bob);

  // The sync loop starts: push rules, filters, capabilities and the first sync all answer.
  await startSyncing(alice);
  const capabilities = await alice.getCapabilities();
  assert.equal(capabilities["m.change_password"].enabled, true);
  assert.equal(capabilities["m.3pid_changes"].enabled, false);

  // Profile and a room shared with Bob.
  await alice.setDisplayName("Alice Liddell");
  assert.equal((await bob.getProfileInfo(alice.getUserId())).displayname, "Alice Liddell");
  const { room_id: roomId } = await alice.createRoom({ invite: [bob.getUserId()] });
  await bob.joinRoom(roomId);

  // Presence, set by one and read by the room-mate.
  await alice.setPresence({ presence: "unavailable", status_msg: "Down the rabbit hole" });
  const presence = await bob.getPresence(alice.getUserId());
  assert.equal(presence.presence, "unavailable");
  assert.equal(presence.status_msg, "Down the rabbit hole");

  // The user directory finds the room-mate by display name.
  const found = await bob.searchUserDirectory({ term: "liddell" });
  assert.deepEqual(found.results.map((r) => r.user_id), [alice.getUserId()]);
  assert.equal(found.results[0].display_name, "Alice Liddell");

  // No third-party identifiers here.
  assert.deepEqual((await alice.getThreePids()).threepids, []);

  // Refresh tokens.
  const refreshable = await login(aliceName, PASSWORD, { refresh_token: true });
  assert.ok(refreshable.done.refresh_token, "a refresh token was asked for");
  assert.equal(refreshable.done.expires_in_ms, 300000);
  const refreshed = await refreshable.client.refreshToken(refreshable.done.refresh_token);
  assert.notEqual(refreshed.access_token, refreshable.done.access_token);
  refreshable.client.setAccessToken(refreshed.access_token);
  assert.equal((await refreshable.client.whoami()).device_id, refreshable.done.device_id);
  clients.push(refreshable.client);

  // A password change through the SDK's UIA: the other devices are signed out.
  const other = (await login(aliceName, PASSWORD)).client;
  clients.push(other);
  await withPassword(alice, PASSWORD, (auth) => alice.setPassword(auth, NEW_PASSWORD, true));
  await expectError(other.whoami(), 401, "M_UNKNOWN_TOKEN");
  await expectError(refreshable.client.whoami(), 401, "M_UNKNOWN_TOKEN");
  assert.equal((await alice.whoami()).user_id, alice.getUserId());
  await expectError(login(aliceName, PASSWORD), 403, "M_FORBIDDEN");
  const relogged = (await login(aliceName, NEW_PASSWORD)).client;
  clients.push(relogged);

  // Deactivation: every device goes and the account never logs in again.
  alice.stopClient();
  await withPassword(relogged, NEW_PASSWORD, (auth) => relogged.deactivateAccount(auth, false));
  await expectError(alice.whoami(), 401, "M_UNKNOWN_TOKEN");
  await expectError(login(aliceName, NEW_PASSWORD), 403, "M_USER_DEACTIVATED");
  const members = await bob.members(roomId);
  const aliceMember = members.chunk.find((e) => e.state_key === alice.getUserId());
  assert.equal(aliceMember.content.membership, "leave");
  console.log("matrix-js-sdk account scenario: ok");
} finally {
  for (const client of clients) {
    client.stopClient();
  }
}
