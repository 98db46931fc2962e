//! Handlers, one module per spec section. Each extracts, calls one `core` function, and maps
//! the result.

pub mod account;
pub mod account_data;
pub mod backup;
pub mod capabilities;
pub mod devices;
pub mod directory;
pub mod keys;
pub mod media;
pub mod membership;
pub mod notifications;
pub mod presence;
pub mod profile;
pub mod push_rules;
pub mod pushers;
pub mod receipts;
pub mod register;
pub mod rooms;
pub mod session;
pub mod sync;
pub mod tags;
pub mod thirdparty;
pub mod typing;
pub mod user_directory;
pub mod versions;
pub mod voip;
