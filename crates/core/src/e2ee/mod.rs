//! End-to-end encryption, server side (`keys.yaml`, `to_device.yaml`): device keys, one-time
//! and fallback keys, device lists and to-device messages. The server never reads a key: it
//! keeps what clients upload, hands it out, and tells every client when a user's devices
//! changed. Cross-signing keys ([`cross_signing`]) are kept and served the same way.
//!
//! Who learns of a change is one question, [`notify_device_change`]: the user and everyone
//! sharing a joined room with them (the spec's "users who share a room"; unencrypted rooms
//! count, as every test suite expects, DL-09).

pub mod backup;
pub mod cross_signing;
pub mod dehydrated;
mod keys;
pub mod signatures;
mod to_device;

pub(crate) use keys::counts_json;
pub use keys::{changes, claim, query, upload};
pub use to_device::{MAX_PER_SYNC, send};

use crate::Services;

/// One-time keys kept per device: the newest, as vodozemac keeps the private halves of its
/// newest 100 only (KU-18); older ones could never be used.
pub const MAX_ONE_TIME_KEYS: u64 = 100;

/// Wakes the long-polls of `user_id` and of everyone sharing a room with them, after a
/// change of the user's devices has committed (DL-12).
pub async fn notify_device_change(services: &Services, user_id: &str) {
    crate::sync::wake_room_mates(services, user_id).await;
}
