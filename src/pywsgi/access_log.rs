//! The access log: gevent's line format (`format_request`) and its delivery to the configured
//! sink ([`AccessLog`]).

use std::io::Write as _;
use std::time::Duration;

use super::config::AccessLog;
use super::syntax::{decimal, two_digits};

/// Appends gevent's access-log line to `out`:
/// `127.0.0.1 - - [2026-11-21 15:08:43] "GET / HTTP/1.1" 200 126 0.000125`
/// (client IP or `-`, local time, request line, status code or `000`, bytes sent on the wire or
/// `-`, duration in seconds with 6 decimals, rounded as gevent's `%.6f` rounds, or `-`). Bytes
/// of the request line outside printable ASCII, and `\`, are written as `\xNN` so that a line
/// can never be forged.
///
/// gevent: `WSGIHandler.format_request`.
#[cfg(test)]
pub(crate) fn format_request(
    out: &mut Vec<u8>,
    client: Option<&[u8]>,
    local_time: &[u8],
    request_line: &[u8],
    status: u16,
    bytes_sent: u64,
    duration: Option<Duration>,
) {
    push_prefix(out, client.unwrap_or(b"-"), local_time);
    push_rest(out, request_line, status, bytes_sent, duration);
}

/// A connection's access-log line buffer. The start of a line, `<client> - - [<local time>] "`,
/// stays in the buffer from one line to the next while the client and the second are the same
/// (pipelined and keep-alive requests), so that only the rest is written per request.
#[derive(Debug, Default)]
pub(crate) struct LogLine {
    buf: Vec<u8>,
    /// Length of the kept start of the line (0: none).
    prefix: usize,
    /// Length of the client's address at the start of the buffer.
    client: usize,
    /// The second (Unix time) of the local time in the kept start.
    secs: u64,
}

impl LogLine {
    /// Formats gevent's line (see [`format_request`]) and returns it, without its newline.
    /// `local_time` gives the local time of a second (called only when the second changed).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn format<'a>(
        &'a mut self,
        client: Option<&[u8]>,
        secs: u64,
        local_time: impl FnOnce(u64) -> &'a [u8],
        request_line: &[u8],
        status: u16,
        bytes_sent: u64,
        duration: Option<Duration>,
    ) -> &'a mut Vec<u8> {
        let client = client.unwrap_or(b"-");
        if self.prefix == 0 || self.secs != secs || self.buf.get(..self.client) != Some(client) {
            self.buf.clear();
            push_prefix(&mut self.buf, client, local_time(secs));
            self.prefix = self.buf.len();
            self.client = client.len();
            self.secs = secs;
        } else {
            self.buf.truncate(self.prefix);
        }
        push_rest(&mut self.buf, request_line, status, bytes_sent, duration);
        &mut self.buf
    }

    /// Gives the buffer back to the allocator (an idle connection).
    pub(crate) fn release(&mut self) {
        *self = LogLine::default();
    }
}

/// `<client> - - [<local time>] "`
fn push_prefix(out: &mut Vec<u8>, client: &[u8], local_time: &[u8]) {
    out.reserve(8 + client.len() + local_time.len());
    out.extend_from_slice(client);
    out.extend_from_slice(b" - - [");
    out.extend_from_slice(local_time);
    out.extend_from_slice(b"] \"");
}

/// `<request line>" <status> <bytes> <secs>.<micros>`
fn push_rest(
    out: &mut Vec<u8>,
    request_line: &[u8],
    status: u16,
    bytes_sent: u64,
    duration: Option<Duration>,
) {
    // No `core::fmt` here: its machinery costs more than the rest of the request (callgrind:
    // about 2 100 instructions of a 4 200-instruction pipelined request went to `write!`).
    // The request line is checked eight bytes at a time and copied whole; the numbers after
    // it are assembled on the stack (two digits per step) and copied at once.
    if is_plain(request_line) {
        out.extend_from_slice(request_line);
    } else {
        push_escaped(out, request_line);
    }
    // `" <status> <bytes> <secs>.<micros>`, written backwards from the end of a stack buffer:
    // at most 2 + 20 + 1 + 20 + 1 + 20 + 1 + 6 bytes
    let mut tail = Tail {
        buf: [0; 72],
        at: 72,
    };
    match duration {
        Some(duration) => {
            // to the nearest microsecond, as gevent's `'%.6f' % delta`
            let duration = duration.saturating_add(Duration::from_nanos(500));
            let frac = u64::from(duration.subsec_micros());
            tail.pair(frac % 100);
            tail.pair(frac / 100 % 100);
            tail.pair(frac / 10_000);
            tail.byte(b'.');
            tail.decimal(duration.as_secs());
        }
        None => tail.byte(b'-'),
    }
    tail.byte(b' ');
    if bytes_sent == 0 {
        tail.byte(b'-');
    } else {
        tail.decimal(bytes_sent);
    }
    tail.byte(b' ');
    match status {
        0 => {
            tail.pair(0);
            tail.byte(b'0');
        }
        _ => tail.decimal(u64::from(status)),
    }
    tail.byte(b' ');
    tail.byte(b'"');
    out.extend_from_slice(&tail.buf[tail.at..]);
}

/// The end of a log line, written backwards.
struct Tail {
    buf: [u8; 72],
    at: usize,
}

impl Tail {
    #[inline(always)]
    fn byte(&mut self, b: u8) {
        self.at -= 1;
        self.buf[self.at] = b;
    }

