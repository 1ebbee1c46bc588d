//! The Pool examples run as processes, as a user would run them (gevent's
//! test__example_*.py). `cargo test` builds the examples.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use support::child;

fn example(name: &str) -> PathBuf {
    let mut path = std::env::current_exe().unwrap();
    path.pop();
    if path.ends_with("deps") {
        path.pop();
    }
    path.join("examples").join(name)
}

/// How long an example may take to run to its end.
const EXAMPLE_WAIT: Duration = Duration::from_secs(60);

#[test]
fn concurrent_download_fetches_every_page_through_a_bounded_pool() {
    support::watchdog::arm();
    const PAGES: usize = 15;
    const SIZE: usize = 4;
    let finished = child::run(
        "concurrent_download",
        Command::new(example("concurrent_download")).args([PAGES.to_string(), SIZE.to_string()]),
        EXAMPLE_WAIT,
    );
    assert!(finished.status.success(), "{finished:?}");
    let lines: Vec<&str> = finished.stdout.lines().collect();
    let starting = lines
        .iter()
        .filter(|l| l.starts_with("Starting http://127.0.0.1:"))
        .count();
    assert_eq!(starting, PAGES, "{lines:#?}");
    // one line per page as it finishes, with the page's own size
    let mut sizes = BTreeMap::new();
    for line in lines.iter().filter(|l| l.contains(" bytes: ")) {
        let (url, rest) = line.split_once(": ").expect("url: n bytes");
        let page: usize = url
            .rsplit('/')
            .next()
            .unwrap()
            .parse()
            .expect("page number");
        let bytes: usize = rest
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .expect("size");
        assert!(rest.contains(&format!("page {page}")), "{line}");
        assert!(sizes.insert(page, bytes).is_none(), "page {page} twice");
    }
    assert_eq!(sizes.len(), PAGES, "{lines:#?}");
    for (page, bytes) in &sizes {
        assert_eq!(*bytes, page * 100 + 20, "page {page}");
    }
    // the summary: every page, never more than the pool size at once on the server
    let summary = lines.last().expect("a summary line");
    assert!(
        summary.starts_with(&format!("downloaded {PAGES} pages")),
        "{summary}"
    );
    let peak: usize = summary
        .split("at most ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("the peak in the summary");
    assert!((1..=SIZE).contains(&peak), "{summary}");
}
