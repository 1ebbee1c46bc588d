//! SIGINT and SIGTERM while `serve_forever` runs: close the servers that asked for it, so
//! that each `serve_forever` stops its server gracefully and returns. The handlers that were
//! installed before are put back when the last such `serve_forever` returns.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// The signals a terminal (Ctrl-C) and a process manager (systemd, Kubernetes) send.
const SIGNALS: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

/// The write end of the self-pipe, for the signal handler; -1 when none is installed.
static PIPE: AtomicI32 = AtomicI32::new(-1);
static NEXT: AtomicU64 = AtomicU64::new(0);
static STATE: Mutex<Option<Installed>> = Mutex::new(None);

type OnSignal = Arc<dyn Fn(libc::c_int) + Send + Sync>;

struct Installed {
    previous: Vec<(libc::c_int, libc::sigaction)>,
    write: OwnedFd,
    waiter: Option<JoinHandle<()>>,
    servers: HashMap<u64, OnSignal>,
}

fn state() -> MutexGuard<'static, Option<Installed>> {
    STATE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Async-signal-safe: one `write(2)` of the signal number to the self-pipe.
extern "C" fn on_signal(signal: libc::c_int) {
    let fd = PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = signal as u8;
        #[allow(unsafe_code)]
        // SAFETY: write(2) from one valid byte; `fd` stays open while handlers are installed
        // (it is unpublished before it is closed).
        unsafe {
            libc::write(fd, (&byte as *const u8).cast(), 1);
        }
    }
}

/// While alive, SIGINT and SIGTERM call `on_signal` (from a helper thread, not from the
/// signal handler). Dropping it unregisters; the last one restores the previous handlers.
pub(crate) struct SignalGuard {
    id: u64,
}

impl SignalGuard {
    pub(crate) fn install(on_signal_cb: OnSignal) -> io::Result<SignalGuard> {
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let mut state = state();
        if state.is_none() {
            *state = Some(install_handlers()?);
        }
        if let Some(installed) = state.as_mut() {
            installed.servers.insert(id, on_signal_cb);
        }
        Ok(SignalGuard { id })
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        let mut state = state();
        let last = state.as_mut().is_some_and(|installed| {
            installed.servers.remove(&self.id);
            installed.servers.is_empty()
        });
        if !last {
            return;
        }
        if let Some(mut installed) = state.take() {
            drop(state);
            for (signal, previous) in &installed.previous {
                #[allow(unsafe_code)]
                // SAFETY: restores an action sigaction(2) gave us for this signal.
                unsafe {
                    libc::sigaction(*signal, previous, std::ptr::null_mut());
                }
            }
            PIPE.store(-1, Ordering::SeqCst);
            // Byte 0 ends the waiter thread; then the pipe closes.
            let zero = 0u8;
            #[allow(unsafe_code)]
            // SAFETY: write(2) of one byte to the pipe we own.
            unsafe {
                libc::write(installed.write.as_raw_fd(), (&zero as *const u8).cast(), 1);
            }
            if let Some(waiter) = installed.waiter.take() {
                let _ = waiter.join();
            }
        }
    }
}

fn install_handlers() -> io::Result<Installed> {
    let mut fds = [0 as RawFd; 2];
    #[allow(unsafe_code)]
    // SAFETY: pipe2(2) writes two descriptors into `fds`.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(unsafe_code)]
    // SAFETY: both descriptors were just created by pipe2 and are owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let waiter = std::thread::Builder::new()
        .name("may_gevent-signals".into())
        .spawn(move || wait_for_signals(read))?;
    PIPE.store(write.as_raw_fd(), Ordering::SeqCst);
    let mut previous = Vec::new();
    for signal in SIGNALS {
        #[allow(unsafe_code)]
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; we set the
        // handler to our async-signal-safe function and keep the old action to restore it.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, &action, &mut old) == 0 {
                previous.push((signal, old));
            }
        }
    }
    Ok(Installed {
        previous,
        write,
        waiter: Some(waiter),
        servers: HashMap::new(),
    })
}

/// The helper thread: each byte read is a signal (0: stop waiting).
fn wait_for_signals(read: OwnedFd) {
    let mut pipe = std::fs::File::from(read);
    let mut byte = [0u8; 1];
    loop {
        match io::Read::read(&mut pipe, &mut byte) {
            Ok(1) if byte[0] != 0 => {
                let servers: Vec<OnSignal> = state()
                    .as_ref()
                    .map(|installed| installed.servers.values().cloned().collect())
                    .unwrap_or_default();
                for server in servers {
                    server(libc::c_int::from(byte[0]));
                }
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            _ => return,
        }
    }
}
