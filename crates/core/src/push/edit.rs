//! Changing push rules (`pushrules.yaml`): one rule, its `enabled` flag or its actions.
//!
//! Every change is a read-modify-write of the user's whole ruleset in one unit of work on the
//! user, so two changes at once (Cinny sends a rule and its `enabled` together, PR-35) both
//! stay. ruma's `Ruleset` does the placing (`before`/`after`, a new rule first among the
//! user's rules of its kind, an updated one keeping its `enabled`, PR-14, PR-20); the new
//! ruleset goes out as `m.push_rules` account data, which wakes the user's syncs (PR-28).

use ruma_common::{
    OwnedRoomId, OwnedUserId,
    push::{
        Action, InsertPushRuleError, NewConditionalPushRule, NewPatternedPushRule, NewPushRule,
        NewSimplePushRule, PushCondition, RemovePushRuleError, RuleKind, Ruleset,
    },
};
use serde_json::{Map, Value, json};

use super::{PUSH_RULES, default_ruleset, load, to_json};
use crate::{
    Error, Services,
    auth::Requester,
    error::{Result, bad_json, invalid_param, missing_param, not_found},
};

fn rule_not_found() -> Error {
    not_found("Unknown push rule")
}

/// A path's scope and kind (PR-09: a bad one is 400, not a router 404).
pub fn parse_kind(scope: &str, kind: &str) -> Result<RuleKind> {
    if scope != "global" {
        return Err(invalid_param("The only push rule scope is global"));
    }
    Ok(match kind {
        "override" => RuleKind::Override,
        "underride" => RuleKind::Underride,
        "sender" => RuleKind::Sender,
        "room" => RuleKind::Room,
        "content" => RuleKind::Content,
        _ => return Err(invalid_param(format!("Unknown push rule kind {kind}"))),
    })
}

fn kind_name(kind: &RuleKind) -> &'static str {
    match kind {
        RuleKind::Override => "override",
        RuleKind::Underride => "underride",
        RuleKind::Sender => "sender",
        RuleKind::Room => "room",
        _ => "content",
    }
}

/// `GET /pushrules/global/{kind}/{ruleId}`.
pub async fn get_rule(
    services: &Services,
    requester: &Requester,
    kind: &RuleKind,
    rule_id: &str,
) -> Result<Value> {
    let ruleset = super::ruleset(services, &requester.user_id).await?;
    ruleset[kind_name(kind)]
        .as_array()
        .and_then(|rules| rules.iter().find(|r| r["rule_id"] == rule_id))
        .cloned()
        .ok_or_else(rule_not_found)
}

/// `GET /pushrules/global/{kind}/{ruleId}/{enabled|actions}`.
pub async fn get_attribute(
    services: &Services,
    requester: &Requester,
    kind: &RuleKind,
    rule_id: &str,
    attribute: &str,
) -> Result<Value> {
    if !matches!(attribute, "enabled" | "actions") {
        return Err(invalid_param(format!(
            "Unknown push rule attribute {attribute}"
        )));
    }
    let rule = get_rule(services, requester, kind, rule_id).await?;
    Ok(json!({ attribute: rule[attribute] }))
}

/// PR-16: `notify`, tweaks, and the historical `dont_notify` and `coalesce` (kept, never
/// notifying); anything else is refused, which ruma alone would accept silently.
fn actions(value: Option<&Value>) -> Result<Vec<Action>> {
    let Some(Value::Array(items)) = value else {
        return Err(missing_param("Missing required field: actions (a list)"));
    };
    for item in items {
        let known = match item {
            Value::String(s) => matches!(s.as_str(), "notify" | "dont_notify" | "coalesce"),
            Value::Object(tweak) => tweak.get("set_tweak").is_some_and(Value::is_string),
            _ => false,
        };
        if !known {
            return Err(invalid_param(format!("Unknown push rule action {item}")));
        }
    }
    serde_json::from_value(Value::Array(items.clone()))
        .map_err(|e| invalid_param(format!("Invalid actions: {e}")))
}

fn new_rule(kind: &RuleKind, rule_id: &str, body: &Map<String, Value>) -> Result<NewPushRule> {
    let actions = actions(body.get("actions"))?;
    let conditions = || -> Result<Vec<PushCondition>> {
        // PR-10: the reference server and the test suites require them.
        let conditions = body
            .get("conditions")
            .ok_or_else(|| missing_param("Missing required field: conditions"))?;
        serde_json::from_value(conditions.clone())
            .map_err(|e| bad_json(format!("Invalid conditions: {e}")))
    };
    Ok(match kind {
        RuleKind::Override => NewPushRule::Override(NewConditionalPushRule::new(
            rule_id.to_owned(),
            conditions()?,
            actions,
        )),
        RuleKind::Underride => NewPushRule::Underride(NewConditionalPushRule::new(
            rule_id.to_owned(),
            conditions()?,
            actions,
        )),
        RuleKind::Content => {
            let Some(Value::String(pattern)) = body.get("pattern") else {
                return Err(missing_param("Missing required field: pattern"));
            };
            NewPushRule::Content(NewPatternedPushRule::new(
                rule_id.to_owned(),
                pattern.clone(),
                actions,
            ))
        }
        RuleKind::Room => {
            let room = OwnedRoomId::try_from(rule_id)
                .map_err(|_| invalid_param("A room rule's ID is a room ID"))?;
            NewPushRule::Room(NewSimplePushRule::new(room, actions))
        }
        _ => {
            let user = OwnedUserId::try_from(rule_id)
                .map_err(|_| invalid_param("A sender rule's ID is a user ID"))?;
            NewPushRule::Sender(NewSimplePushRule::new(user, actions))
        }
    })
}

