//! Test kit: a real Myelin server on an ephemeral port with a fresh database, and a small
//! HTTP client around it. Every test starts its own server, so tests never share state.

#![allow(dead_code, clippy::unwrap_used, clippy::field_reassign_with_default)]

use std::path::PathBuf;

use myelin_core::config::{Config, RateLimit};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    running: Option<myelin::Running>,
}

/// A logged-in user.
#[derive(Debug, Clone)]
pub struct User {
    pub user_id: String,
    pub localpart: String,
    pub token: String,
    pub device_id: String,
}

/// A response: status and JSON body (`Value::Null` when the body is not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Resp {
    pub fn errcode(&self) -> &str {
        self.body["errcode"].as_str().unwrap_or("")
    }

    /// Asserts status and errcode together, showing the body on failure.
    #[track_caller]
    pub fn assert_error(&self, status: u16, errcode: &str) {
        assert_eq!(
            (self.status.as_u16(), self.errcode()),
            (status, errcode),
            "body: {}",
            self.body
        );
        assert!(
            self.body["error"].is_string(),
            "error message missing: {}",
            self.body
        );
    }

    #[track_caller]
    pub fn assert_ok(&self) -> &Value {
        assert_eq!(self.status, StatusCode::OK, "body: {}", self.body);
        &self.body
    }
}

/// Percent-encodes one path segment or query value (everything but RFC 3986 unreserved).
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The configuration every test starts from: open registration, cheap password hashing, and
/// rate limits high enough that only tests about rate limits meet them.
pub fn test_config(dir: &std::path::Path) -> Config {
    let mut config = Config::default();
    config.listen = "127.0.0.1:0".into();
    config.database.url = format!("sqlite://{}", dir.join("myelin.db").display());
    config.database.synchronous = "normal".into();
    config.media.path = dir.join("media");
    config.registration.enabled = true;
    config.password.memory_kib = 256;
    config.password.iterations = 1;
    let generous = RateLimit {
        per_second: 1000.0,
        burst: 10_000,
    };
    config.rate_limits.login_failures_per_account = generous;
    config.rate_limits.login_failures_per_address = generous;
    config.rate_limits.registration_per_address = generous;
    config.rate_limits.registration_token_validity_per_address = generous;
    config.rate_limits.appservice_device_creation = generous;
    config.rate_limits.room_membership_per_user = generous;
    config.rate_limits.reports_per_user = generous;
    config.rate_limits.room_lookups_per_user = generous;
    config
}

/// With `TEST_POSTGRES_URL` set to an admin URL (e.g. `postgres://postgres@127.0.0.1/postgres`),
/// the whole suite runs against PostgreSQL: each server gets a database of its own.
pub async fn use_test_postgres(config: &mut Config) {
    let Ok(admin) = std::env::var("TEST_POSTGRES_URL") else {
        return;
    };
    if !config.database.url.starts_with("sqlite://") {
        return;
    }
    config.database.url = fresh_postgres_database(&admin).await;
}

/// A new, empty PostgreSQL database (for tests that need one, e.g. several instances).
pub async fn fresh_postgres_database(admin: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "myelin_test_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    myelin_store::postgres::create_database(admin, &name)
        .await
        .unwrap()
}

/// Writes an appservice registration into `dir` and returns its path.
pub fn appservice_file(dir: &std::path::Path, id: &str, as_token: &str, extra: &str) -> PathBuf {
    let path = dir.join(format!("{id}.yaml"));
    std::fs::write(
        &path,
        format!(
            "id: {id}\nurl: null\nas_token: {as_token}\nhs_token: hs_{id}\n\
             sender_localpart: {id}bot\n{extra}\
             namespaces:\n  users:\n    - regex: '@{id}_.*:localhost'\n      exclusive: true\n"
        ),
    )
    .unwrap();
    path
}

impl TestServer {
    pub async fn start() -> Self {
        Self::with(|_, _| {}).await
    }

