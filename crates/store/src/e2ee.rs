//! The storage port for end-to-end encryption: device keys, one-time and fallback keys,
//! device-list changes and to-device messages.
//!
//! Keys are kept as the JSON the client uploaded (KU-10: a typed round trip drops fields such
//! as `dehydrated`). Device-list changes are a stream ([`crate::Stream::DeviceLists`]) with
//! one row per change of a user's devices, written by the backends in the transaction that
//! makes the change: creating a device, renaming it, deleting it, and key uploads that change
//! what `/keys/query` answers. To-device messages are a stream of their own
//! ([`crate::Stream::ToDevice`]), one position per send request.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::{StoreResult, StreamPositions};

/// A one-time or fallback key: `key_id` is the full `<algorithm>:<id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneTimeKey {
    pub algorithm: String,
    pub key_id: String,
    pub json: String,
}

/// A stored fallback key and whether a claim has handed it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackKey {
    pub key: OneTimeKey,
    pub used: bool,
}

/// What `/sync` and `/keys/upload` tell a device about its own keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyCounts {
    /// Unclaimed one-time keys per algorithm (fallback keys not counted, KU-16).
    pub one_time: BTreeMap<String, u64>,
    /// Algorithms of fallback keys no claim has used yet.
    pub unused_fallback: Vec<String>,
}

/// What a device holds for end-to-end encryption, for the operator's view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceKeyState {
    pub device_id: String,
    pub has_device_keys: bool,
    pub counts: KeyCounts,
}

/// A device's uploaded keys, as `/keys/query` serves them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceKeys {
    pub user_id: String,
    pub device_id: String,
    pub json: String,
    pub display_name: Option<String>,
}

/// One device's claim in `/keys/claim`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyClaim {
    pub user_id: String,
    pub device_id: String,
    pub algorithm: String,
}

/// A key handed out by a claim, for the device it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedKey {
    pub user_id: String,
    pub device_id: String,
    pub key: OneTimeKey,
}

/// A to-device message waiting for its device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToDeviceMessage {
    pub pos: u64,
    pub sender: String,
    pub event_type: String,
    pub content: String,
}

/// A `PUT /sendToDevice` request, resolved to local recipients.
#[derive(Debug, Clone)]
pub struct ToDeviceSend {
    pub sender: String,
    /// The sending device, for the transaction ID's scope (empty without one).
    pub sender_device: String,
    /// Method and path, which scope the transaction ID (TD-09).
    pub scope: String,
    pub event_type: String,
    /// `(user, device or None for all of the user's devices, content)`.
    pub messages: Vec<(String, Option<String>, String)>,
    /// Messages kept per device at most; older ones are dropped beyond it.
    pub max_pending: u64,
    pub now_ms: i64,
}

/// What a sync tells one device beyond the rooms: its messages and its key counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceInbox {
    /// Messages in the window, oldest first, at most the limit asked for.
    pub messages: Vec<ToDeviceMessage>,
    /// Whether messages the client acknowledged are still stored.
    pub acknowledged_left: bool,
    pub counts: KeyCounts,
}

/// Users whose devices a user must look at again, and those no longer sharing a room.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceListDelta {
    pub changed: Vec<String>,
    pub left: Vec<String>,
}

/// Everything of end-to-end encryption a deployment keeps, for `myelin db copy`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct E2eeDump {
    /// (user_id, device_id, json)
    pub device_keys: Vec<(String, String, String)>,
    /// (seq, user_id, device_id, key): `seq` keeps the order of uploads (KC-03).
    pub one_time_keys: Vec<(i64, String, String, OneTimeKey)>,
    /// (user_id, device_id, key)
    pub fallback_keys: Vec<(String, String, FallbackKey)>,
    /// (pos, user_id, only_for)
    pub device_list_changes: Vec<(u64, String, Option<String>)>,
    /// (user_id, device_id, message)
    pub to_device: Vec<(String, String, ToDeviceMessage)>,
    pub backups: crate::BackupDump,
    pub cross_signing: Vec<CrossSigningKey>,
    pub signatures: Vec<KeySignature>,
    /// (user_id, device_id, device_data)
    pub dehydrated: Vec<(String, String, String)>,
}

/// A signature uploaded for a device's keys or a master key (see
/// [`E2eeStore::key_signatures`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySignature {
    pub target_user: String,
    /// A device ID, or a master key's public key.
    pub target_key: String,
    pub signer_user: String,
    /// `ed25519:<key>` of the signing key.
    pub signer_key: String,
    pub signature: String,
}

/// A cross-signing key of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrossSigningKey {
    pub user_id: String,
    /// `master`, `self_signing` or `user_signing`.
    pub usage: String,
    /// The public key (unpadded base64).
    pub key_id: String,
    pub json: String,
}

