//! The binary as operators run it: durability under SIGKILL, graceful SIGTERM, the `user
//! create` command, config errors, and secrets kept out of the logs.

#![allow(clippy::unwrap_used)]

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_myelin");
const PASSWORD: &str = "p4ssw0rd-that-must-never-be-logged";

struct Server {
    child: Child,
    base: String,
    log: Arc<Mutex<Vec<String>>>,
}

fn command(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env("RUST_LOG", "debug")
        .env("MYELIN_LISTEN", "127.0.0.1:0")
        .env("MYELIN_REGISTRATION__ENABLED", "true")
        .env("MYELIN_PASSWORD__MEMORY_KIB", "256")
        .env("MYELIN_PASSWORD__ITERATIONS", "1");
    cmd
}

fn spawn(dir: &Path) -> Server {
    spawn_with(dir, &[])
}

/// Starts `myelin serve` in `dir` with extra environment on top of [`command`]'s.
fn spawn_with(dir: &Path, env: &[(&str, &str)]) -> Server {
    let mut cmd = command(dir);
    cmd.envs(env.iter().copied()).arg("serve");
    spawn_command(cmd)
}

/// Starts `cmd` (a `myelin serve`) and waits for its start-up line.
fn spawn_command(mut cmd: Command) -> Server {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let log = log.clone();
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest.split(',').next().unwrap_or_default().to_owned();
                    let _ = tx.send(addr);
                }
                log.lock().unwrap().push(line);
            }
        });
    }
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("server did not start: {:?}", log.lock().unwrap()));
    Server {
        child,
        base: format!("http://{addr}/_matrix/client/v3"),
        log,
    }
}

async fn call(
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, url).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn register(server: &Server, name: &str) -> String {
    let url = format!("{}/register", server.base);
    let body = json!({"username": name, "password": PASSWORD});
    let (_, first) = call(reqwest::Method::POST, url.clone(), None, body.clone()).await;
    let mut body = body;
    body["auth"] = json!({"type": "m.login.dummy", "session": first["session"]});
    let (status, done) = call(reqwest::Method::POST, url, None, body).await;
    assert_eq!(status, 200, "{done}");
    done["access_token"].as_str().unwrap().to_owned()
}

async fn login(server: &Server, name: &str) -> (u16, Value) {
    call(
        reqwest::Method::POST,
        format!("{}/login", server.base),
        None,
        json!({"type": "m.login.password", "user": name, "password": PASSWORD}),
    )
    .await
}

#[tokio::test]
async fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = spawn(dir.path());
    let token = register(&server, "alice").await;
    let mut acknowledged = Vec::new();
    for i in 0..20 {
        let url = format!("{}/user/@alice:localhost/account_data/t.{i}", server.base);
        let (status, _) = call(reqwest::Method::PUT, url, Some(&token), json!({"n": i})).await;
        assert_eq!(status, 200);
        acknowledged.push(i);
    }
    server.child.kill().unwrap(); // SIGKILL: no shutdown code runs.
    server.child.wait().unwrap();

    let server = spawn(dir.path());
    let (status, body) = login(&server, "alice").await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap();
    for i in acknowledged {
        let url = format!("{}/user/@alice:localhost/account_data/t.{i}", server.base);
        let (status, body) = call(reqwest::Method::GET, url, Some(token), Value::Null).await;
        assert_eq!((status, body), (200, json!({"n": i})));
    }
    let mut child = server.child;
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn sigterm_shuts_down_gracefully_and_secrets_stay_out_of_logs() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn(dir.path());
    let token = register(&server, "bob").await;
    let (status, body) = login(&server, "bob").await;
    assert_eq!(status, 200);
    let second = body["access_token"].as_str().unwrap().to_owned();
    let whoami = format!("{}/account/whoami?access_token={second}", server.base);
    assert_eq!(
        call(reqwest::Method::GET, whoami, None, Value::Null)
            .await
            .0,
        200
    );

    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut child = server.child;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    std::thread::sleep(Duration::from_millis(100));
    let log = server.log.lock().unwrap().join("\n");
    assert!(log.contains("database closed"), "{log}");
    for secret in [PASSWORD, token.as_str(), second.as_str()] {
        assert!(!log.contains(secret), "a secret reached the log");
    }
}

