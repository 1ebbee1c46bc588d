//! The environ: every gevent key, joining rules, dropped headers, redacted Debug, extras.
#![allow(missing_docs)]

#[path = "wsgi_support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use may_gevent::pywsgi::{from_fn, AppResult, Environ, StartResponse};
use support::{serve, serve_with};

type Seen = Arc<Mutex<Vec<BTreeMap<String, String>>>>;

/// Serves an app that records every string entry of each environ (like the test app's `/environ`).
fn recorder() -> (support::TestServer, Seen) {
    recorder_with(|c| c)
}

fn recorder_with(
    tweak: impl FnOnce(may_gevent::pywsgi::WsgiConfig) -> may_gevent::pywsgi::WsgiConfig,
) -> (support::TestServer, Seen) {
    let seen: Seen = Arc::default();
    let seen2 = seen.clone();
    let server = serve_with(
        tweak,
        move |env: &mut Environ, start_response: &mut StartResponse<'_>| -> AppResult {
            let map: BTreeMap<String, String> = env
                .iter()
                .map(|(k, v)| (k.into_owned(), v.to_owned()))
                .collect();
            seen2.lock().unwrap().push(map);
            start_response.call("200 OK", &[])?;
            Ok(Vec::<Vec<u8>>::new().into())
        },
    );
    (server, seen)
}

fn last(seen: &Seen) -> BTreeMap<String, String> {
    seen.lock().unwrap().last().cloned().expect("the app ran")
}

