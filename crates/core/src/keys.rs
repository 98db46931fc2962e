//! This server's ed25519 signing key (EV-04, EV-05): made at first start, kept in the
//! database (so it survives restarts and `myelin db copy`), and served, self-signed, at
//! `GET /_matrix/key/v2/server` so that every stored event can be verified.

use base64::{Engine, engine::general_purpose::STANDARD_NO_PAD};
use rand::{Rng, distr::Alphanumeric};
use ruma_common::{CanonicalJsonObject, CanonicalJsonValue};
use ruma_signatures::{Ed25519KeyPair, KeyPair};

use crate::error::{Error, Result};

/// How long a fetched key may be trusted without asking again.
const VALID_FOR_MS: i64 = 7 * 24 * 3600 * 1000;

pub struct SigningKey {
    pair: Ed25519KeyPair,
    /// `ed25519:<version>`.
    key_id: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("SigningKey")
            .field("key_id", &self.key_id)
            .finish()
    }
}

impl SigningKey {
    /// The deployment's key, made now if it has none.
    pub async fn load(store: &dyn myelin_store::Store) -> Result<Self> {
        let version: String = rand::rng()
            .sample_iter(Alphanumeric)
            .take(6)
            .map(char::from)
            .collect();
        let candidate = (
            format!("ed25519:a_{version}"),
            Ed25519KeyPair::generate().to_vec(),
        );
        let (key_id, secret) = store.signing_key(candidate).await?;
        let version = key_id
            .strip_prefix("ed25519:")
            .ok_or_else(|| Error::Internal(format!("unknown key algorithm in {key_id}").into()))?;
        let pair = Ed25519KeyPair::from_der(&secret, version.to_owned())
            .map_err(|e| Error::Internal(format!("stored signing key unreadable: {e}").into()))?;
        Ok(Self { pair, key_id })
    }

    /// A key that lives only in memory (unit tests).
    #[cfg(test)]
    pub(crate) fn ephemeral() -> Self {
        let der = Ed25519KeyPair::generate();
        let pair = Ed25519KeyPair::from_der(&der, "test".to_owned()).expect("a fresh key parses");
        Self {
            pair,
            key_id: "ed25519:test".to_owned(),
        }
    }

    pub fn pair(&self) -> &Ed25519KeyPair {
        &self.pair
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public key, unpadded standard base64 as the spec writes keys.
    pub fn public_base64(&self) -> String {
        STANDARD_NO_PAD.encode(self.pair.public_key())
    }

    /// The body of `GET /_matrix/key/v2/server`, signed by the key itself.
    pub fn server_keys(&self, server_name: &str, now_ms: i64) -> Result<String> {
        let mut verify = CanonicalJsonObject::new();
        verify.insert(
            "key".into(),
            CanonicalJsonValue::String(self.public_base64()),
        );
        let mut keys = CanonicalJsonObject::new();
        keys.insert(self.key_id.clone(), CanonicalJsonValue::Object(verify));
        let mut object = CanonicalJsonObject::new();
        object.insert(
            "server_name".into(),
            CanonicalJsonValue::String(server_name.to_owned()),
        );
        object.insert("verify_keys".into(), CanonicalJsonValue::Object(keys));
        object.insert(
            "old_verify_keys".into(),
            CanonicalJsonValue::Object(CanonicalJsonObject::new()),
        );
        object.insert(
            "valid_until_ts".into(),
            CanonicalJsonValue::Integer(
                js_int::Int::try_from(now_ms + VALID_FOR_MS).unwrap_or(js_int::Int::MAX),
            ),
        );
        ruma_signatures::sign_json(server_name, &self.pair, &mut object)
            .map_err(|e| Error::Internal(format!("signing the key list: {e}").into()))?;
        serde_json::to_string(&object).map_err(|e| Error::Internal(e.to_string().into()))
    }

    /// Signs raw bytes (tests verify stored events with the public key).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_bytes().to_vec()
    }
}
