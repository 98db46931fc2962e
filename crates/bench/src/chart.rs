//! `--compare A.json B.json --chart out.svg`: the throughput ratios of two result files as a
//! bar chart, so a reader sees them instead of reading a table. One horizontal bar per
//! scenario on a logarithmic axis (the ratios span 1× to 100×). A few lines of SVG text; a
//! plotting library would bring a font stack for one picture.

use std::{collections::BTreeMap, fmt::Write};

use serde_json::Value;

const ROW: f64 = 22.0;
const LABEL_WIDTH: f64 = 330.0;
const BAR_WIDTH: f64 = 420.0;
const TOP: f64 = 48.0;

/// (scenario with its concurrency, A's req/s ÷ B's) for every scenario both files measured.
pub(crate) fn ratios(a: &Value, b: &Value) -> Vec<(String, f64)> {
    let rps = |v: &Value| -> BTreeMap<(String, u64), f64> {
        v["throughput"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| {
                let rps = t["rps"].as_f64().filter(|r| *r > 0.0)?;
                let key = (t["name"].as_str()?.to_owned(), t["concurrency"].as_u64()?);
                Some((key, rps))
            })
            .collect()
    };
    let theirs = rps(b);
    a["throughput"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let key = (t["name"].as_str()?.to_owned(), t["concurrency"].as_u64()?);
            let ours = t["rps"].as_f64().filter(|r| *r > 0.0)?;
            let other = theirs.get(&key)?;
            Some((format!("{} (c={})", key.0, key.1), ours / other))
        })
        .collect()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The chart as an SVG document.
pub(crate) fn svg(title: &str, rows: &[(String, f64)]) -> String {
    let top_ratio = rows.iter().map(|r| r.1).fold(10.0_f64, f64::max);
    // Decades from 1× (ratios below 1 get a stub) to the largest ratio.
    let decades = top_ratio.log10().ceil().max(1.0);
    let x = |ratio: f64| LABEL_WIDTH + (ratio.max(1.0).log10() / decades) * BAR_WIDTH;
    let height = TOP + rows.len() as f64 * ROW + 40.0;
    let width = LABEL_WIDTH + BAR_WIDTH + 80.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        out,
        r##"<rect width="100%" height="100%" fill="#ffffff"/><text x="10" y="22" font-size="15" font-weight="bold">{}</text>"##,
        escape(title)
    );
    for decade in 0..=decades as u32 {
        let ratio = 10f64.powi(decade as i32);
        let gx = x(ratio);
        let _ = writeln!(
            out,
            r##"<line x1="{gx:.1}" y1="{TOP}" x2="{gx:.1}" y2="{:.1}" stroke="#dddddd"/><text x="{gx:.1}" y="{:.1}" text-anchor="middle" fill="#666666">{ratio}×</text>"##,
            height - 30.0,
            height - 14.0
        );
    }
    for (i, (label, ratio)) in rows.iter().enumerate() {
        let y = TOP + i as f64 * ROW;
        let end = x(*ratio);
        let colour = if *ratio >= 1.0 { "#2f7ed8" } else { "#d9534f" };
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text><rect x="{LABEL_WIDTH}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{colour}"/><text x="{:.1}" y="{:.1}">{:.1}×</text>"##,
            LABEL_WIDTH - 8.0,
            y + 14.0,
            escape(label),
            y + 3.0,
            (end - LABEL_WIDTH).max(2.0),
            ROW - 6.0,
            end + 5.0,
            y + 14.0,
            ratio
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn ratios_pair_scenarios_by_name_and_concurrency() {
        let a = json!({ "throughput": [
            { "name": "GET x", "concurrency": 1, "rps": 300.0 },
            { "name": "GET x", "concurrency": 16, "rps": 900.0 },
            { "name": "only here", "concurrency": 1, "rps": 5.0 },
        ]});
        let b = json!({ "throughput": [
            { "name": "GET x", "concurrency": 16, "rps": 30.0 },
            { "name": "GET x", "concurrency": 1, "rps": 100.0 },
        ]});
        assert_eq!(
            ratios(&a, &b),
            vec![
                ("GET x (c=1)".to_owned(), 3.0),
                ("GET x (c=16)".to_owned(), 30.0)
            ]
        );
        let chart = svg("A & B", &ratios(&a, &b));
        assert!(chart.starts_with("<svg") && chart.ends_with("</svg>\n"));
        assert!(
            chart.contains("A &amp; B") && chart.contains("30.0×"),
            "{chart}"
        );
    }
}
