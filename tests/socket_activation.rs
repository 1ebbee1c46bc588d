//! systemd socket activation on real child processes (this test binary run again with
//! `MAY_GEVENT_ACTIVATION_CHILD` naming the scenario), started the way systemd starts a
//! service: listening sockets as descriptors 3, 4 with `LISTEN_FDS`, `LISTEN_FDNAMES` and
//! `LISTEN_PID`, and a `NOTIFY_SOCKET` the test binds and reads.

#[path = "support/deploy.rs"]
mod deploy;
mod support;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::Duration;

use deploy::{activated, listening_socket, local_addr, Client, NotifySocket, WAIT};
use may_gevent::pywsgi::WsgiServer;
use may_gevent::Listener;
use support::child::Running;

const SCENARIO: &str = "MAY_GEVENT_ACTIVATION_CHILD";

fn child_args() -> [&'static str; 4] {
    ["--exact", "child_entry", "--nocapture", "--test-threads=1"]
}

/// This test binary as a socket-activated child running `scenario` with `sockets` as 3, 4...
fn spawn(scenario: &str, sockets: &[&socket2::Socket], names: &[&str], notify: &str) -> Running {
    let fds: Vec<_> = sockets.iter().map(|s| s.as_raw_fd()).collect();
    let exe = std::env::current_exe().unwrap();
    let mut command = activated(&exe, &child_args(), &fds, names);
    command.env(SCENARIO, scenario).env("NOTIFY_SOCKET", notify);
    Running::spawn(scenario, &mut command).unwrap()
}

fn cloexec(fd: i32) -> Option<bool> {
    #[allow(unsafe_code)]
    // SAFETY: fcntl(2) F_GETFD on a descriptor number; no memory is passed.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    (flags >= 0).then_some(flags & libc::FD_CLOEXEC != 0)
}

/// Runs the scenario when started by `spawn()`; a no-op in the normal test run.
#[test]
fn child_entry() {
    let Ok(scenario) = std::env::var(SCENARIO) else {
        return;
    };
    println!("pid {}", std::process::id());
    println!("cloexec before {:?} {:?}", cloexec(3), cloexec(4));
    let mut listeners = Listener::from_systemd().expect("from_systemd");
    let names: Vec<_> = listeners.iter().map(|l| l.name().unwrap_or("-")).collect();
    println!("names {}", names.join(","));
    println!("cloexec after {:?} {:?}", cloexec(3), cloexec(4));
    let vars: Vec<_> = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"]
        .iter()
        .filter(|v| std::env::var_os(v).is_some())
        .collect();
    println!("vars left {vars:?}");
    println!(
        "again {}",
        Listener::from_systemd().expect("second call").len()
    );
    if scenario == "inspect" || listeners.is_empty() {
        return;
    }
    assert!(listeners.iter().all(|l| l.is_inherited()));
    let server = WsgiServer::builder(listeners.remove(0), deploy::pid_app)
        .access_log(None)
        .build()
        .expect("build");
    let result = server.serve_forever();
    println!("serve_forever returned {result:?}");
}

fn line(child: &Running, prefix: &str) -> String {
    let line = child
        .stdout
        .wait_for(WAIT, |l| l.contains(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?}: {:?}", child.stderr.all()));
    line[line.find(prefix).unwrap() + prefix.len()..].to_owned()
}

fn get(addr: SocketAddr) -> deploy::Response {
    Client::new(addr, None).get("/", "").expect("GET /")
}

#[test]
fn sockets_from_listen_fds_with_names_readiness_and_stopping() {
    let web = listening_socket("127.0.0.1:0".parse().unwrap());
    let admin = listening_socket("127.0.0.1:0".parse().unwrap());
    let notify = NotifySocket::path();
    let mut child = spawn("serve", &[&web, &admin], &["web", "admin"], &notify.address);
    let pid = line(&child, "pid ");
    let ready = notify.wait_for(WAIT, "READY=1");
    // MAINPID is the child itself: the sh wrapper exec'd it (the pid LISTEN_PID named).
    assert!(ready.contains(&format!("MAINPID={pid}")), "{ready:?}");
    assert_eq!(line(&child, "names "), "web,admin");
    // systemd passes the descriptors without FD_CLOEXEC; the listeners set it.
    assert_eq!(line(&child, "cloexec before "), "Some(false) Some(false)");
    assert_eq!(line(&child, "cloexec after "), "Some(true) Some(true)");
    // sd_listen_fds(unset_environment=1): the variables are gone, a second call finds none.
    assert_eq!(line(&child, "vars left "), "[]");
    assert_eq!(line(&child, "again "), "0");

    let response = get(local_addr(&web));
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), format!("pid={pid}"));

    child.signal(libc::SIGTERM);
    notify.wait_for(WAIT, "STOPPING=1");
    let status = child.wait_exit(WAIT);
    assert!(status.success(), "{status:?} {:?}", child.stderr.all());
    assert_eq!(line(&child, "serve_forever returned "), "Ok(())");

    // The child closed only its descriptor: the socket systemd (here: the test) holds still
    // listens, and a connect queues in its backlog for the next process.
    let mut queued = support::connect(local_addr(&web));
    queued
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let second = spawn("serve", &[&web], &["web"], &notify.address);
    notify.wait_for(WAIT, "READY=1");
    let pid2 = line(&second, "pid ");
    let mut reply = vec![0u8; 512];
    let n = queued.read(&mut reply).unwrap();
    let reply = String::from_utf8_lossy(&reply[..n]).into_owned();
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply:?}");
    assert!(reply.ends_with(&format!("pid={pid2}")), "{reply:?}");
}

