//! Room scenarios: sending messages, fan-out of one message to every member's waiting
//! `/sync`, initial and incremental sync of a user in many rooms, and `/messages` pages.
//!
//! Setup (users, rooms, the history the syncs read) is timed apart, as for the other
//! scenarios. The reference server keeps a response cache for `/sync`; every measured sync
//! here has a filter of its own, so each one is computed, on both servers alike.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use hyper::{Method, body::Bytes};
use serde::Serialize;
use serde_json::{Value, json};

use crate::{
    Generator, Req, Throughput,
    client::{API, Conn, Target, User, register},
    load, percentile,
};

#[derive(Debug, Serialize)]
pub(crate) struct FanOut {
    pub members: usize,
    pub trials: usize,
    pub median_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Serialize)]
pub(crate) struct RoomsReport {
    pub setup_seconds: f64,
    pub fan_out: FanOut,
}

pub(crate) struct Options {
    pub run: u64,
    pub seconds: f64,
    pub members: usize,
    pub rooms: usize,
    pub messages_per_room: usize,
    pub fan_out_trials: usize,
}

pub(crate) fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn create_room(conn: &mut Conn, user: &User, body: Value) -> anyhow::Result<String> {
    let (status, body) = conn
        .json(
            Method::POST,
            &format!("{API}/createRoom"),
            Some(&user.token),
            Some(&body),
        )
        .await?;
    if status != 200 {
        bail!("createRoom: {status} {body}");
    }
    Ok(body["room_id"].as_str().context("room_id")?.to_owned())
}

async fn join(conn: &mut Conn, user: &User, room: &str) -> anyhow::Result<()> {
    let (status, body) = conn
        .json(
            Method::POST,
            &format!("{API}/rooms/{}/join", enc(room)),
            Some(&user.token),
            Some(&json!({})),
        )
        .await?;
    if status != 200 {
        bail!("join: {status} {body}");
    }
    Ok(())
}

async fn send(
    conn: &mut Conn,
    user: &User,
    room: &str,
    txn: &str,
    body: &str,
) -> anyhow::Result<String> {
    let (status, resp) = conn
        .json(
            Method::PUT,
            &format!("{API}/rooms/{}/send/m.room.message/{txn}", enc(room)),
            Some(&user.token),
            Some(&json!({ "msgtype": "m.text", "body": body })),
        )
        .await?;
    if status != 200 {
        bail!("send: {status} {resp}");
    }
    Ok(resp["event_id"].as_str().context("event_id")?.to_owned())
}

async fn next_batch(conn: &mut Conn, user: &User) -> anyhow::Result<String> {
    let filter = enc(&json!({ "room": { "timeline": { "limit": 1 } } }).to_string());
    let (status, body) = conn
        .json(
            Method::GET,
            &format!("{API}/sync?timeout=0&filter={filter}"),
            Some(&user.token),
            None,
        )
        .await?;
    if status != 200 {
        bail!("sync: {status} {body}");
    }
    Ok(body["next_batch"]
        .as_str()
        .context("next_batch")?
        .to_owned())
}

fn message_body(w: usize, i: u64) -> Bytes {
    Bytes::from(format!(
        r#"{{"msgtype":"m.text","body":"message {i} from worker {w}"}}"#
    ))
}

