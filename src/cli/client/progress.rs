//! Waiting for a long operation: Ctrl-C, which only stops the waiting
//! (the server runs the operation in a task of its own, whoever waits),
//! and the progress display, a bar on a terminal or plain lines on
//! standard error otherwise. The commands poll the server's status APIs
//! and hand the figures here; nothing here talks HTTP.

use std::future::Future;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often the commands poll a status API while they wait.
pub const POLL: Duration = Duration::from_millis(500);

/// Without a terminal, at most one progress line per this long, and only
/// when the figures changed.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// Ctrl-C, listened for from before the operation is started, so that
/// one pressed while the first request is in flight is not lost either
/// (the default action would kill the process without a word).
pub struct Interrupt {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Interrupt {
    /// Must run inside the runtime.
    pub fn listen() -> Interrupt {
        Interrupt {
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok(),
        }
    }

    async fn pressed(&mut self) {
        #[cfg(unix)]
        match &mut self.signal {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }

    /// `work`'s outcome, or `None` when Ctrl-C came first (`work` is
    /// dropped then: a request in flight is abandoned, not cancelled on
    /// the server).
    pub async fn or<F: Future>(&mut self, work: F) -> Option<F::Output> {
        tokio::select! {
            biased;
            _ = self.pressed() => None,
            out = work => Some(out),
        }
    }
}

/// One operation's progress on standard error.
pub struct Progress {
    label: String,
    bar: Option<ProgressBar>,
    last_line: Instant,
    last_text: String,
}

impl Progress {
    /// A bar when standard error is a terminal, plain lines otherwise.
    pub fn new(label: impl Into<String>) -> Progress {
        let label = label.into();
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(1), ProgressDrawTarget::stderr());
            let style =
                ProgressStyle::with_template("{prefix} [{bar:30}] {percent:>3}% {msg} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(label.clone());
            bar
        });
        Progress {
            label,
            bar,
            // The first line after PLAIN_EVERY too: a short operation
            // prints only its outcome.
            last_line: Instant::now(),
            last_text: String::new(),
        }
    }

    /// `done` of `total` units (bytes, keys; `total` 0 shows 0%), and a
    /// line of detail that names them.
    pub fn set(&mut self, done: u64, total: u64, detail: String) {
        if let Some(bar) = &self.bar {
            bar.set_length(total.max(1));
            bar.set_position(done.min(total));
            bar.set_message(detail);
            return;
        }
        let text = format!("{}: {detail}", self.label);
        if self.last_line.elapsed() >= PLAIN_EVERY && text != self.last_text {
            eprintln!("{text}");
            self.last_line = Instant::now();
            self.last_text = text;
        }
    }

    /// Takes the bar off the screen (the command prints the outcome).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// `12.30 MiB of 40.00 MiB` (binary units, as indicatif prints them).
pub fn bytes_of(done: u64, total: u64) -> String {
    format!("{} of {}", HumanBytes(done), HumanBytes(total))
}

/// `done/total (p%)` for counts.
pub fn percent(done: u64, total: u64) -> String {
    if total == 0 {
        return "0%".into();
    }
    format!("{}%", done.saturating_mul(100) / total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_binary_units_and_percent_never_divides_by_zero() {
        assert_eq!(bytes_of(1536, 1 << 20), "1.50 KiB of 1.00 MiB");
        assert_eq!(percent(1, 3), "33%");
        assert_eq!(percent(0, 0), "0%");
    }
}
