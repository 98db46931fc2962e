// Step 3: one person creates a room and invites another, who, in their own browser, accepts;
// then each sees the other's message in the timeline within a second.
import { uniqueName } from "../lib/matrix.mjs";
import { expect, waitFor } from "./assert.mjs";
import { clickSidebarItem, homeScreenShows } from "./ui.mjs";

// "Within a second" in the issue; what a person calls instant.
const DELIVERY_MS = 1_000;

export const rooms = {
  id: "3",
  title: "Create a room, invite, accept, exchange messages",
  async run({ api, open, log, snap }) {
    const password = "rooms need people";
    const aliceName = uniqueName("alice");
    const bobName = uniqueName("bob");
    const aliceApi = await api.register(aliceName, password);
    const bobId = (await api.register(bobName, password, { inhibitLogin: true })).user_id;

    const alice = await open("alice");
    await alice.loginWithPassword(aliceName, password);
    await homeScreenShows(alice);
    const roomId = await createRoom(alice.page, "Tea room");
    log(`created ${roomId}`);
    // Encryption is step 5's; here the messages must be readable without it.
    const encryption = await api.raw(
      "GET",
      `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.encryption/`,
      { token: aliceApi.access_token },
    );
    expect(encryption.status === 404, "the room was created encrypted although the switch was off");

    await invite(alice.page, bobId);
    log(`invited ${bobId}`);

    const bob = await open("bob");
    await bob.loginWithPassword(bobName, password);
    await homeScreenShows(bob);
    const card = await openInvitation(bob, "Tea room");
    await snap(bob, "invitation");
    // Checked at the end, so the rest of the step still runs.
    const oddities = [];
    const cardText = await card.innerText();
    if (cardText.includes("1970")) {
      oddities.push(
        `the invitation is dated "${cardText.match(/[^\n]*1970[^\n]*/)[0]}" (Cinny dates it by ` +
          "the invite event's origin_server_ts in the sync's invite_state)",
      );
    }
    await acceptInvitation(bob, card, roomId);
    await alice.page.getByText(`${bobName} joined the room`).waitFor({ timeout: 5_000 });
    log("bob accepted, and alice sees him join");

    const first = await deliver(alice, bob, "Hello Bob, tea?");
    log(`alice's message reached bob in ${first} ms`);
    const second = await deliver(bob, alice, "Yes please, Alice");
    log(`bob's message reached alice in ${second} ms`);
    expect(first <= DELIVERY_MS, `alice's message took ${first} ms to show to bob`);
    expect(second <= DELIVERY_MS, `bob's message took ${second} ms to show to alice`);
    expect(oddities.length === 0, oddities.join("; "));
  },
};

/**
 * Creates a private room from the home screen, unencrypted unless `encrypted`; resolves to
 * its id.
 */
export async function createRoom(page, name, { encrypted = false } = {}) {
  await page.getByRole("button", { name: "Create Room" }).first().click();
  const dialog = page.getByRole("dialog");
  // The switch sits in the tile whose title is the label, and starts on.
  if (!encrypted) {
    await dialog
      .getByText("Enable end-to-end encryption")
      .locator("xpath=ancestor::*[.//button][1]")
      .locator("button")
      .click();
  }
  await dialog.getByText("Room name").locator("..").locator("input").fill(name);
  await dialog.getByRole("button", { name: "Create" }).click();
  await page.getByRole("button", { name: "Invite Member" }).waitFor({ timeout: 10_000 });
  const match = decodeURIComponent(page.url()).match(/\/(![^/?#]+)/);
  expect(match, `after Create the client is at ${page.url()}, not in a room`);
  return match[1];
}

export async function invite(page, userId) {
  await page.getByRole("button", { name: "Invite Member" }).click();
  const dialog = page.getByRole("dialog").filter({ hasText: "Invite to" });
  await dialog.locator("input").fill(userId);
  await dialog.getByRole("button", { name: "Search" }).click();
  const button = dialog.getByRole("button", { name: "Invite", exact: true });
  await button.waitFor({ timeout: 5_000 }).catch(async () => {
    // Cinny looks a full user id up with GET /profile/{userId} and says "not found" when that
    // fails, whatever the reason.
    const said = (await dialog.innerText()).split("\n").filter((l) => l.trim()).pop();
    throw new Error(`searching for ${userId} to invite shows "${said}", with no Invite button`);
  });
  await button.click();
  await dialog.getByText("Invited", { exact: true }).waitFor({ timeout: 5_000 });
  // The dialog's first button is its close cross.
  await dialog.getByRole("button").first().click();
}

/** Opens the Inbox's invitations; resolves to the card of the invitation to `roomName`. */
export async function openInvitation(session, roomName) {
  const { page } = session;
  await clickSidebarItem(page, "Inbox");
  await page.getByRole("link", { name: /Invitations/ }).click();
  const card = page
    .locator("div")
    .filter({ hasText: roomName })
    .filter({ has: page.getByRole("button", { name: "Accept" }) })
    .last();
  await card.waitFor({ timeout: 5_000 });
  return card;
}

/** Accepts the invitation on `card`; resolves once the client shows the room. */
export async function acceptInvitation(session, card, roomId) {
  await card.getByRole("button", { name: "Accept" }).click();
  await waitFor(
    () => decodeURIComponent(session.page.url()).includes(roomId),
    10_000,
    () => `after Accept the client is at ${session.page.url()}`,
  );
}

/** Sends `text` from one session's composer; resolves to the ms until the other shows it. */
export async function deliver(from, to, text) {
  const composer = from.page.getByRole("textbox").filter({ hasText: "Send a message" });
  await composer.click();
  await from.page.keyboard.type(text);
  const sent = Date.now();
  await from.page.keyboard.press("Enter");
  await to.page
    .getByText(text, { exact: true })
    .waitFor({ timeout: 10_000 })
    .catch(() => {
      throw new Error(`"${text}" from ${from.name} did not show to ${to.name} within 10 s`);
    });
  return Date.now() - sent;
}
