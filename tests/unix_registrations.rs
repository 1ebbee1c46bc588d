//! A Unix connection closed by the crate leaves may's poller before its descriptor closes.
//!
//! may's own `UnixStream` closes the descriptor first and then removes that number from its
//! epoll set: a socket opened on another thread in between gets the same number (the kernel
//! gives out the lowest free one) and loses its registration, so it never sees another
//! readiness event. Here one thread opens and closes Unix connections through `Stream` (as a
//! server does with every connection) while another opens sockets and checks, in
//! `/proc/self/fdinfo` of may's epoll descriptors, that each is still registered.

use std::collections::HashSet;
use std::os::fd::AsRawFd;

use may::os::unix::net::UnixStream;
use may_gevent::Stream;

/// The descriptors registered in this process's epoll sets (may's pollers).
fn registered() -> HashSet<i32> {
    let mut set = HashSet::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let target = std::fs::read_link(entry.path()).unwrap_or_default();
        if !target.to_string_lossy().contains("eventpoll") {
            continue;
        }
        let name = entry.file_name();
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", name.to_string_lossy()))
            .unwrap_or_default();
        for line in info.lines() {
            if let Some(fd) = line
                .strip_prefix("tfd:")
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|fd| fd.parse().ok())
            {
                set.insert(fd);
            }
        }
    }
    set
}

#[test]
fn closing_unix_streams_never_unregisters_another_socket() {
    const CHURN: usize = 20_000;
    // may's poller exists before the threads start
    drop(UnixStream::pair().unwrap());
    let churn = std::thread::spawn(|| {
        for _ in 0..CHURN {
            let (a, b) = UnixStream::pair().unwrap();
            drop(Stream::from(a));
            drop(Stream::from(b));
        }
    });
    let (mut checked, mut lost) = (0usize, Vec::new());
    let mut kept = Vec::new();
    while !churn.is_finished() || checked == 0 {
        let (x, y) = UnixStream::pair().unwrap();
        kept.push(x);
        kept.push(y);
        if kept.len() >= 100 || churn.is_finished() {
            let now = registered();
            for stream in kept.drain(..) {
                checked += 1;
                if !now.contains(&stream.as_raw_fd()) {
                    lost.push(stream.as_raw_fd());
                }
            }
        }
    }
    churn.join().unwrap();
    assert!(checked >= 100, "only {checked} sockets checked");
    assert!(
        lost.is_empty(),
        "{} of {checked} sockets lost their registration in may's poller: {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
}