    /// Starts a server after `configure` adjusts the test configuration (the database lives
    /// in `dir`, which `configure` also receives for writing files such as registrations).
    pub async fn with(configure: impl FnOnce(&mut Config, &std::path::Path)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        configure(&mut config, dir.path());
        use_test_postgres(&mut config).await;
        Self::start_in(dir, config).await
    }

    pub async fn start_in(dir: tempfile::TempDir, config: Config) -> Self {
        let running = myelin::start(config, std::future::pending()).await.unwrap();
        Self {
            base: format!("http://{}", running.addr),
            client: reqwest::Client::new(),
            dir,
            running: Some(running),
        }
    }

    /// Where `GET /metrics` is served, with `metrics.listen` set.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.running.as_ref().unwrap().metrics_addr
    }

    pub fn services(&self) -> &std::sync::Arc<myelin_core::Services> {
        &self.running.as_ref().unwrap().services
    }

    /// Stops the server gracefully and returns its directory (to restart on the same data).
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(running) = self.running.take() {
            running.stop().await.unwrap();
        }
        self.dir
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with("/_matrix")
            || path.starts_with("/.well-known")
            || path.starts_with("/_synapse")
        {
            format!("{}{path}", self.base)
        } else {
            format!("{}/_matrix/client/v3{path}", self.base)
        }
    }

    /// Sends a request. `path` without a `/_matrix` prefix is under `/_matrix/client/v3`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        Self::finish(request).await
    }

    /// Sends a request with a raw body.
    pub async fn call_raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Resp {
        let mut request = self.client.request(method, self.url(path)).body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        Self::finish(request).await
    }

    pub async fn finish(request: reqwest::RequestBuilder) -> Resp {
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp {
            status,
            body,
            headers,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::PUT, path, Some(token), Some(body)).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    /// Registers `localpart` with [`PASSWORD`] through the full UIA dance.
    pub async fn register(&self, localpart: &str) -> User {
        self.register_with(localpart, json!({})).await
    }

    /// Registers with extra body fields (`device_id`, `initial_device_display_name`, ...).
    pub async fn register_with(&self, localpart: &str, extra: Value) -> User {
        let mut body = json!({ "username": localpart, "password": PASSWORD });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let first = self
            .call(Method::POST, "/register", None, Some(body.clone()))
            .await;
        assert_eq!(first.status, 401, "{}", first.body);
        body["auth"] = json!({ "type": "m.login.dummy", "session": first.body["session"] });
        let done = self.call(Method::POST, "/register", None, Some(body)).await;
        let body = done.assert_ok();
        User {
            user_id: body["user_id"].as_str().unwrap().to_owned(),
            localpart: localpart.to_owned(),
            token: body["access_token"].as_str().unwrap().to_owned(),
            device_id: body["device_id"].as_str().unwrap().to_owned(),
        }
    }

    /// Logs `user` in again (a new device unless `device_id` is given).
    pub async fn login(&self, user: &User, device_id: Option<&str>) -> User {
        let mut body = json!({
            "type": "m.login.password",
            "identifier": { "type": "m.id.user", "user": user.localpart },
            "password": PASSWORD,
        });
        if let Some(device_id) = device_id {
            body["device_id"] = json!(device_id);
        }
        let resp = self.call(Method::POST, "/login", None, Some(body)).await;
        let body = resp.assert_ok();
        User {
            token: body["access_token"].as_str().unwrap().to_owned(),
            device_id: body["device_id"].as_str().unwrap().to_owned(),
            ..user.clone()
        }
    }

    /// The body of a password UIA stage for `user`.
    pub fn password_auth(user: &User, session: &Value) -> Value {
        json!({
            "type": "m.login.password",
            "identifier": { "type": "m.id.user", "user": user.user_id },
            "password": PASSWORD,
            "session": session,
        })
    }
}

/// A fresh transaction ID for a test request.
pub fn txn() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("t{}", N.fetch_add(1, Ordering::Relaxed))
}

/// Rooms: the requests most tests make along the way.
impl TestServer {
    /// `POST /createRoom`, asserting success; the room ID.
    pub async fn create_room(&self, user: &User, body: Value) -> String {
        let resp = self.post("/createRoom", &user.token, body).await;
        resp.assert_ok()["room_id"].as_str().unwrap().to_owned()
    }

