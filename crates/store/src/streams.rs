//! The ordered streams `/sync` reads, the positions readers are bounded by, and the
//! wake-ups another process's writes send.

/// The ordered streams `/sync` reads. Each has its own counter and watermark on every
/// backend. New streams are appended to [`Stream::ALL`]: a stream's place there is its place
/// in sync tokens, and its index tags its positions in PostgreSQL's in-flight locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    AccountData,
    /// Every room event, membership changes included (see [`crate::RoomStore`]).
    RoomEvents,
    /// Changes of a user's devices or keys (see [`crate::E2eeStore`]).
    DeviceLists,
    /// Messages to devices, one position per send request.
    ToDevice,
    /// Read receipts (see [`crate::EphemeralStore`]).
    Receipts,
    /// Changes of a room's typing list.
    Typing,
    /// Changes of a user's presence state or status message (see [`crate::PresenceStore`]).
    Presence,
}

impl Stream {
    pub const ALL: [Stream; 7] = [
        Stream::AccountData,
        Stream::RoomEvents,
        Stream::DeviceLists,
        Stream::ToDevice,
        Stream::Receipts,
        Stream::Typing,
        Stream::Presence,
    ];

    /// The stream's row in `stream_positions`.
    pub const fn name(self) -> &'static str {
        match self {
            Stream::AccountData => "account_data",
            Stream::RoomEvents => "room_events",
            Stream::DeviceLists => "device_lists",
            Stream::ToDevice => "to_device",
            Stream::Receipts => "receipts",
            Stream::Typing => "typing",
            Stream::Presence => "presence",
        }
    }

    pub const fn index(self) -> usize {
        match self {
            Stream::AccountData => 0,
            Stream::RoomEvents => 1,
            Stream::DeviceLists => 2,
            Stream::ToDevice => 3,
            Stream::Receipts => 4,
            Stream::Typing => 5,
            Stream::Presence => 6,
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// A change made elsewhere that waiting syncs should look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wakeup {
    User(String),
    /// Something happened in this room: its members look.
    Room(String),
    /// This user's devices changed: the user and everyone sharing a room with them look.
    RoomMates(String),
    /// Changes may have been missed (the notification connection was lost): everyone looks.
    All,
}

/// Committed positions of every stream. Everything at or below a position is visible to
/// readers; nothing above it has been acknowledged yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamPositions([u64; Stream::ALL.len()]);

impl StreamPositions {
    pub fn get(&self, stream: Stream) -> u64 {
        self.0[stream.index()]
    }

    pub fn set(&mut self, stream: Stream, pos: u64) {
        self.0[stream.index()] = pos;
    }

    pub fn with(mut self, stream: Stream, pos: u64) -> Self {
        self.set(stream, pos);
        self
    }
}
