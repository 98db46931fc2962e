//! Push rules, read side (`pushrules.yaml`): the user's ruleset, as `GET /pushrules/`, the
//! `m.push_rules` account data and initial `/sync` show it.
//!
//! Until the write side of the push-rules API exists, every user has the server-default
//! rules of the current spec, taken from ruma (`Ruleset::server_default`) rather than a copy
//! written by hand. ruma follows the current spec, which dropped the legacy body-text mention
//! rules (`.m.rule.contains_display_name`, `.m.rule.contains_user_name`, `.m.rule.roomnotif`)
//! in favour of the `m.mentions` rules: those are the rules Myelin serves. A ruleset the user
//! changed will live in the `m.push_rules` account data, which clients cannot write directly
//! (405), and is read from there first.

use ruma_common::{UserId, push::Ruleset};
use serde_json::{Value, json};

use crate::{Services, account_data::TOMBSTONE, error::Result};

/// The account-data type that carries the user's push rules.
pub const PUSH_RULES: &str = "m.push_rules";

/// The user's ruleset: what is stored in `m.push_rules`, or the server defaults.
pub async fn ruleset(services: &Services, user_id: &str) -> Result<Value> {
    if let Some(stored) = services
        .store
        .get_account_data(user_id, None, PUSH_RULES)
        .await?
        .filter(|c| c != TOMBSTONE)
        && let Ok(Value::Object(mut content)) = serde_json::from_str::<Value>(&stored)
        && let Some(global) = content.remove("global")
    {
        return Ok(global);
    }
    Ok(server_default(user_id))
}

/// The server-default ruleset of the current spec for this user.
pub fn server_default(user_id: &str) -> Value {
    let mut rules = match <&UserId>::try_from(user_id) {
        Ok(user_id) => serde_json::to_value(Ruleset::server_default(user_id)).unwrap_or_default(),
        // Every user ID reaching here was validated at registration.
        Err(_) => json!({}),
    };
    // ruma leaves empty kinds out; clients (and the reference server) expect all five.
    if let Value::Object(kinds) = &mut rules {
        for kind in KINDS {
            kinds.entry(kind).or_insert_with(|| json!([]));
        }
    }
    rules
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
