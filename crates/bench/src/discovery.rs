//! Finding things (issue 15's proof): `/publicRooms` over many published rooms, `/search`
//! over many messages, `/relations` of a thread with many replies.
//!
//! Setup is heavy (ten thousand rooms, a hundred thousand messages on the defaults), so
//! these run only when asked for (`--only discovery`, or a scenario's name). It is done
//! over several connections at once and timed apart, as every setup is.

use std::{sync::Arc, time::Instant};

use anyhow::{Context, bail};
use hyper::Method;
use serde_json::{Value, json};

use crate::{
    Generator, Req, Throughput,
    client::{API, Target, User, register},
    load,
    rooms::enc,
};

pub(crate) struct Options {
    pub run: u64,
    pub seconds: f64,
    pub public_rooms: usize,
    pub messages: usize,
    pub replies: usize,
}

/// Connections the setup uses at once.
const SETUP_CONNECTIONS: usize = 8;

/// Runs `count` requests made by `make(i)` over [`SETUP_CONNECTIONS`] connections; each
/// must answer 200. Returns each answer's body, by `i`.
pub(crate) async fn setup_requests(
    target: &Target,
    count: usize,
    make: Arc<dyn Fn(usize) -> (Method, String, String, Value) + Send + Sync>,
) -> anyhow::Result<Vec<Value>> {
    let mut tasks = Vec::new();
    for worker in 0..SETUP_CONNECTIONS {
        let (target, make) = (target.clone(), make.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = target.connect().await?;
            let mut answers = Vec::new();
            let mut i = worker;
            while i < count {
                let (method, path, token, body) = make(i);
                let (status, answer) = conn.json(method, &path, Some(&token), Some(&body)).await?;
                if status != 200 {
                    bail!("setup {path}: {status} {answer}");
                }
                answers.push((i, answer));
                i += SETUP_CONNECTIONS;
            }
            anyhow::Ok(answers)
        }));
    }
    let mut all = vec![Value::Null; count];
    for task in tasks {
        for (i, answer) in task.await?? {
            all[i] = answer;
        }
    }
    Ok(all)
}

/// The search term's word for message `i`: a hundred distinct words, none a prefix of
/// another, so each matches one message in a hundred.
fn word(i: usize) -> String {
    format!("kw{}x", i % 100)
}

pub(crate) async fn run(
    target: &Target,
    options: &Options,
    results: &mut Vec<Throughput>,
) -> anyhow::Result<f64> {
    let run = options.run;
    let mut conn = target.connect().await?;
    let started = Instant::now();
    let owner: User = register(&mut conn, &format!("bench{run}dir")).await?;
    if crate::wanted("publicRooms") || crate::wanted("discovery") {
        eprintln!("discovery setup: {} public rooms", options.public_rooms);
        let token = owner.token.clone();
        setup_requests(
            target,
            options.public_rooms,
            Arc::new(move |i| {
                (
                    Method::POST,
                    format!("{API}/createRoom"),
                    token.clone(),
                    json!({ "preset": "public_chat", "visibility": "public",
                            "name": format!("Public room {i}"), "topic": format!("topic {i}") }),
                )
            }),
        )
        .await?;
    }
    let room = {
        let (status, body) = conn
            .json(
                Method::POST,
                &format!("{API}/createRoom"),
                Some(&owner.token),
                Some(&json!({ "preset": "public_chat" })),
            )
            .await?;
        if status != 200 {
            bail!("createRoom: {status} {body}");
        }
        body["room_id"].as_str().context("room_id")?.to_owned()
    };
    if crate::wanted("search") || crate::wanted("discovery") {
        eprintln!("discovery setup: {} messages", options.messages);
        let (token, room) = (owner.token.clone(), room.clone());
        setup_requests(
            target,
            options.messages,
            Arc::new(move |i| {
                (
                    Method::PUT,
                    format!("{API}/rooms/{}/send/m.room.message/b{run}s{i}", enc(&room)),
                    token.clone(),
                    json!({ "msgtype": "m.text",
                            "body": format!("message {i} about {} and other things", word(i)) }),
                )
            }),
        )
        .await?;
    }
    let mut root = String::new();
    if crate::wanted("relations") || crate::wanted("discovery") {
        eprintln!("discovery setup: a thread of {} replies", options.replies);
        let (status, body) = conn
            .json(
                Method::PUT,
                &format!("{API}/rooms/{}/send/m.room.message/b{run}root", enc(&room)),
                Some(&owner.token),
                Some(&json!({ "msgtype": "m.text", "body": "thread root" })),
            )
            .await?;
        if status != 200 {
            bail!("send: {status} {body}");
        }
        root = body["event_id"].as_str().context("event_id")?.to_owned();
        let (token, room, parent) = (owner.token.clone(), room.clone(), root.clone());
        setup_requests(
            target,
            options.replies,
            Arc::new(move |i| {
                (
                    Method::PUT,
                    format!("{API}/rooms/{}/send/m.room.message/b{run}t{i}", enc(&room)),
                    token.clone(),
                    json!({ "msgtype": "m.text", "body": format!("reply {i}"),
                            "m.relates_to": { "rel_type": "m.thread", "event_id": parent } }),
                )
            }),
        )
        .await?;
    }
    let setup_seconds = started.elapsed().as_secs_f64();
    eprintln!("discovery setup took {setup_seconds:.1} s");

    if crate::wanted("publicRooms") || crate::wanted("discovery") {
        let token = owner.token.clone();
        let generate: Generator = Arc::new(move |_, _| Req {
            method: Method::GET,
            path: format!("{API}/publicRooms?limit=20"),
            token: token.clone(),
            body: None,
        });
        let name = format!("GET /publicRooms ({} rooms)", options.public_rooms);
        results.push(load(target, &name, 8, options.seconds, generate).await?);
        let token = owner.token.clone();
        let generate: Generator = Arc::new(move |w, i| {
            let body = json!({ "limit": 20,
                               "filter": { "generic_search_term": format!("room {}", (w * 31 + i as usize) % 1000) } });
            Req {
                method: Method::POST,
                path: format!("{API}/publicRooms"),
                token: token.clone(),
                body: Some(body.to_string().into()),
            }
        });
        let name = format!("POST /publicRooms search ({} rooms)", options.public_rooms);
        results.push(load(target, &name, 8, options.seconds, generate).await?);
    }
    if crate::wanted("search") || crate::wanted("discovery") {
        let token = owner.token.clone();
        let generate: Generator = Arc::new(move |w, i| {
            let body = json!({ "search_categories": { "room_events": {
                "search_term": word(w * 7 + i as usize), "order_by": "rank" } } });
            Req {
                method: Method::POST,
                path: format!("{API}/search"),
                token: token.clone(),
                body: Some(body.to_string().into()),
            }
        });
        let name = format!("POST /search ({} messages)", options.messages);
        results.push(load(target, &name, 8, options.seconds, generate).await?);
    }
    if (crate::wanted("relations") || crate::wanted("discovery")) && !root.is_empty() {
        let (token, path) = (
            owner.token.clone(),
            format!(
                "/_matrix/client/v1/rooms/{}/relations/{}/m.thread?limit=50",
                enc(&room),
                enc(&root)
            ),
        );
        let generate: Generator = Arc::new(move |_, _| Req {
            method: Method::GET,
            path: path.clone(),
            token: token.clone(),
            body: None,
        });
        let name = format!("GET /relations (thread of {})", options.replies);
        results.push(load(target, &name, 8, options.seconds, generate).await?);
    }
    Ok(setup_seconds)
}
