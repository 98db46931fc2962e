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
}

/// The display name a new account starts with: its localpart, as the reference server does.
pub(crate) fn default_displayname(user_id: &str) -> String {
    let localpart = user_id
        .strip_prefix('@')
        .and_then(|rest| rest.split(':').next())
        .unwrap_or(user_id);
    serde_json::Value::String(localpart.to_owned()).to_string()
}
