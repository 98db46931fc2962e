// Runs the browser steps of issue 13 against a running Myelin (MYELIN_URL), serving Cinny from
// CINNY_DIR. run.sh starts the server and sets both; this file only drives the browser.
//
//   WEB_STEPS=1,3       run only these steps (default: all)
//   WEB_ARTIFACTS=dir   where screenshots, logs and the report go (default: tests/web/artifacts)
//   CHROMIUM=path       the browser (default: /usr/bin/chromium)
//   WEB_HEADED=1        show the browser (needs a display)
import { mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

import { Api } from "./lib/matrix.mjs";
import { Session } from "./lib/session.mjs";
import { isUnexpected, routeLine, writeReport } from "./lib/report.mjs";
import { serveCinny } from "./lib/static-server.mjs";
import { STEPS } from "./steps/index.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const homeserverUrl = required("MYELIN_URL");
const cinnyDir = required("CINNY_DIR");
const artifacts = process.env.WEB_ARTIFACTS || join(here, "artifacts");
const selected = selectSteps(process.env.WEB_STEPS);

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} is not set; run tests/web/run.sh, which starts the server`);
    process.exit(2);
  }
  return value;
}

function selectSteps(spec) {
  if (!spec) return STEPS;
  const ids = spec.split(",").map((s) => s.trim());
  const unknown = ids.filter((id) => !STEPS.some((s) => s.id === id));
  if (unknown.length) {
    console.error(`WEB_STEPS names unknown steps: ${unknown.join(", ")}; known: ${STEPS.map((s) => s.id).join(", ")}`);
    process.exit(2);
  }
  return STEPS.filter((s) => ids.includes(s.id));
}

function slug(text) {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 40);
}

async function runStep(step, browser, clientUrl) {
  const label = `step${step.id}-${slug(step.title)}`;
  const sessions = [];
  const ctx = {
    api: new Api(homeserverUrl),
    homeserverUrl,
    clientUrl,
    // A fresh browser context: a person on their own device, with nothing stored.
    open: async (name) => {
      const session = await Session.open(browser, { name, step: step.id, homeserverUrl, clientUrl });
      sessions.push(session);
      return session;
    },
    log: (msg) => console.log(`   ${msg}`),
    // A picture of a moment worth seeing on the way, kept whether the step passes or not.
    snap: (session, what) => session.screenshot(artifacts, `${label}-${session.name}-${slug(what)}`),
  };

  const started = Date.now();
  let error = null;
  try {
    await step.run(ctx);
  } catch (err) {
    error = err;
  }
  const requests = sessions.flatMap((s) => s.requests);
  const unexpected = requests.filter(isUnexpected);
  // A step whose own checks passed still fails when the client hit a missing endpoint on the
  // way: the person may not have noticed, but the client did.
  if (!error && unexpected.length) {
    error = new Error(
      `the step's own checks passed, but ${unexpected.length} request(s) got an unexpected answer`,
    );
  }

  for (const s of sessions) {
    const name = `${label}-${s.name}`;
    if (error) await s.saveArtifacts(artifacts, name);
    else await s.screenshot(artifacts, name);
  }
  for (const s of sessions) await s.close();

  return {
    id: step.id,
    title: step.title,
    passed: !error,
    seconds: (Date.now() - started) / 1000,
    error: error ? String(error.stack ?? error) : null,
    unexpected: unexpected.map(routeLine),
    requests,
  };
}

async function main() {
  await mkdir(artifacts, { recursive: true });

  const cinny = await serveCinny(cinnyDir, homeserverUrl);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: !process.env.WEB_HEADED,
    args: ["--no-sandbox"],
  });
  console.log(`Cinny at ${cinny.url}, Myelin at ${homeserverUrl}, artifacts in ${artifacts}`);

  const results = [];
  try {
    for (const step of selected) {
      console.log(`-- step ${step.id}: ${step.title}`);
      const result = await runStep(step, browser, cinny.url);
      results.push(result);
      if (result.passed) {
        console.log(`ok   step ${step.id} (${result.seconds.toFixed(1)} s)`);
      } else {
        console.log(`FAIL step ${step.id} (${result.seconds.toFixed(1)} s): ${firstLine(result.error)}`);
        for (const line of unique(result.unexpected)) console.log(`     unexpected: ${line}`);
      }
    }
  } finally {
    await browser.close();
    await cinny.close();
  }

  await writeReport(artifacts, results);
  const passed = results.filter((r) => r.passed).length;
  const failed = results.length - passed;
  console.log(`report: ${join(artifacts, "report.txt")}`);
  console.log(`web: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

function firstLine(text) {
  return String(text).split("\n")[0];
}

function unique(lines) {
  const counts = new Map();
  for (const l of lines) counts.set(l, (counts.get(l) ?? 0) + 1);
  return [...counts].map(([l, n]) => (n > 1 ? `${l} (${n}x)` : l));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
