//! A minimal stderr logger for the `log` facade (info and above; `WSX_LOG=debug` for more).

use log::{Level, LevelFilter, Log, Metadata, Record};

struct Stderr {
    level: Level,
}

impl Log for Stderr {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= self.level
    }
    fn log(&self, r: &Record<'_>) {
        if self.enabled(r.metadata()) {
            eprintln!("{:5} {}", r.level(), r.args());
        }
    }
    fn flush(&self) {}
}

/// Installs the logger; `quiet` keeps only warnings and errors.
pub fn init(quiet: bool) {
    let level = match std::env::var("WSX_LOG").as_deref() {
        Ok("debug") => Level::Debug,
        Ok("trace") => Level::Trace,
        _ if quiet => Level::Warn,
        _ => Level::Info,
    };
    if log::set_boxed_logger(Box::new(Stderr { level })).is_ok() {
        log::set_max_level(level.to_level_filter().max(LevelFilter::Warn));
    }
}
