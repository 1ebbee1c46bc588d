//! Sending part of a file over a socket: `sendfile(2)` on plain sockets (the kernel copies from
//! the page cache, nothing passes through user space), a bounded copy elsewhere (TLS, which
//! must encrypt in user space, and systems other than Linux).

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use may::io::AsIoData;

use crate::wait::{wait_ready, Interest};

/// Largest piece read into memory by the copying path (TLS, or no `sendfile(2)`).
pub(crate) const COPY_CHUNK: usize = 64 * 1024;

/// Largest count passed to one `sendfile(2)` (Linux sends at most this much per call anyway).
#[cfg(any(target_os = "linux", target_os = "android"))]
const MAX_SENDFILE: usize = 0x7fff_f000;

/// A loop that never has to wait yields to the other coroutines after this many bytes (a
/// fast reader must not monopolise a worker thread; a yield is also where a cancel lands).
const YIELD_EVERY: usize = 4 << 20;

/// One non-blocking `sendfile(2)` of at most `count` bytes of `file` from `offset` to the
/// socket `sock` (may's sockets are non-blocking). `Ok(0)`: `offset` is at or past the end of
/// the file (or `count` is 0). `Err(WouldBlock)`: the send buffer is full.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn sendfile_once(
    sock: &impl AsRawFd,
    file: &File,
    offset: u64,
    count: usize,
) -> io::Result<usize> {
    let mut off = libc::off_t::try_from(offset).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "file offset too large for sendfile",
        )
    })?;
    let count = count.min(MAX_SENDFILE);
    loop {
        #[allow(unsafe_code)]
        // SAFETY: sendfile(2) reads `off` and writes the new offset back into it, a local we
        // own; both descriptors are open for the call's duration (borrowed from live objects).
        // It neither keeps the pointer nor touches any other memory of ours.
        let rc = unsafe { libc::sendfile(sock.as_raw_fd(), file.as_raw_fd(), &mut off, count) };
        if rc >= 0 {
            // (rc is at most `count`, a usize)
            return Ok(rc as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Send up to `count` bytes of `file` from `offset` on the plain socket `sock`: `sendfile(2)`
/// in a loop, waiting (coroutine-style, at most `write_timeout` each time) whenever the send
/// buffer is full. Returns the bytes sent: `count`, or fewer when the file ends first.
///
/// Without `sendfile(2)` (not Linux, or a file system that refuses it), a bounded copy.
pub(crate) fn send_plain<S: AsIoData + AsRawFd + Write>(
    sock: &mut S,
    write_timeout: Option<Duration>,
    file: &File,
    offset: u64,
    count: usize,
) -> io::Result<usize> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let mut sent = 0usize;
        let mut since_yield = 0usize;
        while sent < count {
            match sendfile_once(sock, file, offset + sent as u64, count - sent) {
                Ok(0) => break, // the file ended
                Ok(n) => {
                    sent += n;
                    since_yield += n;
                    if since_yield >= YIELD_EVERY {
                        since_yield = 0;
                        may::coroutine::yield_now();
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    since_yield = 0;
                    wait_ready(&*sock, Interest::Write, write_timeout)?;
                }
                // a file system that cannot sendfile(2): copy instead
                Err(err)
                    if sent == 0
                        && matches!(err.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) =>
                {
                    return copy_file(sock, file, offset, count);
                }
                Err(err) => return Err(err),
            }
        }
        Ok(sent)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = write_timeout;
        copy_file(sock, file, offset, count)
    }
}

/// Send up to `len` bytes from `offset` with `step(offset, count)` (which sends at most
/// `count` bytes at `offset` and returns how many, 0 at the end of the file) until `len` are
/// sent or the file ends: a `u64` length over `usize` steps. Returns the bytes sent.
pub(crate) fn send_len(
    offset: u64,
    len: u64,
    mut step: impl FnMut(u64, usize) -> io::Result<usize>,
) -> io::Result<u64> {
    let mut sent = 0u64;
    while sent < len {
        let want = usize::try_from(len - sent).unwrap_or(usize::MAX);
        let n = step(offset + sent, want)?;
        if n == 0 {
            break;
        }
        sent += n as u64;
    }
    Ok(sent)
}

/// Send up to `count` bytes of `file` from `offset` through `out` by reading at most
/// [`COPY_CHUNK`] bytes at a time and writing each with `write_all`. Returns the bytes sent:
/// `count`, or fewer when the file ends first.
pub(crate) fn copy_file<W: Write + ?Sized>(
    out: &mut W,
    file: &File,
    offset: u64,
    count: usize,
) -> io::Result<usize> {
    let mut buf = vec![0u8; count.min(COPY_CHUNK)];
    let mut sent = 0usize;
    let mut since_yield = 0usize;
    while sent < count {
        let n = copy_chunk(out, file, offset + sent as u64, count - sent, &mut buf)?;
        if n == 0 {
            break;
        }
        sent += n;
        since_yield += n;
        if since_yield >= YIELD_EVERY {
            since_yield = 0;
            may::coroutine::yield_now();
        }
    }
    Ok(sent)
}

/// One piece of [`copy_file`]: reads at most `buf.len()` (and `count`) bytes at `offset` and
/// writes them all. Returns how many (0: end of file).
pub(crate) fn copy_chunk<W: Write + ?Sized>(
    out: &mut W,
    file: &File,
    offset: u64,
    count: usize,
    buf: &mut [u8],
) -> io::Result<usize> {
    let want = count.min(buf.len());
    let n = loop {
        match file.read_at(&mut buf[..want], offset) {
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            other => break other?,
        }
    };
    out.write_all(&buf[..n])?;
    Ok(n)
}
