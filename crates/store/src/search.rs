//! Full-text search over room events (`search.yaml`), with the database's own engine: FTS5
//! on SQLite, `tsvector` on PostgreSQL, both splitting words without stemming so that the
//! two answer the same queries.
//!
//! Each searchable event's text is indexed with its append ([`crate::NewEvent::search`]);
//! a redaction removes the redacted event's text in the same transaction.

use async_trait::async_trait;

use crate::{StoreResult, StoredEvent};

/// The text of an event to index, under the key it came from (`content.body`,
/// `content.name`, `content.topic`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchText {
    pub key: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    /// Words, each matched as a prefix; an event must match all of them. Letters and digits
    /// only (`core` splits the search term).
    pub words: Vec<String>,
    pub rooms: Vec<String>,
    pub keys: Vec<String>,
    /// Most relevant first; else most recent first.
    pub by_rank: bool,
    pub offset: usize,
    pub limit: usize,
    /// No events after this position.
    pub upto: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    pub event: StoredEvent,
    /// Higher is more relevant.
    pub rank: f64,
}

#[async_trait]
pub trait SearchStore: Send + Sync {
    /// A page of matching events, and how many match in all.
    async fn search(&self, query: SearchQuery) -> StoreResult<(Vec<SearchHit>, u64)>;
}