/// The end-to-end-encryption use cases that are not one user's unit of work.
#[async_trait]
pub trait E2eeStore: Send + Sync {
    /// Uploaded device keys of these users: every device with keys for an empty list, else
    /// those listed. Also answers which of the users exist.
    async fn device_keys(
        &self,
        query: Vec<(String, Vec<String>)>,
    ) -> StoreResult<(Vec<DeviceKeys>, Vec<String>)>;

    /// Hands out one key per claim, atomically: the oldest one-time key, else the fallback
    /// key (marked used). A claim nothing satisfies is left out.
    async fn claim_keys(&self, claims: Vec<KeyClaim>) -> StoreResult<Vec<ClaimedKey>>;

    /// Stores a send for every recipient device, with its transaction ID, in one transaction
    /// at one position. `None` when the transaction ID was used already; else the users
    /// who got a message.
    async fn send_to_device(&self, send: ToDeviceSend) -> StoreResult<Option<Vec<String>>>;

    /// A device's messages in `(after, upto]` (at most `limit`), whether any at or below
    /// `after` remain, and its key counts, in one snapshot.
    async fn device_inbox(
        &self,
        user_id: &str,
        device_id: &str,
        after: u64,
        upto: u64,
        limit: u32,
    ) -> StoreResult<DeviceInbox>;

    /// Deletes a device's messages at or below `upto`, which the client acknowledged.
    async fn acknowledge_to_device(
        &self,
        user_id: &str,
        device_id: &str,
        upto: u64,
    ) -> StoreResult<()>;

    /// Device-list changes for `user_id` between two points of the streams (DL-01–DL-08):
    /// `changed` holds users whose devices changed and who share a room with the user now
    /// (and the user), and users who came to share a room; `left` those who shared one
    /// and share none now.
    async fn device_list_delta(
        &self,
        user_id: &str,
        from: StreamPositions,
        upto: StreamPositions,
    ) -> StoreResult<DeviceListDelta>;

    /// The cross-signing keys of these users.
    async fn cross_signing_keys(&self, users: Vec<String>) -> StoreResult<Vec<CrossSigningKey>>;

    /// Uploaded signatures of these users' keys that `viewer` may see: those a user made of
    /// their own keys, and the viewer's own of anyone's.
    async fn key_signatures(
        &self,
        targets: Vec<String>,
        viewer: &str,
    ) -> StoreResult<Vec<KeySignature>>;

    /// Users who share a joined room with `user_id` now, the user included.
    async fn room_mates(&self, user_id: &str) -> StoreResult<Vec<String>>;

    /// The user's dehydrated device (MSC3814), as `(device_id, device_data)`.
    async fn dehydrated_device(&self, user_id: &str) -> StoreResult<Option<(String, String)>>;

    /// What each of the user's devices holds for end-to-end encryption, in one snapshot.
    async fn key_states(&self, user_id: &str) -> StoreResult<Vec<DeviceKeyState>>;
}

/// A unit of work's steps on one user's keys (see [`crate::Txn`]).
#[async_trait]
pub trait KeysTxn: Send {
    async fn device_keys_of(&mut self, device_id: &str) -> StoreResult<Option<String>>;

    /// Replaces the device's keys and records a device-list change.
    async fn put_device_keys(&mut self, device_id: &str, json: &str) -> StoreResult<()>;

    /// The stored one-time keys among these key IDs, as `(key_id, json)`.
    async fn one_time_keys_among(
        &mut self,
        device_id: &str,
        key_ids: &[String],
    ) -> StoreResult<Vec<(String, String)>>;

    /// Adds one-time keys after those stored, then keeps only the newest `keep` of the
    /// device's keys (KU-18).
    async fn add_one_time_keys(
        &mut self,
        device_id: &str,
        keys: Vec<OneTimeKey>,
        keep: u64,
    ) -> StoreResult<()>;

    async fn fallback_keys_of(&mut self, device_id: &str) -> StoreResult<Vec<FallbackKey>>;

    /// Stores a fallback key, unused, replacing the algorithm's earlier one.
    async fn put_fallback_key(&mut self, device_id: &str, key: OneTimeKey) -> StoreResult<()>;

    async fn key_counts(&mut self, device_id: &str) -> StoreResult<KeyCounts>;

    /// The user's cross-signing keys, read under the unit's lock.
    async fn cross_signing_keys_of(&mut self) -> StoreResult<Vec<CrossSigningKey>>;

    /// Stores these cross-signing keys of the user (replacing those of the same usage), and
    /// records a device-list change so every client that shares a room with them looks.
    async fn put_cross_signing_keys(&mut self, keys: Vec<CrossSigningKey>) -> StoreResult<()>;

    /// Stores signatures the user made, and records a device-list change of the user.
    async fn put_key_signatures(&mut self, signatures: Vec<KeySignature>) -> StoreResult<()>;

    /// The user's dehydrated device (MSC3814), as `(device_id, device_data)`.
    async fn dehydrated_device_of(&mut self) -> StoreResult<Option<(String, String)>>;

