// Step 1: log in with a password; the home screen shows, the sync loop runs, and no
// "Connection Lost" bar ever shows.
import { uniqueName } from "../lib/matrix.mjs";
import { expect } from "./assert.mjs";
import { homeScreenShows } from "./ui.mjs";

export const login = {
  id: "1",
  title: "Log in with a password",
  async run({ api, open, log }) {
    const username = uniqueName("alice");
    const password = "correct horse battery staple";
    const account = await api.register(username, password);

    const alice = await open("alice");
    await alice.loginWithPassword(username, password);
    await homeScreenShows(alice);
    log("home screen shows");

    // The loop is running when a change made elsewhere reaches the screen without a reload.
    const name = "Made elsewhere";
    const sent = Date.now();
    await api.call("POST", "/_matrix/client/v3/createRoom", {
      token: account.access_token,
      body: { name, preset: "private_chat" },
    });
    await alice.page.getByText(name, { exact: true }).first().waitFor({ timeout: 5_000 });
    log(`a room created through the API showed in the room list after ${Date.now() - sent} ms`);
    // Cinny says "Connecting..." until its first long-poll returns; it must be gone by now.
    await alice.page.getByText("Connecting...").waitFor({ state: "detached", timeout: 2_000 });

    // Long enough for a failed sync to be retried and the bar to show.
    await alice.page.waitForTimeout(3_000);
    expect(
      alice.warnings.length === 0,
      `the client showed ${alice.warnings.map((w) => `"${w.text}" at ${w.at} ms`).join(", ")}`,
    );
    const syncs = alice.requests.filter((r) => r.route === "/_matrix/client/v3/sync" && r.status === 200);
    expect(
      syncs.some((r) => r.query.includes("since=")),
      "no incremental /sync completed with 200",
    );
  },
};
