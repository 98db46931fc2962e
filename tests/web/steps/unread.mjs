// Step 4: messages arrive while a person is elsewhere; the room shows an unread badge with
// their number, from the server's notification counts, on both of the person's sessions.
// Opening the room on one clears the badge there and, through the read receipt and the
// counts the server then sends, on the other; so does "Mark as Read" from the room's menu.
//
// Two parts of the step 4 are not Cinny's to do. Cinny 4.2.2 has no favourites
// (nothing in it sets or shows m.tag), and it moves the read position with m.read receipts
// only, never m.fully_read (it has no read-marker line). Both are tested over HTTP
// (tests/receipts_typing.rs).
import { uniqueName } from "../lib/matrix.mjs";
import { expect, waitFor } from "./assert.mjs";
import { homeScreenShows } from "./ui.mjs";

const MESSAGES = 3;

export const unread = {
  id: "4",
  title: "Unread badge from the server's counts clears on reading, on both sessions",
  async run({ api, open, log, snap }) {
    const password = "read me later";
    const aliceName = uniqueName("alice");
    const bobName = uniqueName("bob");
    const alice = await api.register(aliceName, password);
    const bob = await api.register(bobName, password);
    const roomName = "Reading room";
    const { room_id: roomId } = await api.call("POST", "/_matrix/client/v3/createRoom", {
      token: alice.access_token,
      body: { name: roomName, preset: "private_chat", invite: [bob.user_id] },
    });
    await api.call("POST", `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, {
      token: bob.access_token,
      body: {},
    });
    log(`${bobName} is in ${roomId}`);

    const laptop = await open("bob-laptop");
    await laptop.loginWithPassword(bobName, password);
    await homeScreenShows(laptop);
    const phone = await open("bob-phone");
    await phone.loginWithPassword(bobName, password);
    await homeScreenShows(phone);

    let last;
    for (let i = 1; i <= MESSAGES; i++) {
      const sent = await api.call(
        "PUT",
        `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/u${i}`,
        { token: alice.access_token, body: { msgtype: "m.text", body: `unread ${i}` } },
      );
      last = sent.event_id;
    }
    log(`alice sent ${MESSAGES} messages`);

    for (const session of [laptop, phone]) {
      await badgeBecomes(session, roomName, String(MESSAGES));
    }
    await snap(phone, "badge");
    log(`both sessions show ${MESSAGES} unread`);

    await laptop.page.getByText(roomName, { exact: true }).first().click();
    await laptop.page.getByText(`unread ${MESSAGES}`, { exact: true }).waitFor({ timeout: 10_000 });
    for (const session of [laptop, phone]) {
      await badgeBecomes(session, roomName, null);
    }
    await snap(phone, "badge-cleared");
    log("the badge cleared on both sessions");

    // The read receipt is stored, at the last message.
    const sync = await api.sync(bob.access_token);
    const joined = sync.rooms?.join?.[roomId];
    const receipt = (joined?.ephemeral?.events ?? []).find((e) => e.type === "m.receipt");
    expect(
      receipt?.content?.[last]?.["m.read"]?.[bob.user_id],
      `no m.read receipt of bob at the last message in ${JSON.stringify(receipt)}`,
    );
    const counts = joined?.unread_notifications;
    expect(
      counts && counts.notification_count === 0 && counts.highlight_count === 0,
      `the server still counts ${JSON.stringify(counts)} for the room`,
    );

    // "Mark as Read" from the room's menu on the other session: Cinny's way to the read
    // marker. The laptop leaves the room first, or it would read the message itself.
    await laptop.page.goBack();
    await laptop.page.getByText("Welcome to Cinny").waitFor({ timeout: 10_000 });
    const another = await api.call(
      "PUT",
      `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/u-late`,
      { token: alice.access_token, body: { msgtype: "m.text", body: "one more" } },
    );
    for (const session of [laptop, phone]) {
      await badgeBecomes(session, roomName, "1");
    }
    await phone.page.getByText(roomName, { exact: true }).first().click({ button: "right" });
    await phone.page.getByText("Mark as Read", { exact: true }).click({ timeout: 5_000 });
    for (const session of [phone, laptop]) {
      await badgeBecomes(session, roomName, null);
    }
    await snap(phone, "marked-as-read");
    const after = await api.sync(bob.access_token);
    const lateReceipt = (after.rooms?.join?.[roomId]?.ephemeral?.events ?? []).find(
      (e) => e.type === "m.receipt",
    );
    expect(
      lateReceipt?.content?.[another.event_id]?.["m.read"]?.[bob.user_id],
      `"Mark as Read" left no m.read receipt at the last message: ${JSON.stringify(lateReceipt)}`,
    );
  },
};

/** Waits until the room's badge reads `wanted` (null: no badge). */
async function badgeBecomes(session, roomName, wanted) {
  // A hovered entry shows its menu button where the badge goes.
  await session.page.mouse.move(700, 700);
  let seen;
  await waitFor(
    async () => (seen = await badge(session.page, roomName)) === wanted,
    10_000,
    () => `${session.name} shows the badge ${JSON.stringify(seen)} for "${roomName}", not ${JSON.stringify(wanted)}`,
  );
}

/**
 * The unread badge's text on the room's entry in the room list, or null without one: the
 * number shown beside the room's name, as a person reads it (the entry is the closest
 * element around the name that holds more than the name).
 */
async function badge(page, roomName) {
  return page.evaluate((name) => {
    const nav = [...document.querySelectorAll("body *")].find(
      (el) => el.children.length === 0 && el.textContent.trim() === name && el.closest("a, button, [role=button], li"),
    );
    if (!nav) return null;
    let entry = nav;
    for (let i = 0; i < 6 && entry.parentElement; i++) {
      entry = entry.parentElement;
      if (entry.innerText.trim() !== name) break;
    }
    const number = entry.innerText
      .split("\n")
      .map((l) => l.trim())
      .find((l) => /^\d+$/.test(l));
    return number ?? null;
  }, roomName);
}
