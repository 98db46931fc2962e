// The request report: every request the client made to the homeserver, and the judgement of
// which 404s and 5xx were unexpected.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";

// Answers the client asks for knowing they may be 404 and handles as "nothing there". Each must
// match method, route, status and errcode: a 404 M_UNRECOGNIZED (endpoint missing) on the same
// route is never expected.
export const EXPECTED = [
  {
    method: "GET",
    route: "/_matrix/client/v3/user/{userId}/account_data/{type}",
    status: 404,
    errcode: "M_NOT_FOUND",
    why: "matrix-js-sdk reads account data a new account has never set (secret storage, cross-signing) and takes M_NOT_FOUND as absent",
  },
  {
    method: "GET",
    route: "/_matrix/client/v3/room_keys/version",
    status: 404,
    errcode: "M_NOT_FOUND",
    why: "a new account has no key backup; the spec's answer for that is 404 M_NOT_FOUND",
  },
  // Both MSC3266 paths, tried in turn: Cinny asks while a room it has just created or joined
  // is not yet in its store, and shows the room anyway once the sync brings it. Unstable and
  // optional, so a server without it answers M_UNRECOGNIZED.
  {
    method: "GET",
    route: "/_matrix/client/unstable/im.nheko.summary/summary/{roomId}",
    status: 404,
    errcode: "M_UNRECOGNIZED",
    why: "optional unstable MSC3266 room summary; Cinny falls back to the synced room",
  },
  {
    method: "GET",
    route: "/_matrix/client/unstable/im.nheko.summary/rooms/{roomId}/summary",
    status: 404,
    errcode: "M_UNRECOGNIZED",
    why: "optional unstable MSC3266 room summary; Cinny falls back to the synced room",
  },
];

function isExpected(r) {
  return EXPECTED.some(
    (e) =>
      e.method === r.method &&
      e.route === r.route &&
      e.status === r.status &&
      e.errcode === r.errcode,
  );
}

/** Unexpected: a 404 or 5xx not in EXPECTED, or a request that got no answer while the step ran. */
export function isUnexpected(r) {
  if (r.failure && !r.aborted && r.status === null) return true;
  if (r.status === 404 || (r.status !== null && r.status >= 500)) return !isExpected(r);
  return false;
}

const SIGILS = { "@": "{userId}", "!": "{roomId}", $: "{eventId}", "#": "{roomAlias}" };

// Segments that are ids without a sigil, named by the segment before them.
const AFTER = [
  [/(\/send\/[^/]+)\/[^/]+$/, "$1/{txnId}"],
  [/(\/sendToDevice\/[^/]+)\/[^/]+$/, "$1/{txnId}"],
  [/(\/redact\/\{eventId\})\/[^/]+$/, "$1/{txnId}"],
  [/(\/devices)\/[^/]+$/, "$1/{deviceId}"],
  [/(\/filter)\/[^/]+$/, "$1/{filterId}"],
  [/(\/media\/(?:v3|r0|v1)\/(?:download|thumbnail))\/[^/]+\/[^/]+(\/[^/]+)?$/, "$1/{serverName}/{mediaId}"],
  [/(\/room_keys\/keys)\/.*$/, "$1/..."],
];

/** Turns a concrete path into its route, so one report line stands for many calls. */
export function normalisePath(pathname) {
  let path = pathname
    .split("/")
    .map((segment) => {
      let decoded;
      try {
        decoded = decodeURIComponent(segment);
      } catch {
        decoded = segment;
      }
      return SIGILS[decoded[0]] ?? segment;
    })
    .join("/");
  for (const [pattern, replacement] of AFTER) path = path.replace(pattern, replacement);
  // Which account data type was asked for still shows in the full list of requests; the route
  // (and so the allow-list) stands for all of them.
  return path.replace(/(\/account_data)\/[^/]+$/, "$1/{type}");
}

/** One line per route and answer, for summaries. */
export function routeLine(r) {
  const status = r.status ?? `(${r.failure ?? "pending"})`;
  return `${r.method} ${r.route} -> ${status}${r.errcode ? ` ${r.errcode}` : ""}`;
}

function pad(s, n) {
  s = String(s);
  return s.length >= n ? s : s + " ".repeat(n - s.length);
}

/**
 * Writes report.txt (summary by route, then every request in order) and report.json.
 * @param results [{ id, title, status, error, requests, missing }]
 */
export async function writeReport(dir, results) {
  const lines = [];
  const all = results.flatMap((r) => r.requests.map((q) => ({ ...q, step: r.id })));
  lines.push(`Requests the client made to the homeserver: ${all.length}`);
  lines.push("");
  lines.push("== unexpected (404 or 5xx not in the allow-list, or no answer)");
  const bad = all.filter(isUnexpected);
  if (bad.length === 0) lines.push("(none)");
  for (const [key, group] of groupBy(bad)) lines.push(`${pad(group.length + "x", 5)} ${key}`);
  lines.push("");
  lines.push("== expected 404s (allow-list)");
  for (const e of EXPECTED) lines.push(`${e.method} ${e.route} ${e.status} ${e.errcode}: ${e.why}`);
  lines.push("");
  lines.push("== by step, route and status");
  for (const [key, group] of groupBy(all, (q) => `step ${q.step}: `)) {
    lines.push(`${pad(group.length + "x", 5)} ${key}`);
  }
  lines.push("");
  lines.push("== every request, in order (step, session, ms since the session opened)");
  for (const q of all) {
    const status = q.status ?? `(${q.failure ?? "pending"}${q.aborted ? ", closed by the test" : ""})`;
    const flag = isUnexpected(q) ? "  <-- unexpected" : "";
    const err = q.errcode ? ` ${q.errcode}` : "";
    lines.push(
      `${q.step} ${pad(q.session, 8)} ${pad(q.at, 7)} ${pad(q.method, 6)} ${q.path}${q.query} ${status}${err}${flag}`,
    );
  }
  await writeFile(join(dir, "report.txt"), lines.join("\n") + "\n");
  await writeFile(join(dir, "report.json"), JSON.stringify(results, null, 2) + "\n");
}

function groupBy(requests, prefix = () => "") {
  const groups = new Map();
  for (const q of requests) {
    const key = prefix(q) + routeLine(q);
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(q);
  }
  return [...groups.entries()].sort(([a], [b]) => a.localeCompare(b));
}
