//! The storage port for profiles (`profile.yaml`): display name, avatar and custom fields,
//! one row per field with its value as JSON.

use async_trait::async_trait;

use crate::StoreResult;

/// The outcome of setting a profile field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileWrite {
    Done,
    /// The profile would be larger than allowed (field names and values counted).
    TooLarge,
}

#[async_trait]
pub trait ProfileStore: Send + Sync {
    /// The user's fields as `(field, JSON value)`; `None` when the user does not exist.
    async fn profile(&self, user_id: &str) -> StoreResult<Option<Vec<(String, String)>>>;

    /// Sets one field, unless the profile would then exceed `max_bytes`.
    async fn set_profile_field(
        &self,
        user_id: &str,
        field: &str,
        value: &str,
        max_bytes: u64,
    ) -> StoreResult<ProfileWrite>;

    async fn delete_profile_field(&self, user_id: &str, field: &str) -> StoreResult<()>;

    /// `POST /user_directory/search`: active users whose localpart or display name contains
    /// `term` (case-insensitively), among those joined to a room `searcher` is joined to or to
    /// a room that is public (join rule `public`, or history `world_readable`); with
    /// `all_users`, among every user. Prefix matches first, then users with a profile, then by
    /// user ID; at most `limit`.
    async fn search_user_directory(
        &self,
        searcher: &str,
        term: &str,
        limit: u32,
        all_users: bool,
    ) -> StoreResult<Vec<DirectoryEntry>>;
}

/// A user found in the directory, with the profile's `displayname` and `avatar_url` as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryEntry {
    pub user_id: String,
    pub displayname: Option<String>,
    pub avatar_url: Option<String>,
}

/// `LIKE` patterns (escape character `\`) for a directory search: `(contains, prefix,
/// JSON-string prefix)`, lower-cased like the columns they are compared with.
pub(crate) fn directory_patterns(term: &str) -> (String, String, String) {
    let mut escaped = String::with_capacity(term.len());
    for c in term.to_lowercase().chars() {
        if matches!(c, '\\' | '%' | '_') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    (
        format!("%{escaped}%"),
        format!("{escaped}%"),
        format!("\"{escaped}%"),
    )
}

/// The display name a new account starts with: its localpart, as the reference server does.
pub(crate) fn default_displayname(user_id: &str) -> String {
    let localpart = user_id
        .strip_prefix('@')
        .and_then(|rest| rest.split(':').next())
        .unwrap_or(user_id);
    serde_json::Value::String(localpart.to_owned()).to_string()
}
