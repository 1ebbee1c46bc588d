//! The HTTP client (`may_gevent::client`) against local upstreams on 127.0.0.1: concurrent
//! slow requests overlap (N of them take about one upstream latency, not N), a fast request
//! meanwhile stays fast, keep-alive reuses connections, chunked and Content-Length bodies,
//! redirects off by default, timeouts, TLS.

mod support;
#[cfg(feature = "tls")]
#[path = "support/tls.rs"]
mod tls_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use may_gevent::client::{self, Client};
use may_gevent::pywsgi::{AppResult, Body, Environ, StartResponse, WsgiServer};
use support::{eventually, inet, join_coroutine_within, ReservedPort, WAIT};

/// How long the upstream's `/slow` takes.
const LATENCY: Duration = Duration::from_millis(500);

struct Upstream {
    server: WsgiServer,
    /// `/slow` requests that have started.
    slow_started: Arc<AtomicUsize>,
}

impl Upstream {
    fn start() -> Upstream {
        let slow_started = Arc::new(AtomicUsize::new(0));
        let started = slow_started.clone();
        let app = move |env: &mut Environ, start_response: &mut StartResponse<'_>| -> AppResult {
            let path = env.path_info().to_owned();
            let text = |s: &mut StartResponse<'_>, status: &str| {
                s.call(status, &[("Content-Type", "text/plain")])
                    .map(|_| ())
            };
            match path.as_str() {
                "/slow" => {
                    started.fetch_add(1, Ordering::SeqCst);
                    may::coroutine::sleep(LATENCY);
                    text(start_response, "200 OK")?;
                    Ok(b"slow".into())
                }
                "/hang" => {
                    may::coroutine::sleep(WAIT);
                    text(start_response, "200 OK")?;
                    Ok(Body::empty())
                }
                "/port" => {
                    text(start_response, "200 OK")?;
                    Ok(env
                        .remote_port()
                        .unwrap_or("")
                        .to_owned()
                        .into_bytes()
                        .into())
                }
                "/chunked" => {
                    text(start_response, "200 OK")?;
                    Ok(Body::stream(vec!["ab", "cd", "ef"]))
                }
                "/echo" => {
                    let body = env.input().read_all()?;
                    text(start_response, "201 Created")?;
                    Ok(body.into())
                }
                "/redirect" => {
                    start_response.call("302 Found", &[("Location", "/port")])?;
                    Ok(Body::empty())
                }
                "/loop" => {
                    start_response.call("302 Found", &[("Location", "loop")])?;
                    Ok(Body::empty())
                }
                "/see-other" => {
                    start_response.call("303 See Other", &[("Location", "/echo")])?;
                    Ok(Body::empty())
                }
                _ => {
                    text(start_response, "404 Not Found")?;
                    Ok(b"no such page".into())
                }
            }
        };
        let server = WsgiServer::builder("127.0.0.1:0", app)
            .access_log(None)
            .build()
            .unwrap();
        server.start().unwrap();
        Upstream {
            server,
            slow_started,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", inet(&self.server))
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.server.stop(Some(Duration::from_millis(100)));
    }
}

#[test]
fn concurrent_slow_requests_overlap_and_a_fast_one_stays_fast() {
    const N: usize = 6; // three times may's two default workers
    let upstream = Upstream::start();
    let client = Client::new();
    let slow_url = upstream.url("/slow");
    let start = Instant::now();
    let slow: Vec<_> = (0..N)
        .map(|_| {
            let (client, url) = (client.clone(), slow_url.clone());
            may::go!(move || client.get(&url).and_then(|r| r.text()))
        })
        .collect();
    eventually("all slow requests reached the upstream", || {
        upstream.slow_started.load(Ordering::SeqCst) == N
    });
    // a fast request while all N are in flight
    let fast_url = upstream.url("/port");
    let c = client.clone();
    let fast = may::go!(move || {
        let t = Instant::now();
        let status = c.get(&fast_url).map(|r| r.status());
        (status, t.elapsed())
    });
    let (status, fast_took) = join_coroutine_within("fast request", WAIT, fast).unwrap();
    assert_eq!(status.unwrap(), 200);
    let slow_pending = slow.iter().filter(|h| !h.is_done()).count();
    for h in slow {
        let body = join_coroutine_within("slow request", WAIT, h).unwrap();
        assert_eq!(body.unwrap(), "slow");
    }
    let total = start.elapsed();
    assert!(total >= LATENCY, "{total:?}");
    assert!(
        total < LATENCY * 2,
        "{N} concurrent requests of {LATENCY:?} took {total:?}: they did not overlap"
    );
    assert!(
        fast_took < LATENCY / 2,
        "the fast request took {fast_took:?} behind slow ones of {LATENCY:?}"
    );
    assert_eq!(
        slow_pending, N,
        "the fast one finished before every slow one"
    );
}

#[test]
fn keep_alive_reuses_one_connection() {
    let upstream = Upstream::start();
    let client = Client::new();
    let url = upstream.url("/port");
    let ports: Vec<String> = (0..3)
        .map(|_| client.get(&url).unwrap().text().unwrap())
        .collect();
    assert!(!ports[0].is_empty());
    assert!(
        ports.iter().all(|p| *p == ports[0]),
        "one connection: {ports:?}"
    );
    assert_eq!(client.idle_connections(), 1);
    // without keep-alive each request has its own connection
    let client = Client::builder().pool_per_host(0).build();
    let a = client.get(&url).unwrap().text().unwrap();
    let b = client.get(&url).unwrap().text().unwrap();
    assert_ne!(a, b);
    assert_eq!(client.idle_connections(), 0);
}

