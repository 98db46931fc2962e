//! URL previews (`GET /_matrix/client/v1/media/preview_url`): the OpenGraph data of a web
//! page, its image stored as media of this server.
//!
//! Off by default (`media.url_preview.enabled`): the server fetches what a user names. The
//! fetch itself is the binary's ([`UrlFetcher`]); it refuses every address that is not public
//! (loopback, private ranges, link-local...), also after redirects and whatever DNS answers,
//! unless `media.url_preview.allow_private` says otherwise, and reads at most
//! `media.url_preview.max_bytes`. Previews are kept in memory for an hour per URL.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, OnceLock, PoisonError},
};

use regex::Regex;
use serde_json::{Map, Value, json};

use super::{MEDIA_ID_LEN, Upload};
use crate::{
    Error, Services,
    error::{Result, forbidden, invalid_param},
    ids,
};

/// How long a preview is served from memory.
const CACHE_MS: i64 = 3_600_000;
const CACHE_ENTRIES: usize = 1_000;

/// What a fetch brought back.
#[derive(Debug)]
pub struct Fetched {
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// Why a fetch brought nothing.
#[derive(Debug)]
pub enum FetchError {
    /// The URL, or a redirect, points at an address that is not public.
    Refused(String),
    Failed(String),
}

/// Fetches a URL for a preview, following at most a few redirects, checking every hop.
pub trait UrlFetcher: Send + Sync {
    fn fetch(
        &self,
        url: String,
        max_bytes: u64,
    ) -> Pin<Box<dyn Future<Output = Result<Fetched, FetchError>> + Send>>;
}

/// The fetcher and the previews made lately.
#[derive(Default)]
pub struct Previews {
    fetcher: OnceLock<Arc<dyn UrlFetcher>>,
    cache: Mutex<HashMap<String, (Value, i64)>>,
}

impl Previews {
    /// Installs the HTTP client; without one no preview is made.
    pub fn set_fetcher(&self, fetcher: Arc<dyn UrlFetcher>) {
        let _ = self.fetcher.set(fetcher);
    }

    fn cached(&self, url: &str, now_ms: i64) -> Option<Value> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache
            .get(url)
            .filter(|(_, at)| now_ms - at < CACHE_MS)
            .map(|(preview, _)| preview.clone())
    }

    fn keep(&self, url: &str, preview: &Value, now_ms: i64) {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= CACHE_ENTRIES {
            cache.retain(|_, (_, at)| now_ms - *at < CACHE_MS);
            if cache.len() >= CACHE_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(url.to_owned(), (preview.clone(), now_ms));
    }
}

fn fetch_error(err: FetchError) -> Error {
    match err {
        FetchError::Refused(why) => forbidden(format!("Not previewed: {why}")),
        FetchError::Failed(why) => Error::UpstreamFailed(format!("Could not fetch: {why}").into()),
    }
}

/// `GET /_matrix/client/v1/media/preview_url?url=`.
pub async fn preview_url(services: &Services, url: &str) -> Result<Value> {
    let config = &services.config.media.url_preview;
    if !config.enabled {
        return Err(Error::Unrecognized(
            "URL previews are disabled on this server".into(),
        ));
    }
    let parsed = url::Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .ok_or_else(|| invalid_param("url must be an http or https URL"))?;
    let now = crate::now_ms();
    if let Some(preview) = services.previews.cached(parsed.as_str(), now) {
        return Ok(preview);
    }
    let fetcher = services
        .previews
        .fetcher
        .get()
        .cloned()
        .ok_or_else(|| Error::Internal("no URL fetcher installed".into()))?;
    let page = fetcher
        .fetch(parsed.to_string(), config.max_bytes)
        .await
        .map_err(fetch_error)?;
    let essence = essence(page.content_type.as_deref());
    let mut preview = Map::new();
    if essence.starts_with("image/") {
        store_image(services, page, &mut preview).await?;
    } else if essence == "text/html" || essence == "application/xhtml+xml" {
        let html = String::from_utf8_lossy(&page.body);
        let tags = open_graph(&html);
        let image = tags
            .get("og:image")
            .and_then(Value::as_str)
            .map(str::to_owned);
        for (key, value) in tags {
            if key != "og:image" && !key.starts_with("og:image:") {
                preview.insert(key, value);
            }
        }
        if let Some(image_url) = image.and_then(|i| parsed.join(&i).ok()) {
            // A page whose image cannot be had is still previewed, without it.
            match fetcher.fetch(image_url.to_string(), config.max_bytes).await {
                Ok(image) if essence_of(&image).starts_with("image/") => {
                    store_image(services, image, &mut preview).await?;
                }
                Ok(_) => {}
                Err(err) => tracing::debug!(error = ?err, "preview image not fetched"),
            }
        }
    }
    let preview = Value::Object(preview);
    services.previews.keep(parsed.as_str(), &preview, now);
    Ok(preview)
}

fn essence(content_type: Option<&str>) -> String {
    content_type
        .and_then(|c| c.split(';').next())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn essence_of(fetched: &Fetched) -> String {
    essence(fetched.content_type.as_deref())
}

/// Stores a fetched image as media of this server and describes it in the preview.
async fn store_image(
    services: &Services,
    image: Fetched,
    preview: &mut Map<String, Value>,
) -> Result<()> {
    let content_type = essence_of(&image);
    let dimensions = image::ImageReader::new(std::io::Cursor::new(&image.body))
        .with_guessed_format()
        .ok()
        .and_then(|r| r.into_dimensions().ok());
    let size = image.body.len();
    // Previews belong to no user, so no user's quota pays for them.
    let mut upload = Upload::system(
        services,
        ids::random_alnum(MEDIA_ID_LEN),
        Some(content_type.clone()),
    )
    .await?;
    upload.write(&image.body).await?;
    let uri = upload.finish(services).await?;
    preview.insert("og:image".into(), json!(uri));
    preview.insert("og:image:type".into(), json!(content_type));
    preview.insert("matrix:image:size".into(), json!(size));
    if let Some((width, height)) = dimensions {
        preview.insert("og:image:width".into(), json!(width));
        preview.insert("og:image:height".into(), json!(height));
    }
    Ok(())
}

fn meta_pattern() -> &'static Regex {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    PATTERN.get_or_init(|| {
        Regex::new(r#"(?is)<meta\s[^>]*>"#).unwrap_or_else(|_| unreachable!("the pattern is valid"))
    })
}