    /// Two decimal digits of `n` (< 100).
    #[inline(always)]
    fn pair(&mut self, n: u64) {
        let [hi, lo] = two_digits(n);
        self.at -= 2;
        self.buf[self.at] = hi;
        self.buf[self.at + 1] = lo;
    }

    /// `n` in decimal (a u64 has at most 20 digits).
    #[inline(always)]
    fn decimal(&mut self, n: u64) {
        let mut digits = [0u8; 20];
        let digits = decimal(n, &mut digits);
        self.at -= digits.len();
        self.buf[self.at..self.at + digits.len()].copy_from_slice(digits);
    }
}

/// Whether every byte of `line` is printable ASCII but `\` (so is written as it is). Eight
/// bytes per step (the last step overlaps the one before it when the length is not a multiple
/// of eight): some byte is below `' '`, above `'~'` or `\` exactly when some lane of the
/// words below has its high bit set (the usual has-less / has-zero bit tricks, exact as a test
/// of the whole word when every lane is below 0x80, which the first term checks).
#[inline]
fn is_plain(line: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let bad = |chunk: &[u8]| {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_ne_bytes(word);
        // a lane >= 0x80; then (lanes all < 0x80) a lane < 0x20, a lane > 0x7e (= 0x7f), a `\`
        let low = w.wrapping_sub(ONES * 0x20);
        let del = w ^ (ONES * 0x7f);
        let slash = w ^ (ONES * u64::from(b'\\'));
        let zero = |x: u64| x.wrapping_sub(ONES) & !x;
        (w | (low & !w) | zero(del) | zero(slash)) & HIGH != 0
    };
    if line.len() < 8 {
        return line.iter().all(|&b| PLAIN[usize::from(b)]);
    }
    // whole chunks, then the last eight bytes (overlapping the last chunk)
    !(line.chunks_exact(8).any(bad) || bad(&line[line.len() - 8..]))
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
            (200, 2, Duration::from_nanos(499)),
            (200, 3, Duration::from_nanos(500)),
            (200, 4, Duration::from_nanos(1_499)),
            (200, 5, Duration::from_nanos(999_999_500)),
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
            let micros = (duration.as_nanos() + 500) / 1000;
            want.push_str(&format!(
                "\" {status} {bytes} {}.{:06}",
                micros / 1_000_000,
                micros % 1_000_000
            ));
            assert_eq!(String::from_utf8_lossy(&out), want);
        }
    }

    #[test]
    fn plain_check_agrees_with_the_table_at_every_position() {
        for len in [1usize, 7, 8, 9, 15, 16, 17, 24] {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut line = vec![b'a'; len];
                    line[at] = b;
                    let want = line.iter().all(|&b| PLAIN[usize::from(b)]);
                    assert_eq!(is_plain(&line), want, "byte {b:#04x} at {at} of {len}");
                }
            }
        }
        // two bad bytes, one lane apart, and every pair of edge values
        let edges = [
            0x00u8, 0x1f, 0x20, 0x21, 0x5b, 0x5c, 0x5d, 0x7e, 0x7f, 0x80, 0xff,
        ];
        for &x in &edges {
            for &y in &edges {
                let line = [b'G', x, y, b' ', b'/', b' ', b'H', b'T', b'T', b'P'];
                let want = line.iter().all(|&b| PLAIN[usize::from(b)]);
                assert_eq!(is_plain(&line), want, "{x:#04x} {y:#04x}");
            }
        }
    }

    #[test]
    fn the_kept_line_start_follows_the_client_and_the_second() {
        let mut log = LogLine::default();
        let calls = std::cell::Cell::new(0);
        let times = [
            b"2026-11-21 15:08:43".to_vec(),
            b"2026-11-21 15:08:44".to_vec(),
        ];
        let mut line = |client: Option<&[u8]>, secs: u64, status: u16| {
            let text = log
                .format(
                    client,
                    secs,
                    |secs| {
                        calls.set(calls.get() + 1);
                        &times[(secs - 100) as usize][..]
                    },
                    b"GET / HTTP/1.1",
                    status,
                    7,
                    Some(Duration::from_micros(12_345_678)),
                )
                .clone();
            String::from_utf8(text).unwrap()
        };
        // (client, second, status, local-time calls so far): the line start is kept within a
        // second for the same client; a client that is a prefix of the last one, a longer one,
        // none, and an earlier second each make a new one
        let cases: [(Option<&[u8]>, u64, u16, usize); 7] = [
            (Some(b"127.0.0.1"), 100, 200, 1),
            (Some(b"127.0.0.1"), 100, 404, 1),
            (Some(b"127.0.0.1"), 101, 200, 2),
            (Some(b"127.0.0"), 101, 200, 3),
            (Some(b"127.0.0.10"), 101, 200, 4),
            (None, 101, 200, 5),
            (Some(b"::1"), 100, 500, 6),
        ];
        for (client, secs, status, want_calls) in cases {
            let client_text = client.map_or("-".into(), String::from_utf8_lossy);
            let time = String::from_utf8_lossy(&times[(secs - 100) as usize]).into_owned();
            let want =
                format!("{client_text} - - [{time}] \"GET / HTTP/1.1\" {status} 7 12.345678");
            assert_eq!(line(client, secs, status), want);
            assert_eq!(calls.get(), want_calls, "{want}");
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
