//! Micro-benchmarks of the pywsgi engine's hot paths (issue 3), through its `__private`
//! bench entry points: request-head parsing, chunked decoding and response serialisation.
//!
//! `cargo bench --bench parse` (criterion: `-- <filter>` selects benchmarks). Short settings
//! (300 ms warm-up, 1 s measurement, 20 samples) keep the whole run under a minute; criterion's
//! `--measurement-time` and `--sample-size` override them.
//!
//! - `head/*`: one request head parsed with the engine's strict parser and default limits
//!   (throughput: head bytes).
//! - `chunked/<body>/<piece>`: a chunked body (1 KiB chunks, then the last chunk) decoded when
//!   it arrives in `piece`-byte reads (throughput: encoded bytes).
//! - `response/*`: `start_response("200 OK", [("Content-Type", "text/html")])` and a static
//!   hello-world body serialised into the connection's output buffer (status line, headers,
//!   cached Date, Content-Length, body); `cached` repeats the same arguments (the
//!   `start_response` cache hits, as for a keep-alive client), `validated` alternates two header
//!   sets so that every call validates (throughput: response bytes).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use may_gevent::pywsgi::__private::{decode_chunked, HeadParser, ResponseBench};

const SHORT_GET: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";

/// What a current browser sends for a sub-resource: ten header fields.
const BROWSER_GET: &[u8] = b"GET /static/css/site.css?v=3 HTTP/1.1\r\n\
Host: www.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/css,*/*;q=0.1\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Referer: https://www.example.com/articles/2026/how-to\r\n\
Connection: keep-alive\r\n\
Cookie: session=4f9c1d2e8a7b6c5d4e3f2a1b0c9d8e7f; theme=dark; lang=en\r\n\
Sec-Fetch-Dest: style\r\n\
Sec-Fetch-Mode: no-cors\r\n\
\r\n";

const BODY: &[u8] = b"<b>hello world</b>";

fn head(c: &mut Criterion) {
    let mut group = c.benchmark_group("head");
    for (name, req) in [
        ("short GET", SHORT_GET),
        ("browser GET, 10 headers", BROWSER_GET),
    ] {
        let mut parser = HeadParser::default();
        assert_eq!(
            parser.parse(req),
            Ok(Some(req.len())),
            "{name}: not parsed as one complete head"
        );
        group.throughput(Throughput::Bytes(req.len() as u64));
        group.bench_function(name, |b| b.iter(|| parser.parse(black_box(req))));
    }
    group.finish();
}

/// `body` encoded in chunks of at most `chunk` bytes, then the last chunk.
fn chunked(body: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / chunk * 8 + 8);
    for piece in body.chunks(chunk) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn chunked_decoding(c: &mut Criterion) {
    let mut group = c.benchmark_group("chunked");
    for (label, size) in [("1 KiB", 1024), ("64 KiB", 64 * 1024)] {
        let body: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
        let wire = chunked(&body, 1024);
        let mut out = Vec::with_capacity(size);
        group.throughput(Throughput::Bytes(wire.len() as u64));
        for piece in [1, 16, 256] {
            assert_eq!(decode_chunked(&wire, piece, &mut out), Some(size));
            assert_eq!(out, body, "{label} in {piece}-byte pieces: wrong decoding");
            group.bench_with_input(
                BenchmarkId::new(label, format!("{piece}-byte pieces")),
                &piece,
                |b, &piece| b.iter(|| decode_chunked(black_box(&wire), piece, &mut out)),
            );
        }
    }
    group.finish();
}

fn response(c: &mut Criterion) {
    let mut group = c.benchmark_group("response");
    let html: &[(&str, &str)] = &[("Content-Type", "text/html")];
    let plain: &[(&str, &str)] = &[("Content-Type", "text/plain")];
    let mut resp = ResponseBench::default();
    let len = resp.run("200 OK", html, BODY);
    assert!(len > BODY.len() + 40, "hello world response not written");
    group.throughput(Throughput::Bytes(len as u64));
    group.bench_function("hello world, cached", |b| {
        b.iter(|| resp.run(black_box("200 OK"), black_box(html), BODY))
    });
    let mut flip = false;
    group.bench_function("hello world, validated", |b| {
        b.iter(|| {
            flip = !flip;
            let headers = if flip { plain } else { html };
            resp.run(black_box("200 OK"), black_box(headers), BODY)
        })
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = head, chunked_decoding, response
}
criterion_main!(benches);