/// Runs every room scenario; throughput results are appended to `results`.
pub(crate) async fn run(
    target: &Target,
    options: &Options,
    results: &mut Vec<Throughput>,
) -> anyhow::Result<RoomsReport> {
    let run = options.run;
    let mut conn = target.connect_to(0).await?;
    eprintln!("rooms setup: senders, rooms, history");
    let setup_started = Instant::now();
    let mut senders = Vec::new();
    for i in 0..16 {
        senders.push(register(&mut conn, &format!("bench{run}s{i}")).await?);
    }
    let shared = create_room(&mut conn, &senders[0], json!({ "preset": "public_chat" })).await?;
    let mut own_rooms = Vec::new();
    for sender in &senders {
        if sender.user_id != senders[0].user_id {
            join(&mut conn, sender, &shared).await?;
        }
        own_rooms.push(create_room(&mut conn, sender, json!({})).await?);
    }
    // A user in many rooms with some history in each, for the syncs.
    let reader = register(&mut conn, &format!("bench{run}reader")).await?;
    let mut reader_rooms = Vec::new();
    for r in 0..options.rooms {
        let room = create_room(&mut conn, &reader, json!({ "name": format!("room {r}") })).await?;
        for m in 0..options.messages_per_room {
            send(
                &mut conn,
                &reader,
                &room,
                &format!("b{run}r{r}m{m}"),
                "history",
            )
            .await?;
        }
        reader_rooms.push(room);
    }
    // A room with many members, each waiting on its own /sync.
    let mut members = Vec::new();
    let crowd = create_room(&mut conn, &senders[0], json!({ "preset": "public_chat" })).await?;
    for i in 0..options.members {
        let member = register(&mut conn, &format!("bench{run}m{i}")).await?;
        join(&mut conn, &member, &crowd).await?;
        members.push(member);
    }
    let setup_seconds = setup_started.elapsed().as_secs_f64();
    eprintln!("rooms setup took {setup_seconds:.1} s");

    let senders = Arc::new(senders);
    {
        let (s, room) = (senders.clone(), shared.clone());
        let generate: Generator = Arc::new(move |w, i| Req {
            method: Method::PUT,
            path: format!(
                "{API}/rooms/{}/send/m.room.message/b{run}one{w}x{i}",
                enc(&room)
            ),
            token: s[w % s.len()].token.clone(),
            body: Some(message_body(w, i)),
        });
        results.push(
            load(
                target,
                "send message (1 room)",
                16,
                options.seconds,
                generate,
            )
            .await?,
        );
    }
    {
        let (s, rooms) = (senders.clone(), Arc::new(own_rooms.clone()));
        let generate: Generator = Arc::new(move |w, i| Req {
            method: Method::PUT,
            path: format!(
                "{API}/rooms/{}/send/m.room.message/b{run}own{w}x{i}",
                enc(&rooms[w % rooms.len()])
            ),
            token: s[w % s.len()].token.clone(),
            body: Some(message_body(w, i)),
        });
        results.push(
            load(
                target,
                "send message (16 rooms)",
                16,
                options.seconds,
                generate,
            )
            .await?,
        );
    }
    {
        // Every message is evaluated against each member's push rules (issue 11): the
        // difference from one room of 16 is the cost of evaluating for 100.
        let (token, room) = (senders[0].token.clone(), crowd.clone());
        let generate: Generator = Arc::new(move |w, i| Req {
            method: Method::PUT,
            path: format!(
                "{API}/rooms/{}/send/m.room.message/b{run}crowd{w}x{i}",
                enc(&room)
            ),
            token: token.clone(),
            body: Some(message_body(w, i)),
        });
        let name = format!("send message (room of {} members)", members.len() + 1);
        results.push(load(target, &name, 16, options.seconds, generate).await?);
    }
    {
        let (token, room) = (senders[0].token.clone(), shared.clone());
        let generate: Generator = Arc::new(move |_, _| Req {
            method: Method::GET,
            path: format!("{API}/rooms/{}/messages?dir=b&limit=50", enc(&room)),
            token: token.clone(),
            body: None,
        });
        results.push(
            load(
                target,
                "GET /messages (50 events)",
                16,
                options.seconds,
                generate,
            )
            .await?,
        );
    }
    {
        let token = reader.token.clone();
        let generate: Generator = Arc::new(move |w, i| {
            // A filter of its own per request: the reference server caches sync responses.
            let filter = json!({ "room": { "timeline": { "limit": 20 } },
                                 "presence": { "not_types": [format!("bench.{w}.{i}")] } });
            Req {
                method: Method::GET,
                path: format!("{API}/sync?filter={}", enc(&filter.to_string())),
                token: token.clone(),
                body: None,
            }
        });
        let name = format!("initial /sync ({} rooms)", options.rooms);
        results.push(load(target, &name, 1, options.seconds, generate).await?);
    }
    if crate::wanted("incremental /sync") {
        results.push(incremental(target, &reader, &reader_rooms, options.seconds).await?);
    }
    eprintln!("fan-out: one message to {} waiting syncs", members.len());
    let trials = if crate::wanted("fan-out") {
        options.fan_out_trials
    } else {
        1
    };
    let fan_out = fan_out(target, &senders[0], &crowd, &members, trials).await?;
    eprintln!(
        "  median {:.2} ms, p99 {:.2} ms over {} trials",
        fan_out.median_ms, fan_out.p99_ms, fan_out.trials
    );
    Ok(RoomsReport {
        setup_seconds,
        fan_out,
    })
}

