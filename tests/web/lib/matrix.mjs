// The few Client-Server API calls the steps make themselves, to set up users and second sessions
// and to check from outside what the browser did.

export class MatrixError extends Error {
  constructor(method, path, status, body) {
    super(`${method} ${path} -> ${status} ${body?.errcode ?? ""} ${body?.error ?? ""}`.trim());
    this.status = status;
    this.body = body;
  }
}

export class Api {
  constructor(baseUrl) {
    this.baseUrl = baseUrl.replace(/\/$/, "");
  }

  /** Resolves to { status, body } whatever the status; throws only on network errors. */
  async raw(method, path, { token, body } = {}) {
    const headers = {};
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(this.baseUrl + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let json;
    try {
      json = text ? JSON.parse(text) : {};
    } catch {
      json = { raw: text };
    }
    return { status: res.status, body: json };
  }

  async call(method, path, opts) {
    const { status, body } = await this.raw(method, path, opts);
    if (status >= 400) throw new MatrixError(method, path, status, body);
    return body;
  }

  /**
   * Registers through the dummy UIA stage; resolves to the login response. `inhibitLogin`
   * leaves the account without a device, for steps that count sessions.
   */
  async register(username, password, { deviceName = "harness (API)", inhibitLogin = false } = {}) {
    const path = "/_matrix/client/v3/register";
    const request = {
      username,
      password,
      initial_device_display_name: deviceName,
      inhibit_login: inhibitLogin,
    };
    const first = await this.raw("POST", path, { body: request });
    if (first.status === 200) return first.body;
    if (first.status !== 401 || !first.body.session) {
      throw new MatrixError("POST", path, first.status, first.body);
    }
    return this.call("POST", path, {
      body: { ...request, auth: { type: "m.login.dummy", session: first.body.session } },
    });
  }

  login(username, password, deviceName) {
    return this.call("POST", "/_matrix/client/v3/login", {
      body: {
        type: "m.login.password",
        identifier: { type: "m.id.user", user: username },
        password,
        initial_device_display_name: deviceName,
      },
    });
  }

  whoami(token) {
    return this.raw("GET", "/_matrix/client/v3/account/whoami", { token });
  }

  devices(token) {
    return this.call("GET", "/_matrix/client/v3/devices", { token });
  }

  sync(token, since) {
    const query = since ? `?timeout=0&since=${encodeURIComponent(since)}` : "?timeout=0";
    return this.call("GET", `/_matrix/client/v3/sync${query}`, { token });
  }
}

/** A username unique to this run, so steps never collide on one server. */
export function uniqueName(prefix) {
  return `${prefix}${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
}
