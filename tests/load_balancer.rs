//! A real load balancer in front of WsgiServer processes (`examples/testapp`), with the
//! configurations `docs/deploy.md` shows (`docs/deploy/haproxy.cfg`, `docs/deploy/nginx.conf`,
//! read from the repository and given loopback ports): HAProxy with `send-proxy-v2` and HTTP
//! health checks, nginx with `X-Forwarded-For` / `X-Forwarded-Proto`. The client has its own
//! loopback address (127.0.0.2), which the application must see as the client's address, and
//! a rolling restart of every backend under load ends with zero failed requests.
//!
//! HAProxy (Debian package `haproxy`) and nginx (`nginx-light`) must be installed; `.ci/run`
//! installs them. These tests are never skipped: without the binary they fail and say so.

#[path = "support/deploy.rs"]
mod deploy;
mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deploy::{Check, Client, Load, Response, TempDir, WAIT};
use support::child::Running;
use support::ReservedPort;

/// The test client's own source address (any 127/8 address is the loopback).
const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// testapp's options for each proxy: accept PROXY headers (from loopback peers), or trust
/// forwarded headers from the proxy's address.
const HAPROXY_BACKEND: &[&str] = &["--proxy-protocol"];
const NGINX_BACKEND: &[&str] = &["--forwarded-allow-ips", "127.0.0.1"];

fn example(name: &str) -> PathBuf {
    let mut path = std::env::current_exe().unwrap();
    path.pop();
    if path.ends_with("deps") {
        path.pop();
    }
    path.join("examples").join(name)
}

/// The path of a system binary, or a failure that says how to install it.
fn binary(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from));
    for dir in dirs {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "{name} is not installed: `apt-get install -y {package}` (.ci/run installs it). \
         The load-balancer tests do not skip themselves."
    );
}

/// A committed config template with its `{{NAME}}` placeholders replaced.
fn template(file: &str, values: &[(&str, String)]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/deploy")
        .join(file);
    let mut text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
    for (name, value) in values {
        let token = format!("{{{{{name}}}}}");
        assert!(text.contains(&token), "{file} has no {token}");
        text = text.replace(&token, value);
    }
    assert!(
        !text.contains("{{"),
        "{file}: a placeholder is left: {text}"
    );
    text
}

/// One testapp process on a fixed port (restarted on the same port).
struct Backend {
    port: ReservedPort,
    args: &'static [&'static str],
    child: Running,
}

impl Backend {
    fn start(args: &'static [&'static str]) -> Backend {
        let port = ReservedPort::new();
        let child = Backend::spawn(port.addr, args);
        Backend { port, args, child }
    }

    fn spawn(addr: SocketAddr, args: &[&str]) -> Running {
        let mut command = Command::new(example("testapp"));
        command.arg(addr.to_string()).args(args);
        let child = Running::spawn(&format!("testapp {addr}"), &mut command).unwrap_or_else(|err| {
            panic!("cannot run testapp ({err}): `cargo test` builds the examples; with --test, run `cargo build --examples` first")
        });
        child
            .stdout
            .wait_for(WAIT, |l| l.starts_with("Serving on "))
            .unwrap_or_else(|| panic!("testapp did not start: {:?}", child.stderr.all()));
        child
    }

    fn addr(&self) -> String {
        self.port.addr.to_string()
    }

    /// SIGTERM (graceful: stop accepting, drain), then a new process on the same port, and
    /// wait until the balancer sends it proxied requests.
    fn restart(&mut self) {
        self.child.signal(libc::SIGTERM);
        let status = self.child.wait_exit(WAIT);
        assert!(status.success(), "{status:?} {:?}", self.child.stderr.all());
        self.child = Backend::spawn(self.port.addr, self.args);
        self.child
            .stderr
            .wait_for(WAIT, |l| l.contains("GET /environ"))
            .unwrap_or_else(|| panic!("the restarted backend got no request"));
    }
}

/// The value of a string member of testapp's `/environ` JSON (values with no escapes).
fn environ(body: &str, key: &str) -> Option<String> {
    let start = body.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let end = body[start..].find('"')? + start;
    Some(body[start..end].to_owned())
}

/// `/environ` answered with the client's own address as REMOTE_ADDR; the tag is the port of
/// the backend that answered.
fn environ_check() -> Check {
    Arc::new(|response: &Response| {
        let body = response.text();
        if response.status != 200 {
            return Err(format!("status {}: {body}", response.status));
        }
        match environ(&body, "REMOTE_ADDR") {
            Some(addr) if addr == CLIENT.to_string() => {}
            other => return Err(format!("REMOTE_ADDR {other:?}, not {CLIENT}: {body}")),
        }
        environ(&body, "SERVER_PORT").ok_or_else(|| format!("no SERVER_PORT: {body}"))
    })
}

