//! The bench's HTTP client: one HTTP/1.1 keep-alive connection per worker, the server
//! instances under test, and the account calls every scenario starts with.

use std::sync::{Arc, atomic::Ordering};

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full};
use hyper::{
    Method, Request,
    body::Bytes,
    client::conn::http1::{self, SendRequest},
};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;

pub(crate) const PASSWORD: &str = "bench-password-0123456789";

/// One HTTP/1.1 keep-alive connection. A server may close it while it sits idle (Myelin
/// closes connections that send no request within `limits.header_read_timeout_ms`); like a
/// real client, the next request then opens a new one.
pub(crate) struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: String,
    addr: String,
}

/// The server instances under test; new connections go to each in turn.
#[derive(Clone)]
pub(crate) struct Target {
    /// (address, host header) per instance.
    pub(crate) endpoints: Arc<Vec<(String, String)>>,
    next: Arc<std::sync::atomic::AtomicUsize>,
}

impl Target {
    pub(crate) fn parse(urls: &[String]) -> anyhow::Result<Self> {
        let mut endpoints = Vec::new();
        for url in urls {
            let rest = url
                .strip_prefix("http://")
                .context("--url must start with http://")?;
            let host = rest.trim_end_matches('/').to_owned();
            if host.contains('/') {
                bail!("--url must be a base URL without a path");
            }
            let addr = if host.contains(':') {
                host.clone()
            } else {
                format!("{host}:80")
            };
            endpoints.push((addr, host));
        }
        if endpoints.is_empty() {
            bail!("--url is required");
        }
        Ok(Self {
            endpoints: Arc::new(endpoints),
            next: Arc::default(),
        })
    }

    pub(crate) async fn connect(&self) -> anyhow::Result<Conn> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.connect_to(i).await
    }

    /// A connection to instance `i` (modulo the number of instances).
    pub(crate) async fn connect_to(&self, i: usize) -> anyhow::Result<Conn> {
        let (addr, host) = &self.endpoints[i % self.endpoints.len()];
        Ok(Conn {
            sender: handshake(addr).await?,
            host: host.clone(),
            addr: addr.clone(),
        })
    }

    pub(crate) fn last(&self) -> usize {
        self.endpoints.len() - 1
    }
}

async fn handshake(addr: &str) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

impl Conn {
    pub(crate) async fn call(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Bytes>,
    ) -> anyhow::Result<(u16, Bytes)> {
        let content_type = body.as_ref().map(|_| "application/json");
        self.send(method, path, token, content_type, body).await
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Option<Bytes>,
    ) -> anyhow::Result<(u16, Bytes)> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let request = request.body(Full::new(body.unwrap_or_default()))?;
        if self.sender.ready().await.is_err() {
            self.sender = handshake(&self.addr).await?;
            self.sender.ready().await?;
        }
        let response = self.sender.send_request(request).await?;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok((status, bytes))
    }

    /// A request with a body of any content type (a media upload).
    pub(crate) async fn upload(
        &mut self,
        path: &str,
        token: &str,
        content_type: &str,
        body: Bytes,
    ) -> anyhow::Result<(u16, Bytes)> {
        self.send(
            Method::POST,
            path,
            Some(token),
            Some(content_type),
            Some(body),
        )
        .await
    }

    pub(crate) async fn json(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let body = body.map(|b| Bytes::from(b.to_string()));
        let (status, bytes) = self.call(method, path, token, body).await?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }
}

#[derive(Clone)]
pub(crate) struct User {
    pub(crate) user_id: String,
    pub(crate) localpart: String,
    pub(crate) token: String,
}

pub(crate) const API: &str = "/_matrix/client/v3";

pub(crate) async fn register(conn: &mut Conn, localpart: &str) -> anyhow::Result<User> {
    let mut body = json!({"username": localpart, "password": PASSWORD,
                          "initial_device_display_name": "bench"});
    let (status, first) = conn
        .json(Method::POST, &format!("{API}/register"), None, Some(&body))
        .await?;
    if status != 401 {
        bail!("register {localpart}: expected 401, got {status} {first}");
    }
    body["auth"] = json!({"type": "m.login.dummy", "session": first["session"]});
    let (status, done) = conn
        .json(Method::POST, &format!("{API}/register"), None, Some(&body))
        .await?;
    if status != 200 {
        bail!("register {localpart}: {status} {done}");
    }
    Ok(User {
        user_id: done["user_id"].as_str().context("user_id")?.to_owned(),
        localpart: localpart.to_owned(),
        token: done["access_token"]
            .as_str()
            .context("access_token")?
            .to_owned(),
    })
}

pub(crate) async fn login(conn: &mut Conn, user: &User) -> anyhow::Result<(u16, Value)> {
    let body = json!({"type": "m.login.password",
                      "identifier": {"type": "m.id.user", "user": user.localpart},
                      "password": PASSWORD, "initial_device_display_name": "bench"});
    conn.json(Method::POST, &format!("{API}/login"), None, Some(&body))
        .await
}

pub(crate) async fn login_token(conn: &mut Conn, user: &User) -> anyhow::Result<String> {
    let (status, body) = login(conn, user).await?;
    if status != 200 {
        bail!("login {}: {status} {body}", user.localpart);
    }
    Ok(body["access_token"]
        .as_str()
        .context("access_token")?
        .to_owned())
}
