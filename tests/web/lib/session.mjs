// One person at one browser: a Playwright context with its page, recording every request the
// client makes to the homeserver and everything it logs, so a failing step can be looked at.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { isUnexpected, normalisePath } from "./report.mjs";

// Texts Cinny shows when its sync loop is in trouble.
const WARNINGS = ["Connection Lost"];

export class Session {
  /** @param {import("playwright-core").Browser} browser */
  static async open(browser, { name, step, homeserverUrl, clientUrl }) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    const session = new Session({ name, step, homeserverUrl, clientUrl, context, page });
    session.#attach();
    await session.#watchForWarnings();
    return session;
  }

  constructor({ name, step, homeserverUrl, clientUrl, context, page }) {
    Object.assign(this, { name, step, homeserverUrl, clientUrl, context, page });
    this.origin = new URL(homeserverUrl).origin;
    this.requests = [];
    this.console = [];
    this.started = Date.now();
    // Set while the step tears the context down: the long-poll /sync then in flight is aborted
    // by us, not failed by the server.
    this.closing = false;
    // Set by a step while the person makes the client drop its requests (logging out): those
    // it aborts then are its own doing too.
    this.leaving = false;
  }

  #attach() {
    const entries = new Map();
    // The context, not the page, so requests from Cinny's service worker (authenticated media)
    // are seen too.
    this.context.on("request", (request) => {
      const url = new URL(request.url());
      if (url.origin !== this.origin) return;
      const entry = {
        session: this.name,
        at: Date.now() - this.started,
        method: request.method(),
        path: url.pathname,
        query: url.search,
        route: normalisePath(url.pathname),
        status: null,
        errcode: null,
        error: null,
      };
      entries.set(request, entry);
      this.requests.push(entry);
    });
    this.context.on("response", async (response) => {
      const entry = entries.get(response.request());
      if (!entry) return;
      entry.status = response.status();
      entry.answeredAt = Date.now() - this.started;
      if (entry.route === "/_matrix/client/v3/sync" && entry.status === 200) {
        // Kept because the device list in Cinny refreshes only on these.
        try {
          entry.deviceListsChanged = (await response.json()).device_lists?.changed ?? [];
        } catch {
          entry.deviceListsChanged = null;
        }
      }
      if (entry.status >= 400) {
        try {
          const body = JSON.parse(await response.text());
          entry.errcode = body.errcode ?? null;
          entry.error = body.error ?? null;
        } catch {
          // Not JSON, or the body is gone with the page; the status alone is reported.
        }
      }
    });
    this.context.on("requestfailed", (request) => {
      const entry = entries.get(request);
      if (!entry) return;
      entry.failure = request.failure()?.errorText ?? "failed";
      entry.aborted = this.closing || this.leaving;
    });
    this.page.on("console", (msg) => {
      this.console.push(`[${Date.now() - this.started}ms] ${msg.type()}: ${msg.text()}`);
    });
    this.page.on("pageerror", (err) => {
      this.console.push(`[${Date.now() - this.started}ms] pageerror: ${err.stack ?? err}`);
    });
  }

  // A warning bar can come and go between two looks at the screen; a MutationObserver in every
  // document reports each time one shows, so a step can tell it never did.
  async #watchForWarnings() {
    this.warnings = [];
    await this.context.exposeBinding("__harnessSaw", (_source, text) => {
      this.warnings.push({ at: Date.now() - this.started, text });
    });
    await this.context.addInitScript((phrases) => {
      const shown = new Set();
      const look = () => {
        const text = document.body?.innerText ?? "";
        for (const phrase of phrases) {
          const now = text.includes(phrase);
          if (now && !shown.has(phrase)) window.__harnessSaw(phrase);
          if (now) shown.add(phrase);
          else shown.delete(phrase);
        }
      };
      new MutationObserver(look).observe(document, {
        subtree: true,
        childList: true,
        characterData: true,
      });
    }, WARNINGS);
  }

  /** Milliseconds on this session's clock, as in `requests[].at`. */
  now() {
    return Date.now() - this.started;
  }

  goto(path) {
    return this.page.goto(this.clientUrl + path);
  }

  /** Logs in through Cinny's own login form, as a person types it. */
  async loginWithPassword(username, password) {
    await this.goto(`/login/${encodeURIComponent(this.homeserverUrl)}`);
    await this.page.locator('input[name="usernameInput"]').fill(username);
    await this.page.locator('input[name="passwordInput"]').fill(password);
    await this.page.locator('button[type="submit"]').click();
  }

  /** The requests whose answer a step did not expect to see: 404, 5xx or no answer at all. */
  failedRequests() {
    return this.requests.filter(
      (r) => (r.status !== null && r.status >= 400) || (r.failure && !r.aborted),
    );
  }

  async screenshot(dir, label) {
    const file = join(dir, `${label}.png`);
    await this.page.screenshot({ path: file, fullPage: true }).catch(() => {});
    return file;
  }

  /** Keeps what a person would need to see why the step failed. */
  async saveArtifacts(dir, label) {
    await this.screenshot(dir, label);
    await writeFile(join(dir, `${label}.console.log`), this.console.join("\n") + "\n");
    const failed = this.failedRequests()
      .map((r) => describe(r) + (isUnexpected(r) ? "  <-- unexpected" : "  (expected)"))
      .join("\n");
    await writeFile(join(dir, `${label}.failed-requests.txt`), failed + "\n");
  }

  async close() {
    this.closing = true;
    await this.context.close().catch(() => {});
  }
}

export function describe(r) {
  const status = r.status ?? `(${r.failure ?? "no answer"})`;
  const err = [r.errcode, r.error].filter(Boolean).join(" ");
  return `${r.method} ${r.path}${r.query} -> ${status}${err ? ` ${err}` : ""}`;
}
