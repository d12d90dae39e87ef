//! Log lines of the libraries on stderr (`LEVEL message`), info and above; `SHOAL_LOG` sets
//! the level (`off`, `error`, `warn`, `info`, `debug` or `trace`, any case). A few lines of
//! code instead of a logging crate: the binary needs nothing more yet.

use std::io::Write as _;
use std::str::FromStr as _;

struct Stderr;

impl log::Log for Stderr {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            // A failed write to stderr has nowhere better to go.
            let _ = writeln!(std::io::stderr(), "{:<5} {}", record.level(), record.args());
        }
    }

    fn flush(&self) {}
}

/// Installs the logger (once, at start).
pub(crate) fn install() {
    let setting = std::env::var("SHOAL_LOG").ok();
    let parsed = setting.as_deref().map(log::LevelFilter::from_str);
    let level = match &parsed {
        Some(Ok(level)) => *level,
        None | Some(Err(_)) => log::LevelFilter::Info,
    };
    // Only fails if a logger is already installed, which `main` does not do twice.
    if log::set_logger(&Stderr).is_ok() {
        log::set_max_level(level);
    }
    if let (Some(setting), Some(Err(_))) = (&setting, &parsed) {
        log::warn!(
            "SHOAL_LOG={setting:?} is not a log level: use off, error, warn, info, debug or \
             trace; logging at info"
        );
    }
}
