//! Push rules (`pushrules.yaml`): the user's ruleset, as `GET /pushrules/`, the
//! `m.push_rules` account data and initial `/sync` show it, and its changes ([`edit`]).
//!
//! Every user starts with the server-default rules of the current spec, taken from ruma
//! (`Ruleset::server_default`) rather than a copy written by hand. ruma follows the current
//! spec, which dropped the legacy body-text mention rules (`.m.rule.contains_display_name`,
//! `.m.rule.contains_user_name`, `.m.rule.roomnotif`) in favour of the `m.mentions` rules:
//! those are the rules Myelin serves. A ruleset the user changed lives in the `m.push_rules`
//! account data, which clients cannot write directly (405); it is read with the current
//! defaults merged in (PR-34), so a server upgrade that brings new defaults reaches every user
//! while keeping what they changed of the old ones.

pub mod edit;
pub mod eval;
pub mod gateway;
pub mod notifications;
pub mod pushers;

use ruma_common::{UserId, push::Ruleset};
use serde_json::{Value, json};

use crate::{Services, account_data::TOMBSTONE, error::Result};

/// The account-data type that carries the user's push rules.
pub const PUSH_RULES: &str = "m.push_rules";

/// The user's ruleset: what is stored in `m.push_rules`, or the server defaults.
pub async fn ruleset(services: &Services, user_id: &str) -> Result<Value> {
    let stored = services
        .store
        .get_account_data(user_id, None, PUSH_RULES)
        .await?;
    Ok(match load(stored.as_deref(), user_id) {
        Some(ruleset) => to_json(&ruleset),
        None => server_default(user_id),
    })
}

/// A stored `m.push_rules` content as a ruleset with the current defaults merged in; `None`
/// for a user who never changed a rule (or an ID that cannot have rules).
pub(crate) fn load(stored: Option<&str>, user_id: &str) -> Option<Ruleset> {
    let user = <&UserId>::try_from(user_id).ok()?;
    let stored = stored.filter(|c| *c != TOMBSTONE)?;
    let mut content: Value = serde_json::from_str(stored).ok()?;
    let global = content.get_mut("global").map(Value::take)?;
    let mut ruleset: Ruleset = match serde_json::from_value(global) {
        Ok(ruleset) => ruleset,
        Err(err) => {
            tracing::warn!(%user_id, error = %err, "stored push rules unreadable; serving the defaults");
            return None;
        }
    };
    ruleset.update_with_server_default(Ruleset::server_default(user));
    Some(ruleset)
}

/// A ruleset as clients see it: all five kinds, even empty ones (PR-05).
pub(crate) fn to_json(ruleset: &Ruleset) -> Value {
    let mut rules = serde_json::to_value(ruleset).unwrap_or_else(|_| json!({}));
    if let Value::Object(kinds) = &mut rules {
        for kind in KINDS {
            kinds.entry(kind).or_insert_with(|| json!([]));
        }
    }
    rules
}

/// The server-default ruleset of the current spec for this user.
pub fn server_default(user_id: &str) -> Value {
    to_json(&default_ruleset(user_id))
}

/// The same as a ruleset; empty for an ID that cannot have rules (every user ID reaching
/// here was validated at registration).
pub(crate) fn default_ruleset(user_id: &str) -> Ruleset {
    <&UserId>::try_from(user_id)
        .map(Ruleset::server_default)
        .unwrap_or_default()
}

/// The rule kinds of a ruleset, in the order of evaluation.
const KINDS: [&str; 5] = ["override", "content", "room", "sender", "underride"];

/// The content of the `m.push_rules` account-data event: `{"global": ruleset}`.
pub async fn account_data_content(services: &Services, user_id: &str) -> Result<Value> {
    Ok(json!({ "global": ruleset(services, user_id).await? }))
}

/// That content for a user who never changed a rule.
pub fn default_account_data_content(user_id: &str) -> Value {
    json!({ "global": server_default(user_id) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_spec_order_and_name_the_user() {
        let rules = server_default("@alice:example.org");
        let ids = |kind: &str| -> Vec<String> {
            rules[kind]
                .as_array()
                .unwrap_or_else(|| panic!("{kind} is not a list: {rules}"))
                .iter()
                .map(|r| r["rule_id"].as_str().unwrap_or_default().to_owned())
                .collect()
        };
        assert_eq!(
            ids("override").first().map(String::as_str),
            Some(".m.rule.master")
        );
        assert!(ids("override").contains(&".m.rule.is_user_mention".to_owned()));
        assert_eq!(
            ids("underride").last().map(String::as_str),
            Some(".m.rule.encrypted")
        );
        for kind in ["content", "room", "sender"] {
            assert!(rules[kind].is_array(), "{kind}: {rules}");
        }
        assert!(rules.to_string().contains("@alice:example.org"));
    }
}

/// Deletes read notifications older than `push.keep_read_notifications_days`, at start and
/// every hour: without it every notified member's row of every event stays for ever.
pub async fn prune(services: std::sync::Weak<Services>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let Some(services) = services.upgrade() else {
            return;
        };
        let days = services.config.push.keep_read_notifications_days;
        let before = crate::now_ms() - (days.saturating_mul(86_400_000)) as i64;
        match services.store.prune_read_notifications(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "pruned read notifications"),
            Err(err) => tracing::warn!(error = %err, "pruning read notifications failed"),
        }
    }
}
