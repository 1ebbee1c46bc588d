//! examples/webproxy.rs (gevent's examples/webproxy.py) started as a process and driven like a
//! browser would, against upstreams served in this test on 127.0.0.1: its routes, link
//! rewriting, the 502 page, and slow upstreams fetched concurrently while a fast one stays fast.
//!
//! `cargo test` builds the examples first; `cargo test --test webproxy` alone does not (run
//! `cargo build --examples` before it).

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use may_gevent::pywsgi::{AppResult, Environ, StartResponse, WsgiServer};
use support::child::Running;
use support::{eventually, exchange, inet, join_within, ReservedPort, WAIT};

/// How long the upstream's `/slow` takes.
const LATENCY: Duration = Duration::from_millis(500);

fn example_path(name: &str) -> PathBuf {
    let mut path = std::env::current_exe().unwrap();
    path.pop();
    if path.ends_with("deps") {
        path.pop();
    }
    path.join("examples").join(name)
}

/// The proxy, on a port of its own; killed when dropped.
struct Proxy {
    _child: Running,
    addr: SocketAddr,
}

impl Proxy {
    fn start() -> Proxy {
        let mut command = Command::new(example_path("webproxy"));
        command.arg("127.0.0.1:0");
        let child = Running::spawn("webproxy", &mut command).unwrap_or_else(|err| {
            panic!("cannot run the webproxy example ({err}): run `cargo build --examples` first")
        });
        let line = child
            .stdout
            .wait_for(WAIT, |line| line.starts_with("Serving on "))
            .unwrap_or_else(|| panic!("webproxy exited: {:?}", child.stderr.all()));
        let addr = line["Serving on ".len()..]
            .trim_end_matches("...")
            .parse()
            .unwrap_or_else(|_| panic!("no address in {line:?}"));
        Proxy {
            _child: child,
            addr,
        }
    }

    /// One request with `Connection: close`: status line, head, body.
    fn request(&self, method: &str, path: &str, body: &str) -> (String, String, String) {
        let raw = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        let reply = String::from_utf8(exchange(self.addr, raw.as_bytes())).unwrap();
        let (head, body) = reply.split_once("\r\n\r\n").expect("a response head");
        let status = head.lines().next().unwrap().to_owned();
        (status, head.to_owned(), body.to_owned())
    }
}

struct Upstream {
    server: WsgiServer,
    slow_started: Arc<AtomicUsize>,
}

fn upstream() -> Upstream {
    let slow_started = Arc::new(AtomicUsize::new(0));
    let started = slow_started.clone();
    let app = move |env: &mut Environ, start_response: &mut StartResponse<'_>| -> AppResult {
        match env.path_info() {
            "/page" => {
                let headers = [("Content-Type", "text/html"), ("Set-Cookie", "secret=1")];
                start_response.call("200 OK", &headers)?;
                Ok(concat!(
                    r#"<a href="/abs">a</a> <img src=images/hp0.gif width=158> "#,
                    r##"<a href='http://other.test/x'>o</a> <a href="#top">t</a>"##
                )
                .into())
            }
            "/slow" => {
                started.fetch_add(1, Ordering::SeqCst);
                may::coroutine::sleep(LATENCY);
                start_response.call("200 OK", &[])?;
                Ok(b"slow".into())
            }
            "/moved" => {
                start_response.call("301 Moved Permanently", &[("Location", "/fast")])?;
                Ok(().into())
            }
            "/fast" => {
                start_response.call("200 OK", &[])?;
                Ok(b"fast".into())
            }
            _ => {
                start_response.call("404 Not Found", &[])?;
                Ok(b"missing".into())
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

#[test]
fn routes_links_and_errors_as_gevents() {
    let proxy = Proxy::start();
    let up = upstream();
    let host = inet(&up.server);

    let (status, _, form) = proxy.request("GET", "/", "");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(form.contains("<form action=/ method=post>"), "{form}");

    let (status, head, _) = proxy.request("POST", "/", "url=http%3A%2F%2Fexample.test%2Fa");
    assert_eq!(status, "HTTP/1.1 302 Found");
    let location = format!("Location: http://{}/http://example.test/a", proxy.addr);
    assert!(head.contains(&location), "{head}");
    assert!(proxy.request("POST", "/elsewhere", "").0.contains(" 404 "));
    assert!(proxy.request("PUT", "/", "").0.contains(" 501 "));
    assert!(
        proxy.request("POST", "/", "name=x").0.contains(" 500 "),
        "gevent's assert"
    );

    let (status, head, page) = proxy.request("GET", &format!("/{host}/page"), "");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(!head.to_ascii_lowercase().contains("set-cookie"), "{head}");
    let p = format!("http://{}/", proxy.addr);
    assert!(
        page.contains(&format!(r#"href="{p}http://{host}/abs""#)),
        "{page}"
    );
    assert!(
        page.contains(&format!(
            r#"src="{p}http://{host}/images/hp0.gif" width=158"#
        )),
        "{page}"
    );
    assert!(
        page.contains(&format!(r#"href="{p}http://other.test/x""#)),
        "{page}"
    );
    assert!(page.contains(r##"href="#top""##), "fragments stay: {page}");

    // upstream 4xx are passed on; redirects are followed (urllib's urlopen does)
    let (status, _, body) = proxy.request("GET", &format!("/{host}/nothing"), "");
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 404 Not Found", "missing")
    );
    let (status, _, body) = proxy.request("GET", &format!("/http://{host}/moved"), "");
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 200 OK", "fast")
    );

    let refused = ReservedPort::new();
    let (status, _, body) = proxy.request("GET", &format!("/127.0.0.1:{}/<x>", refused.port()), "");
    assert_eq!(status, "HTTP/1.1 502 Bad Gateway");
    assert!(
        body.starts_with("<h1>cannot connect to 127.0.0.1:"),
        "{body}"
    );
    assert!(body.contains("/&lt;x&gt;</h2>"), "escaped: {body}");
    up.server.stop(None);
}

#[test]
fn slow_upstreams_overlap_and_a_fast_one_stays_fast() {
    const N: usize = 6; // three times may's two default workers in the proxy
    let proxy = Arc::new(Proxy::start());
    let up = upstream();
    let host = inet(&up.server);
    let start = Instant::now();
    let slow: Vec<_> = (0..N)
        .map(|_| {
            let proxy = proxy.clone();
            std::thread::spawn(move || proxy.request("GET", &format!("/{host}/slow"), ""))
        })
        .collect();
    eventually("every slow request reached the upstream", || {
        up.slow_started.load(Ordering::SeqCst) == N
    });
    let t = Instant::now();
    let (status, _, body) = proxy.request("GET", &format!("/{host}/fast"), "");
    let fast_took = t.elapsed();
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 200 OK", "fast")
    );
    let pending = slow.iter().filter(|t| !t.is_finished()).count();
    for thread in slow {
        let (status, _, body) = join_within("slow request", WAIT, thread);
        assert_eq!(
            (status.as_str(), body.as_str()),
            ("HTTP/1.1 200 OK", "slow")
        );
    }
    let total = start.elapsed();
    assert!(
        total < LATENCY * 2,
        "{N} slow requests of {LATENCY:?} took {total:?}"
    );
    assert!(fast_took < LATENCY / 2, "the fast one took {fast_took:?}");
    assert_eq!(pending, N, "the fast one finished before every slow one");
    up.server.stop(None);
}