/// Runs `change` on the user's ruleset and stores the result, in one unit of work.
async fn modify(
    services: &Services,
    user_id: &str,
    change: impl FnOnce(&mut Ruleset) -> Result<()> + Send + 'static,
) -> Result<()> {
    let user = user_id.to_owned();
    services
        .detached(move |services| async move {
            let mut tx = services.store.begin(&user).await?;
            let stored = tx
                .account_data_among(None, &[PUSH_RULES.to_owned()])
                .await?;
            let mut ruleset = load(stored.first().map(|(_, c)| c.as_str()), &user)
                .unwrap_or_else(|| default_ruleset(&user));
            change(&mut ruleset)?;
            let content = json!({ "global": to_json(&ruleset) }).to_string();
            tx.put_account_data(None, PUSH_RULES, &content).await?;
            tx.commit().await?;
            services.push_recipients.forget(&user);
            services.notifier.wake(&user);
            Ok(())
        })
        .await
}

/// `PUT /pushrules/global/{kind}/{ruleId}?before=&after=`.
pub async fn put_rule(
    services: &Services,
    requester: &Requester,
    kind: RuleKind,
    rule_id: &str,
    before: Option<String>,
    after: Option<String>,
    body: Map<String, Value>,
) -> Result<()> {
    if rule_id.is_empty() {
        return Err(invalid_param("A push rule needs an ID"));
    }
    let rule = new_rule(&kind, rule_id, &body)?;
    // PR-19: with both, the rule goes next to `before`, as the spec says.
    let after = after.filter(|_| before.is_none());
    modify(services, &requester.user_id, move |ruleset| {
        ruleset
            .insert(rule, after.as_deref(), before.as_deref())
            .map_err(|err| match err {
                InsertPushRuleError::UnknownRuleId => {
                    Error::Unknown("before/after rule not found".into())
                }
                other => invalid_param(other.to_string()),
            })
    })
    .await
}

/// `DELETE /pushrules/global/{kind}/{ruleId}`.
pub async fn delete_rule(
    services: &Services,
    requester: &Requester,
    kind: RuleKind,
    rule_id: &str,
) -> Result<()> {
    let rule_id = rule_id.to_owned();
    modify(services, &requester.user_id, move |ruleset| {
        ruleset.remove(kind, &rule_id).map_err(|err| match err {
            RemovePushRuleError::ServerDefault => {
                invalid_param("Server-default rules cannot be deleted")
            }
            _ => rule_not_found(),
        })
    })
    .await
}

/// `PUT /pushrules/global/{kind}/{ruleId}/{enabled|actions}` (PR-24, PR-25): on user rules
/// and server-default ones alike.
pub async fn put_attribute(
    services: &Services,
    requester: &Requester,
    kind: RuleKind,
    rule_id: &str,
    attribute: &str,
    body: Map<String, Value>,
) -> Result<()> {
    let rule_id = rule_id.to_owned();
    match attribute {
        "enabled" => {
            let Some(Value::Bool(enabled)) = body.get("enabled") else {
                return Err(invalid_param("enabled must be a boolean"));
            };
            let enabled = *enabled;
            modify(services, &requester.user_id, move |ruleset| {
                ruleset
                    .set_enabled(kind, &rule_id, enabled)
                    .map_err(|_| rule_not_found())
            })
            .await
        }
        "actions" => {
            let actions = actions(body.get("actions"))?;
            modify(services, &requester.user_id, move |ruleset| {
                ruleset
                    .set_actions(kind, &rule_id, actions)
                    .map_err(|_| rule_not_found())
            })
            .await
        }
        _ => Err(invalid_param(format!(
            "Unknown push rule attribute {attribute}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::super::KINDS;
    use super::*;

    #[test]
    fn every_kind_is_named_both_ways() {
        for name in KINDS {
            let kind = parse_kind("global", name).unwrap_or(RuleKind::Content);
            assert_eq!(kind_name(&kind), name);
        }
        assert!(parse_kind("device", "room").is_err());
        assert!(parse_kind("global", "not_a_template").is_err());
    }
}
