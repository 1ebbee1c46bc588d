//! Randomised robustness: mutated and truncated requests, fed in random pieces to a whole
//! connection handler over an in-memory connection, must never panic or hang, and the output must
//! always be well-formed responses.
#![allow(missing_docs)]

use std::io::{self, Read, Write};
use std::time::Duration;

use may_gevent::pywsgi::{from_fn, handle_connection, AccessLog, Body, Connection, WsgiConfig};

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Reads return the input in random-sized pieces, then EOF.
struct Scripted {
    input: Vec<u8>,
    pos: usize,
    rng: Rng,
    output: Vec<u8>,
}

impl Read for Scripted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.input.len() - self.pos;
        let n = buf.len().min(left).min(1 + self.rng.below(40));
        buf[..n].copy_from_slice(&self.input[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for Scripted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Connection for Scripted {
    fn set_read_timeout(&mut self, _: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
    fn set_write_timeout(&mut self, _: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
}

const CORPUS: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /p%20q?x=1 HTTP/1.0\r\nConnection: keep-alive\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: v\r\n\r\n",
    b"PUT /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    b"HEAD /stream HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET http://h:1/x HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    b"GET /stream HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
];

const BYTES: &[u8] = b" \t\r\n:;,/?%0123456789abcdefABCDEF\x00\x7f\xff\xc3-_HTTP/1.1";

fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        let len = input.len();
        match rng.below(5) {
            0 if len > 0 => {
                let at = rng.below(len);
                input[at] = BYTES[rng.below(BYTES.len())];
            }
            1 => {
                let at = rng.below(len + 1);
                input.insert(at, BYTES[rng.below(BYTES.len())]);
            }
            2 if len > 0 => {
                let at = rng.below(len);
                input.remove(at);
            }
            3 => {
                let at = rng.below(len + 1);
                input.truncate(at);
            }
            _ => {
                let other = CORPUS[rng.below(CORPUS.len())];
                input.extend_from_slice(other);
            }
        }
    }
}

/// Checks that `output` is a sequence of responses starting with a status line (bodies are not
/// parsed: a response may legitimately be cut by an error after its head).
fn check_output(output: &[u8]) {
    if output.is_empty() {
        return;
    }
    assert!(
        output.starts_with(b"HTTP/1.1 "),
        "{:?}",
        String::from_utf8_lossy(&output[..output.len().min(200)])
    );
}

/// The longest one input may take (a hang fails the test naming the input).
const PER_INPUT: Duration = Duration::from_secs(10);

/// The rounds run on their own thread; this one fails the test if a round does not end within
/// `PER_INPUT` (instead of hanging).
#[test]
fn random_inputs_never_panic_or_hang() {
    let (progress, rounds) = std::sync::mpsc::channel::<Progress>();
    std::thread::Builder::new()
        .name("rounds".into())
        .spawn(move || run_rounds(&progress))
        .unwrap();
    let mut current = None;
    let seen = loop {
        match rounds.recv_timeout(PER_INPUT) {
            Ok(Progress::Started(round, input)) => current = Some((round, input)),
            Ok(Progress::Done(seen)) => break seen,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => match &current {
                Some((round, input)) => panic!(
                    "round {round} did not end within {PER_INPUT:?}: input {:?}",
                    String::from_utf8_lossy(input)
                ),
                None => panic!("the first round did not start within {PER_INPUT:?}"),
            },
            // the rounds thread panicked: its message is on stderr
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match &current {
                Some((round, input)) => panic!(
                    "the rounds failed at round {round}, input {:?}",
                    String::from_utf8_lossy(input)
                ),
                None => panic!("the rounds failed before the first one"),
            },
        }
    };
    // the mutations reach both the success and the rejection paths
    for code in ["101", "200", "400", "505"] {
        assert!(
            seen.get(code).copied().unwrap_or(0) > 0,
            "{code} never seen: {seen:?}"
        );
    }
}

enum Progress {
    Started(usize, Vec<u8>),
    /// How many responses of each status code were seen.
    Done(std::collections::BTreeMap<&'static str, usize>),
}

fn run_rounds(progress: &std::sync::mpsc::Sender<Progress>) {
    let config = WsgiConfig::new()
        .access_log(AccessLog::Off)
        .error_log(slog::Logger::root(slog::Discard, slog::o!()));
    let app = from_fn(|env, start_response| {
        let path = env.path_info().to_owned();
        let _ = env.header("cookie").map(str::len);
        let _ = env.iter().count();
        match path.as_str() {
            "/echo" => {
                let body = env.input().read_all()?;
                start_response.call("200 OK", &[])?;
                Ok(body.into())
            }
            "/stream" => {
                start_response.call("200 OK", &[("X", "y")])?;
                Ok(Body::stream(vec![b"a".to_vec(), b"bc".to_vec()]))
            }
            "/x" => {
                let mut write =
                    start_response.call("101 Switching Protocols", &[("Upgrade", "websocket")])?;
                write.write(b"")?;
                let mut raw = [0u8; 16];
                let _ = env.input().read(&mut raw);
                Ok(Body::empty())
            }
            _ => {
                start_response.call("200 OK", &[("Content-Type", "text/plain")])?;
                Ok("ok".into())
            }
        }
    });
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut seen = std::collections::BTreeMap::new();
    for round in 0..3000 {
        let mut input = CORPUS[rng.below(CORPUS.len())].to_vec();
        if round % 7 != 0 {
            mutate(&mut rng, &mut input);
        }
        progress
            .send(Progress::Started(round, input.clone()))
            .unwrap();
        let conn = Scripted {
            input: input.clone(),
            pos: 0,
            rng: Rng(rng.next() | 1),
            output: Vec::new(),
        };
        // the handler owns the connection; get the output back through a shared copy
        let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let out2 = out.clone();
        struct Tee(Scripted, std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl Read for Tee {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.0.read(buf)
            }
        }
        impl Write for Tee {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.1.lock().unwrap().extend_from_slice(buf);
                self.0.write(buf)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        impl Connection for Tee {
            fn set_read_timeout(&mut self, _: Option<Duration>) -> io::Result<()> {
                Ok(())
            }
            fn set_write_timeout(&mut self, _: Option<Duration>) -> io::Result<()> {
                Ok(())
            }
        }
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            handle_connection(Tee(conn, out2), None, &config, &app);
        }));
        assert!(
            result.is_ok(),
            "panic on input {:?}",
            String::from_utf8_lossy(&input)
        );
        let output = out.lock().unwrap();
        check_output(&output);
        let text = String::from_utf8_lossy(&output);
        for code in [
            "200", "101", "400", "408", "413", "414", "431", "500", "501", "505",
        ] {
            if text.contains(&format!("HTTP/1.1 {code} ")) {
                *seen.entry(code).or_insert(0usize) += 1;
            }
        }
    }
    progress.send(Progress::Done(seen)).unwrap();
}
