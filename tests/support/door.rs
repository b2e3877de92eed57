//! A door that requests wait at until the test opens it, in front of the fake in process: the
//! tests decide when an answer arrives. Every wait is bounded.
#![cfg(feature = "fake")]
#![allow(dead_code)]

use peertube_session::fake::FakePeerTube;
use peertube_session::{Body, TransportError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long any wait of these tests may last.
pub const BOUND: Duration = Duration::from_secs(10);

/// Polls `done` until it holds, for at most [`BOUND`].
pub fn eventually(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < BOUND, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A door requests wait at until the test opens it.
#[derive(Default)]
pub struct Door {
    open: Mutex<bool>,
    opened: Condvar,
    arrived: AtomicUsize,
}

impl Door {
    pub fn pass(&self) {
        self.arrived.fetch_add(1, Ordering::SeqCst);
        let open = self.open.lock().unwrap();
        let (open, timeout) = self
            .opened
            .wait_timeout_while(open, BOUND, |open| !*open)
            .unwrap();
        assert!(*open && !timeout.timed_out(), "the door never opened");
    }

    pub fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }

    pub fn arrived(&self) -> usize {
        self.arrived.load(Ordering::SeqCst)
    }
}

/// The fake in process, with the requests `held` picks waiting at `door` first.
pub fn held_at(
    door: &Arc<Door>,
    held: fn(&http::Request<Body>) -> bool,
    fake: &FakePeerTube,
) -> impl Fn(http::Request<Body>) -> Result<http::Response<Vec<u8>>, TransportError>
+ Send
+ Sync
+ 'static {
    let (door, server) = (door.clone(), fake.clone());
    move |request| {
        if held(&request) {
            door.pass();
        }
        Ok(server.handle(&request))
    }
}

pub fn is_refresh(request: &http::Request<Body>) -> bool {
    request.uri().path() == "/api/v1/users/token"
        && String::from_utf8_lossy(request.body().as_bytes()).contains("grant_type=refresh_token")
}

pub fn is_login(request: &http::Request<Body>) -> bool {
    request.uri().path() == "/api/v1/users/token"
        && String::from_utf8_lossy(request.body().as_bytes()).contains("grant_type=password")
}
