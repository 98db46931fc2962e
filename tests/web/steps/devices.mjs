// Step 2: Settings → Security lists this session and one logged in elsewhere, with when and
// from where each was last seen; the other one is renamed, then signed out through the
// client's own password dialog, and its token stops working.
import { uniqueName } from "../lib/matrix.mjs";
import { expect, waitFor } from "./assert.mjs";
import { homeScreenShows, openSettings } from "./ui.mjs";

// How Cinny prints a session's last activity: "Last activity 06:19 PM, 02/12/2026 at 127.0.0.1".
const LAST_SEEN = /Last activity\s*\d\d:\d\d [AP]M, \d\d\/\d\d\/\d{4} at (\S+)/;

export const devices = {
  id: "2",
  title: "Settings, Devices: list, rename, sign out",
  async run({ api, open, log, snap }) {
    const username = uniqueName("dana");
    const password = "devices are people too";
    await api.register(username, password, { inhibitLogin: true });
    const other = await api.login(username, password, "Second phone");
    // A request with the token, so the server has seen the session in use.
    await api.call("GET", "/_matrix/client/v3/account/whoami", { token: other.access_token });

    const dana = await open("dana");
    const { page } = dana;
    await dana.loginWithPassword(username, password);
    await homeScreenShows(dana);
    await openSettings(page, "Security");

    // Each session is a tile titled "<name> — <device id>", wherever Cinny files it
    // (verified, unverified, or without encryption support).
    const tile = (deviceId) => page.locator(".setting-tile").filter({ hasText: `— ${deviceId}` });
    const current = page.locator(".setting-tile").filter({ hasText: "Current" });
    const second = tile(other.device_id);
    await current.first().waitFor({ timeout: 10_000 });
    await second.waitFor({ timeout: 10_000 });
    expect((await current.count()) === 1, `${await current.count()} sessions are marked Current`);

    const { devices: listed } = await api.devices(other.access_token);
    for (const [name, locator] of [["current", current], ["second", second]]) {
      const text = await locator.innerText();
      const seen = text.match(LAST_SEEN);
      expect(seen, `the ${name} session shows no last activity with an address: "${text}"`);
      const ips = listed.map((d) => d.last_seen_ip);
      expect(ips.includes(seen[1]), `the ${name} session shows address ${seen[1]}, the server has ${ips}`);
    }
    expect((await second.innerText()).includes("Second phone"), "the second session's name is not shown");
    log("both sessions listed with last activity and address");
    await snap(dana, "sessions");

    // Cinny reloads this list only when a /sync names the user in device_lists.changed and
    // its /keys/query for the user then succeeds; say which of the two was missing.
    const whyNotRefreshed = (since) => {
      const named = dana.requests.some(
        (r) => r.answeredAt > since && r.deviceListsChanged?.includes(other.user_id),
      );
      const queried = dana.requests.some(
        (r) => r.at > since && r.route === "/_matrix/client/v3/keys/query" && r.status === 200,
      );
      return (
        `(no /sync answered since named the user in device_lists.changed: ${!named}; ` +
        `no /keys/query succeeded since: ${!queried})`
      );
    };

    // Rename: the pencil, then "Edit session name".
    const renamedAt = dana.now();
    await second.locator(".setting-tile__options button").nth(0).click();
    await page.locator('input[name="session"]').fill("Old tablet");
    await page.getByRole("button", { name: "Save", exact: true }).click();
    await page
      .locator(".setting-tile")
      .filter({ hasText: `Old tablet — ${other.device_id}` })
      .waitFor({ timeout: 5_000 })
      .catch(async () => {
        const server = (await api.devices(other.access_token)).devices.find(
          (d) => d.device_id === other.device_id,
        );
        throw new Error(
          `the renamed session still shows "${(await second.innerText()).split("\n")[0]}" after 5 s; ` +
            `the server has display_name ${JSON.stringify(server?.display_name)} ` +
            whyNotRefreshed(renamedAt),
        );
      });
    log("renamed the second session");

    // Sign out: the bin, "Logout" to confirm, then the password in the client's UIA dialog.
    const removedAt = dana.now();
    await second.locator(".setting-tile__options button").nth(1).click();
    await page.getByRole("button", { name: "Logout", exact: true }).last().click();
    const uia = page.getByRole("dialog").filter({ hasText: "Account password" });
    await uia.locator("input").fill(password);
    await uia.getByRole("button", { name: "Continue" }).click();

    const refused = async () => (await api.whoami(other.access_token)).status === 401;
    await waitFor(refused, 5_000, () => "the signed-out session's token still works after 5 s");
    const whoami = await api.whoami(other.access_token);
    expect(
      whoami.body.errcode === "M_UNKNOWN_TOKEN",
      `the signed-out token got ${whoami.status} ${whoami.body.errcode}, not M_UNKNOWN_TOKEN`,
    );
    log("the signed-out session's token is refused");
    await second.waitFor({ state: "detached", timeout: 5_000 }).catch(() => {
      throw new Error(
        `the signed-out session is still listed 5 s after its token was refused ${whyNotRefreshed(removedAt)}`,
      );
    });
    log("the signed-out session is no longer listed");
  },
};