#[tokio::test]
async fn user_create_works_with_registration_closed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), format!("{PASSWORD}\n")).unwrap();
    let out = command(dir.path())
        .env("MYELIN_REGISTRATION__ENABLED", "false")
        .args([
            "user",
            "create",
            "@carol:localhost",
            "--password-file",
            "pw",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("@carol:localhost"));
    // Again: the user exists.
    let again = command(dir.path())
        .args([
            "user",
            "create",
            "@carol:localhost",
            "--password-file",
            "pw",
        ])
        .output()
        .unwrap();
    assert!(!again.status.success());
    // From standard input, with a bad user ID.
    let mut child = command(dir.path())
        .args(["user", "create", "not-a-user-id"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"pw\n").unwrap();
    assert!(!child.wait().unwrap().success());

    let server = spawn_with(dir.path(), &[("MYELIN_REGISTRATION__ENABLED", "false")]);
    let (status, body) = login(&server, "carol").await;
    assert_eq!(status, 200, "{body}");
    let mut child = server.child;
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn bad_config_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("listen = \"nowhere\"\n", "listen"),
        ("server_name = \"bad name!\"\n", "server_name"),
        (
            "[registration]\nenabled = \"yes\"\n",
            "registration.enabled",
        ),
        ("no_such_key = 1\n", "no_such_key"),
        ("[database]\nurl = \"mysql://x\"\n", "database.url"),
        (
            "[limits]\nmax_request_bytes = 10\n",
            "limits.max_request_bytes",
        ),
    ];
    for (toml, key) in cases {
        let file = dir.path().join("myelin.toml");
        std::fs::write(&file, toml).unwrap();
        let out = Command::new(BIN)
            .current_dir(dir.path())
            .args(["serve", "--config"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{toml} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(key), "{toml}: {stderr}");
    }
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("serve") && help.contains("user"), "{help}");
}

/// Runs `myelin` in `dir` with `args` and no `MYELIN_*` environment beyond `env`; returns the
/// exit status and standard error. A command that should fail at start but keeps running
/// fails the test after 10 s instead of hanging it.
fn run_in(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> (std::process::ExitStatus, String) {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("MYELIN_") {
            cmd.env_remove(key);
        }
    }
    let mut child = cmd
        .current_dir(dir)
        .envs(env.iter().copied())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = exit_within(&mut child, Duration::from_secs(10), args);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status, stderr)
}

/// Waits for `child` to exit; kills it and fails the test after `limit`.
fn exit_within(child: &mut Child, limit: Duration, what: &[&str]) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("myelin {what:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn db_copy_from_a_missing_source_fails_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (status, stderr) = run_in(
        dir.path(),
        &[],
        &[
            "db",
            "copy",
            "--from",
            "sqlite://nonexistent/x.db",
            "--to",
            "sqlite://target/y.db",
        ],
    );
    assert!(!status.success(), "{stderr}");
    assert_eq!(
        stderr,
        "error: the source database nonexistent/x.db does not exist\n"
    );
    assert!(!dir.path().join("nonexistent").exists(), "source created");
    assert!(!dir.path().join("target").exists(), "target created");
}

#[test]
fn unknown_config_keys_are_named_with_the_keys_expected() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("myelin.toml");
    let cases = [
        (
            "foo = 1\n",
            "error: unknown key `foo`; expected one of: server_name, listen, public_baseurl, \
             database, registration, password, limits, rate_limits, devices, uia, tokens, sync, \
             rooms, voip, media, push, profile, presence, user_directory, support, metrics, log, \
             appservices, trusted_proxies, workers\n",
        ),
        (
            "[database]\nfoo = 1\n",
            "error: unknown key `database.foo`; expected one of: url, url_file, readers, \
             pool_size, statement_timeout_ms, tls, synchronous\n",
        ),
        (
            "[devices]\non_limit = \"never\"\n",
            "error: invalid configuration key `devices.on_limit`: unknown value `never`; \
             expected one of: refuse, evict_oldest\n",
        ),
    ];
    for (toml, message) in cases {
        std::fs::write(&file, toml).unwrap();
        let (status, stderr) = run_in(dir.path(), &[], &["serve", "--config", "myelin.toml"]);
        assert!(!status.success(), "{toml} was accepted");
        assert_eq!(stderr, message);
    }
}

