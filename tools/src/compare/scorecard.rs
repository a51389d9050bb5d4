//! The targets the store is held to (issue 21, "storage efficiency"), each with its figure from
//! this run, the baseline measured in the same run, and whether it is met: the side-by-side
//! table a team reads before it replaces the legacy files, from one command (`compare all`).

use super::{HttpSystem, Report, StorageCell, System, mib, ratio};
use crate::{fmt_rate, print_table};

/// Import's peak memory must stay under this at 1M legacy lines.
const IMPORT_RSS_LIMIT_MIB: f64 = 256.0;

/// One target: what is compared, the two figures, their ratio and whether it meets `target`.
struct Line {
    figure: String,
    kb: String,
    baseline: String,
    ratio: f64,
    target: Target,
}

#[derive(Clone, Copy)]
enum Target {
    /// The ratio is at least this.
    AtLeast(f64),
    /// The ratio is at most this.
    AtMost(f64),
    /// The ratio is below this.
    Below(f64),
}

impl Target {
    fn met(self, ratio: f64) -> bool {
        match self {
            Target::AtLeast(t) => ratio >= t,
            Target::AtMost(t) => ratio <= t,
            Target::Below(t) => ratio < t,
        }
    }

    fn text(self) -> String {
        match self {
            Target::AtLeast(t) => format!("≥ {t:.2}x"),
            Target::AtMost(t) => format!("≤ {t:.2}x"),
            Target::Below(t) => format!("< {t:.2}x"),
        }
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn rate(per_s: f64, unit: &str) -> String {
    format!("{} {unit}/s", fmt_rate(per_s))
}

/// The lines `report` has figures for, in the order of the table.
fn lines(report: &Report) -> Vec<Line> {
    let mut lines = Vec::new();
    for r in &report.sizes {
        let rows = r.rows.max(1) as f64;
        let per_line = |bytes: u64| format!("{:.0} B", bytes as f64 / rows);
        lines.push(Line {
            figure: format!(
                "size on disk per legacy line, {} lines (file length: {})",
                fmt_rate(r.rows as f64),
                per_line(r.bytes_store)
            ),
            kb: per_line(r.disk_store),
            baseline: format!("{} legacy JSONL", per_line(r.bytes_legacy)),
            ratio: r.disk_store as f64 / r.bytes_legacy.max(1) as f64,
            target: Target::AtMost(1.0),
        });
        lines.push(Line {
            figure: format!(
                "size on disk per legacy line, {} lines",
                fmt_rate(r.rows as f64)
            ),
            kb: per_line(r.disk_store),
            baseline: format!("{} SQLite", per_line(r.disk_sqlite)),
            ratio: r.disk_store as f64 / r.disk_sqlite.max(1) as f64,
            target: Target::Below(1.0),
        });
    }
    let storage = |batch: usize, system: System| -> Option<&StorageCell> {
        report
            .storage
            .iter()
            .find(|c| c.batch == batch && c.system == system)
    };
    for cell in report.storage.iter().filter(|c| c.system == System::Store) {
        if let Some(sqlite) = storage(cell.batch, System::Sqlite) {
            lines.push(Line {
                figure: format!(
                    "durable ingest at the storage layer, {}",
                    plural(cell.batch, "event per commit", "events per commit")
                ),
                kb: rate(cell.figures.rate(), "ev"),
                baseline: format!("{} SQLite", rate(sqlite.figures.rate(), "ev")),
                ratio: cell.figures.rate() / sqlite.figures.rate().max(1e-9),
                target: Target::AtLeast(1.0),
            });
        }
    }
    let http = |clients: usize, system: HttpSystem| {
        report
            .http
            .iter()
            .find(|c| c.clients == clients && c.system == system)
            .map(|c| c.drive.requests_per_sec())
    };
    let most = report.http.iter().map(|c| c.clients).max();
    for (clients, against, label, target) in [
        (
            Some(1),
            HttpSystem::Legacy,
            "legacy observer (no fsync)",
            1.0,
        ),
        (most, HttpSystem::Noop, "no-op axum ceiling", 0.5),
    ] {
        let Some(clients) = clients else { continue };
        if let (Some(kb), Some(base)) = (
            http(clients, HttpSystem::LakehouseKb),
            http(clients, against),
        ) {
            lines.push(Line {
                figure: format!(
                    "POST /event over HTTP, {}",
                    plural(clients, "client", "clients")
                ),
                kb: rate(kb, "ev"),
                baseline: format!("{} {label}", rate(base, "ev")),
                ratio: kb / base.max(1e-9),
                target: Target::AtLeast(target),
            });
        }
    }
    for r in report.sizes.iter().filter(|r| r.bulk) {
        let rows = fmt_rate(r.rows as f64);
        lines.push(Line {
            figure: format!("full export, {rows} lines"),
            kb: rate(r.export_store.rate(), "rows"),
            baseline: format!("{} SQLite", rate(r.export_sqlite.rate(), "rows")),
            ratio: r.export_store.rate() / r.export_sqlite.rate().max(1e-9),
            target: Target::AtLeast(1.0),
        });
        lines.push(Line {
            figure: format!("idempotent import, {rows} lines"),
            kb: rate(r.import_store.rate(), "rows"),
            baseline: format!(
                "{} SQLite (unique import keys)",
                rate(r.import_sqlite.rate(), "rows")
            ),
            ratio: r.import_store.rate() / r.import_sqlite.rate().max(1e-9),
            target: Target::AtLeast(1.0),
        });
        let rss_mib = r.import_store.peak_rss_kib as f64 / 1024.0;
        lines.push(Line {
            figure: format!("import peak RSS, {rows} lines"),
            kb: mib(r.import_store.peak_rss_kib),
            baseline: format!("{IMPORT_RSS_LIMIT_MIB:.0} MiB limit"),
            ratio: rss_mib / IMPORT_RSS_LIMIT_MIB,
            target: Target::Below(1.0),
        });
    }
    lines
}

/// Prints the scorecard of `report` (nothing when it measured none of the targets).
pub fn print(report: &Report) {
    let lines = lines(report);
    if lines.is_empty() {
        return;
    }
    println!(
        "Against the targets: each figure of this run beside the baseline measured in the same \
         run.\n"
    );
    let rows: Vec<Vec<String>> = lines
        .into_iter()
        .map(|l| {
            vec![
                l.figure,
                l.kb,
                l.baseline,
                ratio(l.ratio, 1.0),
                l.target.text(),
                if l.target.met(l.ratio) { "yes" } else { "no" }.to_owned(),
            ]
        })
        .collect();
    print_table(
        &[
            "figure",
            "lakehouse-kb",
            "baseline (same run)",
            "ratio",
            "target",
            "met",
        ],
        &rows,
    );
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::SizeResult;
    use super::*;
    use crate::compare::HttpCell;
    use crate::compare::worker::Figures;
    use crate::loadgen::Drive;

    #[test]
    fn targets_judge_their_bounds() {
        let cases = [
            (Target::AtLeast(1.0), 1.0, true),
            (Target::AtLeast(1.0), 0.99, false),
            (Target::AtLeast(0.5), 0.51, true),
            (Target::AtMost(1.0), 1.0, true),
            (Target::AtMost(1.0), 1.01, false),
            (Target::Below(1.0), 1.0, false),
            (Target::Below(1.0), 0.37, true),
        ];
        for (target, ratio, met) in cases {
            assert_eq!(target.met(ratio), met, "{} at {ratio}", target.text());
        }
    }

    #[test]
    fn an_empty_report_has_no_lines() {
        assert!(lines(&Report::default()).is_empty());
    }

    fn figures(items: u64, seconds: f64, peak_rss_kib: u64) -> Figures {
        Figures {
            items,
            seconds,
            peak_rss_kib,
            ..Figures::default()
        }
    }

    fn http(system: HttpSystem, clients: usize, ok: usize) -> HttpCell {
        HttpCell {
            system,
            clients,
            drive: Drive {
                ok,
                errors: 0,
                first_error: None,
                window: Duration::from_secs(1),
                p50: Duration::ZERO,
                p99: Duration::ZERO,
                p999: Duration::ZERO,
                load_average: String::new(),
            },
            peak_rss_kib: 0,
        }
    }

    fn storage(system: System, batch: usize, events: u64) -> StorageCell {
        StorageCell {
            system,
            batch,
            figures: figures(events, 1.0, 0),
        }
    }

    #[test]
    fn each_target_is_judged_against_its_own_baseline() {
        let report = Report {
            http: vec![
                http(HttpSystem::LakehouseKb, 1, 3_000),
                http(HttpSystem::Legacy, 1, 4_000),
                http(HttpSystem::Noop, 1, 9_000),
                http(HttpSystem::LakehouseKb, 64, 30_000),
                http(HttpSystem::Legacy, 64, 10_000),
                http(HttpSystem::Noop, 64, 50_000),
            ],
            storage: vec![
                storage(System::Store, 1, 7_000),
                storage(System::RawRedb, 1, 1_000_000),
                storage(System::Sqlite, 1, 6_000),
            ],
            sizes: vec![SizeResult {
                rows: 1_000,
                bytes_store: 300_000,
                disk_store: 250_000,
                bytes_legacy: 260_000,
                disk_sqlite: 700_000,
                export_store: figures(1_000, 1.0, 0),
                export_sqlite: figures(1_000, 2.0, 0),
                import_store: figures(1_000, 1.0, 300 * 1024),
                import_sqlite: figures(1_000, 1.0, 0),
                bulk: true,
                ..SizeResult::default()
            }],
        };
        let judged: Vec<(String, String, bool)> = lines(&report)
            .into_iter()
            .map(|l| (l.figure, format!("{:.2}", l.ratio), l.target.met(l.ratio)))
            .collect();
        let expected = [
            // On disk, not the file's length, against the JSONL and SQLite.
            (
                "size on disk per legacy line, 1 000 lines (file length: 300 B)",
                "0.96",
                true,
            ),
            ("size on disk per legacy line, 1 000 lines", "0.36", true),
            // Raw redb is a floor, not a target.
            (
                "durable ingest at the storage layer, 1 event per commit",
                "1.17",
                true,
            ),
            // One client against the legacy observer, the most clients against the ceiling.
            ("POST /event over HTTP, 1 client", "0.75", false),
            ("POST /event over HTTP, 64 clients", "0.60", true),
            ("full export, 1 000 lines", "2.00", true),
            ("idempotent import, 1 000 lines", "1.00", true),
            ("import peak RSS, 1 000 lines", "1.17", false),
        ];
        assert_eq!(judged.len(), expected.len(), "{judged:#?}");
        for ((figure, ratio, met), (want_figure, want_ratio, want_met)) in
            judged.iter().zip(expected)
        {
            assert_eq!(
                (figure.as_str(), ratio.as_str(), *met),
                (want_figure, want_ratio, want_met)
            );
        }
    }
}