#[test]
fn an_unread_body_closes_its_connection() {
    let upstream = Upstream::start();
    let client = Client::new();
    let first = client.get(&upstream.url("/chunked")).unwrap();
    drop(first);
    assert_eq!(client.idle_connections(), 0);
    let r = client.get(&upstream.url("/chunked")).unwrap();
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.text().unwrap(), "abcdef");
    assert_eq!(
        client.idle_connections(),
        1,
        "a chunked body read to its end"
    );
}

#[test]
fn request_bodies_statuses_and_headers() {
    let upstream = Upstream::start();
    let client = Client::new();
    let r = client
        .request("POST", &upstream.url("/echo"))
        .header("X-Test", "1")
        .body("hello upstream")
        .send()
        .unwrap();
    assert_eq!((r.status(), r.reason()), (201, "Created"));
    assert_eq!(r.status_line(), "201 Created");
    assert_eq!(r.content_length(), Some(14));
    assert_eq!(r.text().unwrap(), "hello upstream");
    let r = client::get(&upstream.url("/nowhere")).unwrap();
    assert_eq!(r.status(), 404, "4xx are responses, not errors");
    assert_eq!(r.bytes().unwrap(), b"no such page");
    let r = client
        .request("HEAD", &upstream.url("/port"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().unwrap().is_empty(), "HEAD has no body");
    let err = client
        .request("GET", &upstream.url("/"))
        .header("Bad\r\nName", "x")
        .send();
    assert!(
        matches!(err, Err(client::Error::InvalidRequest(_))),
        "{err:?}"
    );
}

#[test]
fn redirects_are_off_unless_asked() {
    let upstream = Upstream::start();
    let r = Client::new().get(&upstream.url("/redirect")).unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.header("location"), Some("/port"));
    let client = Client::builder().max_redirects(3).build();
    let r = client.get(&upstream.url("/redirect")).unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.url().ends_with("/port"), "{}", r.url());
    let err = client.get(&upstream.url("/loop")).unwrap_err();
    assert!(
        matches!(err, client::Error::TooManyRedirects { max: 3, .. }),
        "{err:?}"
    );
    // 303 after a POST continues with a GET without body
    let r = client
        .request("POST", &upstream.url("/see-other"))
        .body("dropped")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.text().unwrap(), "");
}

#[test]
fn timeouts_and_refused_connections_are_errors() {
    let upstream = Upstream::start();
    let client = Client::builder()
        .read_timeout(Duration::from_millis(200))
        .build();
    let start = Instant::now();
    let err = client.get(&upstream.url("/hang")).unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert!(start.elapsed() < WAIT / 2);
    assert!(format!("{err:?}").contains("/hang"), "{err:?}");
    let refused = ReservedPort::new();
    let err = client
        .get(&format!("http://127.0.0.1:{}/", refused.port()))
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    let err = client.get("ftp://example.com/").unwrap_err();
    assert!(matches!(err, client::Error::InvalidUrl { .. }), "{err:?}");
}

#[cfg(feature = "tls")]
#[test]
fn https_with_a_custom_root() {
    use may_gevent::TLS_STACK_SIZE;
    let cert = tls_support::TestCert::generate();
    let app = |_: &mut Environ, s: &mut StartResponse<'_>| -> AppResult {
        s.call("200 OK", &[])?;
        Ok(b"secret".into())
    };
    let server = WsgiServer::builder("127.0.0.1:0", app)
        .tls_acceptor(cert.acceptor())
        .access_log(None)
        .build()
        .unwrap();
    server.start().unwrap();
    let port = inet(&server).port();
    let client = Client::builder()
        .tls_connector(cert.new_connector())
        .build();
    // from a coroutine with the stack OpenSSL needs; "localhost" may resolve to ::1 first
    let c = client.clone();
    let builder = may::coroutine::Builder::new().stack_size(TLS_STACK_SIZE / 8);
    let h = may::go!(builder, move || {
        let a = c
            .get(&format!("https://localhost:{port}/"))
            .and_then(|r| r.text());
        let b = c
            .get(&format!("https://localhost:{port}/"))
            .and_then(|r| r.text());
        (a, b)
    })
    .unwrap();
    let (a, b) = join_coroutine_within("https client", WAIT, h).unwrap();
    assert_eq!(a.unwrap(), "secret");
    assert_eq!(b.unwrap(), "secret");
    assert_eq!(
        client.idle_connections(),
        1,
        "TLS connections are kept alive too"
    );
    // the system roots do not trust the test certificate
    let err = Client::new()
        .get(&format!("https://localhost:{port}/"))
        .unwrap_err();
    assert!(matches!(err, client::Error::Tls { .. }), "{err:?}");
    server.stop(None);
}

#[test]
fn a_coroutine_waiting_for_an_upstream_can_be_cancelled() {
    // what a server's stop() and Pool::kill do to a handler stuck in a fetch
    let upstream = Upstream::start();
    let url = upstream.url("/hang");
    let h = may::go!(move || Client::new().get(&url).map(|r| r.status()));
    eventually("the request is waiting upstream", || {
        upstream.server.pool().len() == 1
    });
    let start = Instant::now();
    #[allow(unsafe_code)]
    // SAFETY: cancelling a coroutine parked in a may socket read.
    unsafe {
        h.coroutine().cancel()
    };
    let joined = join_coroutine_within("cancelled request", WAIT, h);
    assert!(joined.is_err(), "the fetch unwound instead of returning");
    assert!(start.elapsed() < WAIT / 2);
}