#[test]
fn public_baseurl_must_be_an_absolute_http_url() {
    let dir = tempfile::tempdir().unwrap();
    for bad in [
        "not a url",
        "/_matrix",
        "matrix.example.org",
        "ftp://matrix.example.org",
        "https://",
        "https://user:secret@matrix.example.org",
        "https://matrix.example.org/?x=1",
        "https://matrix.example.org/#top",
    ] {
        let (status, stderr) = run_in(
            dir.path(),
            &[
                ("MYELIN_PUBLIC_BASEURL", bad),
                ("MYELIN_LISTEN", "127.0.0.1:0"),
            ],
            &["serve"],
        );
        assert!(!status.success(), "{bad} was accepted");
        assert!(
            stderr.starts_with(
                "error: invalid configuration key `public_baseurl`: expected an absolute \
                 http(s) URL such as https://matrix.example.org"
            ),
            "{bad}: {stderr}"
        );
        assert!(!stderr.contains("secret"), "{stderr}");
    }
}

#[test]
fn unreachable_postgres_is_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (status, stderr) = run_in(
        dir.path(),
        &[
            (
                "MYELIN_DATABASE__URL",
                "postgres://postgres:s3cret@127.0.0.1:1/x",
            ),
            ("MYELIN_LISTEN", "127.0.0.1:0"),
        ],
        &["serve"],
    );
    assert!(started.elapsed() < Duration::from_secs(5), "{stderr}");
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("connection refused"), "{stderr}");
    assert!(stderr.contains("127.0.0.1:1"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");
}

/// Kubernetes gives every pod of a Service named `myelin` variables Myelin does not own; the
/// server starts anyway, naming what it ignored. A misspelt key is still refused.
#[tokio::test]
async fn a_pod_like_environment_starts_and_misspelt_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_with(
        dir.path(),
        &[
            ("MYELIN_PORT", "tcp://10.0.0.7:8008"),
            ("MYELIN_PORT_8008_TCP", "tcp://10.0.0.7:8008"),
            ("MYELIN_PORT_8008_TCP_ADDR", "10.0.0.7"),
            ("MYELIN_SERVICE_HOST", "10.0.0.7"),
            ("MYELIN_SERVICE_PORT", "8008"),
        ],
    );
    let base = server
        .base
        .trim_end_matches("/_matrix/client/v3")
        .to_owned();
    let health = reqwest::get(format!("{base}/health")).await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "OK");
    let ready = reqwest::get(format!("{base}/_myelin/ready")).await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["database"], "ok");
    // `myelin healthcheck` asks the same, for images without curl.
    let (status, stderr) = run_in(dir.path(), &[], &["healthcheck", "--url", &base]);
    assert!(status.success(), "{stderr}");
    let (status, stderr) = run_in(
        dir.path(),
        &[],
        &["healthcheck", "--url", "http://127.0.0.1:1"],
    );
    assert!(!status.success());
    assert!(stderr.contains("does not answer"), "{stderr}");
    let warned = server.log.lock().unwrap().iter().any(|line| {
        line.contains("ignoring environment variables")
            && line.contains("MYELIN_PORT, MYELIN_PORT_8008_TCP, MYELIN_PORT_8008_TCP_ADDR")
            && line.contains("MYELIN_SERVICE_HOST")
    });
    assert!(warned, "{:?}", server.log.lock().unwrap());
    let mut server = server;
    server.child.kill().unwrap();
    let _ = server.child.wait();

    let (status, stderr) = run_in(
        dir.path(),
        &[
            ("MYELIN_SERVR_NAME", "example.org"),
            ("MYELIN_LISTEN", "127.0.0.1:0"),
        ],
        &["serve"],
    );
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "MYELIN_SERVR_NAME names no configuration key; did you mean MYELIN_SERVER_NAME?"
        ),
        "{stderr}"
    );
}

