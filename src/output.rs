//! How results look: tables for people, stable JSON for scripts (docs/CLI-OUTPUT.md).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Instant;

use comfy_table::{Cell, CellAlignment, Table, presets};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use tollgate_domain::ResourceKind;

use crate::services::sync::{KindOutcome, KindStatus, SyncProgress, SyncSummary};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Json,
}

/// The process's peak resident set size, from /proc (Linux); `None` elsewhere.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn seconds(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

fn status_word(status: KindStatus) -> &'static str {
    match status {
        KindStatus::Synced => "synced",
        KindStatus::Unchanged => "unchanged",
        KindStatus::Skipped => "SKIPPED",
        KindStatus::Failed => "FAILED",
    }
}

/// The JSON document `tollgate sync --format json` prints.
#[derive(Serialize)]
pub struct SyncReport<'a> {
    #[serde(flatten)]
    pub summary: &'a SyncSummary,
    pub peak_rss_kib: Option<u64>,
}

pub fn sync_table(summary: &SyncSummary) -> String {
    let mut table = Table::new();
    table.load_style(presets::UTF8_FULL_CONDENSED);
    table.set_header(vec![
        "kind", "status", "fetched", "stored", "scopes", "pages", "time",
    ]);
    for outcome in &summary.kinds {
        table.add_row(vec![
            Cell::new(outcome.kind.as_str()),
            Cell::new(status_word(outcome.status)),
            Cell::new(outcome.fetched).set_alignment(CellAlignment::Right),
            Cell::new(outcome.stored).set_alignment(CellAlignment::Right),
            Cell::new(outcome.scopes).set_alignment(CellAlignment::Right),
            Cell::new(outcome.pages).set_alignment(CellAlignment::Right),
            Cell::new(seconds(outcome.duration_ms)).set_alignment(CellAlignment::Right),
        ]);
    }
    let mut text = table.to_string();
    let api = &summary.api;
    text.push_str(&format!(
        "\n{} sync of {}: {} in {} ({} requests, {} retries, {} throttled (429), paced {} times)\n",
        summary.mode.as_str(),
        summary.organization,
        summary.status,
        seconds(summary.duration_ms),
        api.requests,
        api.retries,
        api.throttled,
        api.paced
    ));
    let not_synced: Vec<&KindOutcome> = summary.skipped().chain(summary.failed()).collect();
    if !not_synced.is_empty() {
        text.push_str("\nNot synced (stored rows kept as they were):\n");
        for outcome in not_synced {
            text.push_str(&format!(
                "  {} {}: {}\n",
                status_word(outcome.status),
                outcome.kind,
                outcome.detail.as_deref().unwrap_or("no detail")
            ));
        }
    }
    text
}

pub fn counts_table(counts: &BTreeMap<ResourceKind, u64>) -> String {
    let mut table = Table::new();
    table.load_style(presets::UTF8_FULL_CONDENSED);
    table.set_header(vec!["kind", "count"]);
    for (kind, count) in counts {
        table.add_row(vec![
            Cell::new(kind.as_str()),
            Cell::new(count).set_alignment(CellAlignment::Right),
        ]);
    }
    let total: u64 = counts.values().sum();
    table.add_row(vec![
        Cell::new("total"),
        Cell::new(total).set_alignment(CellAlignment::Right),
    ]);
    table.to_string()
}

/// `{"kind": count}` with every kind present.
pub fn counts_json(counts: &BTreeMap<ResourceKind, u64>) -> String {
    let map: BTreeMap<&str, u64> = counts.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    serde_json::to_string_pretty(&map).unwrap_or_default()
}

/// Sync progress on stderr: a live bar on a terminal, one plain line per kind otherwise.
pub struct ConsoleProgress {
    bar: Option<ProgressBar>,
    started: Instant,
    items: Mutex<u64>,
}

impl ConsoleProgress {
    pub fn new(quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        Self {
            bar,
            started: Instant::now(),
            items: Mutex::new(0),
        }
    }

    pub fn quiet() -> Self {
        Self {
            bar: None,
            started: Instant::now(),
            items: Mutex::new(u64::MAX),
        }
    }

    fn plain(&self) -> bool {
        self.bar.is_none() && *self.items.lock().unwrap_or_else(|p| p.into_inner()) != u64::MAX
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl SyncProgress for ConsoleProgress {
    fn kind_started(&self, kind: ResourceKind, scopes: usize) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{kind}: listing {scopes} scope(s)"));
        }
    }

    fn page_stored(&self, kind: ResourceKind, items: usize) {
        let mut total = self.items.lock().unwrap_or_else(|p| p.into_inner());
        if *total != u64::MAX {
            *total += items as u64;
        }
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{kind}: {} objects so far", *total));
        }
    }

    fn kind_finished(&self, outcome: &KindOutcome) {
        let line = format!(
            "{:<24} {:<9} {:>8} fetched {:>6} pages {:>7}",
            outcome.kind.as_str(),
            status_word(outcome.status),
            outcome.fetched,
            outcome.pages,
            seconds(outcome.duration_ms)
        );
        if let Some(bar) = &self.bar {
            bar.println(line);
        } else if self.plain() {
            eprintln!(
                "[{:>6}] {line}",
                seconds(self.started.elapsed().as_millis() as u64)
            );
        }
    }
}
