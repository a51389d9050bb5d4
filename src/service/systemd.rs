//! What the service tells systemd (`Type=notify`, `NOTIFY_SOCKET`): `STATUS=` and
//! `EXTEND_TIMEOUT_USEC=` while a crash repair runs at start, `READY=1` and `STOPPING=1`, and
//! `WATCHDOG=1` pings when the unit sets `WatchdogSec=`. Every function is a no-op outside
//! systemd (no `NOTIFY_SOCKET`).

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::sync::watch;

use crate::http::Recovery;
use crate::metrics::Metrics;
use crate::writer::Writer;

/// How far each repair report moves systemd's start timeout: long enough to outlast the gap
/// between two reports ([`REPAIR_REPORT_EVERY`]) on a loaded machine.
const REPAIR_EXTENSION: Duration = Duration::from_secs(60);
/// How often a running repair is reported (STATUS and the timeout extension).
const REPAIR_REPORT_EVERY: Duration = Duration::from_secs(10);

fn notify(states: &[NotifyState]) {
    // A lost notification is not worth failing for: systemd's timeouts catch what matters.
    let _ = sd_notify::notify(false, states);
}

/// The database is open and the API live; `text` becomes the status line.
pub fn ready(text: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(text)]);
}

/// The service has stopped serving and is closing.
pub fn stopping() {
    notify(&[NotifyState::Stopping]);
}

/// Sets the unit's status line (`systemctl status`).
pub fn status(text: &str) {
    notify(&[NotifyState::Status(text)]);
}

fn extension_usec() -> u32 {
    u32::try_from(REPAIR_EXTENSION.as_micros()).unwrap_or(u32::MAX)
}

/// The repair's progress as systemd sees it. redb calls back only at a few points of a repair
/// (each a full pass over the file), so [`Repair::report_while_running`] also reports every
/// [`REPAIR_REPORT_EVERY`] while the repair runs: a repair is bounded by the file's size, not
/// by `TimeoutStartSec`, and is never killed halfway for being slow.
#[derive(Debug, Clone)]
pub struct Repair {
    started: Arc<AtomicBool>,
    last_step: Arc<AtomicI64>,
    /// A build of derived indexes under way: what, and the seq through which it is done.
    building: Arc<Mutex<Option<(&'static str, u64)>>>,
    /// The open is over: a build after it (values converted once a dictionary is trained,
    /// as writes go on) is the service's own business, not its start's.
    opened: Arc<AtomicBool>,
}

impl Default for Repair {
    fn default() -> Self {
        Repair {
            started: Arc::default(),
            last_step: Arc::new(AtomicI64::new(-1)),
            building: Arc::default(),
            opened: Arc::default(),
        }
    }
}

impl Repair {
    /// For redb's repair callback (a blocking thread): reports each new 5% step at once.
    pub fn progress(&self, fraction: f64) {
        self.started.store(true, Ordering::Relaxed);
        let step = (fraction * 20.0).floor() as i64;
        if self.last_step.fetch_max(step, Ordering::Relaxed) < step {
            report(fraction);
        }
    }

    /// For the store's build callback (a blocking thread): reports each transaction of a build
    /// of derived indexes at once, and has [`Repair::report_while_running`] report it between.
    pub fn building(&self, what: &'static str, through_seq: u64) {
        if self.opened.load(Ordering::Relaxed) {
            return;
        }
        *self.building.lock().unwrap_or_else(PoisonError::into_inner) = Some((what, through_seq));
        report_building(what, through_seq);
    }

    /// The open is over: builds after it are not reported.
    pub fn opened(&self) {
        self.opened.store(true, Ordering::Relaxed);
    }

    /// Reports the repair, or a build, every [`REPAIR_REPORT_EVERY`] until `opened` turns true.
    pub async fn report_while_running(self, recovery: Recovery, mut opened: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(REPAIR_REPORT_EVERY) => {}
                _ = opened.changed() => return,
            }
            if *opened.borrow() {
                return;
            }
            let building = *self.building.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((what, through_seq)) = building {
                report_building(what, through_seq);
            } else if self.started.load(Ordering::Relaxed) {
                report(recovery.get());
            }
        }
    }
}

fn report(fraction: f64) {
    let status = format!(
        "repairing the database after an unclean shutdown: {:.0}%",
        fraction * 100.0
    );
    notify(&[
        NotifyState::Status(&status),
        NotifyState::ExtendTimeoutUsec(extension_usec()),
    ]);
}

