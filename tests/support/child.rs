//! Child processes for the tests, every wait bounded: output lines arrive through a reader
//! thread and a channel (read with `recv_timeout`), exits are awaited with a deadline (the
//! child is killed when it passes), and a child still running when its guard is dropped (the
//! test ended or panicked) is killed.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The lines a child writes to one pipe, collected by a reader thread.
pub struct Lines {
    state: Mutex<LinesState>,
}

struct LinesState {
    rx: Receiver<String>,
    seen: Vec<String>,
    closed: bool,
}

impl Lines {
    /// Start a thread that sends each line of `pipe` (without its line ending) until EOF.
    pub fn collect(pipe: impl Read + Send + 'static) -> Lines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(pipe);
            loop {
                let mut line = Vec::new();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => return, // dropping `tx` tells the reader: closed
                    Ok(_) => {
                        let text = String::from_utf8_lossy(&line);
                        let text = text.trim_end_matches(['\r', '\n']).to_owned();
                        if tx.send(text).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Lines {
            state: Mutex::new(LinesState {
                rx,
                seen: Vec::new(),
                closed: false,
            }),
        }
    }

    /// Every line received so far (without waiting).
    pub fn all(&self) -> Vec<String> {
        let mut state = self.state.lock().unwrap();
        while let Ok(line) = state.rx.try_recv() {
            state.seen.push(line);
        }
        state.seen.clone()
    }

    /// The first line (received so far or later) matching `pred`, waiting up to `within`;
    /// `None` if the pipe closed without one. Fails the test on the timeout.
    pub fn wait_for(&self, within: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + within;
        let mut state = self.state.lock().unwrap();
        if let Some(line) = state.seen.iter().find(|line| pred(line)) {
            return Some(line.clone());
        }
        loop {
            if state.closed {
                return None;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match state.rx.recv_timeout(left) {
                Ok(line) => {
                    let found = pred(&line);
                    state.seen.push(line.clone());
                    if found {
                        return Some(line);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => state.closed = true,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no matching line within {within:?}; got {:?}", state.seen)
                }
            }
        }
    }

    /// Waits (up to `within`) until the pipe is closed; fails the test on the timeout.
    pub fn wait_closed(&self, within: Duration) {
        let deadline = Instant::now() + within;
        let mut state = self.state.lock().unwrap();
        while !state.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            match state.rx.recv_timeout(left) {
                Ok(line) => state.seen.push(line),
                Err(RecvTimeoutError::Disconnected) => state.closed = true,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("pipe still open after {within:?}; got {:?}", state.seen)
                }
            }
        }
    }
}

/// A running child process with stdout and stderr collected; killed when dropped.
pub struct Running {
    pub name: String,
    child: Child,
    pub stdout: Lines,
    pub stderr: Lines,
}

/// What a finished child left: its status and its whole output.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Running {
    /// Spawn `command` with stdin closed and stdout and stderr piped to reader threads.
    pub fn spawn(name: &str, command: &mut Command) -> std::io::Result<Running> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdout = Lines::collect(child.stdout.take().expect("piped stdout"));
        let stderr = Lines::collect(child.stderr.take().expect("piped stderr"));
        Ok(Running {
            name: name.to_owned(),
            child,
            stdout,
            stderr,
        })
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Send `signal` to the child.
    pub fn signal(&self, signal: i32) {
        #[allow(unsafe_code)]
        // SAFETY: kill(2) on our own child process, which we have not reaped yet.
        let rc = unsafe { libc::kill(self.child.id() as i32, signal) };
        assert_eq!(rc, 0, "kill({signal}) failed");
    }

    /// The child's exit status if it has exited (not waiting), for diagnostics.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits up to `within` for the child to exit; on the timeout kills it and fails the test.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "{} still running after {within:?} (killed); stdout: {:?}; stderr: {:?}",
                    self.name,
                    self.stdout.all(),
                    self.stderr.all()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits up to `within` for the child to exit and close its pipes; returns its status and
    /// output. On the timeout it kills the child and fails the test.
    pub fn finish(mut self, within: Duration) -> Finished {
        let deadline = Instant::now() + within;
        let status = self.wait_exit(within);
        let left = deadline.saturating_duration_since(Instant::now());
        self.stdout.wait_closed(left.max(Duration::from_secs(1)));
        self.stderr.wait_closed(left.max(Duration::from_secs(1)));
        Finished {
            status,
            stdout: self.stdout.all().join("\n"),
            stderr: self.stderr.all().join("\n"),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Also on a test panic: no child outlives its test.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Run `command` to completion within `within` (killed and failing the test otherwise).
pub fn run(name: &str, command: &mut Command, within: Duration) -> Finished {
    Running::spawn(name, command)
        .unwrap_or_else(|err| panic!("cannot run {name}: {err}"))
        .finish(within)
}
