//! The access log: gevent's line format (`format_request`) and its delivery to the configured
//! sink ([`AccessLog`]).

use std::io::Write as _;
use std::time::Duration;

use super::config::AccessLog;
use super::syntax::{decimal, two_digits};

/// Appends gevent's access-log line to `out`:
/// `127.0.0.1 - - [2026-11-21 15:08:43] "GET / HTTP/1.1" 200 126 0.000125`
/// (client IP or `-`, local time, request line, status code or `000`, bytes sent on the wire or
/// `-`, duration in seconds with 6 decimals or `-`). Bytes of the request line outside printable
/// ASCII, and `\`, are written as `\xNN` so that a line can never be forged.
///
/// gevent: `WSGIHandler.format_request`.
pub(crate) fn format_request(
    out: &mut Vec<u8>,
    client: Option<&[u8]>,
    local_time: &[u8],
    request_line: &[u8],
    status: u16,
    bytes_sent: u64,
    duration: Option<Duration>,
) {
    // No `core::fmt` here: its machinery costs more than the rest of the request (callgrind:
    // about 2 100 instructions of a 4 200-instruction pipelined request went to `write!`).
    // The request line is checked with one table lookup per byte and copied whole; the
    // numbers after it are assembled on the stack (two digits per step) and copied at once.
    out.reserve(64 + client.map_or(1, <[u8]>::len) + local_time.len() + request_line.len());
    let client = client.unwrap_or(b"-");
    out.extend_from_slice(client);
    out.extend_from_slice(b" - - [");
    out.extend_from_slice(local_time);
    out.extend_from_slice(b"] \"");
    if request_line.iter().all(|&b| PLAIN[usize::from(b)]) {
        out.extend_from_slice(request_line);
    } else {
        push_escaped(out, request_line);
    }
    // `" <status> <bytes> <secs>.<micros>`: at most 2 + 20 + 1 + 20 + 1 + 20 + 1 + 6 bytes
    let mut tail = [0u8; 72];
    tail[..2].copy_from_slice(b"\" ");
    let mut len = 2;
    let mut push = |bytes: &[u8]| {
        tail[len..len + bytes.len()].copy_from_slice(bytes);
        len += bytes.len();
    };
    let mut digits = [0u8; 20];
    match status {
        0 => push(b"000"),
        100..=999 => {
            let code = u64::from(status);
            push(&[b'0' + (code / 100) as u8]);
            push(&two_digits(code % 100));
        }
        _ => push(decimal(u64::from(status), &mut digits)),
    }
    push(b" ");
    if bytes_sent == 0 {
        push(b"-");
    } else {
        push(decimal(bytes_sent, &mut digits));
    }
    push(b" ");
    match duration {
        Some(duration) => {
            let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
            push(decimal(micros / 1_000_000, &mut digits));
            let frac = micros % 1_000_000;
            push(b".");
            push(&two_digits(frac / 10_000));
            push(&two_digits(frac / 100));
            push(&two_digits(frac));
        }
        None => push(b"-"),
    }
    out.extend_from_slice(&tail[..len]);
}

/// Printable ASCII but `\`: written as it is; every other byte is written as `\xNN`.
const PLAIN: [bool; 256] = {
    let mut plain = [false; 256];
    let mut b = b' ';
    while b <= b'~' {
        plain[b as usize] = b != b'\\';
        b += 1;
    }
    plain
};

/// Appends `line` with the bytes outside [`PLAIN`] written as `\xNN`.
#[cold]
fn push_escaped(out: &mut Vec<u8>, line: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in line {
        if PLAIN[usize::from(b)] {
            out.push(b);
        } else {
            out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0x0f)],
            ]);
        }
    }
}

/// Sends one line (without its newline) to the access-log sink. `line` gets a `\n` appended for
/// writers. gevent: `WSGIHandler.log_request`.
pub(crate) fn write_line(sink: &AccessLog, line: &mut Vec<u8>) {
    match sink {
        AccessLog::Off => {}
        AccessLog::Logger(logger) => {
            // printable ASCII and the client's address and the local time: valid UTF-8
            let text = String::from_utf8_lossy(line);
            slog::info!(logger, "{}", text);
        }
        AccessLog::Writer(writer) => {
            line.push(b'\n');
            // held only for this write; nothing here yields to the coroutine scheduler
            let mut writer = writer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let _ = writer.write_all(line);
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
        let mut out = Vec::new();
        format_request(
            &mut out,
            Some(b"127.0.0.1"),
            b"2026-11-21 15:08:43",
            b"GET / HTTP/1.1",
            200,
            126,
            Some(Duration::from_nanos(125_000)),
        );
        assert_eq!(
            String::from_utf8_lossy(&out),
            "127.0.0.1 - - [2026-11-21 15:08:43] \"GET / HTTP/1.1\" 200 126 0.000125"
        );
        out.clear();
        format_request(
            &mut out,
            None,
            b"2026-11-21 15:08:43",
            b"de\r\n\\\"",
            0,
            0,
            None,
        );
        assert_eq!(
            String::from_utf8_lossy(&out),
            "- - - [2026-11-21 15:08:43] \"de\\x0d\\x0a\\x5c\"\" 000 - -"
        );
        // every byte outside printable ASCII escaped; durations of every size; the same line as
        // `core::fmt` would write
        let line: Vec<u8> = (0..=255u8).collect();
        for (status, bytes, duration) in [
            (404, 1, Duration::ZERO),
            (599, u64::MAX, Duration::from_micros(1_500_000)),
            (
                100,
                10,
                Duration::from_secs(86_400 * 365) + Duration::from_nanos(999),
            ),
        ] {
            out.clear();
            format_request(
                &mut out,
                Some(b"::1"),
                b"t",
                &line,
                status,
                bytes,
                Some(duration),
            );
            let mut want = String::from("::1 - - [t] \"");
            for &b in &line {
                if (b' '..=b'~').contains(&b) && b != b'\\' {
                    want.push(char::from(b));
                } else {
                    want.push_str(&format!("\\x{b:02x}"));
                }
            }
            let micros = duration.as_micros();
            want.push_str(&format!(
                "\" {status} {bytes} {}.{:06}",
                micros / 1_000_000,
                micros % 1_000_000
            ));
            assert_eq!(String::from_utf8_lossy(&out), want);
        }
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
        let mut line = b"a line".to_vec();
        write_line(&sink, &mut line);
        assert_eq!(&*buf.0.lock().unwrap(), b"a line\n");
        let mut line = b"quiet".to_vec();
        write_line(&AccessLog::Off, &mut line);
    }
}
