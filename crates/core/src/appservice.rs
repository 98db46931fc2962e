//! Application-service registrations (the standard YAML files) and their namespaces.

use std::{collections::HashMap, path::Path, sync::Arc};

use regex::Regex;
use serde::Deserialize;

use crate::ids::token_hash;

#[derive(Debug, Deserialize)]
struct RegistrationFile {
    id: String,
    #[serde(default)]
    url: Option<String>,
    as_token: String,
    hs_token: String,
    sender_localpart: String,
    #[serde(default)]
    namespaces: Namespaces,
    #[serde(default = "default_true")]
    rate_limited: bool,
    /// MSC4190: the appservice manages its users' devices itself, so it may not log users in.
    #[serde(default, rename = "io.element.msc4190")]
    msc4190: bool,
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Default, Deserialize)]
struct Namespaces {
    #[serde(default)]
    users: Vec<NamespaceEntry>,
}

#[derive(Debug, Deserialize)]
struct NamespaceEntry {
    regex: String,
    #[serde(default)]
    exclusive: bool,
}

/// A loaded registration. The `as_token` itself is not kept, only its hash.
#[derive(Debug)]
pub struct Appservice {
    pub id: String,
    pub url: Option<String>,
    pub sender: String,
    pub rate_limited: bool,
    pub msc4190: bool,
    users: Vec<(Regex, bool)>,
}

impl Appservice {
    /// Whether `user_id` is the sender or falls in one of the user namespaces.
    pub fn is_interested_in(&self, user_id: &str) -> bool {
        user_id == self.sender || self.users.iter().any(|(re, _)| re.is_match(user_id))
    }

    pub fn claims_exclusively(&self, user_id: &str) -> bool {
        self.users
            .iter()
            .any(|(re, exclusive)| *exclusive && re.is_match(user_id))
    }
}

/// Every registration, indexed by the hash of its `as_token`. A reload (SIGHUP) swaps the
/// whole set at once; a request holds the registration it resolved for as long as it runs.
#[derive(Debug, Default)]
pub struct Appservices {
    by_token: std::sync::RwLock<Arc<HashMap<[u8; 32], Arc<Appservice>>>>,
}

impl Appservices {
    /// Loads registration files; the error names the file and the problem.
    pub fn load(paths: &[impl AsRef<Path>], server_name: &str) -> Result<Self, String> {
        let mut by_token = HashMap::new();
        let mut ids = std::collections::HashSet::new();
        for path in paths {
            let path = path.as_ref();
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("appservices: cannot read {}: {e}", path.display()))?;
            let reg: RegistrationFile = serde_norway::from_str(&text)
                .map_err(|e| format!("appservices: {}: {e}", path.display()))?;
            let (service, hash) = build(reg, server_name)
                .map_err(|e| format!("appservices: {}: {e}", path.display()))?;
            if !ids.insert(service.id.clone()) {
                return Err(format!(
                    "appservices: {}: duplicate id `{}`",
                    path.display(),
                    service.id
                ));
            }
            if by_token.insert(hash, Arc::new(service)).is_some() {
                return Err(format!(
                    "appservices: {}: as_token is used by another registration",
                    path.display()
                ));
            }
        }
        Ok(Self {
            by_token: std::sync::RwLock::new(Arc::new(by_token)),
        })
    }

    fn current(&self) -> Arc<HashMap<[u8; 32], Arc<Appservice>>> {
        self.by_token
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn by_token(&self, token: &str) -> Option<Arc<Appservice>> {
        self.current().get(&token_hash(token)).cloned()
    }

    pub fn all(&self) -> Vec<Arc<Appservice>> {
        self.current().values().cloned().collect()
    }

    /// The appservice that claims `user_id` exclusively, if any.
    pub fn exclusive_owner(&self, user_id: &str) -> Option<Arc<Appservice>> {
        self.current()
            .values()
            .find(|s| s.claims_exclusively(user_id))
            .cloned()
    }

    /// Puts the registrations of `other` in force (a reload); how many there are now.
    pub fn replace(&self, other: Appservices) -> usize {
        let new = other.current();
        let count = new.len();
        *self
            .by_token
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = new;
        count
    }
}

fn build(reg: RegistrationFile, server_name: &str) -> Result<(Appservice, [u8; 32]), String> {
    if reg.id.is_empty() {
        return Err("`id` must not be empty".into());
    }
    if reg.as_token.len() < 16 {
        return Err("`as_token` must be at least 16 characters".into());
    }
    if reg.hs_token.is_empty() {
        return Err("`hs_token` must not be empty".into());
    }
    let sender_localpart = crate::ids::new_localpart(&reg.sender_localpart, server_name)
        .map_err(|_| "`sender_localpart` is not a valid localpart".to_owned())?;
    let mut users = Vec::new();
    for entry in reg.namespaces.users {
        // Namespaces match the whole user ID, as the spec's examples assume.
        let re = Regex::new(&format!("^(?:{})$", entry.regex))
            .map_err(|e| format!("`namespaces.users` regex `{}`: {e}", entry.regex))?;
        users.push((re, entry.exclusive));
    }
    let hash = token_hash(&reg.as_token);
    Ok((
        Appservice {
            id: reg.id,
            url: reg.url,
            sender: crate::ids::user_id(&sender_localpart, server_name),
            rate_limited: reg.rate_limited,
            msc4190: reg.msc4190,
            users,
        },
        hash,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_parses_and_matches_namespace() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bridge.yaml");
        std::fs::write(
            &path,
            "id: bridge\nurl: null\nas_token: as_token_0123456789\nhs_token: hs\n\
             sender_localpart: bridgebot\nrate_limited: false\nio.element.msc4190: true\n\
             namespaces:\n  users:\n    - regex: '@bridge_.*:localhost'\n      exclusive: true\n",
        )
        .expect("write");
        let services = Appservices::load(&[path], "localhost").expect("load");
        let service = services.by_token("as_token_0123456789").expect("by token");
        assert!(service.msc4190);
        assert!(!service.rate_limited);
        assert_eq!(service.sender, "@bridgebot:localhost");
        assert!(service.is_interested_in("@bridge_x:localhost"));
        assert!(service.is_interested_in("@bridgebot:localhost"));
        assert!(!service.is_interested_in("@alice:localhost"));
        assert!(!service.is_interested_in("@bridge_x:localhost.evil"));
        assert!(services.exclusive_owner("@bridge_y:localhost").is_some());
        assert!(services.by_token("wrong").is_none());
    }

    #[test]
    fn bad_registration_names_the_problem() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bad.yaml");
        std::fs::write(
            &path,
            "id: x\nas_token: short\nhs_token: h\nsender_localpart: b\n",
        )
        .expect("write");
        let err = Appservices::load(&[path], "localhost").expect_err("must fail");
        assert!(err.contains("as_token"), "{err}");
    }
}
