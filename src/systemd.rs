//! systemd's socket activation and readiness protocols, without libsystemd: listening
//! sockets passed in `LISTEN_FDS` (`sd_listen_fds(3)`), and `READY=1` / `STOPPING=1` sent to
//! `NOTIFY_SOCKET` (`sd_notify(3)`).
//!
//! ```no_run
//! use may_gevent::pywsgi::{AppResult, Environ, StartResponse, WsgiServer};
//! use may_gevent::{IntoListener, Listener};
//! # fn app(_: &mut Environ, _: &mut StartResponse<'_>) -> AppResult { Ok(().into()) }
//! // Under a socket unit the socket comes from systemd; run by hand, bind the address.
//! let listener = match Listener::from_systemd()?.pop() {
//!     Some(listener) => listener,
//!     None => "127.0.0.1:8080".into_listener()?,
//! };
//! let server = WsgiServer::new(listener, app)?;
//! server.serve_forever()?; // READY=1 once accepting, STOPPING=1 on SIGTERM (Type=notify)
//! # Ok::<(), may_gevent::Error>(())
//! ```
//!
//! **Readiness is automatic**, as systemd's convention is: when `NOTIFY_SOCKET` is set,
//! `serve_forever` sends `READY=1` once the server accepts connections and `STOPPING=1` when
//! it begins to stop (a signal, `close()`, `stop()` from elsewhere). A program that does not
//! use `serve_forever`, or runs several servers and wants to announce readiness once all of
//! them have started, calls [`set_auto_notify(false)`](set_auto_notify) and then
//! [`notify_ready`] / [`notify_stopping`] itself. Without `NOTIFY_SOCKET` nothing is sent.
//!
//! The listening sockets are shared with systemd (it keeps its own copy, so that
//! connections wait in the backlog while the service restarts). The server never
//! `shutdown(2)`s an inherited socket when it closes; it only closes its own descriptor.
//! See `docs/deploy.md` in the repository for the units and for restarts that lose no
//! connection.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};
use crate::socket::Listener;

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`): the sockets are 3, 4, ...
pub const LISTEN_FDS_START: RawFd = 3;

/// The environment variables of socket activation, cleared once read (as
/// `sd_listen_fds(1)` does), so that programs this process runs do not take them as theirs.
const ACTIVATION_VARS: [&str; 3] = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"];

static AUTO_NOTIFY: AtomicBool = AtomicBool::new(true);

impl Listener {
    /// The listening sockets systemd (or any program speaking its protocol, e.g.
    /// `systemd-socket-activate`) passed to this process, in order, each with its name
    /// ([`Listener::name`]) from `LISTEN_FDNAMES` (systemd's default name is the socket
    /// unit's, or `FileDescriptorName=`). Empty when this process was not socket-activated:
    /// `LISTEN_PID` unset or naming another process (the variables were inherited by
    /// mistake). Same as [`listeners_from_env`].
    ///
    /// Follows `sd_listen_fds(1)`: the descriptors start at 3 ([`LISTEN_FDS_START`]), are
    /// taken only when `LISTEN_PID` is this process's pid, get `FD_CLOEXEC`, and
    /// `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES` are removed from the environment (so a
    /// second call returns nothing, and child processes do not see them). Call it early,
    /// before other threads read the environment.
    ///
    /// Each listener is marked inherited ([`Listener::is_inherited`]): closing the server
    /// never shuts down the socket that systemd, or another copy of the program, still holds.
    ///
    /// # Errors
    /// `LISTEN_FDS` or `LISTEN_PID` is not a number, or a passed descriptor is not open or is
    /// not a stream or datagram socket.
    pub fn from_systemd() -> Result<Vec<Listener>> {
        listeners_from_env()
    }
}

/// The listening sockets passed by systemd's socket activation; see
/// [`Listener::from_systemd`].
///
/// # Errors
/// As [`Listener::from_systemd`].
pub fn listeners_from_env() -> Result<Vec<Listener>> {
    let vars: Vec<Option<String>> = ACTIVATION_VARS
        .iter()
        .map(|name| std::env::var(name).ok())
        .collect();
    for name in ACTIVATION_VARS {
        std::env::remove_var(name);
    }
    let (Some(pid), Some(fds)) = (&vars[0], &vars[1]) else {
        return Ok(Vec::new());
    };
    let pid: u32 = pid
        .trim()
        .parse()
        .map_err(|_| Error::InvalidConfig(format!("LISTEN_PID is not a process id: {pid:?}")))?;
    if pid != std::process::id() {
        return Ok(Vec::new());
    }
    let count: RawFd = fds
        .trim()
        .parse()
        .ok()
        .filter(|n| (0..=4096).contains(n))
        .ok_or_else(|| {
            Error::InvalidConfig(format!("LISTEN_FDS is not a descriptor count: {fds:?}"))
        })?;
    let names: Vec<&str> = vars[2]
        .as_deref()
        .map(|names| names.split(':').collect())
        .unwrap_or_default();
    let mut listeners = Vec::with_capacity(count as usize);
    for i in 0..count {
        let fd = LISTEN_FDS_START + i;
        let owned = take_fd(fd).map_err(|err| {
            Error::io(format!("taking descriptor {fd} passed in LISTEN_FDS"), err)
        })?;
        let mut listener = Listener::from_fd(owned)?;
        listener.name = Some(
            names
                .get(i as usize)
                .filter(|name| !name.is_empty())
                .unwrap_or(&"unknown")
                .to_string(),
        );
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Ownership of descriptor `fd`, passed to this process by socket activation.
fn take_fd(fd: RawFd) -> io::Result<OwnedFd> {
    #[allow(unsafe_code)]
    // SAFETY: fcntl(2) F_GETFD only checks that `fd` is open; no memory is passed.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(unsafe_code)]
    // SAFETY: `fd` is open, and the activation protocol hands it to this process (LISTEN_PID
    // is our pid); the variables were removed from the environment before this runs, so this
    // is the only owner the descriptor gets through them.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A command that runs `program` the way systemd runs a socket-activated service, for
/// handing listening sockets to another process without systemd (a binary upgrade, a
/// supervisor of your own): the descriptors in `listeners` (with their names) become 3, 4, ...
/// in the new process, `LISTEN_FDS` and `LISTEN_FDNAMES` describe them, and `LISTEN_PID` is
/// the new process's pid, so its [`Listener::from_systemd`] takes them.
///
/// `LISTEN_PID` can only be known after the fork, so the command is `/bin/sh -c
/// 'LISTEN_PID=$$ exec "$0" "$@"' program`: the shell sets it to its own pid and `exec`s
/// `program`, which keeps that pid. Add arguments (`.arg`/`.args`: they go to `program`) and
/// environment as usual, then spawn it. The descriptors must stay open until `spawn()`
/// returns (a server's listener: [`fileno`](crate::StreamServer::fileno) while it is not
/// closed); one that is closed by then makes `spawn()` fail with `EBADF`. They are duplicated
/// in the child only, the caller's stay as they are.
///
/// ```no_run
/// use std::os::unix::net::UnixDatagram;
/// use may_gevent::pywsgi::{AppResult, Environ, StartResponse, WsgiServer};
/// # fn app(_: &mut Environ, _: &mut StartResponse<'_>) -> AppResult { Ok(().into()) }
/// # let server = WsgiServer::new("127.0.0.1:8080", app)?;
/// // In the old process, on the upgrade signal: start the new binary on our socket,
/// let notify = UnixDatagram::bind("/run/myapp/upgrade.sock")?;
/// let fd = server.fileno().expect("listening");
/// let mut new = may_gevent::systemd::handover_command("/usr/local/bin/myapp", &[(fd, "web")]);
/// new.env("NOTIFY_SOCKET", "/run/myapp/upgrade.sock").spawn()?;
/// // wait until it accepts (its serve_forever sends READY=1), then drain and exit.
/// notify.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
/// let mut buf = [0u8; 256];
/// let n = notify.recv(&mut buf)?;
/// assert!(buf[..n].starts_with(b"READY=1"));
/// server.stop(None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn handover_command(program: impl AsRef<OsStr>, listeners: &[(RawFd, &str)]) -> Command {
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg("LISTEN_PID=$$ exec \"$0\" \"$@\"")
        .arg(program)
        .env("LISTEN_FDS", listeners.len().to_string())
        .env_remove("LISTEN_PID");
    let names: Vec<&str> = listeners.iter().map(|(_, name)| *name).collect();
    command.env("LISTEN_FDNAMES", names.join(":"));
    let fds: Vec<RawFd> = listeners.iter().map(|(fd, _)| *fd).collect();
    let mut moved: Vec<RawFd> = vec![-1; fds.len()];
    #[allow(unsafe_code)]
    // SAFETY: the closure runs in the forked child before exec and only calls fcntl(2),
    // dup2(2) and close(2), which are async-signal-safe; it allocates nothing (`fds` and
    // `moved` were allocated before the fork and are only indexed). It touches no descriptor
    // of the parent: after the fork they are the child's own copies.
    unsafe {
        command.pre_exec(move || {
            // First above every target, then into 3, 4, ...: a source that is itself one of
            // the targets is never overwritten before it has been copied.
            let above = LISTEN_FDS_START + moved.len() as RawFd;
            for (i, fd) in fds.iter().enumerate() {
                moved[i] = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, above);
                if moved[i] < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            for (i, fd) in moved.iter().enumerate() {
                // dup2 leaves FD_CLOEXEC off the copy: it survives the exec.
                if libc::dup2(*fd, LISTEN_FDS_START + i as RawFd) < 0 {
                    return Err(io::Error::last_os_error());
                }
                libc::close(*fd);
            }
            Ok(())
        });
    }
    command
}

