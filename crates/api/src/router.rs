//! The table of contents: every route Myelin serves.

use axum::{
    Router,
    routing::{MethodRouter, delete, get, post, put},
};

use crate::{AppState, client::*, error, middleware};

/// Client-Server API routes, each registered under `v3` and the legacy `r0` prefix.
fn client_routes() -> Vec<(&'static str, MethodRouter<AppState>)> {
    vec![
        ("/register", post(register::register)),
        ("/register/available", get(register::get_username_available)),
        ("/login", get(session::get_login_flows).post(session::login)),
        ("/refresh", post(session::refresh)),
        ("/logout", post(session::logout)),
        ("/logout/all", post(session::logout_all)),
        ("/account/whoami", get(session::whoami)),
        ("/account/password", post(account::change_password)),
        ("/account/deactivate", post(account::deactivate)),
        (
            "/account/3pid",
            get(account::get_threepids).post(account::change_threepid),
        ),
        ("/account/3pid/add", post(account::change_threepid)),
        ("/account/3pid/bind", post(account::change_threepid)),
        ("/account/3pid/delete", post(account::change_threepid)),
        ("/account/3pid/unbind", post(account::change_threepid)),
        (
            "/account/3pid/email/requestToken",
            post(account::request_token),
        ),
        (
            "/account/3pid/msisdn/requestToken",
            post(account::request_token),
        ),
        ("/register/email/requestToken", post(account::request_token)),
        (
            "/register/msisdn/requestToken",
            post(account::request_token),
        ),
        (
            "/account/password/email/requestToken",
            post(account::request_password_token),
        ),
        (
            "/account/password/msisdn/requestToken",
            post(account::request_password_token),
        ),
        ("/devices", get(devices::list_devices)),
        (
            "/devices/{device_id}",
            get(devices::get_device)
                .put(devices::update_device)
                .delete(devices::delete_device),
        ),
        ("/delete_devices", post(devices::delete_devices)),
        (
            "/user/{user_id}/account_data/{type}",
            get(account_data::get_global_account_data).put(account_data::put_global_account_data),
        ),
        (
            "/user/{user_id}/rooms/{room_id}/account_data/{type}",
            get(account_data::get_room_account_data).put(account_data::put_room_account_data),
        ),
        ("/capabilities", get(capabilities::get_capabilities)),
        ("/sync", get(sync::sync_events)),
        // Rooms: creation, membership, sending, reading.
        ("/createRoom", post(rooms::create_room)),
        ("/joined_rooms", get(membership::joined_rooms)),
        // Finding rooms: aliases and the public directory.
        (
            "/directory/room/{room_alias}",
            get(directory::get_alias)
                .put(directory::put_alias)
                .delete(directory::delete_alias),
        ),
        ("/rooms/{room_id}/aliases", get(directory::room_aliases)),
        ("/rooms/{room_id}/upgrade", post(rooms::upgrade)),
        ("/search", post(search::search)),
        (
            "/rooms/{room_id}/report/{event_id}",
            post(reports::report_event),
        ),
        ("/rooms/{room_id}/report", post(reports::report_room)),
        ("/users/{user_id}/report", post(reports::report_user)),
        (
            "/directory/list/room/{room_id}",
            get(directory::get_visibility).put(directory::set_visibility),
        ),
        (
            "/publicRooms",
            get(directory::get_public_rooms).post(directory::post_public_rooms),
        ),
        ("/join/{room}", post(membership::join_by_id_or_alias)),
        ("/knock/{room}", post(membership::knock)),
        ("/rooms/{room_id}/join", post(membership::join)),
        ("/rooms/{room_id}/invite", post(membership::invite)),
        ("/rooms/{room_id}/leave", post(membership::leave)),
        ("/rooms/{room_id}/forget", post(membership::forget)),
        ("/rooms/{room_id}/kick", post(membership::kick)),
        ("/rooms/{room_id}/ban", post(membership::ban)),
        ("/rooms/{room_id}/unban", post(membership::unban)),
        (
            "/rooms/{room_id}/send/{event_type}/{txn_id}",
            put(rooms::send_message),
        ),
        (
            "/rooms/{room_id}/redact/{event_id}/{txn_id}",
            put(rooms::redact),
        ),
        ("/rooms/{room_id}/state", get(rooms::get_state)),
        (
            "/rooms/{room_id}/state/{event_type}",
            get(rooms::get_state_event_empty_key).put(rooms::put_state_empty_key),
        ),
        (
            "/rooms/{room_id}/state/{event_type}/",
            get(rooms::get_state_event_empty_key).put(rooms::put_state_empty_key),
        ),
        (
            "/rooms/{room_id}/state/{event_type}/{state_key}",
            get(rooms::get_state_event).put(rooms::put_state),
        ),
        ("/rooms/{room_id}/event/{event_id}", get(rooms::get_event)),
        ("/rooms/{room_id}/members", get(rooms::get_members)),
        (
            "/rooms/{room_id}/joined_members",
            get(rooms::get_joined_members),
        ),
        ("/rooms/{room_id}/messages", get(rooms::get_messages)),
        (
            "/rooms/{room_id}/context/{event_id}",
            get(rooms::get_context),
        ),
        (
            "/rooms/{room_id}/receipt/{receipt_type}/{event_id}",
            post(receipts::post_receipt),
        ),
        (
            "/rooms/{room_id}/read_markers",
            post(receipts::read_markers),
        ),
        ("/rooms/{room_id}/typing/{user_id}", put(typing::put_typing)),
        (
            "/presence/{user_id}/status",
            get(presence::get_presence).put(presence::put_presence),
        ),
        ("/user/{user_id}/rooms/{room_id}/tags", get(tags::get_tags)),
        (
            "/user/{user_id}/rooms/{room_id}/tags/{tag}",
            put(tags::put_tag).delete(tags::delete_tag),
        ),
        // The trailing slashes are part of the spec's paths (PR-01, PR-03).
        ("/pushrules/", get(push_rules::get_push_rules)),
        ("/pushrules/global/", get(push_rules::get_global_push_rules)),
        (
            "/pushrules/{scope}/{kind}/{rule_id}",
            get(push_rules::get_rule)
                .put(push_rules::put_rule)
                .delete(push_rules::delete_rule),
        ),
        (
            "/pushrules/{scope}/{kind}/{rule_id}/{attribute}",
            get(push_rules::get_attribute).put(push_rules::put_attribute),
        ),
        ("/notifications", get(notifications::get_notifications)),
        ("/pushers", get(pushers::get_pushers)),
        ("/pushers/set", post(pushers::set_pusher)),
        // End-to-end encryption.
        ("/keys/upload", post(keys::upload_keys)),
        ("/keys/query", post(keys::query_keys)),
        (
            "/keys/device_signing/upload",
            post(keys::upload_signing_keys),
        ),
        ("/keys/signatures/upload", post(keys::upload_signatures)),
        ("/keys/claim", post(keys::claim_keys)),
        ("/keys/changes", get(keys::key_changes)),
        (
            "/sendToDevice/{event_type}/{txn_id}",
            put(keys::send_to_device),
        ),
        (
            "/room_keys/version",
            get(backup::latest_version).post(backup::create_version),
        ),
        (
            "/room_keys/version/{version}",
            get(backup::get_version)
                .put(backup::update_version)
                .delete(backup::delete_version),
        ),
        (
            "/room_keys/keys",
            get(backup::get_all)
                .put(backup::put_all)
                .delete(backup::delete_all),
        ),
        (
            "/room_keys/keys/{room_id}",
            get(backup::get_room)
                .put(backup::put_room)
                .delete(backup::delete_room),
        ),
        (
            "/room_keys/keys/{room_id}/{session_id}",
            get(backup::get_session)
                .put(backup::put_session)
                .delete(backup::delete_session),
        ),
        ("/profile/{user_id}", get(profile::get_profile)),
        (
            "/profile/{user_id}/{key}",
            get(profile::get_field)
                .put(profile::set_field)
                .delete(profile::delete_field),
        ),
        ("/user_directory/search", post(user_directory::search)),
        ("/voip/turnServer", get(voip::turn_server)),
        ("/thirdparty/protocols", get(thirdparty::get_protocols)),
        ("/thirdparty/protocol/{protocol}", get(thirdparty::lookup)),
        ("/thirdparty/location", get(thirdparty::lookup)),
        ("/thirdparty/location/{protocol}", get(thirdparty::lookup)),
        ("/thirdparty/user", get(thirdparty::lookup)),
        ("/thirdparty/user/{protocol}", get(thirdparty::lookup)),
        ("/user/{user_id}/filter", post(sync::create_filter)),
        ("/admin/whois/{user_id}", get(crate::admin::whois)),
        ("/user/{user_id}/filter/{filter_id}", get(sync::get_filter)),
    ]
}

