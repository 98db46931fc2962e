//! The HTTP face of Myelin: routes, extractors, and Matrix errors. No business logic lives
//! here; every handler calls one function of `myelin_core`.

use std::sync::Arc;

use myelin_core::Services;

mod admin;
mod admin_room_delete;
pub mod client;
pub mod error;
pub mod extract;
mod health;
mod middleware;

pub use middleware::{enable_access_log, enable_metrics};
mod path;
mod router;
mod server_keys;

/// Shared state: the services, and the base URL clients should use (for `.well-known` and
/// the login response).
#[derive(Clone)]
pub struct AppState(pub Arc<Services>, pub Arc<str>);

/// Builds the application's router.
pub fn router(services: Arc<Services>, base_url: &str) -> axum::Router {
    router::routes(AppState(services, base_url.into()))
}
