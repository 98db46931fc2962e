// Step 7: log out from the client; its token is refused at once; logging in again works and
// shows the account's rooms.
import { uniqueName } from "../lib/matrix.mjs";
import { expect, waitFor } from "./assert.mjs";
import { clickSidebarItem, homeScreenShows } from "./ui.mjs";

export const logout = {
  id: "7",
  title: "Log out, the token is refused, log in again",
  async run({ api, open, log, snap }) {
    const username = uniqueName("alice");
    const password = "leaving for now";
    const account = await api.register(username, password);
    const roomName = "Still here";
    await api.call("POST", "/_matrix/client/v3/createRoom", {
      token: account.access_token,
      body: { name: roomName, preset: "private_chat" },
    });

    const alice = await open("alice");
    await alice.loginWithPassword(username, password);
    await homeScreenShows(alice);
    const token = await alice.page.evaluate(() => localStorage.getItem("cinny_access_token"));
    expect(token, "the client keeps no access token");
    expect((await api.whoami(token)).status === 200, "the client's token does not work");
    const deviceId = await alice.page.evaluate(() => localStorage.getItem("cinny_device_id"));

    await clickSidebarItem(alice.page, "User Settings");
    const dialog = alice.page.getByRole("dialog");
    await dialog.getByRole("button", { name: "Logout" }).first().click();
    await snap(alice, "confirm");
    // The client asks first; the confirming button says the same. Logging out ends the
    // long-poll the client has open, and going to the login page ends what it started then.
    alice.leaving = true;
    await alice.page.getByRole("button", { name: "Logout" }).last().click();
    await waitFor(
      () => alice.page.url().includes("/login"),
      10_000,
      () => `after logging out the client is at ${alice.page.url()}`,
    );
    log("logged out; the client shows its login screen");

    const refused = await api.whoami(token);
    expect(
      refused.status === 401 && refused.body.errcode === "M_UNKNOWN_TOKEN",
      `the old token still answers ${refused.status} ${JSON.stringify(refused.body)}`,
    );
    const devices = await api.devices(account.access_token);
    expect(deviceId, "the client keeps no device ID");
    expect(
      !devices.devices.some((d) => d.device_id === deviceId),
      "the logged-out session is still in the device list",
    );

    await alice.loginWithPassword(username, password);
    await homeScreenShows(alice);
    alice.leaving = false;
    await alice.page.getByText(roomName, { exact: true }).first().waitFor({ timeout: 10_000 });
    log("logged in again; the room list is back");
  },
};
