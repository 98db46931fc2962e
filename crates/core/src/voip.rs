//! `GET /voip/turnServer` (`voip.yaml`): credentials for the TURN servers in the
//! configuration.
//!
//! With a shared secret the credentials are the TURN REST API's: the username is the expiry
//! time and the user ID, the password the base64 HMAC-SHA1 of the username under the secret,
//! which the TURN server checks without asking Myelin. Without TURN servers the answer is
//! `{}`, as the reference server's, and clients call without relaying.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

use crate::{Services, auth::Requester};

pub fn turn_server(services: &Services, requester: &Requester) -> Value {
    let voip = &services.config.voip;
    if voip.turn_uris.is_empty() {
        return json!({});
    }
    let ttl = voip.turn_user_lifetime_secs;
    let (username, password) = match &voip.turn_shared_secret {
        Some(secret) => {
            let expiry = crate::now_ms() / 1000 + ttl as i64;
            let username = format!("{expiry}:{}", requester.user_id);
            let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()) else {
                return json!({});
            };
            mac.update(username.as_bytes());
            let password =
                base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
            (username, password)
        }
        None => match (&voip.turn_username, &voip.turn_password) {
            (Some(user), Some(password)) => (user.clone(), password.clone()),
            _ => return json!({}),
        },
    };
    json!({ "username": username, "password": password, "uris": voip.turn_uris, "ttl": ttl })
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use hmac::{Hmac, Mac};

    /// The TURN REST API's example, as coturn computes it: the password is
    /// base64(HMAC-SHA1(secret, username)).
    #[test]
    fn the_password_is_the_hmac_sha1_of_the_username() {
        let mut mac =
            Hmac::<sha1::Sha1>::new_from_slice(b"north").unwrap_or_else(|_| unreachable!());
        mac.update(b"1443779631:@user:example.com");
        let password =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        // Computed independently: printf %s '1443779631:@user:example.com' |
        //   openssl dgst -sha1 -hmac north -binary | base64
        assert_eq!(password, EXPECTED);
    }

    const EXPECTED: &str = "lamN4QwbavBEEp/krb3yR5mgsEg=";
}