fn attribute_pattern() -> &'static Regex {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    PATTERN.get_or_init(|| {
        Regex::new(r#"(?is)([a-z:_-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')"#)
            .unwrap_or_else(|_| unreachable!("the pattern is valid"))
    })
}

fn title_pattern() -> &'static Regex {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    PATTERN.get_or_init(|| {
        Regex::new(r"(?is)<title[^>]*>(.*?)</title>")
            .unwrap_or_else(|_| unreachable!("the pattern is valid"))
    })
}

/// The few entities page titles and descriptions use.
fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
}

/// The page's `og:*` meta tags (first of each), with the `<title>` and the description meta
/// tag standing in for a missing `og:title` and `og:description`.
fn open_graph(html: &str) -> Map<String, Value> {
    let mut tags = Map::new();
    let mut description = None;
    for meta in meta_pattern().find_iter(html) {
        let mut attributes: HashMap<String, String> = HashMap::new();
        for found in attribute_pattern().captures_iter(meta.as_str()) {
            let value = found.get(2).or(found.get(3)).map_or("", |m| m.as_str());
            attributes.insert(found[1].to_ascii_lowercase(), unescape(value.trim()));
        }
        let Some(content) = attributes.get("content").filter(|c| !c.is_empty()) else {
            continue;
        };
        let key = attributes
            .get("property")
            .or_else(|| attributes.get("name"))
            .map(|k| k.to_ascii_lowercase());
        match key.as_deref() {
            Some(key) if key.starts_with("og:") && key.len() < 64 => {
                tags.entry(key.to_owned())
                    .or_insert_with(|| Value::String(content.clone()));
            }
            Some("description") => description = description.or(Some(content.clone())),
            _ => {}
        }
    }
    if !tags.contains_key("og:title")
        && let Some(title) = title_pattern().captures(html)
    {
        let title = unescape(title[1].trim());
        if !title.is_empty() {
            tags.insert("og:title".into(), Value::String(title));
        }
    }
    if let Some(description) = description {
        tags.entry("og:description")
            .or_insert(Value::String(description));
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_graph_tags_with_fallbacks() {
        let html = r#"<html><head><title>Plain &amp; simple</title>
            <meta property="og:description" content="A &quot;quoted&quot; page">
            <META NAME='description' content='ignored, og wins'>
            <meta property="og:image" content="/cat.png" />
            <meta content="Site" property="og:site_name"></head></html>"#;
        let tags = open_graph(html);
        assert_eq!(tags["og:title"], "Plain & simple");
        assert_eq!(tags["og:description"], "A \"quoted\" page");
        assert_eq!(tags["og:image"], "/cat.png");
        assert_eq!(tags["og:site_name"], "Site");
    }
}
