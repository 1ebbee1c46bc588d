//! A test and demo application for the WSGI server: one route per feature of the engine.
//!
//! ```text
//! cargo run --example testapp                 # http://127.0.0.1:8080
//! cargo run --example testapp -- 0            # any free port
//! curl -d hello 'http://127.0.0.1:8080/echo/x?y=1' -i
//! curl -N 'http://127.0.0.1:8080/stream?n=5&size=10'
//! ```
//!
//! Usage: `testapp [PORT] [--proxy-protocol] [--forwarded-allow-ips LIST]` (default port 8080;
//! `0`: any free port; an `IP:PORT` address is accepted too; the flags go anywhere). It prints
//! `Serving on http://127.0.0.1:PORT` once listening; the access log goes to standard error.
//! SIGTERM or SIGINT stops it gracefully (exit status 0).
//!
//! - `--proxy-protocol`: every connection must start with a PROXY protocol header (v1 or v2,
//!   e.g. HAProxy's `send-proxy-v2`), accepted from loopback peers only (`127.0.0.0/8`,
//!   `::1`); `REMOTE_ADDR` is then the client the header names, `may_gevent.proxy_addr` the
//!   proxy.
//! - `--forwarded-allow-ips LIST`: trust `X-Forwarded-For` / `X-Forwarded-Proto` from the
//!   comma-separated peers in LIST (addresses, CIDR networks, `*`), instead of the default
//!   `127.0.0.1,::1,unix`; this also turns on `forwarded_remote_addr`, so the resolved client
//!   becomes `REMOTE_ADDR` (and the access log's client), besides `may_gevent.forwarded_for`.
//!
//! Routes, on the percent-decoded PATH_INFO (`/echo`, `/stream` and `/environ` also match every
//! sub-path such as `/echo/x`); query parameters are parsed like Python's
//! `urllib.parse.parse_qs` and the first value of a name is used:
//!
//! | route | answer |
//! |---|---|
//! | `/` | `200` `<b>hello world</b>` (text/html), as the `wsgiserver` example |
//! | `/echo` | any method: the whole request body back (200, application/octet-stream, at most 64 MiB, else 413) with `X-Method`, `X-Path`, `X-Query` set to REQUEST_METHOD, PATH_INFO, QUERY_STRING; bytes a header cannot carry (controls, e.g. CR/LF) are percent-encoded |
//! | `/stream?n=K&size=S` | a streamed body (an iterator: chunked on HTTP/1.1, close-delimited on HTTP/1.0, no Content-Length; one that yields nothing gets `Content-Length: 0`) of K chunks of S bytes of `x`; defaults 3 and 5, also for missing, bad or negative values; S is capped at 64 MiB and K so that K*S stays within 64 MiB |
//! | `/environ` | a JSON object of every string-valued environ entry (application/json), `may_gevent.proxy_addr` and `may_gevent.forwarded_for` included when set |
//! | `/panic` | panics before `start_response`: the client gets a 500 and the server keeps serving |
//! | `/sleep?ms=N` | sleeps N ms cooperatively (`may::coroutine::sleep`; default 100, capped at 60 000), then `200 slept` |
//! | `/write` | uses the `write` callable from `start_response` to send `a` then `b`, returns an empty body |
//! | anything else | `404` `<h1>Not Found</h1>` (text/html) |

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use may_gevent::pywsgi::{AppResult, Body, Environ, StartResponse, WsgiServer};

/// Largest `/echo` body and largest `/stream` total, in bytes.
const MAX_BYTES: usize = 64 * 1024 * 1024;

/// Longest `/sleep`, in milliseconds.
const MAX_SLEEP_MS: u64 = 60_000;