/// Whether `serve_forever` sends `READY=1` and `STOPPING=1` by itself when `NOTIFY_SOCKET`
/// is set (the default: on). Turn it off to send them yourself with [`notify_ready`] and
/// [`notify_stopping`], e.g. once several servers have all started.
pub fn set_auto_notify(on: bool) {
    AUTO_NOTIFY.store(on, Ordering::SeqCst);
}

/// Sends `state` (newline-separated `KEY=VALUE` assignments, e.g. `"READY=1"`,
/// `"STATUS=draining"`, `"RELOADING=1"`, `"MAINPID=1234"`) to the service manager at
/// `NOTIFY_SOCKET`: a Unix datagram socket path, or an abstract name spelled with a leading
/// `@`. Returns `Ok(false)` when `NOTIFY_SOCKET` is not set (not run by systemd, or
/// `Type=` is not `notify`), `Ok(true)` once sent. The variable is kept, so later
/// notifications reach the manager too.
///
/// # Errors
/// The address is not one this function can reach (only Unix sockets are supported, not
/// `vsock:`), or the send failed.
pub fn notify(state: &str) -> io::Result<bool> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let path = path.into_encoded_bytes();
    let addr = notify_address(&path)?;
    let socket = UnixDatagram::unbound()?;
    let sent = socket.send_to_addr(state.as_bytes(), &addr)?;
    if sent != state.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "the notification was sent in part",
        ));
    }
    Ok(true)
}

