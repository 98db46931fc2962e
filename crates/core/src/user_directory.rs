//! The user directory (`users.yaml`): finding people to invite by localpart or display name.
//!
//! The spec's minimum is searched: users sharing a room with the searcher, and users joined
//! to a public room (join rule `public` or history `world_readable`); with
//! `user_directory.search_all_users`, every user. Deactivated accounts are never found.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::{
    Services,
    auth::Requester,
    error::{Result, bad_json, invalid_param, missing_param},
};

/// Results per search when the client names no `limit`, and the most it may ask for.
const DEFAULT_LIMIT: u64 = 10;
const MAX_LIMIT: u64 = 100;
/// The longest search term, in characters.
const MAX_TERM_CHARS: usize = 256;

#[derive(Debug, Serialize)]
pub struct Found {
    pub user_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SearchResults {
    pub results: Vec<Found>,
    pub limited: bool,
}

/// A profile value stored as JSON, when it is a non-empty string.
fn text(json: Option<String>) -> Option<String> {
    match serde_json::from_str(&json?) {
        Ok(Value::String(s)) if !s.is_empty() => Some(s),
        _ => None,
    }
}

/// `POST /user_directory/search`.
pub async fn search(
    services: &Services,
    requester: &Requester,
    body: &Map<String, Value>,
) -> Result<SearchResults> {
    let term = match body.get("search_term") {
        None | Some(Value::Null) => return Err(missing_param("search_term is required")),
        Some(Value::String(term)) => term.trim(),
        Some(_) => return Err(bad_json("search_term must be a string")),
    };
    if term.chars().count() > MAX_TERM_CHARS {
        return Err(invalid_param(format!(
            "search_term is limited to {MAX_TERM_CHARS} characters"
        )));
    }
    let limit = match body.get("limit") {
        None | Some(Value::Null) => DEFAULT_LIMIT,
        Some(Value::Number(n)) => match (n.as_u64(), n.as_i64()) {
            (Some(n), _) => n.min(MAX_LIMIT),
            (None, Some(_)) => return Err(invalid_param("limit must not be negative")),
            _ => return Err(bad_json("limit must be an integer")),
        },
        Some(_) => return Err(bad_json("limit must be an integer")),
    };
    // One more than asked tells whether the list was cut.
    let mut found = services
        .store
        .search_user_directory(
            &requester.user_id,
            term,
            limit as u32 + 1,
            services.config.user_directory.search_all_users,
        )
        .await?;
    let limited = found.len() as u64 > limit;
    found.truncate(limit as usize);
    Ok(SearchResults {
        results: found
            .into_iter()
            .map(|entry| Found {
                user_id: entry.user_id,
                display_name: text(entry.displayname),
                avatar_url: text(entry.avatar_url),
            })
            .collect(),
        limited,
    })
}
