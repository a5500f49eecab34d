//! Reads criterion's estimates of the benches and renders the tables of docs/BENCHMARKS.md:
//! the median of each side, the ratio of the store to its floor and the target.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One comparison of the issue: a store operation, its floor and the largest ratio accepted.
#[derive(Clone, Copy, Debug)]
pub struct Comparison {
    /// The criterion group (the same bytes on both sides).
    pub group: &'static str,
    /// The store side.
    pub store: &'static str,
    /// The floor side.
    pub floor: &'static str,
    /// The target: store median / floor median at most this.
    pub target: f64,
}

/// The comparisons of the issue, in the order of the document.
pub const COMPARISONS: &[Comparison] = &[
    Comparison {
        group: "save_4kb",
        store: "store_save",
        floor: "protocol_floor",
        target: 1.15,
    },
    Comparison {
        group: "save_200mb",
        store: "store_save",
        floor: "protocol_floor",
        target: 1.5,
    },
    Comparison {
        group: "save_200mb",
        store: "store_save_serial_sign",
        floor: "protocol_floor",
        target: 1.5,
    },
    Comparison {
        group: "load_200mb",
        store: "store_load",
        floor: "tag_floor",
        target: 1.25,
    },
    Comparison {
        group: "load_200mb",
        store: "store_open",
        floor: "tag_floor",
        target: 1.25,
    },
    // The floor of the issue as first measured: the single-pass HMAC of envelope format 1.
    Comparison {
        group: "load_200mb",
        store: "store_load",
        floor: "flat_hmac",
        target: 1.25,
    },
];

/// The single measurements listed after the comparisons (parts and the spec's figures).
pub const SINGLES: &[(&str, &str)] = &[
    ("save_200mb", "part_encode"),
    ("load_200mb", "part_backend_get"),
    ("load_200mb", "part_decode"),
    ("spec_8_2", "avg_of_1000_saves_4kb"),
    ("spec_8_2", "replay_10k_save"),
    ("spec_8_2", "replay_10k_load"),
];

/// Why the estimates could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// An estimates file is missing or unreadable (run `cargo bench -p persist-bench` first).
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// An estimates file is not criterion's JSON.
    #[error("{path} has no median point estimate")]
    Format {
        /// The file.
        path: PathBuf,
    },
}

/// The median of one benchmark in nanoseconds, from `<criterion dir>/<group>/<name>/new/estimates.json`.
pub fn median_ns(criterion_dir: &Path, group: &str, name: &str) -> Result<f64, ReportError> {
    let path = criterion_dir
        .join(group)
        .join(name)
        .join("new/estimates.json");
    let text = std::fs::read_to_string(&path).map_err(|source| ReportError::Read {
        path: path.clone(),
        source,
    })?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|_| ReportError::Format { path: path.clone() })?;
    json["median"]["point_estimate"]
        .as_f64()
        .ok_or(ReportError::Format { path })
}

/// A duration in nanoseconds with a readable unit.
pub fn human(ns: f64) -> String {
    match ns {
        n if n >= 1e9 => format!("{:.3} s", n / 1e9),
        n if n >= 1e6 => format!("{:.1} ms", n / 1e6),
        n if n >= 1e3 => format!("{:.1} µs", n / 1e3),
        n => format!("{n:.0} ns"),
    }
}

/// The markdown tables of every comparison and single measurement.
pub fn render(criterion_dir: &Path) -> Result<String, ReportError> {
    let mut out = String::from(
        "| group | store side | median | floor side | median | ratio | target | met |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for c in COMPARISONS {
        let store = median_ns(criterion_dir, c.group, c.store)?;
        let floor = median_ns(criterion_dir, c.group, c.floor)?;
        let ratio = store / floor;
        let met = if ratio <= c.target { "yes" } else { "no" };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {ratio:.2}× | ≤ {:.2}× | {met} |",
            c.group,
            c.store,
            human(store),
            c.floor,
            human(floor),
            c.target
        );
    }
    out.push_str("\n| group | benchmark | median |\n|---|---|---|\n");
    for (group, name) in SINGLES {
        let median = median_ns(criterion_dir, group, name)?;
        let _ = writeln!(out, "| {group} | {name} | {} |", human(median));
    }
    Ok(out)
}