/// The reference server's admin API, under `/_synapse/admin`.
fn admin_routes() -> Vec<(&'static str, MethodRouter<AppState>)> {
    use crate::{admin::*, admin_room_delete::*};
    vec![
        ("/v1/server_version", get(server_version)),
        ("/v1/register", get(register_nonce).post(register)),
        ("/v2/users", get(list_users_v2)),
        ("/v3/users", get(list_users_v3)),
        ("/v2/users/{user_id}", get(get_user).put(put_user)),
        ("/v1/deactivate/{user_id}", post(deactivate)),
        ("/v1/reset_password/{user_id}", post(reset_password)),
        ("/v1/whois/{user_id}", get(whois)),
        ("/v1/users/{user_id}/admin", get(get_admin).put(set_admin)),
        ("/v1/suspend/{user_id}", put(suspend)),
        ("/v1/username_available", get(username_available)),
        ("/v1/users/{user_id}/accountdata", get(account_data)),
        ("/v1/users/{user_id}/login", post(login_as)),
        ("/v1/users/{user_id}/joined_rooms", get(joined_rooms)),
        ("/v1/users/{user_id}/memberships", get(memberships)),
        ("/v1/users/{user_id}/pushers", get(pushers)),
        (
            "/v1/users/{user_id}/media",
            get(user_media).delete(delete_user_media),
        ),
        ("/v1/media/{server}/{media_id}", delete(delete_media)),
        (
            "/v2/users/{user_id}/devices",
            get(devices).post(create_device),
        ),
        (
            "/v2/users/{user_id}/devices/{device_id}",
            get(device).put(rename_device).delete(delete_device),
        ),
        ("/v2/users/{user_id}/delete_devices", post(delete_devices)),
        ("/v1/rooms", get(list_rooms)),
        ("/v1/rooms/{room_id}", get(room).delete(delete_room)),
        ("/v1/rooms/{room_id}/delete", post(delete_room)),
        (
            "/v1/rooms/{room_id}/block",
            get(room_block).put(set_room_block),
        ),
        ("/v2/rooms/{room_id}", delete(start_room_deletion)),
        (
            "/v2/rooms/{room_id}/delete_status",
            get(room_deletion_status),
        ),
        ("/v2/rooms/delete_status/{delete_id}", get(deletion_status)),
        ("/v1/rooms/{room_id}/members", get(room_members)),
        ("/v1/rooms/{room_id}/state", get(room_state)),
        ("/v1/room/{room_id}/media", get(room_media)),
        ("/v1/event_reports", get(event_reports)),
        (
            "/v1/event_reports/{report_id}",
            get(event_report).delete(delete_event_report),
        ),
        ("/v1/registration_tokens", get(list_tokens)),
        ("/v1/registration_tokens/new", post(create_token)),
        (
            "/v1/registration_tokens/{token}",
            get(get_token).put(update_token).delete(delete_token),
        ),
    ]
}