#[test]
fn readiness_on_an_abstract_notify_socket() {
    let web = listening_socket("127.0.0.1:0".parse().unwrap());
    let notify = NotifySocket::abstract_name();
    assert!(notify.address.starts_with('@'));
    let mut child = spawn("serve", &[&web], &[], &notify.address);
    notify.wait_for(WAIT, "READY=1");
    // No LISTEN_FDNAMES entry: systemd's default name.
    assert_eq!(line(&child, "names "), "unknown");
    assert_eq!(get(local_addr(&web)).status, 200);
    child.signal(libc::SIGTERM);
    notify.wait_for(WAIT, "STOPPING=1");
    assert!(child.wait_exit(WAIT).success());
}

#[test]
fn listen_pid_of_another_process_is_not_ours() {
    let exe = std::env::current_exe().unwrap();
    let mut command = Command::new(&exe);
    command
        .args(child_args())
        .env(SCENARIO, "inspect")
        .env("LISTEN_PID", "1")
        .env("LISTEN_FDS", "1")
        .env_remove("NOTIFY_SOCKET");
    let child = Running::spawn("inspect", &mut command).unwrap();
    assert_eq!(line(&child, "names "), "");
    // Cleared all the same, as sd_listen_fds(1) does.
    assert_eq!(line(&child, "vars left "), "[]");
}

#[test]
fn bad_listen_fds_is_an_error_not_a_panic_later() {
    let exe = std::env::current_exe().unwrap();
    let mut command = activated(&exe, &child_args(), &[], &[]);
    command
        .env(SCENARIO, "inspect")
        .env("LISTEN_FDS", "three")
        .env_remove("NOTIFY_SOCKET");
    let finished = Running::spawn("bad", &mut command).unwrap().finish(WAIT);
    assert!(!finished.status.success());
    assert!(
        finished
            .stdout
            .contains("LISTEN_FDS is not a descriptor count")
            || finished
                .stderr
                .contains("LISTEN_FDS is not a descriptor count"),
        "{finished:?}"
    );
}

#[test]
fn from_fd_takes_any_inherited_socket_and_refuses_other_descriptors() {
    // Any supervisor's socket: an OwnedFd, however it was obtained.
    let socket = listening_socket("127.0.0.1:0".parse().unwrap());
    let addr = local_addr(&socket);
    let fd: std::os::fd::OwnedFd = socket.into();
    let listener = Listener::from_fd(fd).unwrap();
    assert!(listener.is_inherited());
    assert_eq!(listener.name(), None);
    let server = WsgiServer::builder(listener, deploy::pid_app)
        .access_log(None)
        .build()
        .unwrap();
    server.start().unwrap();
    assert_eq!(server.local_addr(), Some(addr));
    assert_eq!(get(addr).status, 200);
    server.stop(Duration::from_secs(1));

    // A bound stream socket that is not listening yet is put into listening mode.
    let bound = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    bound
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    let listener = Listener::from_fd(std::os::fd::OwnedFd::from(bound)).unwrap();
    let server = WsgiServer::builder(listener, deploy::pid_app)
        .access_log(None)
        .build()
        .unwrap();
    server.start().unwrap();
    assert_eq!(get(server.local_addr().unwrap()).status, 200);
    server.stop(Duration::from_secs(1));

    // Not a socket: an error that says so.
    let file = std::fs::File::open("/dev/null").unwrap();
    let err = Listener::from_fd(file).unwrap_err();
    assert!(err.to_string().contains("listener socket"), "{err}");
}

#[test]
fn closing_a_server_on_an_inherited_socket_leaves_the_socket_to_its_other_holders() {
    // Stream: the accept is woken without shutdown(2); the other copy still accepts.
    let socket = listening_socket("127.0.0.1:0".parse().unwrap());
    let addr = local_addr(&socket);
    let other = socket.try_clone().unwrap();
    let server = WsgiServer::builder(
        Listener::from_fd(std::os::fd::OwnedFd::from(socket)).unwrap(),
        deploy::pid_app,
    )
    .access_log(None)
    .build()
    .unwrap();
    server.start().unwrap();
    assert_eq!(get(addr).status, 200);
    support::within("stop on an inherited socket", WAIT, move || {
        server.stop(Duration::from_secs(1));
        server
    });
    let _client = support::connect(addr);
    other.set_nonblocking(false).unwrap();
    other.set_read_timeout(Some(WAIT)).unwrap();
    let (_conn, peer) = other.accept().expect("the other holder still accepts");
    assert!(peer.as_socket().is_some());

    // Datagram: the same for a bound UDP socket.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_addr = udp.local_addr().unwrap();
    let udp_other = udp.try_clone().unwrap();
    let server = may_gevent::DatagramServer::new(
        std::os::fd::OwnedFd::from(udp),
        |data: Vec<u8>, from: SocketAddr, sock: &may_gevent::DatagramSocket| {
            sock.sendto(&data, from).map(|_| ())
        },
    )
    .unwrap();
    server.start().unwrap();
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(WAIT)).unwrap();
    client.send_to(b"ping", udp_addr).unwrap();
    let mut buf = [0u8; 16];
    let (n, _) = client.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"ping");
    support::within("stop on an inherited UDP socket", WAIT, move || {
        server.stop(Duration::from_secs(1));
        server
    });
    client.send_to(b"after", udp_addr).unwrap();
    udp_other.set_nonblocking(false).unwrap();
    udp_other.set_read_timeout(Some(WAIT)).unwrap();
    let (n, _) = udp_other
        .recv_from(&mut buf)
        .expect("the other holder still receives");
    assert_eq!(&buf[..n], b"after");
}
