//! gevent's examples/concurrent_download.py: download many pages at once, at most K at a time,
//! and print each as soon as it arrives. No network: the pages come from a WSGI server started
//! here on 127.0.0.1 (port chosen by the kernel), which answers `/page/<n>` slowly for some
//! pages so that they finish out of order. The pages are fetched with `may_gevent::client`.
//!
//! ```text
//! cargo run --example concurrent_download -- [PAGES] [POOL_SIZE]    # default: 12 4
//! ```
//!
//! gevent:
//! ```python
//! pool = Pool(4)
//! for url, data in pool.imap_unordered(print_head, urls):
//!     print('%s: %s bytes: %r' % (url, len(data), data[:50]))
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use may_gevent::pywsgi::{AppResult, Environ, StartResponse, WsgiServer};
use may_gevent::{client, Pool};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The page server: `/page/<n>` is `n * 100 + 20` bytes, served after a delay of 0-40 ms.
/// It counts how many requests it serves at once.
fn page_server(
    in_flight: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
) -> Result<WsgiServer, may_gevent::Error> {
    let app = move |env: &mut Environ, start_response: &mut StartResponse<'_>| -> AppResult {
        let number = env
            .path_info()
            .strip_prefix("/page/")
            .and_then(|n| n.parse::<usize>().ok());
        let Some(number) = number else {
            start_response.call("404 Not Found", &[("Content-Type", "text/plain")])?;
            return Ok(b"no such page".into());
        };
        let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        peak.fetch_max(now, Ordering::SeqCst);
        // Some pages are slow: they finish after pages requested later.
        may::coroutine::sleep(Duration::from_millis((number * 7 % 5) as u64 * 10));
        in_flight.fetch_sub(1, Ordering::SeqCst);
        let mut body = format!("<html><title>page {number}</title>").into_bytes();
        body.resize(number * 100 + 20, b'.');
        start_response.call("200 OK", &[("Content-Type", "text/html")])?;
        Ok(body.into())
    };
    let server = WsgiServer::builder("127.0.0.1:0", app)
        .access_log(None)
        .build()?;
    server.start()?;
    Ok(server)
}

/// GET `url` with may_gevent's HTTP client (gevent's example uses `requests.get(url).text`)
/// and return the body of a 200 response.
fn fetch(url: &str) -> Result<Vec<u8>, BoxError> {
    let response = client::get(url)?;
    if response.status() != 200 {
        return Err(format!("{url}: unexpected status {}", response.status_line()).into());
    }
    Ok(response.bytes()?)
}

fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let pages: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(12);
    let size: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(4);

    let (in_flight, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let server = page_server(in_flight, peak.clone())?;
    let addr = server.local_addr().ok_or("the server has no address")?;
    let urls: Vec<String> = (1..=pages)
        .map(|n| format!("http://{addr}/page/{n}"))
        .collect();

    let print_head = |url: String| -> Result<(String, Vec<u8>), BoxError> {
        println!("Starting {url}");
        let data = fetch(&url)?;
        Ok((url, data))
    };

    // gevent: pool = Pool(size); for url, data in pool.imap_unordered(print_head, urls): ...
    let started = Instant::now();
    let pool = Pool::new(size);
    let mut done = 0;
    for result in pool.imap_unordered(print_head, urls) {
        let (url, data) = result??;
        let shown = String::from_utf8_lossy(&data[..data.len().min(50)]).into_owned();
        println!("{url}: {} bytes: {shown:?}", data.len());
        done += 1;
    }
    println!(
        "downloaded {done} pages in {:.0?}, at most {} at once (pool size {size})",
        started.elapsed(),
        peak.load(Ordering::SeqCst)
    );
    server.stop(None);
    Ok(())
}
