//! Requests this server makes to URLs its users name (push gateways, URL previews). The host
//! is resolved here and every address checked before a request goes out: without the check
//! the server could be made to call its own network. Each request is then pinned to the
//! checked addresses, so a second lookup cannot answer differently, and redirects are never
//! followed blindly (callers that follow them check every hop).

use std::{net::IpAddr, time::Duration};

/// Why a URL was not requested.
#[derive(Debug)]
pub enum Refusal {
    /// Its host is, or resolves to, an address that is not public.
    Internal(String),
    /// Anything else: a bad URL, a failed lookup.
    Failed(String),
}

/// Loopback, private, link-local, unique-local, unspecified, broadcast, documentation and
/// shared (CGNAT) ranges: nothing a public service lives in.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || v4.octets()[0] == 0
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// A client for one request to `url`, pinned to the host's checked addresses, with no
/// redirects followed.
pub async fn pinned_client(
    url: &url::Url,
    allow_private: bool,
    timeout: Duration,
) -> Result<reqwest::Client, Refusal> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Refusal::Failed(format!(
            "{} is not an http(s) URL",
            url.scheme()
        )));
    }
    let host = url
        .host_str()
        .ok_or_else(|| Refusal::Failed("URL without a host".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| Refusal::Failed("URL without a port".into()))?;
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| Refusal::Failed(format!("resolving {host}: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(Refusal::Failed(format!("{host} has no address")));
    }
    if !allow_private && addrs.iter().any(|a| is_internal(a.ip())) {
        return Err(Refusal::Internal(format!(
            "{host} is, or resolves to, an address that is not public"
        )));
    }
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .resolve_to_addrs(&host, &addrs)
        .user_agent(concat!("Myelin/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Refusal::Failed(e.to_string()))
}