fn application(env: &mut Environ, start_response: &mut StartResponse<'_>) -> AppResult {
    let path = env.path_info();
    if path == "/" {
        start_response.call("200 OK", &[("Content-Type", "text/html")])?;
        return Ok(b"<b>hello world</b>".into());
    }
    if route(path, "/echo") {
        return echo(env, start_response);
    }
    if route(path, "/stream") {
        let query = parse_qs(env.query_string());
        let size = param(&query, "size").unwrap_or(5).min(MAX_BYTES);
        let n = param(&query, "n").unwrap_or(3);
        // at most MAX_BYTES in all
        let n = MAX_BYTES.checked_div(size).map_or(n, |most| n.min(most));
        start_response.call("200 OK", &[("Content-Type", "text/plain")])?;
        let chunk = vec![b'x'; size];
        return Ok(Body::stream(std::iter::repeat_n(chunk, n)));
    }
    if route(path, "/environ") {
        let json = environ_json(env);
        start_response.call("200 OK", &[("Content-Type", "application/json")])?;
        return Ok(json.into());
    }
    if path == "/panic" {
        panic!("testapp: /panic was requested");
    }
    if path == "/sleep" {
        let query = parse_qs(env.query_string());
        let ms = param(&query, "ms").unwrap_or(100).min(MAX_SLEEP_MS);
        // parks this coroutine only: other requests go on meanwhile
        may::coroutine::sleep(Duration::from_millis(ms));
        start_response.call("200 OK", &[("Content-Type", "text/plain")])?;
        return Ok(b"slept".into());
    }
    if path == "/write" {
        let mut write = start_response.call("200 OK", &[("Content-Type", "text/plain")])?;
        write.write(b"a")?;
        write.write(b"b")?;
        return Ok(Body::empty());
    }
    start_response.call("404 Not Found", &[("Content-Type", "text/html")])?;
    Ok(b"<h1>Not Found</h1>".into())
}

/// `path` is `prefix` or one of its sub-paths (`/echo`, `/echo/x`, not `/echoes`).
fn route(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// `/echo`: the request body back, with the request line in `X-` headers.
fn echo(env: &mut Environ, start_response: &mut StartResponse<'_>) -> AppResult {
    let mut body = Vec::new();
    env.input()
        .take(MAX_BYTES as u64 + 1)
        .read_to_end(&mut body)?;
    if body.len() > MAX_BYTES {
        start_response.call(
            "413 Content Too Large",
            &[("Content-Type", "text/plain"), ("Connection", "close")],
        )?;
        return Ok(b"request body too large".into());
    }
    let method = header_value(env.method());
    let path = header_value(env.path_info());
    let query = header_value(env.query_string());
    start_response.call(
        "200 OK",
        &[
            ("Content-Type", "application/octet-stream"),
            ("X-Method", &method),
            ("X-Path", &path),
            ("X-Query", &query),
        ],
    )?;
    Ok(body.into())
}

/// `text` as a valid header value: control characters (CR, LF, HTAB, DEL, C1 controls),
/// characters beyond latin-1 (as their UTF-8 bytes) and leading or trailing spaces are
/// percent-encoded; everything else is kept.
fn header_value(text: &str) -> String {
    let last = text.chars().count().saturating_sub(1);
    let mut out = String::with_capacity(text.len());
    for (i, ch) in text.chars().enumerate() {
        let code = u32::from(ch);
        let edge_space = ch == ' ' && (i == 0 || i == last);
        if code < 0x20 || (0x7f..0xa0).contains(&code) || code > 0xff || edge_space {
            let mut utf8 = [0u8; 4];
            let bytes: &[u8] = if code <= 0xff {
                utf8[0] = code as u8;
                &utf8[..1]
            } else {
                ch.encode_utf8(&mut utf8).as_bytes()
            };
            for b in bytes {
                let _ = write!(out, "%{b:02X}");
            }
        } else {
            out.push(ch);
        }
    }
    out
}

/// Python's `urllib.parse.parse_qs(qs)`: `&`-separated `name=value` pairs, `+` and
/// percent-escapes decoded (as UTF-8, invalid sequences replaced), pairs without `=` or with an
/// empty value dropped; every value of each name, names in order of first appearance.
fn parse_qs(qs: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for pair in qs.split('&') {
        let Some((name, value)) = pair.split_once('=') else {
            continue;
        };
        if value.is_empty() {
            continue;
        }
        let (name, value) = (unquote_plus(name), unquote_plus(value));
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, values)) => values.push(value),
            None => out.push((name, vec![value])),
        }
    }
    out
}

