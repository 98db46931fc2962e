//! `myelin db copy` of the end-to-end-encryption tables on SQLite.

use super::*;
use crate::{
    BackupDump, BackupKey, BackupVersion, E2eeDump, FallbackKey, OneTimeKey, ToDeviceMessage,
};

pub(super) fn export(conn: &Connection) -> rusqlite::Result<E2eeDump> {
    fn all<T>(
        conn: &Connection,
        sql: &str,
        f: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<Vec<T>> {
        conn.prepare(sql)?.query_map([], f)?.collect()
    }
    Ok(E2eeDump {
        device_keys: all(
            conn,
            "SELECT user_id, device_id, key_json FROM device_keys",
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?,
        one_time_keys: all(
            conn,
            "SELECT seq, user_id, device_id, algorithm, key_id, key_json FROM one_time_keys",
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    OneTimeKey {
                        algorithm: r.get(3)?,
                        key_id: r.get(4)?,
                        json: r.get(5)?,
                    },
                ))
            },
        )?,
        fallback_keys: all(
            conn,
            "SELECT user_id, device_id, algorithm, key_id, key_json, used FROM fallback_keys",
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    FallbackKey {
                        key: OneTimeKey {
                            algorithm: r.get(2)?,
                            key_id: r.get(3)?,
                            json: r.get(4)?,
                        },
                        used: r.get::<_, i64>(5)? != 0,
                    },
                ))
            },
        )?,
        device_list_changes: all(
            conn,
            "SELECT pos, user_id, only_for FROM device_list_changes",
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?, r.get(2)?)),
        )?,
        to_device: all(
            conn,
            "SELECT user_id, device_id, pos, sender, event_type, content FROM to_device",
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    ToDeviceMessage {
                        pos: r.get::<_, i64>(2)? as u64,
                        sender: r.get(3)?,
                        event_type: r.get(4)?,
                        content: r.get(5)?,
                    },
                ))
            },
        )?,
        cross_signing: cross_signing::select(conn, None)?,
        signatures: cross_signing::signatures(conn, None)?,
        dehydrated: all(
            conn,
            "SELECT user_id, device_id, device_data FROM dehydrated_devices",
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?,
        backups: BackupDump {
            versions: all(
                conn,
                "SELECT user_id, version, algorithm, auth_data, etag, deleted FROM backup_versions",
                |r| {
                    let version = BackupVersion {
                        version: r.get::<_, i64>(1)? as u64,
                        algorithm: r.get(2)?,
                        auth_data: r.get(3)?,
                        etag: r.get::<_, i64>(4)? as u64,
                        count: 0,
                    };
                    Ok((r.get(0)?, version, r.get::<_, i64>(5)? != 0))
                },
            )?,
            keys: all(
                conn,
                "SELECT user_id, version, room_id, session_id, first_message_index,
                        forwarded_count, is_verified, session_data FROM backup_keys",
                |r| {
                    let key = BackupKey {
                        room_id: r.get(2)?,
                        session_id: r.get(3)?,
                        first_message_index: r.get(4)?,
                        forwarded_count: r.get(5)?,
                        is_verified: r.get::<_, i64>(6)? != 0,
                        session_data: r.get(7)?,
                    };
                    Ok((r.get(0)?, r.get::<_, i64>(1)? as u64, key))
                },
            )?,
        },
    })
}

pub(super) fn import(conn: &Connection, dump: &E2eeDump) -> rusqlite::Result<()> {
    for (user_id, device_id, json) in &dump.device_keys {
        conn.execute(
            "INSERT INTO device_keys (user_id, device_id, key_json) VALUES (?1, ?2, ?3)",
            params![user_id, device_id, json],
        )?;
    }
    for (seq, user_id, device_id, key) in &dump.one_time_keys {
        conn.execute(
            "INSERT INTO one_time_keys (seq, user_id, device_id, algorithm, key_id, key_json)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![seq, user_id, device_id, key.algorithm, key.key_id, key.json],
        )?;
    }
    for (user_id, device_id, f) in &dump.fallback_keys {
        conn.execute(
            "INSERT INTO fallback_keys (user_id, device_id, algorithm, key_id, key_json, used)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                user_id,
                device_id,
                f.key.algorithm,
                f.key.key_id,
                f.key.json,
                f.used
            ],
        )?;
    }
    for (pos, user_id, only_for) in &dump.device_list_changes {
        conn.execute(
            "INSERT INTO device_list_changes (pos, user_id, only_for) VALUES (?1, ?2, ?3)",
            params![*pos as i64, user_id, only_for],
        )?;
    }
    for (user_id, device_id, m) in &dump.to_device {
        conn.execute(
            "INSERT INTO to_device (user_id, device_id, pos, sender, event_type, content)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                user_id,
                device_id,
                m.pos as i64,
                m.sender,
                m.event_type,
                m.content
            ],
        )?;
    }
    for key in &dump.cross_signing {
        cross_signing::insert(conn, key)?;
    }
    for signature in &dump.signatures {
        cross_signing::insert_signature(conn, signature)?;
    }
    for (user_id, device_id, data) in &dump.dehydrated {
        conn.execute(
            "INSERT INTO dehydrated_devices (user_id, device_id, device_data) VALUES (?1, ?2, ?3)",
            params![user_id, device_id, data],
        )?;
    }
    for (user_id, v, deleted) in &dump.backups.versions {
        conn.execute(
            "INSERT INTO backup_versions (user_id, version, algorithm, auth_data, etag, deleted)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                user_id,
                v.version as i64,
                v.algorithm,
                v.auth_data,
                v.etag as i64,
                deleted
            ],
        )?;
    }
    for (user_id, version, k) in &dump.backups.keys {
        conn.execute(
            "INSERT INTO backup_keys (user_id, version, room_id, session_id, first_message_index,
                                      forwarded_count, is_verified, session_data)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                user_id,
                *version as i64,
                k.room_id,
                k.session_id,
                k.first_message_index,
                k.forwarded_count,
                k.is_verified,
                k.session_data
            ],
        )?;
    }
    Ok(())
}
