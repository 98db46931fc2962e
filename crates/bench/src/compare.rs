//! `--compare`: two result files side by side, as the README's tables.

use std::collections::BTreeMap;

use serde_json::Value;

fn load(path: &std::path::Path) -> anyhow::Result<Value> {
    Ok(serde_json::from_str(&std::fs::read_to_string(path)?)?)
}

/// Writes the throughput ratios of A over B as an SVG bar chart to `out`.
pub(crate) fn chart(
    a: &std::path::Path,
    b: &std::path::Path,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    let (a, b) = (load(a)?, load(b)?);
    let title = format!(
        "Throughput, {} ÷ {}",
        a["label"].as_str().unwrap_or("A"),
        b["label"].as_str().unwrap_or("B")
    );
    let rows = crate::chart::ratios(&a, &b);
    std::fs::write(out, crate::chart::svg(&title, &rows))?;
    Ok(())
}

/// Prints two result files side by side as a Markdown table.
pub(crate) fn compare(a: &std::path::Path, b: &std::path::Path) -> anyhow::Result<()> {
    let (a, b) = (load(a)?, load(b)?);
    let (la, lb) = (
        a["label"].as_str().unwrap_or("A"),
        b["label"].as_str().unwrap_or("B"),
    );
    println!(
        "| scenario | c | {la} req/s | {lb} req/s | ratio | {la} p50 / p99 ms | {lb} p50 / p99 ms |"
    );
    println!("|---|---|---|---|---|---|---|");
    let index = |v: &Value| -> BTreeMap<(String, u64), Value> {
        v["throughput"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                (
                    (
                        t["name"].as_str().unwrap_or("").to_owned(),
                        t["concurrency"].as_u64().unwrap_or(0),
                    ),
                    t.clone(),
                )
            })
            .collect()
    };
    let bi = index(&b);
    for t in a["throughput"].as_array().into_iter().flatten() {
        let key = (
            t["name"].as_str().unwrap_or("").to_owned(),
            t["concurrency"].as_u64().unwrap_or(0),
        );
        let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(0.0);
        let other = bi.get(&key).cloned().unwrap_or(Value::Null);
        let ratio = if f(&other, "rps") > 0.0 {
            format!("{:.1}×", f(t, "rps") / f(&other, "rps"))
        } else {
            "–".to_owned()
        };
        println!(
            "| {} | {} | {:.0} | {:.0} | {} | {:.2} / {:.2} | {:.2} / {:.2} |",
            key.0,
            key.1,
            f(t, "rps"),
            f(&other, "rps"),
            ratio,
            f(t, "p50_ms"),
            f(t, "p99_ms"),
            f(&other, "p50_ms"),
            f(&other, "p99_ms")
        );
    }
    let g = |v: &Value, a: &str, b: &str| v[a][b].as_f64().unwrap_or(0.0);
    println!();
    println!("| measure | {la} | {lb} |");
    println!("|---|---|---|");
    println!(
        "| wake-up PUT → waiting /sync, median / p90 (ms) | {:.2} / {:.2} | {:.2} / {:.2} |",
        g(&a, "wake_up", "median_ms"),
        g(&a, "wake_up", "p90_ms"),
        g(&b, "wake_up", "median_ms"),
        g(&b, "wake_up", "p90_ms")
    );
    println!(
        "| /delete_devices of {} devices, beyond the password check (ms) | {:.1} | {:.1} |",
        a["delete_devices"]["devices"],
        g(&a, "delete_devices", "beyond_password_ms"),
        g(&b, "delete_devices", "beyond_password_ms")
    );
    println!(
        "| fan-out of one message to {} waiting /sync, median / p99 (ms) | {:.2} / {:.2} | {:.2} / {:.2} |",
        a["rooms"]["fan_out"]["members"],
        a["rooms"]["fan_out"]["median_ms"].as_f64().unwrap_or(0.0),
        a["rooms"]["fan_out"]["p99_ms"].as_f64().unwrap_or(0.0),
        b["rooms"]["fan_out"]["median_ms"].as_f64().unwrap_or(0.0),
        b["rooms"]["fan_out"]["p99_ms"].as_f64().unwrap_or(0.0)
    );
    println!(
        "| memory idle before / after (MiB) | {:.1} / {:.1} | {:.1} / {:.1} |",
        g(&a, "memory", "idle_before_mib"),
        g(&a, "memory", "idle_after_mib"),
        g(&b, "memory", "idle_before_mib"),
        g(&b, "memory", "idle_after_mib")
    );
    println!(
        "| memory peak (MiB) | {:.1} | {:.1} |",
        g(&a, "memory", "peak_mib"),
        g(&b, "memory", "peak_mib")
    );
    println!(
        "| setup (registration, devices) (s) | {:.1} | {:.1} |",
        a["setup_seconds"].as_f64().unwrap_or(0.0),
        b["setup_seconds"].as_f64().unwrap_or(0.0)
    );
    println!(
        "| setup (rooms, history, members) (s) | {:.1} | {:.1} |",
        a["rooms"]["setup_seconds"].as_f64().unwrap_or(0.0),
        b["rooms"]["setup_seconds"].as_f64().unwrap_or(0.0)
    );
    Ok(())
}