/// Incremental sync after one new message: send into one of the user's rooms, then time the
/// `/sync` since the previous token that brings it.
async fn incremental(
    target: &Target,
    reader: &User,
    rooms: &[String],
    seconds: f64,
) -> anyhow::Result<Throughput> {
    let mut writer = target.connect_to(0).await?;
    let mut syncer = target.connect_to(target.last()).await?;
    let mut since = next_batch(&mut syncer, reader).await?;
    let mut samples = Vec::new();
    let started = Instant::now();
    let mut i = 0u64;
    let mut errors = 0;
    while started.elapsed() < Duration::from_secs_f64(seconds) {
        let room = &rooms[i as usize % rooms.len()];
        let event = send(
            &mut writer,
            reader,
            room,
            &format!("inc{}x{i}", since.len()),
            "new",
        )
        .await?;
        i += 1;
        let filter = json!({ "presence": { "not_types": [format!("bench.inc.{i}")] } });
        let path = format!(
            "{API}/sync?since={}&timeout=0&filter={}",
            enc(&since),
            enc(&filter.to_string())
        );
        let t0 = Instant::now();
        let (status, body) = syncer
            .json(Method::GET, &path, Some(&reader.token), None)
            .await?;
        let elapsed = t0.elapsed();
        if status != 200 {
            errors += 1;
            continue;
        }
        let found = body["rooms"]["join"][room]["timeline"]["events"]
            .as_array()
            .is_some_and(|events| events.iter().any(|e| e["event_id"] == event.as_str()));
        if !found {
            errors += 1;
        }
        samples.push(elapsed.as_micros() as u32);
        since = body["next_batch"]
            .as_str()
            .context("next_batch")?
            .to_owned();
    }
    let total = started.elapsed().as_secs_f64();
    samples.sort_unstable();
    let result = Throughput {
        name: "incremental /sync (1 new message)".to_owned(),
        concurrency: 1,
        requests: samples.len() as u64,
        errors,
        seconds: total,
        // Syncs per second of sync time alone; each also waited for a send.
        rps: samples.len() as f64 / (samples.iter().map(|s| f64::from(*s)).sum::<f64>() / 1e6),
        p50_ms: percentile(&samples, 50.0),
        p90_ms: percentile(&samples, 90.0),
        p99_ms: percentile(&samples, 99.0),
        max_ms: percentile(&samples, 100.0),
    };
    eprintln!(
        "  {:<34} c=1   {:>9.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  errors {}",
        result.name, result.rps, result.p50_ms, result.p99_ms, result.errors
    );
    Ok(result)
}

/// One `send` to every member's waiting `/sync`: the time from the send until each sync
/// returns with the message.
async fn fan_out(
    target: &Target,
    sender: &User,
    room: &str,
    members: &[User],
    trials: usize,
) -> anyhow::Result<FanOut> {
    let mut writer = target.connect_to(0).await?;
    let mut conns = Vec::with_capacity(members.len());
    for (i, member) in members.iter().enumerate() {
        let mut conn = target.connect_to(i % target.endpoints.len()).await?;
        let since = next_batch(&mut conn, member).await?;
        conns.push((conn, member.clone(), since));
    }
    let mut samples: Vec<u32> = Vec::with_capacity(members.len() * trials);
    for trial in 0..trials {
        let body = format!("fan-out {trial}");
        let mut waiting = Vec::with_capacity(conns.len());
        for (mut conn, member, since) in conns.drain(..) {
            let body = body.clone();
            waiting.push(tokio::spawn(async move {
                let mut since = since;
                loop {
                    let path = format!("{API}/sync?since={}&timeout=30000", enc(&since));
                    let (status, resp) = conn
                        .json(Method::GET, &path, Some(&member.token), None)
                        .await?;
                    let returned = Instant::now();
                    if status != 200 {
                        bail!("fan-out sync: {status} {resp}");
                    }
                    since = resp["next_batch"]
                        .as_str()
                        .context("next_batch")?
                        .to_owned();
                    let arrived = resp["rooms"]["join"]
                        .as_object()
                        .into_iter()
                        .flat_map(|rooms| rooms.values())
                        .flat_map(|r| r["timeline"]["events"].as_array().into_iter().flatten())
                        .any(|e| e["content"]["body"] == body.as_str());
                    if arrived {
                        return anyhow::Ok((conn, member, since, returned));
                    }
                }
            }));
        }
        // Let every sync reach the server and start waiting.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let sent = Instant::now();
        send(
            &mut writer,
            sender,
            room,
            &format!("fan{}x{trial}", sent.elapsed().as_nanos()),
            &body,
        )
        .await?;
        for task in waiting {
            let (conn, member, since, returned) = task.await??;
            samples.push(returned.saturating_duration_since(sent).as_micros() as u32);
            conns.push((conn, member, since));
        }
    }
    samples.sort_unstable();
    Ok(FanOut {
        members: members.len(),
        trials,
        median_ms: percentile(&samples, 50.0),
        p99_ms: percentile(&samples, 99.0),
        max_ms: percentile(&samples, 100.0),
    })
}