pub fn routes(state: AppState) -> Router {
    let mut router = Router::new()
        .route("/health", get(crate::health::health))
        .route("/_myelin/ready", get(crate::health::ready))
        .route("/_matrix/client/versions", get(versions::get_versions))
        .route("/.well-known/matrix/client", get(versions::get_well_known))
        .route("/.well-known/matrix/support", get(versions::get_support))
        .route(
            "/_matrix/key/v2/server",
            get(crate::server_keys::get_server_keys),
        )
        .route("/_matrix/media/v3/upload", post(media::upload))
        .route(
            "/_matrix/media/v3/upload/{server}/{media_id}",
            put(media::upload_to),
        )
        .route("/_matrix/media/v1/create", post(media::create))
        .route(
            "/_matrix/client/v1/media/preview_url",
            get(media::preview_url),
        )
        .route("/_matrix/media/v3/preview_url", get(media::preview_url))
        .route("/_matrix/media/v3/config", get(media::config))
        .route(
            "/_matrix/media/v3/download/{server}/{media_id}",
            get(media::legacy_download),
        )
        .route(
            "/_matrix/media/v3/download/{server}/{media_id}/{name}",
            get(media::legacy_download_named),
        )
        .route(
            "/_matrix/media/v3/thumbnail/{server}/{media_id}",
            get(media::legacy_thumbnail),
        )
        .route("/_matrix/client/v1/media/config", get(media::config))
        .route(
            "/_matrix/client/v1/media/download/{server}/{media_id}",
            get(media::download),
        )
        .route(
            "/_matrix/client/v1/media/download/{server}/{media_id}/{name}",
            get(media::download_named),
        )
        .route(
            "/_matrix/client/v1/media/thumbnail/{server}/{media_id}",
            get(media::thumbnail),
        )
        .route(
            "/_matrix/client/v1/rooms/{room_id}/relations/{event_id}",
            get(relations::get_relations),
        )
        .route(
            "/_matrix/client/v1/rooms/{room_id}/relations/{event_id}/{rel_type}",
            get(relations::get_relations_of_type),
        )
        .route(
            "/_matrix/client/v1/rooms/{room_id}/relations/{event_id}/{rel_type}/{event_type}",
            get(relations::get_relations_of_type_and_event_type),
        )
        .route(
            "/_matrix/client/v1/rooms/{room_id}/hierarchy",
            get(directory::hierarchy),
        )
        .route(
            "/_matrix/client/v1/rooms/{room_id}/threads",
            get(relations::get_threads),
        )
        .route(
            "/_matrix/client/v1/rooms/{room_id}/timestamp_to_event",
            get(rooms::timestamp_to_event),
        )
        .route(
            "/_matrix/client/v1/mutual_rooms",
            get(membership::mutual_rooms),
        )
        // MSC2666's own paths, which clients released before the spec's still call.
        .route(
            "/_matrix/client/v1/user/mutual_rooms",
            get(membership::mutual_rooms),
        )
        .route(
            "/_matrix/client/unstable/uk.half-shot.msc2666/user/mutual_rooms",
            get(membership::mutual_rooms),
        )
        .route(
            "/_matrix/client/v1/room_summary/{room}",
            get(directory::room_summary),
        )
        .route(
            "/_matrix/client/unstable/im.nheko.summary/summary/{room}",
            get(directory::room_summary),
        )
        .route(
            "/_matrix/client/v1/register/m.login.registration_token/validity",
            get(register::get_registration_token_validity),
        )
        .route(
            "/_matrix/client/unstable/org.matrix.msc3391/user/{user_id}/account_data/{type}",
            delete(account_data::delete_global_account_data),
        )
        .route(
            "/_matrix/client/unstable/org.matrix.msc3391/user/{user_id}/rooms/{room_id}/account_data/{type}",
            delete(account_data::delete_room_account_data),
        )
        // XS-20: older clients and SyTest still post cross-signing keys to the unstable paths.
        .route(
            "/_matrix/client/unstable/keys/device_signing/upload",
            post(keys::upload_signing_keys),
        )
        .route(
            "/_matrix/client/unstable/keys/signatures/upload",
            post(keys::upload_signatures),
        )
        .route(
            "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device",
            get(keys::get_dehydrated_device)
                .put(keys::put_dehydrated_device)
                .delete(keys::delete_dehydrated_device),
        )
        .route(
            "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device/{device_id}/events",
            get(keys::dehydrated_events).post(keys::dehydrated_events_post),
        );
    for (path, method_router) in admin_routes() {
        router = router.route(&format!("/_synapse/admin{path}"), method_router);
    }
    for (path, method_router) in client_routes() {
        for prefix in ["/_matrix/client/v3", "/_matrix/client/r0"] {
            router = router.route(&format!("{prefix}{path}"), method_router.clone());
        }
    }
    router
        .route_layer(axum::middleware::from_fn(middleware::tag_route))
        .method_not_allowed_fallback(|| async { error::method_not_allowed() })
        .fallback(|| async { error::unrecognized() })
        .with_state(state.clone())
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            middleware::panic_response,
        ))
        .layer(axum::middleware::from_fn(middleware::around))
}
