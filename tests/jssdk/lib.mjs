// What the matrix-js-sdk scenarios share: the server's address, registering and logging
// in through the SDK's own calls, one UIA round, and starting the sync loop.

import assert from "node:assert/strict";

import { ClientEvent, SyncState, createClient } from "matrix-js-sdk";

export const baseUrl = process.env.MYELIN_URL;
assert.ok(baseUrl, "set MYELIN_URL to a Myelin server with open registration");
export const PASSWORD = "js-sdk test password";
export const NEW_PASSWORD = "js-sdk better password";
// The SDK logs every request at info level; only problems are worth reading here.
export const logger = { ...console, debug() {}, info() {}, log() {} };
// The SDK's crypto asks its logger for child loggers.
logger.getChild = () => logger;

export async function register(localpart) {
  const anonymous = createClient({ baseUrl, logger });
  // The first round's 401 names the UIA session the dummy stage completes.
  let session;
  try {
    await anonymous.registerRequest({ username: localpart, password: PASSWORD });
    assert.fail("expected a UIA challenge");
  } catch (err) {
    assert.equal(err.httpStatus, 401, String(err));
    session = err.data.session;
  }
  const done = await anonymous.registerRequest({
    username: localpart,
    password: PASSWORD,
    auth: { type: "m.login.dummy", session },
  });
  return createClient({
    baseUrl,
    userId: done.user_id,
    accessToken: done.access_token,
    deviceId: done.device_id,
    logger,
  });
}

export async function login(localpart, password, extra = {}) {
  const anonymous = createClient({ baseUrl, logger });
  const done = await anonymous.loginRequest({
    type: "m.login.password",
    identifier: { type: "m.id.user", user: localpart },
    password,
    ...extra,
  });
  return { done, client: createClient({
    baseUrl,
    userId: done.user_id,
    accessToken: done.access_token,
    deviceId: done.device_id,
    logger,
  }) };
}

/** Runs `call(auth)` through one UIA round: the first call's 401 gives the session. */
export async function withPassword(client, password, call) {
  let session;
  try {
    await call(undefined);
    assert.fail("expected a UIA challenge");
  } catch (err) {
    assert.equal(err.httpStatus, 401, String(err));
    assert.deepEqual(err.data.flows, [{ stages: ["m.login.password"] }]);
    session = err.data.session;
  }
  return call({
    type: "m.login.password",
    identifier: { type: "m.id.user", user: client.getUserId() },
    password,
    session,
  });
}

export async function expectError(promise, status, errcode) {
  try {
    await promise;
  } catch (err) {
    assert.equal(err.httpStatus, status, String(err));
    assert.equal(err.errcode, errcode, String(err));
    return err;
  }
  assert.fail(`expected ${status} ${errcode}`);
}

/** Starts the SDK's sync loop and waits until it has prepared (its first sync done). */
export async function startSyncing(client) {
  const prepared = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no PREPARED within 15 s")), 15000);
    client.on(ClientEvent.Sync, (state) => {
      if (state === SyncState.Prepared) {
        clearTimeout(timer);
        resolve();
      } else if (state === SyncState.Error) {
        clearTimeout(timer);
        reject(new Error("the sync loop failed"));
      }
    });
  });
  await client.startClient({ initialSyncLimit: 10 });
  await prepared;
}