/// The first value of `name`, parsed; `None` when absent or not a (non-negative) number.
fn param<T: std::str::FromStr>(query: &[(String, Vec<String>)], name: &str) -> Option<T> {
    query
        .iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, values)| values.first())
        .and_then(|value| value.parse().ok())
}

/// Python's `unquote_plus`: `+` is a space, `%XX` a byte; malformed escapes stay as they are.
fn unquote_plus(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match bytes
                .get(i + 1..i + 3)
                .and_then(|hex| hex_pair(hex[0], hex[1]))
            {
                Some(byte) => {
                    out.push(byte);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_pair(high: u8, low: u8) -> Option<u8> {
    let digit = |b: u8| char::from(b).to_digit(16).map(|d| d as u8);
    Some(digit(high)? << 4 | digit(low)?)
}

/// Every string entry of the environ as one JSON object.
fn environ_json(env: &Environ) -> String {
    let mut out = String::with_capacity(1024);
    out.push('{');
    for (i, (key, value)) in env.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_string(&mut out, &key);
        out.push(':');
        json_string(&mut out, value);
    }
    out.push('}');
    out
}

/// Appends `text` as a JSON string literal (RFC 8259): quotes, backslashes and control
/// characters escaped (U+2028 and U+2029 too, for JavaScript).
fn json_string(out: &mut String, text: &str) {
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ch if ch < ' ' || ch == '\u{7f}' || ch == '\u{2028}' || ch == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(ch));
            }
            ch => out.push(ch),
        }
    }
    out.push('"');
}

/// The command line: an address, and the two proxy flags.
struct Args {
    address: String,
    proxy_protocol: bool,
    forwarded_allow_ips: Option<String>,
}

const USAGE: &str = "usage: testapp [PORT] [--proxy-protocol] [--forwarded-allow-ips LIST]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        address: "127.0.0.1:8080".to_owned(),
        proxy_protocol: false,
        forwarded_allow_ips: None,
    };
    let mut port_seen = false;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--proxy-protocol" => args.proxy_protocol = true,
            "--forwarded-allow-ips" => {
                let list = it
                    .next()
                    .ok_or("--forwarded-allow-ips needs a LIST of addresses")?;
                args.forwarded_allow_ips = Some(list);
            }
            _ if port_seen || arg.starts_with("--") => {
                return Err(format!("unexpected argument {arg:?}"))
            }
            _ if arg.contains(':') => {
                args.address = arg;
                port_seen = true;
            }
            _ => match arg.parse::<u16>() {
                Ok(port) => {
                    args.address = format!("127.0.0.1:{port}");
                    port_seen = true;
                }
                Err(_) => return Err(format!("bad port {arg:?}")),
            },
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(err) => {
            eprintln!("testapp: {err}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut builder = WsgiServer::builder(args.address.as_str(), application);
    if args.proxy_protocol {
        builder = builder.proxy_protocol("127.0.0.0/8, ::1");
    }
    if let Some(list) = &args.forwarded_allow_ips {
        builder = builder
            .forwarded_allow_ips(list)
            .forwarded_remote_addr(true);
    }
    // Bound now (the port is printed); accepting starts in serve_forever, which stops the
    // server gracefully on SIGTERM/SIGINT.
    let server = match builder
        .build()
        .and_then(|server| server.init_socket().map(|()| server))
    {
        Ok(server) => server,
        Err(err) => {
            eprintln!("testapp: {err}");
            return ExitCode::from(1);
        }
    };
    println!("Serving on http://{}", server.address().expect("bound"));
    let _ = std::io::stdout().flush();
    if let Err(err) = server.serve_forever() {
        eprintln!("testapp: {err}");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