/// `log.format = "json"`: one JSON object per line, and one access line per request with
/// its route, status, duration and who made it; tokens never appear (not even one sent in
/// the query string).
#[tokio::test]
async fn json_logs_carry_one_access_line_per_request() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_with(
        dir.path(),
        &[("MYELIN_LOG__FORMAT", "json"), ("RUST_LOG", "info")],
    );
    let token = register(&server, "dora").await;
    let whoami = format!("{}/account/whoami?access_token={token}", server.base);
    let (status, _) = call(reqwest::Method::GET, whoami, None, Value::Null).await;
    assert_eq!(status, 200);
    std::thread::sleep(Duration::from_millis(200));
    let log = server.log.lock().unwrap().clone();
    let lines: Vec<Value> = log
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let access = lines
        .iter()
        .find(|l| {
            l["target"] == "myelin::access" && l["route"] == "/_matrix/client/v3/account/whoami"
        })
        .unwrap_or_else(|| panic!("no access line: {log:?}"));
    assert_eq!(access["status"], 200);
    assert_eq!(access["method"], "GET");
    assert_eq!(access["user_id"], "@dora:localhost");
    assert!(access["device_id"].is_string(), "{access}");
    assert!(access["duration_ms"].is_number(), "{access}");
    assert!(access["request_id"].is_number(), "{access}");
    assert_eq!(access["level"], "INFO");
    for line in &log {
        assert!(!line.contains(&token) && !line.contains(PASSWORD), "{line}");
    }
    let mut server = server;
    server.child.kill().unwrap();
    let _ = server.child.wait();
}