/// Requests through the balancer until each backend has answered once (it is up).
fn wait_for_backends(front: SocketAddr, backends: &[Backend], proxy: &Running) -> Response {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    let mut last = None;
    let check = environ_check();
    while seen.len() < backends.len() {
        assert!(
            Instant::now() < deadline,
            "the balancer did not reach every backend (saw {seen:?}; last {last:?}); proxy: {:?} {:?}",
            proxy.stdout.all(),
            proxy.stderr.all()
        );
        match Client::new(front, Some(CLIENT)).get("/environ", "") {
            Ok(response) => {
                match check(&response) {
                    Ok(port) if !seen.contains(&port) => seen.push(port),
                    Ok(_) => {}
                    Err(why) => panic!("{why}"),
                }
                last = Some(Ok(response));
            }
            Err(why) => {
                last = Some(Err(why));
                std::thread::sleep(Duration::from_millis(50)); // the proxy is starting
            }
        }
    }
    match last {
        Some(Ok(response)) => response,
        _ => unreachable!(),
    }
}

/// Under load from 4 keep-alive clients, restart every backend in turn; returns the tally.
fn rolling_restart(front: SocketAddr, backends: &mut [Backend], headers: &str) -> deploy::Tally {
    let load = Load::start(
        4,
        front,
        Some(CLIENT),
        "/environ",
        headers,
        false,
        environ_check(),
    );
    load.wait("requests flow", WAIT, |t| {
        t.ok >= 50 || !t.failures.is_empty()
    });
    for backend in backends.iter_mut() {
        backend.restart();
        let ok = load.snapshot().0;
        load.wait("requests flow after a restart", WAIT, |t| {
            t.ok >= ok + 50 || !t.failures.is_empty()
        });
    }
    let tally = load.stop();
    println!(
        "rolling restart: {} requests, {} failed, {} retried by the client; per backend port {:?}",
        tally.ok,
        tally.failures.len(),
        tally.retries,
        tally.by_tag
    );
    tally
}

#[test]
fn haproxy_send_proxy_v2_health_checks_and_a_rolling_restart() {
    let haproxy = binary("haproxy", "haproxy");
    let mut backends = vec![
        Backend::start(HAPROXY_BACKEND),
        Backend::start(HAPROXY_BACKEND),
    ];
    let front = ReservedPort::new();
    let dir = TempDir::new("haproxy");
    let config = dir.path().join("haproxy.cfg");
    let text = template(
        "haproxy.cfg",
        &[
            ("LISTEN", front.addr.to_string()),
            ("BACKEND_1", backends[0].addr()),
            ("BACKEND_2", backends[1].addr()),
        ],
    );
    std::fs::write(&config, text).unwrap();
    let mut command = Command::new(haproxy);
    command.arg("-db").arg("-f").arg(&config);
    let proxy = Running::spawn("haproxy", &mut command).unwrap();

    let response = wait_for_backends(front.addr, &backends, &proxy);
    let body = response.text();
    // The PROXY header gave the client's address and port; the proxy's own is kept apart.
    assert_eq!(
        environ(&body, "REMOTE_ADDR").as_deref(),
        Some("127.0.0.2"),
        "{body}"
    );
    let proxy_addr = environ(&body, "may_gevent.proxy_addr").unwrap_or_default();
    assert!(proxy_addr.starts_with("127.0.0.1:"), "{body}");
    assert_ne!(
        environ(&body, "REMOTE_PORT").as_deref(),
        Some("0"),
        "{body}"
    );
    // Health checks reach both backends (LOCAL PROXY header, GET /).
    for backend in &backends {
        backend
            .child
            .stderr
            .wait_for(WAIT, |l| l.contains("\"GET / HTTP/1.1\" 200"))
            .unwrap_or_else(|| panic!("no health check on {}", backend.addr()));
    }

    let tally = rolling_restart(front.addr, &mut backends, "");
    assert!(tally.failures.is_empty(), "{:?}", tally.failures);
    assert_eq!(tally.by_tag.len(), 2, "{tally:?}");
}

