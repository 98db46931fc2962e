//! The HTTP client behind URL previews (`myelin_core::media::preview_url`). Every hop of a
//! redirect chain goes through [`crate::outbound`], so a public page cannot redirect the
//! server into its own network, and at most `max_bytes` of a body are read.

use std::{future::Future, pin::Pin, time::Duration};

use myelin_core::media::{FetchError, Fetched, UrlFetcher};

use crate::outbound::{Refusal, pinned_client};

/// Redirects followed before giving up.
const MAX_REDIRECTS: usize = 5;
const TIMEOUT: Duration = Duration::from_secs(10);

pub struct HttpFetcher {
    allow_private: bool,
}

impl HttpFetcher {
    pub fn new(allow_private: bool) -> Self {
        Self { allow_private }
    }
}

async fn fetch(allow_private: bool, url: String, max_bytes: u64) -> Result<Fetched, FetchError> {
    let mut url = url::Url::parse(&url).map_err(|e| FetchError::Failed(e.to_string()))?;
    for _ in 0..=MAX_REDIRECTS {
        let client = pinned_client(&url, allow_private, TIMEOUT)
            .await
            .map_err(|refusal| match refusal {
                Refusal::Internal(why) => FetchError::Refused(why),
                Refusal::Failed(why) => FetchError::Failed(why),
            })?;
        let mut response = client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| FetchError::Failed(e.to_string()))?;
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .ok_or_else(|| FetchError::Failed(format!("{status} without a location")))?;
            url = url
                .join(location)
                .map_err(|e| FetchError::Failed(format!("bad redirect: {e}")))?;
            continue;
        }
        if !status.is_success() {
            return Err(FetchError::Failed(format!("answered {status}")));
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|c| c.to_str().ok())
            .map(str::to_owned);
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| FetchError::Failed(e.to_string()))?
        {
            let room = (max_bytes as usize).saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if chunk.len() > room {
                // A page is previewed from its beginning; an image cut short is no image.
                if content_type
                    .as_deref()
                    .is_some_and(|c| c.starts_with("image/"))
                {
                    return Err(FetchError::Failed("the image is too large".into()));
                }
                break;
            }
        }
        return Ok(Fetched { content_type, body });
    }
    Err(FetchError::Failed("too many redirects".into()))
}

impl UrlFetcher for HttpFetcher {
    fn fetch(
        &self,
        url: String,
        max_bytes: u64,
    ) -> Pin<Box<dyn Future<Output = Result<Fetched, FetchError>> + Send>> {
        Box::pin(fetch(self.allow_private, url, max_bytes))
    }
}