/// SIGHUP applies a changed `registration` while the server runs, refuses a configuration
/// that does not load (the running one stays), and names changes that need a restart.
#[tokio::test]
async fn sighup_reloads_what_can_change_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("myelin.toml");
    std::fs::write(&file, "[registration]\nenabled = false\n").unwrap();
    let mut cmd = command(dir.path());
    cmd.env_remove("MYELIN_REGISTRATION__ENABLED")
        .env("RUST_LOG", "info")
        .args(["serve", "--config"])
        .arg(&file);
    let server = spawn_command(cmd);
    let url = format!("{}/register", server.base);
    let body = json!({"username": "erin", "password": PASSWORD});
    let (status, refused) = call(reqwest::Method::POST, url.clone(), None, body.clone()).await;
    assert_eq!(
        (status, refused["errcode"].as_str()),
        (403, Some("M_FORBIDDEN"))
    );

    let hangup = |server: &Server| {
        let pid = server.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-HUP", &pid])
                .status()
                .unwrap()
                .success()
        );
    };
    let wait_for = |server: &Server, needle: &str, count: usize| {
        let started = Instant::now();
        loop {
            let seen = server
                .log
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.contains(needle))
                .count();
            if seen >= count {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no {needle:?} in {:?}",
                server.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    // An appservice registration appears too.
    std::fs::write(
        dir.path().join("bridge.yaml"),
        "id: bridge\nurl: null\nas_token: as_token_of_the_bridge\nhs_token: hs_bridge\n\
         sender_localpart: bridgebot\nnamespaces:\n  users:\n    - regex: '@bridge_.*:localhost'\n      exclusive: true\n",
    )
    .unwrap();
    let whoami = format!("{}/account/whoami", server.base);
    let (status, _) = call(
        reqwest::Method::GET,
        whoami.clone(),
        Some("as_token_of_the_bridge"),
        Value::Null,
    )
    .await;
    assert_eq!(status, 401);
    std::fs::write(
        &file,
        "server_name = \"elsewhere.example\"\nappservices = [\"bridge.yaml\"]\n\
         [registration]\nenabled = true\n",
    )
    .unwrap();
    hangup(&server);
    wait_for(&server, "configuration reloaded", 1);
    let line = server
        .log
        .lock()
        .unwrap()
        .iter()
        .find(|l| l.contains("configuration reloaded"))
        .cloned()
        .unwrap();
    assert!(
        line.contains("applied=[\"registration\", \"appservices\"]"),
        "{line}"
    );
    let (status, me) = call(
        reqwest::Method::GET,
        whoami,
        Some("as_token_of_the_bridge"),
        Value::Null,
    )
    .await;
    assert_eq!(
        (status, me["user_id"].as_str()),
        (200, Some("@bridgebot:localhost"))
    );
    assert!(line.contains("need_restart=[\"server_name\"]"), "{line}");
    let (status, first) = call(reqwest::Method::POST, url.clone(), None, body.clone()).await;
    assert_eq!(status, 401, "{first}");

    // A configuration that does not load leaves the running one in force.
    std::fs::write(&file, "[registration]\nenabled = \"maybe\"\n").unwrap();
    hangup(&server);
    wait_for(&server, "configuration reload refused", 1);
    let (status, _) = call(reqwest::Method::POST, url, None, body).await;
    assert_eq!(status, 401);
    let mut server = server;
    server.child.kill().unwrap();
    let _ = server.child.wait();
}

/// Secrets can come from files (`*_file` keys), so they stay out of the environment and the
/// configuration; a secret set both ways is refused.
#[tokio::test]
async fn secrets_are_read_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("shared_secret");
    std::fs::write(&secret, "a-secret-from-a-file-0123456789\n").unwrap();
    let url = dir.path().join("database_url");
    let db = dir.path().join("from-file.db");
    std::fs::write(&url, format!("sqlite://{}\n", db.display())).unwrap();
    let server = spawn_with(
        dir.path(),
        &[
            (
                "MYELIN_REGISTRATION__SHARED_SECRET_FILE",
                secret.to_str().unwrap(),
            ),
            ("MYELIN_DATABASE__URL_FILE", url.to_str().unwrap()),
        ],
    );
    let base = server
        .base
        .trim_end_matches("/_matrix/client/v3")
        .to_owned();
    let (status, body) = call(
        reqwest::Method::GET,
        format!("{base}/_synapse/admin/v1/register"),
        None,
        Value::Null,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(db.exists(), "the database named in the file was not used");
    let mut server = server;
    server.child.kill().unwrap();
    let _ = server.child.wait();

    let (status, stderr) = run_in(
        dir.path(),
        &[
            (
                "MYELIN_REGISTRATION__SHARED_SECRET_FILE",
                secret.to_str().unwrap(),
            ),
            (
                "MYELIN_REGISTRATION__SHARED_SECRET",
                "another-secret-0123456789",
            ),
            ("MYELIN_LISTEN", "127.0.0.1:0"),
        ],
        &["serve"],
    );
    assert!(!status.success());
    assert!(
        stderr.contains("registration.shared_secret_file"),
        "{stderr}"
    );
    let (status, stderr) = run_in(
        dir.path(),
        &[
            ("MYELIN_REGISTRATION__TOKEN_FILE", "/nonexistent/token"),
            ("MYELIN_LISTEN", "127.0.0.1:0"),
        ],
        &["serve"],
    );
    assert!(!status.success());
    assert!(stderr.contains("registration.token_file"), "{stderr}");
}

/// Under systemd (`NOTIFY_SOCKET`), the server says READY=1 once it serves and STOPPING=1 on
/// SIGTERM.
#[test]
fn systemd_is_told_ready_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let server = spawn_with(dir.path(), &[("NOTIFY_SOCKET", path.to_str().unwrap())]);
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).contains("READY=1"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let n = socket.recv(&mut buf).unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    let mut child = server.child;
    let status = exit_within(&mut child, Duration::from_secs(10), &["serve"]);
    assert!(status.success());
}