#[test]
fn every_gevent_key() {
    let (server, seen) = recorder();
    let mut client = server.client();
    client.send(
        b"GET /env;p/a%20b%2Fc?x=1&y=%20 HTTP/1.1\r\nHost: example.com:8080\r\nContent-Type: text/x\r\n\
          Content-Length: 0\r\nX-A: 1\r\nCookie: a=1\r\nx-a: 2\r\nCookie: b=2\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(client.read(false).unwrap().status, 200);
    let env = last(&seen);
    let port = server.addr.port().to_string();
    let local = client.writer.local_addr().unwrap();
    let expected: BTreeMap<String, String> = [
        ("CONTENT_LENGTH", "0"),
        ("CONTENT_TYPE", "text/x"),
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("HTTP_CONNECTION", "close"),
        ("HTTP_COOKIE", "a=1; b=2"),
        ("HTTP_HOST", "example.com:8080"),
        ("HTTP_X_A", "1,2"),
        ("PATH_INFO", "/env;p/a b/c"),
        ("QUERY_STRING", "x=1&y=%20"),
        ("RAW_URI", "/env;p/a%20b%2Fc?x=1&y=%20"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("REMOTE_PORT", &local.port().to_string()),
        ("REQUEST_METHOD", "GET"),
        ("SCRIPT_NAME", ""),
        ("SERVER_NAME", "localhost"),
        ("SERVER_PORT", &port),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("SERVER_SOFTWARE", may_gevent::pywsgi::SERVER_SOFTWARE),
        ("wsgi.url_scheme", "http"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(env, expected);
}

#[test]
fn typed_accessors_and_non_string_keys() {
    let server = serve(from_fn(|env, start_response| {
        assert_eq!(env.method(), "POST");
        assert_eq!(env.path_info(), "/p");
        assert_eq!(env.query_string(), "q");
        assert_eq!(env.header("x-foo"), Some("bar"));
        assert_eq!(env.header("X-FOO"), Some("bar"));
        assert_eq!(env.get("HTTP_X_FOO"), Some("bar"));
        assert_eq!(env.header("content-type"), Some("text/plain"));
        assert_eq!(env.content_length(), Some("2"));
        assert_eq!(env.version(), (1, 0));
        assert!(env.multithread());
        assert!(!env.multiprocess());
        assert!(!env.run_once());
        assert!(env.input_terminated());
        assert!(env.contains_key("wsgi.input"));
        assert!(env.get("wsgi.input").is_none());
        assert!(env.peer_addr().is_some());
        assert_eq!(env.raw_headers().count(), 4);
        slog::info!(env.errors(), "hello from the app");
        start_response.call("200 OK", &[])?;
        Ok(env.input().read_all()?.into())
    }));
    let mut client = server.client();
    client.send(b"POST /p?q HTTP/1.1\r\nHost: h\r\nX-Foo: bar\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok");
    assert_eq!(client.read(false).unwrap().body, b"ok");
    assert!(server
        .record_containing("hello from the app")
        .starts_with("INFO"));
}

#[test]
fn plain_get_has_no_content_or_extra_http_keys() {
    let (server, seen) = recorder();
    for version in ["1.0", "1.1"] {
        let resp = server.raw_text(
            format!("GET / HTTP/{version}\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        assert!(resp.starts_with("HTTP/1.1 200 OK"));
        let env = last(&seen);
        assert!(!env.contains_key("CONTENT_LENGTH"));
        assert!(!env.contains_key("CONTENT_TYPE"));
        let http: Vec<&String> = env.keys().filter(|k| k.starts_with("HTTP_")).collect();
        assert_eq!(http, ["HTTP_CONNECTION", "HTTP_HOST"]);
        assert_eq!(env["SERVER_PROTOCOL"], format!("HTTP/{version}"));
    }
}

#[test]
fn headers_with_underscores_are_dropped() {
    let (server, seen) = recorder();
    let resp = server.raw_text(b"GET / HTTP/1.0\r\nx-auth_user: bob\r\nX-Auth-User: alice\r\n\r\n");
    assert!(resp.starts_with("HTTP/1.1 200 OK"));
    let env = last(&seen);
    assert_eq!(
        env.get("HTTP_X_AUTH_USER").map(String::as_str),
        Some("alice")
    );
}

#[test]
fn repeated_cookies_are_joined() {
    let (server, seen) = recorder();
    server.raw(
        b"GET / HTTP/1.1\r\nHost: localhost\r\nCookie: name1=\"value1\"\r\nCookie2: nameA=\"valueA\"\r\n\
          Cookie2: nameB=\"valueB\"\r\nCookie: name2=\"value2\"\r\nConnection: close\r\n\r\n",
    );
    let env = last(&seen);
    assert_eq!(env["HTTP_COOKIE"], "name1=\"value1\"; name2=\"value2\"");
    assert_eq!(env["HTTP_COOKIE2"], "nameA=\"valueA\"; nameB=\"valueB\"");
}

#[test]
fn international_path_is_decoded_as_latin1() {
    let (server, seen) = recorder();
    let resp = server.raw_text(
        b"GET /%D0%BF%D1%80%D0%B8%D0%B2%D0%B5%D1%82?%D0%B2%D0%BE%D0%BF%D1%80%D0%BE%D1%81=%D0%BE%D1%82%D0%B2%D0%B5%D1%82 HTTP/1.1\r\n\
          Host: localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(resp.starts_with("HTTP/1.1 200 OK"), "{resp}");
    let env = last(&seen);
    let expected: String = b"/\xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82"
        .iter()
        .map(|&b| char::from(b))
        .collect();
    assert_eq!(env["PATH_INFO"], expected);
    assert_eq!(
        env["QUERY_STRING"],
        "%D0%B2%D0%BE%D0%BF%D1%80%D0%BE%D1%81=%D0%BE%D1%82%D0%B2%D0%B5%D1%82"
    );
    let server = serve(from_fn(|env, start_response| {
        let utf8 = String::from_utf8(env.path_info_bytes().into_owned())?;
        start_response.call("200 OK", &[])?;
        Ok(utf8.into())
    }));
    let resp = server.client().get("/%D0%BF%D1%80%D0%B8%D0%B2%D0%B5%D1%82");
    assert_eq!(resp.body_text(), "/привет");
}

#[test]
fn absolute_form_target() {
    let (server, seen) = recorder();
    server.raw(b"GET http://example.org:81/a%2Fb?c=d HTTP/1.1\r\nHost: ignored\r\nConnection: close\r\n\r\n");
    let env = last(&seen);
    assert_eq!(env["PATH_INFO"], "/a/b");
    assert_eq!(env["QUERY_STRING"], "c=d");
    assert_eq!(env["HTTP_HOST"], "example.org:81");
    assert_eq!(env["RAW_URI"], "http://example.org:81/a%2Fb?c=d");
}

#[test]
fn extra_environ_entries() {
    let (server, seen) = recorder_with(|c| {
        c.environ("my.key", "my value")
            .environ("SERVER_SOFTWARE", "custom/1.0")
            .environ("PATH_INFO", "loses to the request")
            .environ("HTTP_X_DEFAULT", "from the server")
            .url_scheme("https")
    });
    server.raw(b"GET /real HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    let env = last(&seen);
    assert_eq!(env["my.key"], "my value");
    assert_eq!(env["SERVER_SOFTWARE"], "custom/1.0");
    assert_eq!(env["PATH_INFO"], "/real");
    assert_eq!(env["HTTP_X_DEFAULT"], "from the server");
    assert_eq!(env["wsgi.url_scheme"], "https");
    server.raw(
        b"GET /real HTTP/1.1\r\nHost: h\r\nX-Default: from the client\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(last(&seen)["HTTP_X_DEFAULT"], "from the client");
}

#[test]
fn application_entries_insert_and_remove() {
    let server = serve(from_fn(|env, start_response| {
        env.insert("SCRIPT_NAME", "/app");
        env.insert("PATH_INFO", "/rewritten");
        env.insert("myapp.user", "bob");
        assert_eq!(env.get("HTTP_X_SECRET"), Some("s"));
        assert!(env.remove("HTTP_X_SECRET"));
        assert!(!env.remove("HTTP_X_SECRET"));
        assert_eq!(env.path_info(), "/rewritten");
        assert_eq!(env.script_name(), "/app");
        assert_eq!(env.header("x-secret"), None);
        let keys: Vec<String> = env.iter().map(|(k, _)| k.into_owned()).collect();
        assert!(keys.contains(&"myapp.user".to_owned()));
        assert!(!keys.contains(&"HTTP_X_SECRET".to_owned()));
        assert_eq!(keys.iter().filter(|k| *k == "PATH_INFO").count(), 1);
        start_response.call("200 OK", &[])?;
        Ok(Vec::<Vec<u8>>::new().into())
    }));
    let text =
        server.raw_text(b"GET /x HTTP/1.1\r\nHost: h\r\nX-Secret: s\r\nConnection: close\r\n\r\n");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

#[test]
fn debug_output_is_redacted() {
    let shown = Arc::new(Mutex::new(String::new()));
    let shown2 = shown.clone();
    let server = serve(
        move |env: &mut Environ, start_response: &mut StartResponse<'_>| -> AppResult {
            *shown2.lock().unwrap() = format!("{env:?}");
            start_response.call("200 OK", &[])?;
            Ok(Vec::<Vec<u8>>::new().into())
        },
    );
    let mut client = server.client();
    client.send(b"GET /secret-path?token=abc HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer xyz\r\n\r\n");
    client.read(false).unwrap();
    let port = client.writer.local_addr().unwrap().port();
    let text = shown.lock().unwrap().clone();
    // 15 string entries + 7 non-string ones, 3 shown
    assert_eq!(
        text,
        format!("{{'REMOTE_ADDR': '127.0.0.1', 'REMOTE_PORT': '{port}', 'HTTP_HOST': 'localhost', (hidden keys: 19)}}")
    );
    assert!(!text.contains("xyz") && !text.contains("secret"));
}

#[test]
fn unix_socket_has_no_remote_addr() {
    support::init();
    let sock = support::UnixPath::new("pywsgi-test");
    let path = sock.path.clone();
    let listener = may::os::unix::net::UnixListener::bind(&path).unwrap();
    let (config, access, _records) = support::test_config();
    let config = Arc::new(config);
    may::go!(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let config = config.clone();
            may::go!(move || may_gevent::pywsgi::handle_connection(
                stream,
                None,
                &config,
                &from_fn(|env, start_response| {
                    assert!(env.remote_addr().is_none() && env.peer_addr().is_none());
                    start_response.call("200 OK", &[])?;
                    Ok(format!("{:?}", env.get("REMOTE_PORT")).into())
                })
            ));
        }
    });
    let mut stream = std::os::unix::net::UnixStream::connect(&path).unwrap();
    stream
        .set_read_timeout(Some(support::CLIENT_TIMEOUT))
        .unwrap();
    std::io::Write::write_all(
        &mut stream,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut stream, &mut out).unwrap();
    assert!(out.ends_with("\r\n\r\nNone"), "{out}");
    access.0.wait_for(|v| !v.is_empty());
    assert!(access.text().starts_with("- - - ["), "{}", access.text());
    let _ = std::fs::remove_file(&path);
}
