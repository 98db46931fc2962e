//! Domain errors. Each variant is one outcome a client can tell apart; the API layer maps them
//! to a status and an `errcode` in exactly one place.

use std::borrow::Cow;

use myelin_store::StoreError;

use crate::uia::UiaChallenge;

type Msg = Cow<'static, str>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("missing access token")]
    MissingToken,
    #[error("unknown access token")]
    UnknownToken,
    /// 401 `M_UNKNOWN_TOKEN` with `soft_logout: true`: the token expired (or a refresh token
    /// is no longer valid); the client may log in again and keep its device.
    #[error("soft logged out")]
    SoftLoggedOut,
    /// 401 `M_USER_LOCKED` with `soft_logout: true`: an admin locked the account.
    #[error("user locked")]
    UserLocked,
    /// 403 `M_USER_SUSPENDED`: an admin suspended the account, which may read but not act.
    #[error("user suspended")]
    UserSuspended,
    #[error("forbidden: {0}")]
    Forbidden(Msg),
    #[error("guest access forbidden")]
    GuestAccessForbidden,
    #[error("not found: {0}")]
    NotFound(Msg),
    #[error("bad json: {0}")]
    BadJson(Msg),
    #[error("not json: {0}")]
    NotJson(Msg),
    #[error("missing parameter: {0}")]
    MissingParam(Msg),
    #[error("invalid parameter: {0}")]
    InvalidParam(Msg),
    /// The request or the content to store is too large: 413.
    #[error("too large: {0}")]
    TooLarge(Msg),
    /// A field of the request is longer than allowed: 400 `M_TOO_LARGE`.
    #[error("field too long: {0}")]
    FieldTooLong(Msg),
    #[error("user in use")]
    UserInUse,
    /// 404 `M_UNRECOGNIZED`: a feature this server has switched off.
    #[error("unrecognized: {0}")]
    Unrecognized(Msg),
    /// 502 `M_UNKNOWN`: a remote server the request needed did not answer well.
    #[error("upstream failed: {0}")]
    UpstreamFailed(Msg),
    /// 409 `M_CANNOT_OVERWRITE_MEDIA`: the created media ID has its content already.
    #[error("media already uploaded")]
    CannotOverwriteMedia,
    /// 504 `M_NOT_YET_UPLOADED`: a created media ID whose content has not arrived in time.
    #[error("media not yet uploaded")]
    NotYetUploaded,
    /// 400 `M_WEAK_PASSWORD`.
    #[error("weak password: {0}")]
    WeakPassword(Msg),
    /// 403 `M_USER_DEACTIVATED`: the account exists, reserved, but can never be used again.
    #[error("user deactivated")]
    UserDeactivated,
    /// 400 `M_THREEPID_MEDIUM_NOT_SUPPORTED`: this server binds no third-party identifiers.
    #[error("third-party identifiers are not supported: {0}")]
    ThreepidMediumNotSupported(Msg),
    /// 400 `M_THREEPID_NOT_FOUND`: no account has this third-party identifier.
    #[error("third-party identifier not found")]
    ThreepidNotFound,
    #[error("invalid username: {0}")]
    InvalidUsername(Msg),
    #[error("exclusive: {0}")]
    Exclusive(Msg),
    #[error("appservice login unsupported")]
    AppserviceLoginUnsupported,
    #[error("unknown device")]
    UnknownDevice,
    #[error("unsupported room version: {0}")]
    UnsupportedRoomVersion(Msg),
    /// `createRoom`'s alias is taken.
    #[error("room alias in use")]
    RoomInUse,
    /// The sender already annotated the event with this key: 400 `M_DUPLICATE_ANNOTATION`.
    #[error("duplicate annotation")]
    DuplicateAnnotation,
    /// `PUT /directory/room/{roomAlias}` of a taken alias: 409 `M_UNKNOWN`.
    #[error("room alias exists")]
    AliasInUse,
    /// A login's device ID that is one of the user's cross-signing keys: 400 `M_FORBIDDEN`,
    /// as the reference server answers (DD-08).
    #[error("device ID in use")]
    DeviceIdInUse,
    /// A join, invite or knock of a room the operator blocked: 403 `M_UNKNOWN`, as the
    /// reference server answers.
    #[error("room blocked")]
    RoomBlocked,
    /// `createRoom`'s parameters imply a state the room's rules refuse: 400.
    #[error("invalid room state: {0}")]
    InvalidRoomState(Msg),
    /// A canonical alias that does not point to the room (ST-08).
    #[error("bad alias: {0}")]
    BadAlias(Msg),
    #[error("rate limited for {retry_after_ms} ms")]
    LimitExceeded { retry_after_ms: u64 },
    /// A server-controlled account-data type (`m.fully_read`, `m.push_rules`): 405.
    #[error("server-controlled account data type")]
    ServerControlledType(Msg),
    /// A request the server does not understand (400 `M_UNKNOWN`), e.g. a bad login type.
    #[error("unknown: {0}")]
    Unknown(Msg),
    /// A profile field name over 255 bytes: 400 `M_KEY_TOO_LARGE`.
    #[error("key too large: {0}")]
    KeyTooLarge(Msg),
    /// A profile over 64 KiB: 400 `M_PROFILE_TOO_LARGE`.
    #[error("profile too large: {0}")]
    ProfileTooLarge(Msg),
    /// A signature that does not verify (`M_INVALID_SIGNATURE`).
    #[error("{0}")]
    InvalidSignature(Msg),
    /// The invitee blocks invites (`m.invite_permission_config`): 403 `M_INVITE_BLOCKED`.
    #[error("invite blocked")]
    InviteBlocked,
    /// A key-backup write to a version that is not the current one: 403 with the current.
    #[error("wrong room keys version; current is {0}")]
    WrongRoomKeysVersion(String),
    /// The server failed; the message is logged, never sent.
    #[error("internal: {0}")]
    Internal(Msg),
    #[error("user-interactive authentication required")]
    Uia(Box<UiaChallenge>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub fn forbidden(msg: impl Into<Msg>) -> Error {
    Error::Forbidden(msg.into())
}

pub fn not_found(msg: impl Into<Msg>) -> Error {
    Error::NotFound(msg.into())
}

pub fn bad_json(msg: impl Into<Msg>) -> Error {
    Error::BadJson(msg.into())
}

pub fn invalid_param(msg: impl Into<Msg>) -> Error {
    Error::InvalidParam(msg.into())
}

pub fn missing_param(msg: impl Into<Msg>) -> Error {
    Error::MissingParam(msg.into())
}

pub fn too_large(msg: impl Into<Msg>) -> Error {
    Error::TooLarge(msg.into())
}

/// A rate limiter refused: try again after `wait` (at least a millisecond, so clients never
/// see `retry_after_ms: 0`).
pub fn limit_exceeded(wait: std::time::Duration) -> Error {
    Error::LimitExceeded {
        retry_after_ms: wait.as_millis().max(1) as u64,
    }
}

pub fn field_too_long(msg: impl Into<Msg>) -> Error {
    Error::FieldTooLong(msg.into())
}
