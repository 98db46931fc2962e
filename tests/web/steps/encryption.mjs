// Step 5: a room with end-to-end encryption on (Cinny's default for a new room); the invitee
// accepts, and each reads the other's messages, decrypted in their own browser: the keys
// went through /keys/upload, /keys/query, /keys/claim and to-device messages.
import { uniqueName } from "../lib/matrix.mjs";
import { expect } from "./assert.mjs";
import { acceptInvitation, createRoom, deliver, invite, openInvitation } from "./rooms.mjs";
import { homeScreenShows } from "./ui.mjs";

export const encryption = {
  id: "5",
  title: "Encrypted room: both read each other's messages",
  async run({ api, open, log, snap }) {
    const password = "secrets kept";
    const aliceName = uniqueName("alice");
    const bobName = uniqueName("bob");
    const aliceApi = await api.register(aliceName, password, { inhibitLogin: true });
    const bobId = (await api.register(bobName, password, { inhibitLogin: true })).user_id;

    const alice = await open("alice");
    await alice.loginWithPassword(aliceName, password);
    await homeScreenShows(alice);
    const roomId = await createRoom(alice.page, "Vault", { encrypted: true });
    log(`created ${roomId}`);
    const aliceToken = (await api.login(aliceName, password, "harness check")).access_token;
    const state = await api.raw(
      "GET",
      `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.encryption/`,
      { token: aliceToken },
    );
    expect(state.status === 200, `the room has no m.room.encryption state (${state.status})`);
    expect(aliceApi.user_id, "alice registered");

    await invite(alice.page, bobId);
    const bob = await open("bob");
    await bob.loginWithPassword(bobName, password);
    await homeScreenShows(bob);
    await acceptInvitation(bob, await openInvitation(bob, "Vault"), roomId);
    await alice.page.getByText(`${bobName} joined the room`).waitFor({ timeout: 5_000 });

    const first = await deliver(alice, bob, "Only we can read this");
    log(`alice's encrypted message read by bob in ${first} ms`);
    const second = await deliver(bob, alice, "Indeed, only us");
    log(`bob's encrypted message read by alice in ${second} ms`);
    await snap(bob, "decrypted");

    // What the server holds is ciphertext.
    const messages = await api.call(
      "GET",
      `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=20`,
      { token: aliceToken },
    );
    const types = messages.chunk.filter((e) => e.sender !== undefined).map((e) => e.type);
    expect(types.includes("m.room.encrypted"), `no encrypted event in the room: ${types}`);
    expect(
      !messages.chunk.some((e) => JSON.stringify(e.content).includes("Only we can read this")),
      "the server stored the message in clear text",
    );
  },
};