#[test]
fn nginx_forwarded_headers_and_a_rolling_restart() {
    let nginx = binary("nginx", "nginx-light");
    let mut backends = vec![Backend::start(NGINX_BACKEND), Backend::start(NGINX_BACKEND)];
    let front = ReservedPort::new();
    let front_tls = ReservedPort::new();
    let dir = TempDir::new("nginx");
    let prefix = dir.path();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(prefix.join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(prefix.join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    let app = template(
        "nginx.conf",
        &[
            ("LISTEN", front.addr.to_string()),
            ("LISTEN_TLS", front_tls.addr.to_string()),
            ("CERT", prefix.join("cert.pem").display().to_string()),
            ("KEY", prefix.join("key.pem").display().to_string()),
            ("BACKEND_1", backends[0].addr()),
            ("BACKEND_2", backends[1].addr()),
        ],
    );
    std::fs::write(prefix.join("app.conf"), app).unwrap();
    // What a distribution's /etc/nginx/nginx.conf provides, here under the temp dir. One
    // process (`master_process off`): when the test ends or fails, killing it leaves no
    // orphaned worker behind (and no `user` switch is needed to write the temp dir).
    let p = prefix.display();
    let main = format!(
        "master_process off;\nerror_log {p}/error.log warn;\npid {p}/nginx.pid;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n    access_log off;\n    client_body_temp_path {p}/client_body;\n\
         proxy_temp_path {p}/proxy;\n    fastcgi_temp_path {p}/fastcgi;\n\
         uwsgi_temp_path {p}/uwsgi;\n    scgi_temp_path {p}/scgi;\n\
         include {p}/app.conf;\n}}\n"
    );
    std::fs::write(prefix.join("nginx.conf"), main).unwrap();
    let mut command = Command::new(nginx);
    command
        .arg("-p")
        .arg(prefix)
        .arg("-e")
        .arg(prefix.join("error.log"))
        .arg("-c")
        .arg(prefix.join("nginx.conf"))
        .args(["-g", "daemon off;"]);
    let proxy = Running::spawn("nginx", &mut command).unwrap();

    let response = wait_for_backends(front.addr, &backends, &proxy);
    let body = response.text();
    assert_eq!(
        environ(&body, "REMOTE_ADDR").as_deref(),
        Some("127.0.0.2"),
        "{body}"
    );
    assert_eq!(
        environ(&body, "wsgi.url_scheme").as_deref(),
        Some("http"),
        "{body}"
    );
    assert_eq!(
        environ(&body, "may_gevent.forwarded_for").as_deref(),
        Some("127.0.0.2"),
        "{body}"
    );
    // A client forging X-Forwarded-For gets nowhere: nginx appends the real address, and
    // the backend walks the list from the right, trusting only the proxy.
    let forged = Client::new(front.addr, Some(CLIENT))
        .get("/environ", "X-Forwarded-For: 203.0.113.7\r\n")
        .unwrap();
    let body = forged.text();
    assert_eq!(
        environ(&body, "REMOTE_ADDR").as_deref(),
        Some("127.0.0.2"),
        "{body}"
    );

    // TLS terminated by nginx: X-Forwarded-Proto makes wsgi.url_scheme https.
    #[cfg(feature = "tls")]
    {
        let body = https_environ(front_tls.addr, &cert.cert.pem());
        assert_eq!(
            environ(&body, "wsgi.url_scheme").as_deref(),
            Some("https"),
            "{body}"
        );
        assert_eq!(
            environ(&body, "HTTP_X_FORWARDED_PROTO").as_deref(),
            Some("https"),
            "{body}"
        );
    }

    let tally = rolling_restart(
        front.addr,
        &mut backends,
        "X-Forwarded-For: 203.0.113.7, 198.51.100.1\r\n",
    );
    let log = std::fs::read_to_string(prefix.join("error.log")).unwrap_or_default();
    assert!(
        tally.failures.is_empty(),
        "{:?}\nnginx error.log:\n{log}",
        tally.failures
    );
    assert_eq!(tally.by_tag.len(), 2, "{tally:?}");
}

#[test]
fn the_deploy_guide_shows_the_configs_these_tests_run() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let guide = std::fs::read_to_string(root.join("docs/deploy.md")).unwrap();
    for file in ["haproxy.cfg", "nginx.conf", "myapp.socket", "myapp.service"] {
        let text = std::fs::read_to_string(root.join("docs/deploy").join(file)).unwrap();
        assert!(
            guide.contains(text.trim_end()),
            "docs/deploy.md does not show docs/deploy/{file} as it is"
        );
    }
}

/// `GET /environ` over TLS (trusting only `cert_pem`), the response body.
#[cfg(feature = "tls")]
fn https_environ(addr: SocketAddr, cert_pem: &str) -> String {
    use std::io::{Read, Write};
    let root = native_tls::Certificate::from_pem(cert_pem.as_bytes()).unwrap();
    let connector = native_tls::TlsConnector::builder()
        .add_root_certificate(root)
        .disable_built_in_roots(true)
        .build()
        .unwrap();
    let tcp = std::net::TcpStream::connect_timeout(&addr, WAIT).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    tcp.set_write_timeout(Some(WAIT)).unwrap();
    let mut tls = connector
        .connect("localhost", tcp)
        .expect("TLS handshake with nginx");
    tls.write_all(b"GET /environ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = Vec::new();
    let _ = tls.read_to_end(&mut reply); // nginx may end TLS without close_notify
    let reply = String::from_utf8_lossy(&reply).into_owned();
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
    reply
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}