    /// Makes the device (created in this unit) the user's dehydrated device. Deleting the
    /// device ([`crate::Txn::delete_devices`]) forgets it.
    async fn set_dehydrated_device(
        &mut self,
        device_id: &str,
        device_data: &str,
    ) -> StoreResult<()>;
}

/// The device-list delta of [`E2eeStore::device_list_delta`], for both backends (PostgreSQL
/// spells the parameters `$n`). Parameters: the user, the device-list window `(?2, ?3]`
/// and the room-event window `(?4, ?5]`. Rows are `('c' | 'l', user)`.
///
/// - changed: device changes in the window of the user or of anyone sharing a joined room
///   with the user now, but for changes only one user hears of (DL-04/05); everyone in a room the user joined in the window; everyone who
///   joined one of the user's rooms in the window (a member event whose sender is joined
///   now: a display-name change counts too, which only costs a client one more query).
/// - left: members of rooms the user left in the window, and users whose membership of one
///   of the user's rooms ended in the window, who share no joined room with the user now.
pub(crate) const DEVICE_LIST_DELTA: &str = "
WITH mine AS (SELECT room_id FROM room_members WHERE user_id = ?1 AND membership = 'join'),
mates AS (SELECT DISTINCT b.user_id FROM mine
          JOIN room_members b ON b.room_id = mine.room_id AND b.membership = 'join'),
moved AS (SELECT room_id, membership FROM membership_log
          WHERE user_id = ?1 AND pos > ?4 AND pos <= ?5),
seen AS (SELECT e.room_id, e.state_key AS user_id FROM mine
         JOIN events e ON e.room_id = mine.room_id
         WHERE e.pos > ?4 AND e.pos <= ?5 AND e.event_type = 'm.room.member')
SELECT 'c', c.user_id FROM device_list_changes c
  WHERE c.pos > ?2 AND c.pos <= ?3
    AND ((c.only_for IS NULL AND (c.user_id = ?1 OR c.user_id IN (SELECT user_id FROM mates)))
         OR c.only_for = ?1)
UNION
SELECT 'c', b.user_id FROM moved
  JOIN mine ON mine.room_id = moved.room_id
  JOIN room_members b ON b.room_id = moved.room_id
  WHERE moved.membership = 'join' AND b.membership = 'join' AND b.user_id <> ?1
UNION
SELECT 'c', s.user_id FROM seen s
  JOIN room_members b ON b.room_id = s.room_id AND b.user_id = s.user_id
  WHERE b.membership = 'join' AND s.user_id <> ?1
UNION
SELECT 'l', x.u FROM (
  SELECT b.user_id AS u FROM moved
    JOIN room_members b ON b.room_id = moved.room_id
    WHERE moved.membership IN ('leave', 'ban') AND (b.membership = 'join' OR b.pos > ?4)
  UNION
  SELECT s.user_id FROM seen s
    JOIN room_members b ON b.room_id = s.room_id AND b.user_id = s.user_id
    WHERE b.membership IN ('leave', 'ban')
) x WHERE x.u <> ?1 AND x.u NOT IN (SELECT user_id FROM mates)";

/// Users sharing a joined room with `?1`, the user among them when in any room.
pub(crate) const ROOM_MATES: &str = "
SELECT DISTINCT b.user_id FROM room_members a
  JOIN room_members b ON b.room_id = a.room_id AND b.membership = 'join'
  WHERE a.user_id = ?1 AND a.membership = 'join'";

/// Who hears of an upload of cross-signing keys: everyone, or (a user-signing key alone,
/// DL-04) only its owner.
pub(crate) fn keys_heard_by<'a>(keys: &[CrossSigningKey], owner: &'a str) -> Option<&'a str> {
    keys.iter()
        .all(|k| k.usage == "user_signing")
        .then_some(owner)
}

/// The device-list changes signatures make, as `(user whose keys changed, only for)`: the
/// signer's own keys for everyone; another user's master key, signed by the signer's
/// user-signing key, for the signer alone (DL-05).
pub(crate) fn signature_changes<'a>(
    signatures: &'a [KeySignature],
    signer: &'a str,
) -> Vec<(&'a str, Option<&'a str>)> {
    let mut changes: Vec<(&str, Option<&str>)> = Vec::new();
    for signature in signatures {
        let change = if signature.target_user == signer {
            (signer, None)
        } else {
            (signature.target_user.as_str(), Some(signer))
        };
        if !changes.contains(&change) {
            changes.push(change);
        }
    }
    changes
}

/// Sorts a delta's rows into its two lists.
pub(crate) fn delta_from_rows(rows: impl IntoIterator<Item = (String, String)>) -> DeviceListDelta {
    let mut delta = DeviceListDelta::default();
    for (kind, user) in rows {
        if kind == "c" {
            delta.changed.push(user);
        } else {
            delta.left.push(user);
        }
    }
    delta.changed.sort();
    delta.changed.dedup();
    delta.left.sort();
    delta.left.dedup();
    delta
}
