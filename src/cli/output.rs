//! The command line's own lines on stderr (the error that ends a command, warnings, import
//! rejections, progress) and how the terminal is used. With `--log-format json` each of them is
//! one JSON object shaped like a tracing log line, so that every stderr line parses as JSON;
//! as text they are plain lines. Colours and animation only for a person at a terminal that
//! wants them: never with `NO_COLOR` set (any non-empty value) or `TERM=dumb`.
//!
//! These lines do not go through the log filter: `--log off` hides the log, not the reason a
//! command failed.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::LogFormat;

/// Writes `line` and a newline to stdout, ignoring a failure (the `out!` macro).
pub fn stdout_line(line: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = out
        .write_fmt(line)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
}

/// How stderr is used, decided once at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// Lines are JSON objects.
    pub json: bool,
    /// Text logs may use ANSI colours.
    pub color: bool,
    /// Progress may redraw in place (bars, spinners).
    pub animate: bool,
}

impl Style {
    /// `terminal`: stderr is a terminal; `no_color`, `term`: the environment variables.
    pub fn new(
        format: LogFormat,
        terminal: bool,
        no_color: Option<&str>,
        term: Option<&str>,
    ) -> Style {
        let json = format == LogFormat::Json;
        let dumb = term == Some("dumb");
        let no_color = no_color.is_some_and(|v| !v.is_empty());
        Style {
            json,
            color: !json && terminal && !dumb && !no_color,
            animate: !json && terminal && !dumb,
        }
    }

    fn from_environment(format: LogFormat) -> Style {
        let var = |name: &str| std::env::var(name).ok();
        Style::new(
            format,
            std::io::stderr().is_terminal(),
            var("NO_COLOR").as_deref(),
            var("TERM").as_deref(),
        )
    }
}

static STYLE: OnceLock<Style> = OnceLock::new();

/// Fixes the style for the rest of the process; returns it.
pub fn init(format: LogFormat) -> Style {
    *STYLE.get_or_init(|| Style::from_environment(format))
}

/// The style fixed by [`init`], or, before it, the one the raw command line and environment
/// imply (the command line may not parse).
pub fn style() -> Style {
    STYLE.get().copied().unwrap_or_else(|| {
        let json = json_requested(
            std::env::args(),
            std::env::var("LAKEHOUSE_KB_LOG_FORMAT").ok(),
        );
        Style::from_environment(if json {
            LogFormat::Json
        } else {
            LogFormat::Text
        })
    })
}

/// `--log-format json` (or `=json`) on the command line, else `LAKEHOUSE_KB_LOG_FORMAT=json`.
pub fn json_requested(args: impl Iterator<Item = String>, env: Option<String>) -> bool {
    let args: Vec<String> = args.collect();
    let mut from_args = None;
    for (i, arg) in args.iter().enumerate() {
        if arg == "--log-format" {
            from_args = args.get(i + 1).map(|v| v == "json");
        } else if let Some(value) = arg.strip_prefix("--log-format=") {
            from_args = Some(value == "json");
        }
    }
    from_args.unwrap_or_else(|| env.is_some_and(|v| v.eq_ignore_ascii_case("json")))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    Warn,
    Info,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
        }
    }
}

/// One line on stderr: `text` as is, or in JSON mode an object with `timestamp`, `level`,
/// `fields.message` (`message`) and `target`, as tracing-subscriber's JSON lines have.
pub fn line(level: Level, message: &str, text: &str) {
    line_with(level, message, text, serde_json::Map::new());
}

/// [`line`] with more fields in JSON mode (e.g. the causes of an error).
pub fn line_with(
    level: Level,
    message: &str,
    text: &str,
    mut fields: serde_json::Map<String, serde_json::Value>,
) {
    let out = if style().json {
        fields.insert("message".into(), message.into());
        let object = serde_json::json!({
            "timestamp": humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
            "level": level.as_str(),
            "fields": fields,
            "target": "lakehouse_kb::cli",
        });
        format!("{object}\n")
    } else {
        format!("{text}\n")
    };
    // One write per line, so lines from several threads never interleave; stderr gone is
    // nothing to report to.
    let _ = std::io::stderr().lock().write_all(out.as_bytes());
}

/// The error that ends a command: `error: ...` and one `caused by:` line per cause, or one
/// JSON line holding the causes as a list.
pub fn error(err: &anyhow::Error) {
    let causes: Vec<String> = err.chain().skip(1).map(|c| c.to_string()).collect();
    let mut text = format!("error: {err}");
    for cause in &causes {
        text.push_str(&format!("\n  caused by: {cause}"));
    }
    let mut fields = serde_json::Map::new();
    if !causes.is_empty() {
        fields.insert("causes".into(), causes.into());
    }
    line_with(Level::Error, &err.to_string(), &text, fields);
}

/// A spinner naming what runs and for how long, for a command without a measure of its work
/// (check, export, backup); `None`, and nothing drawn, unless stderr animates.
pub fn spinner(message: &str) -> Option<ProgressBar> {
    if !style().animate {
        return None;
    }
    let style = ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let bar = ProgressBar::new_spinner().with_style(style);
    bar.set_message(message.to_owned());
    bar.enable_steady_tick(Duration::from_millis(120));
    Some(bar)
}

/// Runs `work` under a [`spinner`], cleared when it ends.
pub fn with_spinner<T>(message: &str, work: impl FnOnce() -> T) -> T {
    let spinner = spinner(message);
    let result = work();
    if let Some(spinner) = spinner {
        spinner.finish_and_clear();
    }
    result
}

#[cfg(test)]
mod tests {
    use super::{LogFormat, Style, json_requested};

    #[test]
    fn colour_and_animation_only_for_a_terminal_that_wants_them() {
        let style = |format, terminal, no_color, term| Style::new(format, terminal, no_color, term);
        let on = Style {
            json: false,
            color: true,
            animate: true,
        };
        assert_eq!(style(LogFormat::Text, true, None, Some("xterm")), on);
        assert_eq!(
            style(LogFormat::Text, true, Some(""), None),
            on,
            "empty NO_COLOR is unset"
        );
        assert_eq!(
            style(LogFormat::Text, true, Some("1"), Some("xterm")),
            Style { color: false, ..on }
        );
        assert_eq!(
            style(LogFormat::Text, true, None, Some("dumb")),
            Style {
                color: false,
                animate: false,
                json: false
            }
        );
        assert_eq!(
            style(LogFormat::Text, false, None, None),
            Style {
                color: false,
                animate: false,
                json: false
            }
        );
        assert_eq!(
            style(LogFormat::Json, true, None, None),
            Style {
                color: false,
                animate: false,
                json: true
            }
        );
    }

    #[test]
    fn json_is_read_from_the_raw_command_line_then_the_environment() {
        let args = |a: &[&str]| {
            a.iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .into_iter()
        };
        assert!(json_requested(
            args(&["kb", "--log-format", "json", "check"]),
            None
        ));
        assert!(json_requested(args(&["kb", "--log-format=json"]), None));
        assert!(!json_requested(
            args(&["kb", "--log-format", "text"]),
            Some("json".into())
        ));
        assert!(json_requested(args(&["kb", "check"]), Some("json".into())));
        assert!(!json_requested(args(&["kb", "check"]), None));
    }
}
