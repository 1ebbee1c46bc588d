//! The socket of a [`DatagramServer`](crate::DatagramServer): receiving for the server's loop
//! (with the kernel's count of datagrams it had to drop), sending for the handlers.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use slog::{warn, Logger};

use crate::error::{Error, Result};

/// Largest datagram received whole by default: the largest UDP payload over IPv4.
/// gevent reads only 8192 bytes and silently truncates longer datagrams; we do not.
pub const DATAGRAM_SIZE: usize = 65_535;

/// Default receive buffer asked of the kernel for a socket the server binds (`SO_RCVBUF`),
/// in bytes: 1 MiB. Linux doubles the value for its bookkeeping and caps it at
/// `net.core.rmem_max` (often 208 KiB, giving 416 KiB). The kernel default (208 KiB) holds
/// only about 25 datagrams of 7 KiB: a burst from many clients overflows it while handlers
/// run, and the kernel drops what does not fit.
pub const RECV_BUFFER_SIZE: usize = 1 << 20;

/// How many datagrams the loop receives in a row before it asks the kernel for its drop
/// count even though more are waiting (it also asks each time the socket runs empty).
const DROP_CHECK_EVERY: u32 = 64;

/// At most one WARN record per this interval about datagrams the kernel dropped.
const DROP_WARN_INTERVAL: Duration = Duration::from_secs(1);

/// The server's socket as handlers see it: `sendto` from any number of handlers at once.
/// gevent: `DatagramServer.sendto` (gevent serialises senders with a semaphore; here a send
/// that does not have to wait takes no lock at all).
#[derive(Clone)]
pub struct DatagramSocket {
    inner: Arc<Inner>,
}

struct Inner {
    /// A separate handle for sending, so a send never contends with the blocked receive.
    send: may::net::UdpSocket,
    /// Taken only by a send that must wait for buffer space: may lets one coroutine at a
    /// time wait on a socket.
    waiting_send: may::sync::Mutex<()>,
    local: Option<SocketAddr>,
    fd: RawFd,
    stats: Arc<DatagramStats>,
    logger: Logger,
    server: &'static str,
    /// The kernel's own (wrapping) drop counter when last read.
    kernel_drops: AtomicU32,
    since_check: AtomicU32,
}

/// What a datagram server counts, over every socket it has had.
#[derive(Debug, Default)]
pub(crate) struct DatagramStats {
    /// Datagrams the kernel dropped because the receive buffer was full.
    dropped: AtomicU64,
    /// Datagrams longer than `max_datagram_size`, delivered truncated.
    truncated: AtomicU64,
    /// The drops already logged, and when.
    reported: Mutex<(u64, Option<Instant>)>,
}

impl DatagramStats {
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub(crate) fn truncated(&self) -> u64 {
        self.truncated.load(Ordering::Relaxed)
    }

    /// Log the drops not logged yet, at most one record per [`DROP_WARN_INTERVAL`].
    fn report_drops(&self, logger: &Logger, server: &'static str) {
        let total = self.dropped();
        let mut reported = self.reported.lock().unwrap_or_else(|p| p.into_inner());
        let (logged, last) = *reported;
        if total == logged || last.is_some_and(|t| t.elapsed() < DROP_WARN_INTERVAL) {
            return;
        }
        warn!(logger, "receive buffer full: the kernel dropped datagrams";
            "server" => server, "dropped" => total - logged, "dropped_total" => total,
            "hint" => "raise recv_buffer_size (and net.core.rmem_max), or handle datagrams faster");
        *reported = (total, Some(Instant::now()));
    }
}

