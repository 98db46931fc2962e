//! Profiles on SQLite.

use async_trait::async_trait;

use super::*;
use crate::{DirectoryEntry, ProfileStore, ProfileWrite};

#[async_trait]
impl ProfileStore for SqliteStore {
    async fn profile(&self, user_id: &str) -> StoreResult<Option<Vec<(String, String)>>> {
        let user_id = user_id.to_owned();
        self.pool
            .read(move |conn| {
                let run = || -> rusqlite::Result<Option<Vec<(String, String)>>> {
                    let exists = conn
                        .prepare_cached("SELECT 1 FROM users WHERE user_id = ?1")?
                        .query_row([&user_id], |_| Ok(()))
                        .optional()?;
                    if exists.is_none() {
                        return Ok(None);
                    }
                    conn.prepare_cached(
                        "SELECT field, value FROM profile_fields WHERE user_id = ?1 ORDER BY field",
                    )?
                    .query_map([&user_id], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()
                    .map(Some)
                };
                run().map_err(classify)
            })
            .await
    }

    async fn set_profile_field(
        &self,
        user_id: &str,
        field: &str,
        value: &str,
        max_bytes: u64,
    ) -> StoreResult<ProfileWrite> {
        let (user_id, field, value) = (user_id.to_owned(), field.to_owned(), value.to_owned());
        self.pool
            .write(move |conn| {
                let run = || -> rusqlite::Result<ProfileWrite> {
                    let others: i64 = conn
                        .prepare_cached(
                            "SELECT COALESCE(SUM(LENGTH(CAST(field AS BLOB))
                                               + LENGTH(CAST(value AS BLOB))), 0)
                             FROM profile_fields WHERE user_id = ?1 AND field <> ?2",
                        )?
                        .query_row(params![user_id, field], |r| r.get(0))?;
                    if others as u64 + (field.len() + value.len()) as u64 > max_bytes {
                        return Ok(ProfileWrite::TooLarge);
                    }
                    conn.prepare_cached(
                        "INSERT INTO profile_fields (user_id, field, value) VALUES (?1, ?2, ?3)
                         ON CONFLICT (user_id, field) DO UPDATE SET value = excluded.value",
                    )?
                    .execute(params![user_id, field, value])?;
                    Ok(ProfileWrite::Done)
                };
                run().map_err(classify)
            })
            .await
    }

    async fn delete_profile_field(&self, user_id: &str, field: &str) -> StoreResult<()> {
        let (user_id, field) = (user_id.to_owned(), field.to_owned());
        self.pool
            .write(move |conn| {
                conn.prepare_cached("DELETE FROM profile_fields WHERE user_id = ?1 AND field = ?2")
                    .and_then(|mut s| s.execute(params![user_id, field]))
                    .map(drop)
                    .map_err(classify)
            })
            .await
    }

    async fn search_user_directory(
        &self,
        searcher: &str,
        term: &str,
        limit: u32,
        all_users: bool,
    ) -> StoreResult<Vec<DirectoryEntry>> {
        let searcher = searcher.to_owned();
        let (contains, prefix, json_prefix) = crate::profile::directory_patterns(term);
        self.pool
            .read(move |conn| {
                conn.prepare_cached(DIRECTORY_SEARCH)
                    .and_then(|mut s| {
                        s.query_map(
                            params![
                                searcher,
                                contains,
                                prefix,
                                json_prefix,
                                all_users,
                                i64::from(limit)
                            ],
                            |r| {
                                Ok(DirectoryEntry {
                                    user_id: r.get(0)?,
                                    displayname: r.get(1)?,
                                    avatar_url: r.get(2)?,
                                })
                            },
                        )?
                        .collect()
                    })
                    .map_err(classify)
            })
            .await
    }
}

/// The localpart is what lies between `@` and the first `:`.
const DIRECTORY_SEARCH: &str = r"
    SELECT u.user_id, dn.value, av.value
    FROM users u
    LEFT JOIN profile_fields dn ON dn.user_id = u.user_id AND dn.field = 'displayname'
    LEFT JOIN profile_fields av ON av.user_id = u.user_id AND av.field = 'avatar_url'
    WHERE u.deactivated = 0
      AND (lower(substr(u.user_id, 2, instr(u.user_id, ':') - 2)) LIKE ?2 ESCAPE '\'
           OR lower(dn.value) LIKE ?2 ESCAPE '\')
      AND (?5 OR EXISTS (
        SELECT 1 FROM room_members theirs
        WHERE theirs.user_id = u.user_id AND theirs.membership = 'join'
          AND (EXISTS (SELECT 1 FROM room_members mine
                       WHERE mine.room_id = theirs.room_id AND mine.user_id = ?1
                         AND mine.membership = 'join')
               OR EXISTS (SELECT 1 FROM room_state s JOIN events e ON e.event_id = s.event_id
                          WHERE s.room_id = theirs.room_id AND s.to_pos IS NULL
                            AND s.state_key = ''
                            AND ((s.event_type = 'm.room.join_rules'
                                  AND json_extract(e.json, '$.content.join_rule') = 'public')
                              OR (s.event_type = 'm.room.history_visibility'
                                  AND json_extract(e.json, '$.content.history_visibility')
                                      = 'world_readable'))))))
    ORDER BY (lower(substr(u.user_id, 2, instr(u.user_id, ':') - 2)) LIKE ?3 ESCAPE '\'
              OR lower(dn.value) LIKE ?4 ESCAPE '\') DESC,
             (dn.value IS NOT NULL) + (av.value IS NOT NULL) DESC,
             u.user_id
    LIMIT ?6";