fn notify_address(path: &[u8]) -> io::Result<UnixAddr> {
    match path.first() {
        Some(b'/') => {
            use std::os::unix::ffi::OsStrExt;
            UnixAddr::from_pathname(std::ffi::OsStr::from_bytes(path))
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        Some(b'@') => {
            #[cfg(target_os = "android")]
            use std::os::android::net::SocketAddrExt;
            #[cfg(target_os = "linux")]
            use std::os::linux::net::SocketAddrExt;
            UnixAddr::from_abstract_name(&path[1..])
        }
        _ => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "NOTIFY_SOCKET {:?} is neither a socket path nor an abstract name",
                String::from_utf8_lossy(path)
            ),
        )),
    }
}

/// Tells the service manager that the service is ready (`READY=1`, with `MAINPID` set to
/// this process, which makes a process started by the old main process of an upgrade the new
/// main process). `Ok(false)` without `NOTIFY_SOCKET`.
///
/// # Errors
/// As [`notify`].
pub fn notify_ready() -> io::Result<bool> {
    notify(&format!("READY=1\nMAINPID={}", std::process::id()))
}

/// Tells the service manager that the service is stopping (`STOPPING=1`). `Ok(false)`
/// without `NOTIFY_SOCKET`.
///
/// # Errors
/// As [`notify`].
pub fn notify_stopping() -> io::Result<bool> {
    notify("STOPPING=1")
}

/// `serve_forever`'s automatic notifications: sent when `NOTIFY_SOCKET` is set and
/// [`set_auto_notify`] did not turn them off; a failure is logged at WARN.
pub(crate) fn auto_notify(logger: &slog::Logger, ready: bool) {
    if !AUTO_NOTIFY.load(Ordering::SeqCst) || std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let result = if ready {
        notify_ready()
    } else {
        notify_stopping()
    };
    if let Err(err) = result {
        slog::warn!(logger, "cannot notify the service manager";
            "state" => if ready { "READY=1" } else { "STOPPING=1" }, "error" => %err);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_addresses() {
        assert!(notify_address(b"/run/systemd/notify").is_ok());
        let abs = notify_address(b"@abstract/name").unwrap();
        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt;
            assert_eq!(abs.as_abstract_name(), Some(&b"abstract/name"[..]));
        }
        let err = notify_address(b"vsock:2:1234").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
        assert!(notify_address(b"").is_err());
    }
}
