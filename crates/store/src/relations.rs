//! Relations between events (`m.relates_to`): threads, edits, references and annotations.
//!
//! Each event that relates to another is recorded with its append
//! ([`crate::NewEvent::relation`]), in the same transaction. Readers only ever see children
//! that are not redacted (a redaction strips `m.relates_to`, so a redacted child relates to
//! nothing) and that are at or before the position they may read up to.

use async_trait::async_trait;

use crate::{StoreResult, StoredEvent};

/// What an event's `m.relates_to` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub parent: String,
    pub rel_type: String,
    /// An annotation's `key`.
    pub key: Option<String>,
}

/// One page of the children of some events (`/relations`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationsQuery {
    pub room_id: String,
    pub parents: Vec<String>,
    pub rel_type: Option<String>,
    pub event_type: Option<String>,
    /// Going forward: children after this position; backward: at or before it.
    pub from: Option<u64>,
    /// Going forward: children at or before this position; backward: after it.
    pub to: Option<u64>,
    pub backward: bool,
    pub limit: usize,
    /// The last position the reader may see.
    pub upto: u64,
    /// Senders left out (the reader's ignored users).
    pub ignored: Vec<String>,
}

/// The `m.thread` aggregation of one root, before serving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadSummary {
    pub root: String,
    pub count: u64,
    pub latest: StoredEvent,
    /// Whether the asking user sent one of the replies (the root is `core`'s to check).
    pub participated: bool,
}

/// A child for the `m.replace` and `m.reference` aggregations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelatedChild {
    pub parent: String,
    pub rel_type: String,
    pub event: StoredEvent,
}

#[async_trait]
pub trait RelationStore: Send + Sync {
    /// Children of `parents` in the room, oldest first going forward, newest first going
    /// backward.
    async fn relations(&self, query: RelationsQuery) -> StoreResult<Vec<StoredEvent>>;

    /// The IDs of the children of `parents` in the room (to follow relations further).
    async fn child_ids(
        &self,
        room_id: &str,
        parents: &[String],
        upto: u64,
    ) -> StoreResult<Vec<String>>;

    /// Thread summaries of those of `roots` that have replies, leaving out replies from
    /// `ignored` senders.
    async fn thread_summaries(
        &self,
        room_id: &str,
        roots: &[String],
        user_id: &str,
        ignored: &[String],
        upto: u64,
    ) -> StoreResult<Vec<ThreadSummary>>;

    /// The children of `parents` with one of `rel_types`, but those from `ignored` senders.
    async fn related_children(
        &self,
        room_id: &str,
        parents: &[String],
        rel_types: &[&str],
        ignored: &[String],
        upto: u64,
    ) -> StoreResult<Vec<RelatedChild>>;

    /// Thread roots of the room with their latest reply's position, latest first, those
    /// whose latest reply is before `before` when given; with `participant`, only threads
    /// they started or replied in.
    async fn threads(
        &self,
        room_id: &str,
        participant: Option<&str>,
        before: Option<u64>,
        upto: u64,
        limit: usize,
    ) -> StoreResult<Vec<(String, u64)>>;

    /// Whether the sender already annotated `parent` with this type and key (RL-06).
    async fn annotation_exists(
        &self,
        parent: &str,
        sender: &str,
        event_type: &str,
        key: &str,
    ) -> StoreResult<bool>;
}
