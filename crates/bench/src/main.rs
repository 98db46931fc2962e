//! `myelin-bench`: a load generator for the account-data and device APIs of any Matrix
//! homeserver that allows open registration with `m.login.dummy`.
//!
//! It creates its own users and devices (timed apart, as "setup"), then measures each
//! scenario for a bounded time over plain HTTP/1.1 keep-alive connections, one per concurrent
//! worker (as wrk does). Traffic goes only to `--url`. With `--pid`, it samples the server's
//! resident memory throughout.

mod chart;
mod client;
mod compare;
mod discovery;
mod keys;
mod measures;
mod media;
mod rooms;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::bail;
use clap::Parser;
use hyper::{Method, body::Bytes};
use serde::Serialize;
use serde_json::json;

use client::{API, PASSWORD, Target, register};
use measures::{add_devices, bulk_delete, wake_up};

#[derive(Parser)]
#[command(
    name = "myelin-bench",
    about = "Benchmark a Matrix homeserver's account-data and device APIs"
)]
struct Args {
    /// Base URL of the homeserver (plain http), e.g. http://127.0.0.1:8008. Give several
    /// (comma-separated) for several instances of one deployment: connections are spread
    /// over them, and the wake-up is measured from a write on the first to a sync on the last.
    #[arg(long, default_value = "http://127.0.0.1:8008", value_delimiter = ',')]
    url: Vec<String>,
    /// PID of the server process, to sample its resident memory (Linux /proc); several
    /// (comma-separated) are summed.
    #[arg(long, value_delimiter = ',')]
    pid: Vec<u32>,
    /// Seconds each throughput scenario is measured.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Seconds each throughput scenario runs before measuring starts (connections opened,
    /// caches warm), for both servers alike.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Wake-up trials (at least 50 for the published figure).
    #[arg(long, default_value_t = 60)]
    wake_trials: usize,
    /// Devices of the big user (GET /devices and /delete_devices).
    #[arg(long, default_value_t = 1000)]
    devices: usize,
    /// Rooms of the user whose initial and incremental syncs are measured.
    #[arg(long, default_value_t = 100)]
    rooms: usize,
    /// Messages in each of those rooms.
    #[arg(long, default_value_t = 20)]
    messages_per_room: usize,
    /// Members of the room whose fan-out is measured, each with a waiting /sync.
    #[arg(long, default_value_t = 100)]
    members: usize,
    /// Fan-out trials.
    #[arg(long, default_value_t = 20)]
    fan_out_trials: usize,
    /// Published rooms for the `/publicRooms` scenarios (run with `--only discovery`).
    #[arg(long, default_value_t = 10_000)]
    public_rooms: usize,
    /// Messages for the `/search` scenario (run with `--only discovery`).
    #[arg(long, default_value_t = 100_000)]
    search_messages: usize,
    /// Replies in the thread of the `/relations` scenario (run with `--only discovery`).
    #[arg(long, default_value_t = 1_000)]
    thread_replies: usize,
    /// Devices of the user whose keys are queried and claimed (run with `--only keys`).
    #[arg(long, default_value_t = 100)]
    key_devices: usize,
    /// A name for this run in the output (e.g. "myelin" or "synapse").
    #[arg(long, default_value = "server")]
    label: String,
    /// Write the results as JSON here.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
    /// Run only the throughput scenarios whose name contains this text (skips wake-up, bulk
    /// delete and the big device sets), for quick iterations while profiling.
    #[arg(long)]
    only: Option<String>,
    /// Instead of running: print a side-by-side Markdown table of two JSON result files.
    #[arg(long, num_args = 2, value_names = ["A.json", "B.json"])]
    compare: Option<Vec<std::path::PathBuf>>,
    /// With --compare: also write the throughput ratios (A ÷ B) as an SVG bar chart here.
    #[arg(long, requires = "compare")]
    chart: Option<std::path::PathBuf>,
}

/// Latency samples (µs) and outcome counts of one scenario.
#[derive(Debug, Clone, Serialize)]
struct Throughput {
    name: String,
    concurrency: usize,
    requests: u64,
    errors: u64,
    seconds: f64,
    rps: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    f64::from(sorted[rank.min(sorted.len() - 1)]) / 1000.0
}

struct Req {
    method: Method,
    path: String,
    token: String,
    body: Option<Bytes>,
}

