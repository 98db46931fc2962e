// What a person does in Cinny, in the words of its screens; shared by the steps.
import { waitFor } from "./assert.mjs";

/** The client is past its "Heating up" screen and shows the home room list. */
export async function homeScreenShows(session) {
  const { page } = session;
  await waitFor(() => page.url().includes("/home"), 30_000, () => `still at ${page.url()}`);
  await page.getByText("Heating up").waitFor({ state: "detached", timeout: 30_000 });
  // The sidebar's own entries, and the welcome pane that /home shows while no room is open.
  await page.getByText("Create Room", { exact: true }).first().waitFor({ timeout: 10_000 });
  await page.getByText("Welcome to Cinny").waitFor({ timeout: 10_000 });
}

/**
 * Clicks the icon in the left bar whose tooltip is `tooltip`. The icons have no accessible
 * names, and which ones show depends on the account (an "Unverified Sessions" one comes and
 * goes), so, like a person, hover each until the tooltip says it is the one.
 */
export async function clickSidebarItem(page, tooltip) {
  const buttons = page.getByRole("button");
  const count = await buttons.count();
  // From the bottom: the user's own icon, the usual target, is the last one.
  for (let i = count - 1; i >= 0; i--) {
    const button = buttons.nth(i);
    const box = await button.boundingBox();
    if (!box || box.x > 70) continue;
    await button.hover();
    const shown = await page
      .getByText(tooltip, { exact: true })
      .waitFor({ timeout: 600 })
      .then(() => true, () => false);
    if (shown) {
      await button.click();
      return;
    }
  }
  throw new Error(`no icon in the left bar has the tooltip "${tooltip}"`);
}

/** Opens Settings at one of its tabs (General, Notifications, Emoji, Security, About). */
export async function openSettings(page, tab) {
  await clickSidebarItem(page, "User Settings");
  await page.getByRole("dialog").getByRole("button", { name: tab, exact: true }).click();
}
