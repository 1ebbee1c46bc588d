//! The access log: gevent's line format (`format_request`) and its delivery to the configured
//! sink ([`AccessLog`]).

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Duration;

use super::config::AccessLog;

/// Appends gevent's access-log line to `out`:
/// `127.0.0.1 - - [2026-11-21 15:08:43] "GET / HTTP/1.1" 200 126 0.000125`
/// (client IP or `-`, local time, request line, status code or `000`, bytes sent on the wire or
/// `-`, duration in seconds with 6 decimals or `-`). Bytes of the request line outside printable
/// ASCII, and `\`, are written as `\xNN` so that a line can never be forged.
///
/// gevent: `WSGIHandler.format_request`.
pub(crate) fn format_request(
    out: &mut String,
    client: Option<&str>,
    local_time: &str,
    request_line: &[u8],
    status: u16,
    bytes_sent: u64,
    duration: Option<Duration>,
) {
    out.push_str(client.unwrap_or("-"));
    out.push_str(" - - [");
    out.push_str(local_time);
    out.push_str("] \"");
    for &b in request_line {
        if (b' '..=b'~').contains(&b) && b != b'\\' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out.push_str("\" ");
    if status == 0 {
        out.push_str("000");
    } else {
        let _ = write!(out, "{status}");
    }
    out.push(' ');
    if bytes_sent == 0 {
        out.push('-');
    } else {
        let _ = write!(out, "{bytes_sent}");
    }
    out.push(' ');
    match duration {
        Some(duration) => {
            // integer formatting: `{:.6}` of an f64 costs more than the rest of the line
            let micros = duration.as_micros();
            let _ = write!(out, "{}.{:06}", micros / 1_000_000, micros % 1_000_000);
        }
        None => out.push('-'),
    }
}

/// Sends one line (without its newline) to the access-log sink. `line` gets a `\n` appended for
/// writers. gevent: `WSGIHandler.log_request`.
pub(crate) fn write_line(sink: &AccessLog, line: &mut String) {
    match sink {
        AccessLog::Off => {}
        AccessLog::Logger(logger) => slog::info!(logger, "{}", line),
        AccessLog::Writer(writer) => {
            line.push('\n');
            // held only for this write; nothing here yields to the coroutine scheduler
            let mut writer = writer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let _ = writer.write_all(line.as_bytes());
            let _ = writer.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn gevent_format() {
        let mut out = String::new();
        format_request(
            &mut out,
            Some("127.0.0.1"),
            "2026-11-21 15:08:43",
            b"GET / HTTP/1.1",
            200,
            126,
            Some(Duration::from_nanos(125_000)),
        );
        assert_eq!(
            out,
            "127.0.0.1 - - [2026-11-21 15:08:43] \"GET / HTTP/1.1\" 200 126 0.000125"
        );
        out.clear();
        format_request(
            &mut out,
            None,
            "2026-11-21 15:08:43",
            b"de\r\n\\\"",
            0,
            0,
            None,
        );
        assert_eq!(
            out,
            "- - - [2026-11-21 15:08:43] \"de\\x0d\\x0a\\x5c\"\" 000 - -"
        );
    }

    #[derive(Clone)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn writer_sink_adds_newline() {
        let buf = Shared(Arc::new(Mutex::new(Vec::new())));
        let sink = AccessLog::writer(buf.clone());
        let mut line = "a line".to_owned();
        write_line(&sink, &mut line);
        assert_eq!(&*buf.0.lock().unwrap(), b"a line\n");
        let mut line = "quiet".to_owned();
        write_line(&AccessLog::Off, &mut line);
    }
}
