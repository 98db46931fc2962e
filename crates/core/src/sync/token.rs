//! The opaque `since`/`next_batch` token: `m1.` followed by one position per stream, in the
//! order of [`Stream::ALL`], separated by dots (`m1.42.7.3.9.4.2.5`: account data, room events,
//! device lists, to-device messages, receipts, typing, presence).
//!
//! Why a stream missing from a token may start at 0: a token lists only the streams that
//! existed when it was issued. A stream added later (device lists, to-device messages, room
//! events) is appended to `Stream::ALL`, and an older token parses with position 0 for it.
//! That is exact, not a guess, because no data of a new stream predates the stream: every
//! position it ever hands out is above 0 and was written after the old token was issued, so
//! reading that stream from 0 delivers exactly what the client has not seen. Keep it true:
//! a new stream must start empty at 0 (no backfilled history with positions), and streams are
//! only ever appended, never reordered or removed.

use myelin_store::{Stream, StreamPositions};

use crate::error::{Result, invalid_param};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncToken(StreamPositions);

const TOKEN_PREFIX: &str = "m1.";

impl SyncToken {
    pub fn parse(token: &str) -> Result<Self> {
        let invalid = || invalid_param("Invalid since token");
        let rest = token.strip_prefix(TOKEN_PREFIX).ok_or_else(invalid)?;
        let mut parts = rest.split('.');
        let mut positions = StreamPositions::default();
        for stream in Stream::ALL {
            let pos = match parts.next() {
                None => 0,
                Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                    p.parse().map_err(|_| invalid())?
                }
                Some(_) => return Err(invalid()),
            };
            positions.set(stream, pos);
        }
        if parts.next().is_some() {
            return Err(invalid());
        }
        Ok(Self(positions))
    }

    pub fn from_positions(positions: StreamPositions) -> Self {
        Self(positions)
    }

    pub fn get(&self, stream: Stream) -> u64 {
        self.0.get(stream)
    }

    pub fn positions(&self) -> StreamPositions {
        self.0
    }

    pub fn set(&mut self, stream: Stream, pos: u64) {
        self.0.set(stream, pos);
    }

    /// Whether any stream has moved past `earlier`.
    pub fn is_ahead_of(&self, earlier: &SyncToken) -> bool {
        Stream::ALL
            .into_iter()
            .any(|s| self.get(s) > earlier.get(s))
    }
}

impl std::fmt::Display for SyncToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(TOKEN_PREFIX)?;
        for (i, stream) in Stream::ALL.into_iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{}", self.get(stream))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(account_data: u64) -> SyncToken {
        SyncToken::from_positions(
            StreamPositions::default().with(Stream::AccountData, account_data),
        )
    }

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        let t = token(42);
        assert_eq!(t.to_string(), "m1.42.0.0.0.0.0.0");
        // A token from before the presence stream existed still parses.
        assert_eq!(SyncToken::parse("m1.42.0.0.0.0.0").ok(), Some(t));
        assert_eq!(SyncToken::parse(&t.to_string()).ok(), Some(t));
        assert_eq!(SyncToken::parse("m1.").ok(), None);
        // A token from before the room stream existed still parses (RS-41).
        assert_eq!(SyncToken::parse("m1.7").ok(), Some(token(7)));
        let both = SyncToken::parse("m1.7.9").ok();
        assert_eq!(both.map(|t| t.get(Stream::RoomEvents)), Some(9));
        for bad in [
            "",
            "7",
            "m1.x",
            "m1.-1",
            "m1.1.2.3.4.5.6.7.8",
            "m1.99999999999999999999999",
            "s72_0",
        ] {
            assert!(SyncToken::parse(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn a_token_is_ahead_when_any_stream_moved() {
        assert!(token(2).is_ahead_of(&token(1)));
        assert!(!token(1).is_ahead_of(&token(1)));
        assert!(!token(1).is_ahead_of(&token(2)));
    }
}
