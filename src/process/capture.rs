//! Reading a child's output: each pipe is drained to its end by a thread (so the child never
//! blocks on a full pipe), its tail kept in memory and everything teed to a capped log.

use std::fs::File;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking reader thread leaves data that is still usable.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The last `cap` bytes of a stream.
pub(crate) struct Tail {
    buf: Vec<u8>,
    cap: usize,
}

impl Tail {
    pub(crate) fn new(cap: usize) -> Self {
        Tail {
            buf: Vec::new(),
            cap,
        }
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        // Trim in batches so a long stream costs linear time, not a shift per chunk.
        if self.buf.len() > self.cap.saturating_mul(2).max(self.cap + (1 << 20)) {
            let excess = self.buf.len() - self.cap;
            self.buf.drain(..excess);
        }
    }

    pub(crate) fn into_bytes(mut self) -> Vec<u8> {
        let from = self.buf.len().saturating_sub(self.cap);
        self.buf.drain(..from);
        self.buf
    }
}

/// A log file that takes at most `cap` bytes of output; past that the output is still read,
/// only not written.
pub(crate) struct Log {
    file: Option<File>,
    written: u64,
    cap: u64,
    truncated: bool,
}

impl Log {
    pub(crate) fn new(file: File, cap: u64) -> Self {
        Log {
            file: Some(file),
            written: 0,
            cap,
            truncated: false,
        }
    }

    fn raw(&mut self, bytes: &[u8]) {
        if let Some(f) = &mut self.file {
            if f.write_all(bytes).is_err() {
                // A full disk must not stop the run; stop logging instead.
                self.file = None;
            }
        }
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) {
        if self.truncated {
            return;
        }
        let room = self.cap.saturating_sub(self.written);
        if bytes.len() as u64 <= room {
            self.raw(bytes);
            self.written += bytes.len() as u64;
        } else {
            self.raw(&bytes[..room as usize]);
            self.written = self.cap;
            self.truncated = true;
            self.note(&format!(
                "log truncated at {} bytes; the output was still read to the end",
                self.cap
            ));
        }
    }

    pub(crate) fn note(&mut self, msg: &str) {
        self.raw(format!("\n[git-teleos] {msg}\n").as_bytes());
    }
}

/// One output pipe's reader.
pub(crate) struct Pipe {
    pub tail: Arc<Mutex<Tail>>,
    pub log: Option<Arc<Mutex<Log>>>,
    /// Milliseconds after `start` when output last arrived, for the stall timeout.
    pub last_output_ms: Arc<AtomicU64>,
    pub start: Instant,
    pub done: Sender<()>,
}

impl Pipe {
    pub(crate) fn drain(self, mut src: impl Read) {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    self.last_output_ms
                        .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
                    if let Some(log) = &self.log {
                        lock(log).write(&buf[..n]);
                    }
                    lock(&self.tail).push(&buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = self.done.send(());
    }
}

/// Wait for `count` reader threads to reach EOF, up to `limit`; false when some did not.
pub(crate) fn wait_readers(done: &Receiver<()>, mut count: usize, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    while count > 0 {
        let left = until.saturating_duration_since(Instant::now());
        if done.recv_timeout(left).is_err() {
            return false;
        }
        count -= 1;
    }
    true
}

/// The last `max` bytes of `s`, cut on a character boundary.
pub fn tail_str(s: &str, max: usize) -> &str {
    let mut from = s.len().saturating_sub(max);
    while !s.is_char_boundary(from) {
        from += 1;
    }
    &s[from..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_bytes() {
        let mut t = Tail::new(4);
        for chunk in [&b"abc"[..], b"defgh", &[b'x'; 3 << 20], b"wxyz"] {
            t.push(chunk);
        }
        assert_eq!(t.into_bytes(), b"wxyz");
        assert_eq!(tail_str("aé", 1), "");
        assert_eq!(tail_str("abc", 2), "bc");
    }
}
