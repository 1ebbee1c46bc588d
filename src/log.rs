//! The default logger: slog records written to standard error, one line each.
//!
//! gevent writes errors to `sys.stderr` by default; so do we, through slog, so that a user can
//! route them anywhere by giving the server a `slog::Logger` of their own.

use std::fmt::{self, Write as _};
use std::io::Write;

use slog::{Drain, Key, OwnedKVList, Record, Serializer, KV};

/// A slog drain that writes `LEVEL message key=value ...` lines to standard error.
///
/// Each record is formatted into one buffer and written with one `write_all`, so lines from
/// concurrent coroutines never interleave. Used by [`default_logger`].
#[derive(Debug, Clone, Copy, Default)]
pub struct StderrDrain;

struct LineSerializer<'a>(&'a mut String);

impl Serializer for LineSerializer<'_> {
    fn emit_arguments(&mut self, key: Key, val: &fmt::Arguments<'_>) -> slog::Result {
        let _ = write!(self.0, " {key}={val}");
        Ok(())
    }
}

impl Drain for StderrDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
        let mut line = String::with_capacity(128);
        let _ = write!(line, "{} {}", record.level().as_short_str(), record.msg());
        let _ = record
            .kv()
            .serialize(record, &mut LineSerializer(&mut line));
        let _ = values.serialize(record, &mut LineSerializer(&mut line));
        line.push('\n');
        // A closed stderr must not take the server down.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
        Ok(())
    }
}

/// The logger servers use when none is given: [`StderrDrain`] at every level from INFO up.
pub fn default_logger() -> slog::Logger {
    let drain = slog::LevelFilter::new(StderrDrain, slog::Level::Info).fuse();
    slog::Logger::root(drain, slog::o!())
}

/// A logger that drops everything (`.logger(None)` on a server builder).
pub fn discard_logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}