type Generator = Arc<dyn Fn(usize, u64) -> Req + Send + Sync>;

static ONLY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
static WARMUP: std::sync::OnceLock<f64> = std::sync::OnceLock::new();

/// Whether `--only` leaves the scenario `name` in.
fn wanted(name: &str) -> bool {
    ONLY.get().and_then(Option::as_ref).is_none_or(|only| {
        name.contains(only.as_str())
            || (only == "discovery"
                && ["/publicRooms", "/search", "/relations"]
                    .iter()
                    .any(|k| name.contains(k)))
    })
}

/// Runs `concurrency` workers, each on its own connection, for `seconds`.
async fn load(
    target: &Target,
    name: &str,
    concurrency: usize,
    seconds: f64,
    generate: Generator,
) -> anyhow::Result<Throughput> {
    if !wanted(name) {
        return Ok(Throughput {
            name: name.to_owned(),
            concurrency,
            requests: 0,
            errors: 0,
            seconds: 0.0,
            rps: 0.0,
            p50_ms: 0.0,
            p90_ms: 0.0,
            p99_ms: 0.0,
            max_ms: 0.0,
        });
    }
    let mut conns = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        conns.push(target.connect().await?);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for (worker, mut conn) in conns.into_iter().enumerate() {
        let generate = generate.clone();
        let (stop, measuring, errors) = (stop.clone(), measuring.clone(), errors.clone());
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::with_capacity(1 << 16);
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let req = generate(worker, i);
                i += 1;
                let t0 = Instant::now();
                let outcome = conn
                    .call(req.method, &req.path, Some(&req.token), req.body)
                    .await;
                let counted = measuring.load(Ordering::Relaxed);
                match outcome {
                    Ok((200, _)) if counted => samples.push(t0.elapsed().as_micros() as u32),
                    Ok((200, _)) => {}
                    Ok(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
            }
            samples
        }));
    }
    let warmup = WARMUP.get().copied().unwrap_or(0.0);
    tokio::time::sleep(Duration::from_secs_f64(warmup)).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut samples = Vec::new();
    for worker in workers {
        samples.extend(worker.await?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    samples.sort_unstable();
    let result = Throughput {
        name: name.to_owned(),
        concurrency,
        requests: samples.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        seconds: elapsed,
        rps: samples.len() as f64 / elapsed,
        p50_ms: percentile(&samples, 50.0),
        p90_ms: percentile(&samples, 90.0),
        p99_ms: percentile(&samples, 99.0),
        max_ms: percentile(&samples, 100.0),
    };
    eprintln!(
        "  {:<34} c={:<3} {:>9.0} req/s  p50 {:>7.2} ms  p90 {:>7.2} ms  p99 {:>7.2} ms  errors {}",
        result.name,
        result.concurrency,
        result.rps,
        result.p50_ms,
        result.p90_ms,
        result.p99_ms,
        result.errors
    );
    Ok(result)
}

#[derive(Debug, Default, Serialize)]
struct Memory {
    idle_before_mib: f64,
    idle_after_mib: f64,
    peak_mib: f64,
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn rss_total(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|pid| rss_kib(*pid)).sum()
}

#[derive(Debug, Serialize)]
struct WakeUp {
    trials: usize,
    median_ms: f64,
    p90_ms: f64,
    max_ms: f64,
}

#[derive(Debug, Serialize)]
struct BulkDelete {
    devices: usize,
    total_ms: f64,
    password_check_ms: f64,
    beyond_password_ms: f64,
    devices_left: usize,
}

#[derive(Debug, Serialize)]
struct Report {
    label: String,
    url: String,
    seconds_per_scenario: f64,
    setup_seconds: f64,
    throughput: Vec<Throughput>,
    wake_up: WakeUp,
    delete_devices: BulkDelete,
    rooms: Option<rooms::RoomsReport>,
    memory: Option<Memory>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(files) = &args.compare {
        if let Some(path) = &args.chart {
            compare::chart(&files[0], &files[1], path)?;
        }
        return compare::compare(&files[0], &files[1]);
    }
    let target = Target::parse(&args.url)?;
    let _ = ONLY.set(args.only.clone());
    let _ = WARMUP.set(args.warmup.max(0.0));
    let quick = args.only.is_some();
    for i in 0..target.endpoints.len() {
        let (status, _) = target
            .connect_to(i)
            .await?
            .json(Method::GET, "/_matrix/client/versions", None, None)
            .await?;
        if status != 200 {
            bail!("{} does not answer /_matrix/client/versions", args.url[i]);
        }
    }
    let mut conn = target.connect_to(0).await?;

    // Memory sampling runs for the whole benchmark.
    let peak = Arc::new(AtomicU64::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    let pids = args.pid.clone();
    let idle_before = rss_total(&pids);
    if !pids.is_empty() {
        let (peak, sampling, pids) = (peak.clone(), sampling.clone(), pids.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                if let Some(kib) = rss_total(&pids) {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    }

    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        % 1_000_000;
    eprintln!("setup: registering users and devices (timed apart)");
    let setup_started = Instant::now();
    let mut users = Vec::new();
    for i in 0..64 {
        users.push(register(&mut conn, &format!("bench{run}u{i}")).await?);
    }
    // Every user gets one global and one room entry to read.
    for user in &users {
        let path = format!("{API}/user/{}/account_data/bench.read", user.user_id);
        let body = json!({"theme": "dark", "font_size": 14, "pinned": ["a", "b", "c"]});
        conn.json(Method::PUT, &path, Some(&user.token), Some(&body))
            .await?;
        let path = format!(
            "{API}/user/{}/rooms/!bench:localhost/account_data/bench.room",
            user.user_id
        );
        conn.json(Method::PUT, &path, Some(&user.token), Some(&body))
            .await?;
    }
    let hundred = register(&mut conn, &format!("bench{run}d100")).await?;
    let big = register(&mut conn, &format!("bench{run}d{}", args.devices)).await?;
    let mut device_sets = vec![(1usize, users[0].clone()), (100, hundred.clone())];
    device_sets.push((args.devices, big.clone()));
    let wants_devices = args.only.as_deref().is_none_or(|o| o.contains("devices"));
    if wants_devices {
        for (want, user) in [(100usize, &hundred), (args.devices, &big)] {
            add_devices(&target, user, want - 1).await?;
        }
    }
    let setup_seconds = setup_started.elapsed().as_secs_f64();
    eprintln!("setup took {setup_seconds:.1} s");

    let secs = args.seconds;
    let mut results = Vec::new();
    let users = Arc::new(users);
    for concurrency in [1usize, 16, 64] {
        let u = users.clone();
        let generate: Generator = Arc::new(move |w, i| {
            let user = &u[w % u.len()];
            Req {
                method: Method::PUT,
                path: format!(
                    "{API}/user/{}/account_data/bench.write.{}",
                    user.user_id,
                    i % 8
                ),
                token: user.token.clone(),
                body: Some(Bytes::from(format!(r#"{{"counter":{i},"worker":{w}}}"#))),
            }
        });
        results.push(
            load(
                &target,
                "PUT global account data",
                concurrency,
                secs,
                generate,
            )
            .await?,
        );
    }
    for concurrency in [1usize, 16, 64] {
        let u = users.clone();
        let generate: Generator = Arc::new(move |w, _| {
            let user = &u[w % u.len()];
            Req {
                method: Method::GET,
                path: format!("{API}/user/{}/account_data/bench.read", user.user_id),
                token: user.token.clone(),
                body: None,
            }
        });
        results.push(
            load(
                &target,
                "GET global account data",
                concurrency,
                secs,
                generate,
            )
            .await?,
        );
    }
    for concurrency in [1usize, 64] {
        let u = users.clone();
        let generate: Generator = Arc::new(move |w, _| {
            let user = &u[w % u.len()];
            Req {
                method: Method::GET,
                path: format!(
                    "{API}/user/{}/rooms/!bench:localhost/account_data/bench.room",
                    user.user_id
                ),
                token: user.token.clone(),
                body: None,
            }
        });
        results.push(
            load(
                &target,
                "GET room account data",
                concurrency,
                secs,
                generate,
            )
            .await?,
        );
    }
    for (count, user) in &device_sets {
        let token = user.token.clone();
        let generate: Generator = Arc::new(move |_, _| Req {
            method: Method::GET,
            path: format!("{API}/devices"),
            token: token.clone(),
            body: None,
        });
        let name = format!("GET /devices ({count} devices)");
        results.push(load(&target, &name, 16, secs, generate).await?);
    }
    {
        let login_user = register(&mut conn, &format!("bench{run}login")).await?;
        let body = Bytes::from(
            json!({"type": "m.login.password",
                   "identifier": {"type": "m.id.user", "user": login_user.localpart},
                   "password": PASSWORD})
            .to_string(),
        );
        let generate: Generator = Arc::new(move |_, _| Req {
            method: Method::POST,
            path: format!("{API}/login"),
            token: String::new(),
            body: Some(body.clone()),
        });
        results.push(load(&target, "POST /login (password)", 4, secs, generate).await?);
    }

    let wants_rooms = args.only.as_deref().is_none_or(|o| {
        ["send", "sync", "messages", "room", "fan"]
            .iter()
            .any(|k| o.contains(k))
    });
    let rooms = if wants_rooms {
        let options = rooms::Options {
            run,
            seconds: secs,
            members: args.members,
            rooms: args.rooms,
            messages_per_room: args.messages_per_room,
            fan_out_trials: args.fan_out_trials,
        };
        Some(rooms::run(&target, &options, &mut results).await?)
    } else {
        None
    };

    if args
        .only
        .as_deref()
        .is_none_or(|o| o.contains("media") || o.contains("thumbnail"))
    {
        media::run(&target, run, secs, &mut results).await?;
    }

    // Heavy to set up: only when asked for by name.
    let wants_discovery = args.only.as_deref().is_some_and(|o| {
        ["discovery", "publicRooms", "search", "relations"]
            .iter()
            .any(|k| o.contains(k))
    });
    let mut discovery_setup = None;
    if wants_discovery {
        let options = discovery::Options {
            run,
            seconds: secs,
            public_rooms: args.public_rooms,
            messages: args.search_messages,
            replies: args.thread_replies,
        };
        discovery_setup = Some(discovery::run(&target, &options, &mut results).await?);
    }

    if args.only.as_deref().is_some_and(|o| o.contains("keys")) {
        let seconds = keys::run(&target, run, secs, args.key_devices, &mut results).await?;
        discovery_setup = Some(discovery_setup.unwrap_or_default() + seconds);
    }

    if quick {
        if let Some(path) = &args.out {
            let quick_report = json!({
                "label": args.label,
                "url": args.url.join(","),
                "seconds_per_scenario": secs,
                "setup_seconds": discovery_setup,
                "throughput": results.iter().filter(|t| t.requests > 0).collect::<Vec<_>>(),
            });
            std::fs::write(path, serde_json::to_vec_pretty(&quick_report)?)?;
        }
        return Ok(());
    }
    eprintln!("wake-up: PUT on one device to a waiting /sync of another");
    let wake_up = wake_up(&target, &users[1], args.wake_trials).await?;
    eprintln!(
        "  median {:.2} ms, p90 {:.2} ms over {} trials",
        wake_up.median_ms, wake_up.p90_ms, wake_up.trials
    );

    eprintln!("/delete_devices of {} devices", args.devices - 1);
    let delete_devices = bulk_delete(&target, &big).await?;
    eprintln!(
        "  {:.1} ms in all, password check {:.1} ms, {:.1} ms beyond it; {} devices left",
        delete_devices.total_ms,
        delete_devices.password_check_ms,
        delete_devices.beyond_password_ms,
        delete_devices.devices_left
    );

    let memory = if pids.is_empty() {
        None
    } else {
        tokio::time::sleep(Duration::from_secs(3)).await;
        sampling.store(false, Ordering::Relaxed);
        let mib = |kib: u64| kib as f64 / 1024.0;
        Some(Memory {
            idle_before_mib: idle_before.map(mib).unwrap_or_default(),
            idle_after_mib: rss_total(&pids).map(mib).unwrap_or_default(),
            peak_mib: mib(peak.load(Ordering::Relaxed)),
        })
    };
    if let Some(m) = &memory {
        eprintln!(
            "memory: idle {:.1} MiB before, {:.1} MiB after, peak {:.1} MiB",
            m.idle_before_mib, m.idle_after_mib, m.peak_mib
        );
    }
    let report = Report {
        label: args.label.clone(),
        url: args.url.join(","),
        seconds_per_scenario: secs,
        setup_seconds,
        throughput: results,
        wake_up,
        delete_devices,
        rooms,
        memory,
    };
    let json = serde_json::to_string_pretty(&report)?;
    match &args.out {
        Some(path) => std::fs::write(path, &json)?,
        None => println!("{json}"),
    }
    Ok(())
}
