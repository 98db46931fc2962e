//! A user's media through the admin API: list and delete (all of a user's, or one item).
//! The record goes first, in one transaction, so the item stops being served at once; the
//! files follow (a crash between the two leaves only unreferenced files behind).

use std::collections::HashMap;

use serde_json::{Value, json};

use super::{Paging, USER_NOT_FOUND, existing_user, require_admin};
use crate::{
    Services,
    auth::Requester,
    error::{Error, Result, not_found},
    media::{file_path, thumbnail_dir},
};
use myelin_store::MediaRecord;

fn to_json(m: &MediaRecord) -> Value {
    json!({
        "media_id": m.media_id,
        "media_type": m.content_type,
        "media_length": m.size,
        "upload_name": m.filename,
        "created_ts": m.created_ts,
        "last_access_ts": null,
        "quarantined_by": null,
        "safe_from_quarantine": false,
    })
}

/// `GET /_synapse/admin/v1/users/{userId}/media` (`from`, `limit`; newest first with
/// `dir=b`).
pub async fn user_media(
    services: &Services,
    requester: &Requester,
    user_id: &str,
    params: &HashMap<String, String>,
) -> Result<Value> {
    require_admin(services, requester).await?;
    let user_id = existing_user(services, user_id, USER_NOT_FOUND).await?;
    let paging = Paging::parse(params)?;
    let media = services.store.media_of(&user_id).await?;
    let (page, total, next) = paging.page(media);
    let page: Vec<Value> = page.iter().map(to_json).collect();
    let mut out = json!({ "media": page, "total": total });
    if let Some(next) = next {
        out["next_token"] = json!(next);
    }
    Ok(out)
}

/// Deletes records, then files; answers `{deleted_media, total}`.
async fn delete(services: &Services, media_ids: Vec<String>) -> Result<Value> {
    let deleted = services.store.delete_media(&media_ids).await?;
    let root = &services.config.media.path;
    for id in &deleted {
        let file = file_path(root, id);
        if let Err(err) = tokio::fs::remove_file(&file).await
            && err.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(error = %err, media_id = %id, "removing a deleted media file failed");
        }
        let _ = tokio::fs::remove_dir_all(thumbnail_dir(root, id)).await;
    }
    Ok(json!({ "total": deleted.len(), "deleted_media": deleted }))
}

/// `DELETE /_synapse/admin/v1/users/{userId}/media`: everything the user uploaded.
pub async fn delete_user_media(
    services: &Services,
    requester: &Requester,
    user_id: &str,
) -> Result<Value> {
    require_admin(services, requester).await?;
    let user_id = existing_user(services, user_id, USER_NOT_FOUND).await?;
    let ids = services
        .store
        .media_of(&user_id)
        .await?
        .into_iter()
        .map(|m| m.media_id)
        .collect();
    let out = delete(services, ids).await?;
    tracing::info!(%user_id, deleted = %out["total"], by = %requester.user_id, "admin deleted media");
    Ok(out)
}

/// `DELETE /_synapse/admin/v1/media/{serverName}/{mediaId}`.
pub async fn delete_one(
    services: &Services,
    requester: &Requester,
    server_name: &str,
    media_id: &str,
) -> Result<Value> {
    require_admin(services, requester).await?;
    if server_name != services.config.server_name {
        return Err(Error::Unknown("Can only delete local media".into()));
    }
    if !crate::media::valid_media_id(media_id) || services.store.media(media_id).await?.is_none() {
        return Err(not_found("Unknown media"));
    }
    let out = delete(services, vec![media_id.to_owned()]).await?;
    tracing::info!(%media_id, by = %requester.user_id, "admin deleted media");
    Ok(out)
}