/// The open builds derived indexes under new rules (after an upgrade): says so, and moves the
/// start timeout on, so that systemd does not kill a build that is making progress, as it
/// would not kill a repair.
fn report_building(what: &str, through_seq: u64) {
    let status =
        format!("opening the database: building {what}, verdicts through seq {through_seq}");
    notify(&[
        NotifyState::Status(&status),
        NotifyState::ExtendTimeoutUsec(extension_usec()),
    ]);
}

/// The open waits for disk space: says so, and moves the start timeout on (the caller reports
/// again at least every [`REPAIR_REPORT_EVERY`]), so that systemd does not kill a start that
/// waits for an operator to free space, as it would not kill a repair.
pub fn waiting_for_space() {
    notify(&[
        NotifyState::Status("waiting for disk space to open the database"),
        NotifyState::ExtendTimeoutUsec(extension_usec()),
    ]);
}

/// How often a start that waits reports it ([`waiting_for_space`]).
pub const WAIT_REPORT_EVERY: Duration = REPAIR_REPORT_EVERY;

/// The watchdog interval systemd asks for, per sd_watchdog_enabled(3): `WATCHDOG_USEC`, unless
/// `WATCHDOG_PID` is set to another process. (The sd-notify crate also requires the PID.)
pub fn watchdog_interval() -> Option<Duration> {
    watchdog_interval_from(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )
}

fn watchdog_interval_from(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&usec| usec > 0)?;
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok() != Some(own_pid)
    {
        return None;
    }
    Some(Duration::from_micros(usec))
}

/// Pings `WATCHDOG=1` at half the interval systemd set, from a task on the async runtime, and
/// only while the writer is alive: its thread runs, and requests found waiting at two checks in
/// a row saw a commit complete in between. A stuck runtime (no task runs) or a dead or stuck
/// writer stops the pings, and systemd restarts the service (`Restart=on-failure`). Ends on
/// `stop`, dropping its writer handle so the writer can drain.
pub async fn watchdog(
    interval: Duration,
    writer: Writer,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let period = interval / 2;
    let mut last = WriterSample::default();
    loop {
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            _ = stop.changed() => return,
        }
        let now = WriterSample {
            closed: writer.is_closed(),
            waiting: writer.depth() > 0,
            commits: metrics.commits(),
        };
        let verdict = now.verdict(&last);
        last = now;
        match verdict {
            Liveness::Alive => notify(&[NotifyState::Watchdog]),
            Liveness::Stuck => tracing::warn!(
                queued = writer.depth(),
                "requests have waited a whole watchdog period without a commit; withholding the ping"
            ),
            Liveness::Dead => {
                tracing::error!("the writer has stopped; no more watchdog pings");
                status("the writer has stopped");
                return;
            }
        }
    }
}

/// What the watchdog sees of the writer at one check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct WriterSample {
    closed: bool,
    waiting: bool,
    commits: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Liveness {
    Alive,
    /// Requests waited at the last check and still do, and no commit completed in between.
    Stuck,
    Dead,
}

impl WriterSample {
    fn verdict(&self, last: &WriterSample) -> Liveness {
        if self.closed {
            Liveness::Dead
        } else if last.waiting && self.waiting && self.commits == last.commits {
            Liveness::Stuck
        } else {
            Liveness::Alive
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Liveness, WriterSample, watchdog_interval_from};

    #[test]
    fn the_watchdog_pings_only_while_the_writer_lives_and_moves() {
        let sample = |closed, waiting, commits| WriterSample {
            closed,
            waiting,
            commits,
        };
        let idle = sample(false, false, 5);
        assert_eq!(idle.verdict(&idle), Liveness::Alive, "idle is alive");
        // Work arrived since the last check: not stuck yet, whatever the commits.
        assert_eq!(sample(false, true, 5).verdict(&idle), Liveness::Alive);
        // Waiting at both checks, commits moving: a busy writer.
        assert_eq!(
            sample(false, true, 9).verdict(&sample(false, true, 5)),
            Liveness::Alive
        );
        // Waiting at both checks, no commit in between.
        assert_eq!(
            sample(false, true, 5).verdict(&sample(false, true, 5)),
            Liveness::Stuck
        );
        assert_eq!(sample(true, false, 5).verdict(&idle), Liveness::Dead);
    }

    #[test]
    fn watchdog_interval_follows_sd_watchdog_enabled() {
        let ms = Duration::from_millis;
        assert_eq!(
            watchdog_interval_from(Some("30000000"), None, 7),
            Some(ms(30_000))
        );
        assert_eq!(
            watchdog_interval_from(Some("500000"), Some("7"), 7),
            Some(ms(500))
        );
        assert_eq!(watchdog_interval_from(Some("500000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval_from(Some("soon"), None, 7), None);
        assert_eq!(watchdog_interval_from(None, Some("7"), 7), None);
    }
}
