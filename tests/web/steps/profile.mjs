// Step 6: a person changes their display name and avatar in Settings; the other person in a
// shared room sees the new name in the member list and the new avatar.
import { uniqueName } from "../lib/matrix.mjs";
import { expect, waitFor } from "./assert.mjs";
import { openSettings, homeScreenShows } from "./ui.mjs";

// A 64×64 PNG of one colour, made for the step.
const AVATAR_PNG =
  "iVBORw0KGgoAAAANSUhEUgAAAEAAAABACAIAAAAlC+aJAAAAeklEQVR4nO3PUQkAIBTAwJfEYCY2liH8OITBAtzmrP11wwUNaEEDWtCAFjSgBQ1oQQNa0IAWNKAFDWhBA1rQgBY0oAUNaEEDWtCAFjSgBQ1oQQNa0IAWNKAFDWhBA1rQgBY0oAUNaEEDWtCAFjSgBQ1oQQNa0IAWPHYBV80BLRkIBEcAAAAASUVORK5CYII=";

export const profile = {
  id: "6",
  title: "Change display name and avatar; the other person sees them",
  async run({ api, open, log, snap }) {
    const password = "names matter";
    const aliceName = uniqueName("alice");
    const bobName = uniqueName("bob");
    const alice = await api.register(aliceName, password);
    const bob = await api.register(bobName, password);
    const { room_id: roomId } = await api.call("POST", "/_matrix/client/v3/createRoom", {
      token: bob.access_token,
      body: { name: "Name tags", preset: "public_chat" },
    });
    await api.call("POST", `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, {
      token: alice.access_token,
      body: {},
    });

    const a = await open("alice");
    await a.loginWithPassword(aliceName, password);
    await homeScreenShows(a);
    await openSettings(a.page, "Appearance");
    const dialog = a.page.getByRole("dialog");
    await dialog.getByText(aliceName, { exact: true }).first().locator("xpath=following::button[1]").click();
    const newName = "Alice Liddell";
    await dialog.getByRole("textbox").first().fill(newName);
    await dialog.getByRole("button", { name: "Save" }).click();
    await waitFor(
      async () => (await profileOf(api, alice)).displayname === newName,
      10_000,
      () => "the display name was not saved",
    );
    log("display name saved");
    await dialog.locator('input[type="file"]').setInputFiles({
      name: "avatar.png",
      mimeType: "image/png",
      buffer: Buffer.from(AVATAR_PNG, "base64"),
    });
    await snap(a, "avatar-chosen");
    await waitFor(
      async () => Boolean((await profileOf(api, alice)).avatar_url),
      10_000,
      () => "the avatar was not saved",
    );
    const avatarUrl = (await profileOf(api, alice)).avatar_url;
    log(`avatar saved as ${avatarUrl}`);

    // Bob, in the room they share, sees the new name and picture.
    const b = await open("bob");
    await b.loginWithPassword(bobName, password);
    await homeScreenShows(b);
    await b.page.getByText("Name tags", { exact: true }).first().click();
    // Cinny opens the member list beside the room on a wide screen.
    const members = b.page.getByText(/^\d+ Members$/).locator("xpath=ancestor::*[.//input][1]");
    await members.getByText(newName, { exact: true }).waitFor({ timeout: 10_000 });
    log("bob sees the new name in the member list");
    const mediaId = avatarUrl.split("/").pop();
    let picture;
    await waitFor(
      async () => {
        picture = await b.page.evaluate(
          ([name, id]) => {
            const label = [...document.querySelectorAll("body *")].find(
              (el) => el.children.length === 0 && el.textContent.trim() === name,
            );
            let row = label;
            for (let i = 0; i < 6 && row && !row.querySelector("img"); i++) row = row.parentElement;
            const img = row?.querySelector("img");
            return img ? { src: img.src, width: img.naturalWidth, ours: img.src.includes(id) } : null;
          },
          [newName, mediaId],
        );
        return picture?.ours && picture.width > 0;
      },
      10_000,
      () => `the member list shows ${JSON.stringify(picture)} as Alice's picture`,
    );
    await snap(b, "member-list");
    log(`and her picture, loaded from ${new URL(picture.src).pathname}`);
    expect(picture.width > 0, "the picture did not load");
  },
};

async function profileOf(api, account) {
  return api.call("GET", `/_matrix/client/v3/profile/${encodeURIComponent(account.user_id)}`, {
    token: account.access_token,
  });
}
