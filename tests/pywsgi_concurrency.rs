//! Concurrency on may: slow requests run concurrently; a cancelled handler unwinds cleanly.
#![allow(missing_docs)]

#[path = "wsgi_support/mod.rs"]
mod support;

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use may_gevent::pywsgi::{from_fn, handle_connection, Application, Body};
use support::{read_to_close, serve};

#[test]
fn two_hundred_slow_requests_complete_concurrently() {
    const CLIENTS: usize = 200;
    // Every request waits in the application until all 200 are in it (proof that they run
    // at once, whatever the time their clients take to arrive), then sleeps.
    let arrived = Arc::new(AtomicUsize::new(0));
    let all_in = Arc::new(may::sync::SyncFlag::new());
    let all_in_at = Arc::new(Mutex::new(None::<Instant>));
    let (a, f, t) = (arrived.clone(), all_in.clone(), all_in_at.clone());
    let server = serve(from_fn(move |env, start_response| {
        let ms: u64 = env
            .query_string()
            .strip_prefix("ms=")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if a.fetch_add(1, Ordering::SeqCst) + 1 == CLIENTS {
            *t.lock().unwrap() = Some(Instant::now());
            f.fire();
        }
        if !f.wait_timeout(support::CLIENT_TIMEOUT) {
            start_response.call("503 Service Unavailable", &[])?;
            return Ok(format!("{} of {CLIENTS} arrived", a.load(Ordering::SeqCst)).into());
        }
        may::coroutine::sleep(Duration::from_millis(ms));
        start_response.call("200 OK", &[])?;
        Ok("slept".into())
    }));
    let addr = server.addr;
    let threads: Vec<_> = (0..CLIENTS)
        .map(|_| {
            std::thread::spawn(move || {
                let mut stream =
                    std::net::TcpStream::connect_timeout(&addr, support::CLIENT_TIMEOUT).unwrap();
                stream
                    .set_read_timeout(Some(support::CLIENT_TIMEOUT))
                    .unwrap();
                stream
                    .write_all(
                        b"GET /sleep?ms=500 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                    )
                    .unwrap();
                read_to_close(&mut stream)
            })
        })
        .collect();
    for thread in threads {
        let out = thread.join().unwrap();
        assert!(
            out.ends_with(b"\r\n\r\nslept"),
            "{:?}",
            String::from_utf8_lossy(&out)
        );
    }
    assert!(all_in.is_fired());
    // the 500 ms sleeps overlap too: one after the other they would take 100 s
    let all_in_at = all_in_at.lock().unwrap().expect("all arrived");
    let elapsed = all_in_at.elapsed();
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
}

#[test]
fn a_cancelled_handler_unwinds_without_io() {
    support::init();
    struct Guard(Arc<AtomicBool>);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.store(std::thread::panicking(), Ordering::SeqCst);
        }
    }
    let unwound = Arc::new(AtomicBool::new(false));
    let entered = Arc::new(may::sync::SyncFlag::new());
    let (unwound2, entered2) = (unwound.clone(), entered.clone());
    let app: Arc<dyn Application> = Arc::new(from_fn(move |_env, start_response| {
        let _guard = Guard(unwound2.clone());
        let mut write = start_response.call("200 OK", &[])?;
        write.write(b"started")?;
        entered2.fire();
        may::coroutine::sleep(Duration::from_secs(60));
        Ok(Body::empty())
    }));
    let listener = may::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (config, _access, records) = support::test_config();
    // The handler's handle comes through a channel: it may be sent after the app has started.
    let (handle_tx, handle_rx) = std::sync::mpsc::channel();
    may::go!(move || {
        let (stream, peer) = listener.accept().unwrap();
        let h = may::go!(move || handle_connection(stream, Some(peer), &config, &*app));
        handle_tx.send(h).unwrap();
    });
    let mut stream = std::net::TcpStream::connect_timeout(&addr, support::CLIENT_TIMEOUT).unwrap();
    stream
        .set_read_timeout(Some(support::CLIENT_TIMEOUT))
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    assert!(
        entered.wait_timeout(Duration::from_secs(5)),
        "the app did not start"
    );
    let h = handle_rx
        .recv_timeout(support::CLIENT_TIMEOUT)
        .expect("handler spawned");
    let start = Instant::now();
    #[allow(unsafe_code)]
    // SAFETY: the coroutine is live (we hold its handle); cancel only makes it unwind at its next
    // yield point, which is may's documented way to stop a coroutine.
    unsafe {
        h.coroutine().cancel();
    }
    let res = support::join_coroutine_within("the cancelled handler", Duration::from_secs(2), h);
    assert!(start.elapsed() < Duration::from_secs(2));
    let err = res.expect_err("cancelled");
    assert!(
        err.is::<generator::Error>(),
        "cancel must propagate, not be turned into a 500"
    );
    assert!(
        unwound.load(Ordering::SeqCst),
        "the app's frames were unwound"
    );
    let out = read_to_close(&mut stream);
    let text = String::from_utf8_lossy(&out);
    assert!(text.ends_with("7\r\nstarted\r\n"), "{text}");
    assert!(!text.contains("500"), "{text}");
    assert!(records.errors().is_empty(), "{:?}", records.errors());
}

#[test]
fn many_keep_alive_clients_in_parallel() {
    let hits = Arc::new(AtomicUsize::new(0));
    let hits2 = hits.clone();
    let server = serve(
        move |env: &mut may_gevent::pywsgi::Environ,
              start_response: &mut may_gevent::pywsgi::StartResponse<'_>|
              -> may_gevent::pywsgi::AppResult {
            hits2.fetch_add(1, Ordering::SeqCst);
            let len = env.input().read_all()?.len();
            let body = format!("{}{len}", env.path_info());
            start_response.call("200 OK", &[])?;
            Ok(body.into())
        },
    );
    let addr = server.addr;
    let threads: Vec<_> = (0..16)
        .map(|t| {
            std::thread::spawn(move || {
                let stream =
                    std::net::TcpStream::connect_timeout(&addr, support::CLIENT_TIMEOUT).unwrap();
                stream
                    .set_read_timeout(Some(support::CLIENT_TIMEOUT))
                    .unwrap();
                // head and body go in two writes: without this, Nagle + delayed ACK add 40 ms
                stream.set_nodelay(true).unwrap();
                let mut client = support::Client {
                    reader: std::io::BufReader::new(stream.try_clone().unwrap()),
                    writer: stream,
                };
                for i in 0..100 {
                    client.send(
                        format!("POST /{t}/{i} HTTP/1.1\r\nHost: a\r\nContent-Length: {i}\r\n\r\n")
                            .as_bytes(),
                    );
                    client.send(&vec![b'b'; i]);
                    assert_eq!(
                        client.read(false).unwrap().body_text(),
                        format!("/{t}/{i}{i}")
                    );
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1600);
}