    /// Sends an `m.room.message`; the event ID.
    pub async fn send_text(&self, user: &User, room_id: &str, text: &str) -> String {
        let resp = self
            .send_event(
                user,
                room_id,
                "m.room.message",
                json!({ "msgtype": "m.text", "body": text }),
            )
            .await;
        resp.assert_ok()["event_id"].as_str().unwrap().to_owned()
    }

    pub async fn send_event(&self, user: &User, room_id: &str, kind: &str, content: Value) -> Resp {
        let path = format!("/rooms/{}/send/{}/{}", enc(room_id), enc(kind), txn());
        self.put(&path, &user.token, content).await
    }

    pub async fn put_state(
        &self,
        user: &User,
        room_id: &str,
        kind: &str,
        state_key: &str,
        content: Value,
    ) -> Resp {
        let path = format!(
            "/rooms/{}/state/{}/{}",
            enc(room_id),
            enc(kind),
            enc(state_key)
        );
        self.put(&path, &user.token, content).await
    }

    pub async fn room_post(&self, user: &User, room_id: &str, action: &str, body: Value) -> Resp {
        self.post(
            &format!("/rooms/{}/{action}", enc(room_id)),
            &user.token,
            body,
        )
        .await
    }

    pub async fn join(&self, user: &User, room_id: &str) {
        self.room_post(user, room_id, "join", json!({}))
            .await
            .assert_ok();
    }

    pub async fn invite(&self, user: &User, room_id: &str, invitee: &User) {
        self.room_post(
            user,
            room_id,
            "invite",
            json!({ "user_id": invitee.user_id }),
        )
        .await
        .assert_ok();
    }

    /// Alice and Bob, both in a room Alice made with `body` (`createRoom`).
    pub async fn alice_and_bob(&self, body: Value) -> (User, User, String) {
        let alice = self.register("alice").await;
        let bob = self.register("bob").await;
        let room = self.create_room(&alice, body).await;
        self.join(&bob, &room).await;
        (alice, bob, room)
    }

    /// `POST /rooms/{roomId}/receipt/{receiptType}/{eventId}`.
    pub async fn receipt(
        &self,
        user: &User,
        room_id: &str,
        kind: &str,
        event_id: &str,
        body: Value,
    ) -> Resp {
        let path = format!("/rooms/{}/receipt/{kind}/{}", enc(room_id), enc(event_id));
        self.post(&path, &user.token, body).await
    }

    /// A long-polling `GET /sync` from `since`, running on its own task; its body.
    pub fn spawn_sync(
        &self,
        user: &User,
        since: &str,
        timeout_ms: u64,
    ) -> tokio::task::JoinHandle<Value> {
        let url = self.url(&format!("/sync?since={}&timeout={timeout_ms}", enc(since)));
        let (client, token) = (self.client.clone(), user.token.clone());
        tokio::spawn(async move {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    }

    /// `GET /sync` with query pairs (values encoded here), asserting success.
    pub async fn sync(&self, user: &User, query: &[(&str, &str)]) -> Value {
        let query: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", enc(v)))
            .collect();
        self.get(&format!("/sync?{}", query.join("&")), &user.token)
            .await
            .assert_ok()
            .clone()
    }
}

/// A sync response's `next_batch`.
pub fn next_batch(sync: &Value) -> String {
    sync["next_batch"].as_str().unwrap().to_owned()
}

/// The event types of a list of events.
pub fn types_of(events: &Value) -> Vec<String> {
    events
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The event IDs of a list of events.
pub fn ids_of(events: &Value) -> Vec<String> {
    events
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["event_id"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `sql` on a test server's database, SQLite or PostgreSQL (to make it look as a
/// database from before a migration would).
pub async fn run_sql(url: &str, sql: &str) {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let conn = rusqlite::Connection::open(path).unwrap();
        // The server may be writing: wait for its transaction rather than fail.
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        conn.execute_batch(sql).unwrap();
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::raw_sql(sql).execute(&pool).await.unwrap();
    }
}
