//! The HTTP client that delivers notifications to push gateways (see
//! `myelin_core::push::gateway`). A user names the URL, so it goes through
//! [`crate::outbound`]: internal addresses are refused unless configured (PG-04).

use std::{future::Future, pin::Pin, time::Duration};

use crate::outbound::Refusal;

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

async fn send(allow_private: bool, url: String, body: String) -> Result<Value, String> {
    let parsed = url::Url::parse(&url).map_err(|e| format!("bad gateway URL: {e}"))?;
    let client = crate::outbound::pinned_client(&parsed, allow_private, Duration::from_secs(30))
        .await
        .map_err(|refusal| match refusal {
            Refusal::Internal(why) => format!("{why}; push.allow_private_gateways is off"),
            Refusal::Failed(why) => why,
        })?;
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