impl fmt::Debug for DatagramSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatagramSocket")
            .field("local", &self.inner.local)
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl DatagramSocket {
    pub(crate) fn new(
        sock: &may::net::UdpSocket,
        stats: Arc<DatagramStats>,
        logger: Logger,
        server: &'static str,
    ) -> Result<DatagramSocket> {
        let send = sock
            .try_clone()
            .map_err(|err| Error::io("cloning the datagram socket", err))?;
        let fd = sock.as_raw_fd();
        Ok(DatagramSocket {
            inner: Arc::new(Inner {
                send,
                waiting_send: may::sync::Mutex::new(()),
                local: sock.local_addr().ok(),
                fd,
                stats,
                logger,
                server,
                // Drops before the server got the socket are not ours to report.
                kernel_drops: AtomicU32::new(kernel_drop_count(fd).unwrap_or(0)),
                since_check: AtomicU32::new(0),
            }),
        })
    }

    /// Send `data` to `addr`; returns the number of bytes sent. gevent: `sendto`.
    ///
    /// # Errors
    /// The operating system refused the datagram (too large, unreachable, ...), or `addr`
    /// resolved to no address.
    pub fn sendto(&self, data: &[u8], addr: impl ToSocketAddrs) -> io::Result<usize> {
        let addr = addr.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "no address to send the datagram to",
            )
        })?;
        // The socket is non-blocking: this either sends at once or says it would block.
        match self.inner.send.inner().send_to(data, addr) {
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                let _waiting = self
                    .inner
                    .waiting_send
                    .lock()
                    .map_err(|_| io::Error::other("datagram socket lock poisoned"))?;
                self.inner.send.send_to(data, addr)
            }
            sent => sent,
        }
    }

    /// The server's local address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.inner.local
    }

    /// How many datagrams the kernel dropped because the socket's receive buffer was full
    /// (the receiver was saturated), since the server got the socket. Linux only (elsewhere
    /// always 0). Each increase is also logged at WARN level.
    pub fn dropped(&self) -> u64 {
        self.inner.stats.dropped()
    }

    /// How many datagrams were longer than the server's `max_datagram_size` and were handed
    /// to the handler truncated. Each one is also logged at WARN level.
    pub fn truncated(&self) -> u64 {
        self.inner.stats.truncated()
    }

    /// Receive one datagram on `sock` (the server's receiving handle) into `buf`, which must
    /// be one byte longer than the largest datagram to deliver whole. Returns the length (at
    /// most `buf.len() - 1`), the sender and whether the datagram was longer. When the socket
    /// runs empty (and every few datagrams), reads the kernel's drop counter into the
    /// server's count.
    pub(crate) fn receive(
        &self,
        sock: &may::net::UdpSocket,
        buf: &mut [u8],
    ) -> io::Result<(usize, SocketAddr, bool)> {
        // First without waiting: only when nothing is queued does the coroutine park.
        let (n, addr) = match sock.inner().recv_from(buf) {
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                self.check_drops();
                sock.recv_from(buf)?
            }
            got => {
                if self.inner.since_check.fetch_add(1, Ordering::Relaxed) + 1 >= DROP_CHECK_EVERY {
                    self.check_drops();
                }
                got?
            }
        };
        let max = buf.len().saturating_sub(1);
        if n > max {
            self.inner.stats.truncated.fetch_add(1, Ordering::Relaxed);
            return Ok((max, addr, true));
        }
        Ok((n, addr, false))
    }

    /// Read the kernel's drop counter, add what is new to the server's count and log it.
    fn check_drops(&self) {
        self.inner.since_check.store(0, Ordering::Relaxed);
        let Some(now) = kernel_drop_count(self.inner.fd) else {
            return;
        };
        let before = self.inner.kernel_drops.swap(now, Ordering::Relaxed);
        let new = u64::from(now.wrapping_sub(before));
        if new > 0 {
            self.inner.stats.dropped.fetch_add(new, Ordering::Relaxed);
        }
        self.inner
            .stats
            .report_drops(&self.inner.logger, self.inner.server);
    }
}

/// The kernel's count of datagrams dropped on this socket (`SO_MEMINFO`, `SK_MEMINFO_DROPS`;
/// the "drops" column of `/proc/net/udp`). `None` where it cannot be read.
#[cfg(target_os = "linux")]
fn kernel_drop_count(fd: RawFd) -> Option<u32> {
    /// `SO_MEMINFO` from `<asm-generic/socket.h>` (Linux 3.x and later; not in the libc crate).
    const SO_MEMINFO: libc::c_int = 55;
    let mut info = [0u32; 16];
    let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
    #[allow(unsafe_code)]
    // SAFETY: getsockopt writes at most `len` bytes into `info`, which is that large, and
    // updates `len`; `fd` is a socket the caller keeps open.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            SO_MEMINFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    let index = libc::SK_MEMINFO_DROPS as usize;
    let available = len as usize / std::mem::size_of::<u32>();
    (rc == 0 && index < available).then(|| info[index])
}

#[cfg(not(target_os = "linux"))]
fn kernel_drop_count(_fd: RawFd) -> Option<u32> {
    None
}
