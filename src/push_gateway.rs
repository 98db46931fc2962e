//! The HTTP client that delivers notifications to push gateways (see
//! `myelin_core::push::gateway`). The URL's host is resolved here and every address checked
//! before the request goes out: a user names the URL, so without the check the server could
//! be made to call its own network (PG-04). The request is then pinned to the checked
//! addresses, so a second lookup cannot answer differently.

use std::{future::Future, net::IpAddr, pin::Pin, time::Duration};

use myelin_core::push::gateway::GatewayClient;
use serde_json::Value;

pub struct HttpGateway {
    allow_private: bool,
}

impl HttpGateway {
    pub fn new(allow_private: bool) -> Self {
        Self { allow_private }
    }
}

/// Loopback, private, link-local, unique-local, unspecified, broadcast and documentation
/// ranges: nothing a public gateway lives in.
fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

async fn send(allow_private: bool, url: String, body: String) -> Result<Value, String> {
    let parsed = url::Url::parse(&url).map_err(|e| format!("bad gateway URL: {e}"))?;
    let host = parsed
        .host_str()
        .ok_or("gateway URL without a host")?
        .to_owned();
    let port = parsed
        .port_or_known_default()
        .ok_or("gateway URL without a port")?;
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| format!("resolving {host}: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("{host} has no address"));
    }
    if !allow_private && addrs.iter().any(|a| is_internal(a.ip())) {
        return Err(format!(
            "{host} resolves to an internal address; push.allow_private_gateways is off"
        ));
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .resolve_to_addrs(&host, &addrs)
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("gateway answered {status}"));
    }
    Ok(response.json::<Value>().await.unwrap_or(Value::Null))
}

impl GatewayClient for HttpGateway {
    fn post(
        &self,
        url: String,
        body: String,
    ) -> Pin<Box<dyn Future<Output = Result<Value, String>> + Send>> {
        Box::pin(send(self.allow_private, url, body))
    }
}
