// The two checks the steps need, with messages that say what the person saw.

export function expect(condition, message) {
  if (!condition) throw new Error(message);
}

/** Polls until `test` is true; `describe` tells what was seen instead when it never is. */
export async function waitFor(test, timeoutMs, describe) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await test()) return;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms: ${describe ? describe() : "condition"}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
