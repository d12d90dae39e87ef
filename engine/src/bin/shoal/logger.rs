//! Log lines of the libraries on stderr (`LEVEL message`), info and above; `SHOAL_LOG=debug`
//! or `=warn` changes the level. A few lines of code instead of a logging crate: the binary
//! needs nothing more yet.

use std::io::Write as _;

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
    let level = match std::env::var("SHOAL_LOG").as_deref() {
        Ok("trace") => log::LevelFilter::Trace,
        Ok("debug") => log::LevelFilter::Debug,
        Ok("warn") => log::LevelFilter::Warn,
        Ok("error") => log::LevelFilter::Error,
        _ => log::LevelFilter::Info,
    };
    // Only fails if a logger is already installed, which `main` does not do twice.
    if log::set_logger(&Stderr).is_ok() {
        log::set_max_level(level);
    }
}
