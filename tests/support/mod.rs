//! Test helpers: recorded server answers, hand-made answers, a fixed clock.
#![allow(dead_code)]

use std::time::{Duration, SystemTime};

pub mod door;
pub mod faulty_store;
pub mod one_process;

/// A fixed moment: 2026-11-27, the day the fixtures were recorded.
pub fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_800_000)
}

pub fn at(secs_after_t0: u64) -> SystemTime {
    t0() + Duration::from_secs(secs_after_t0)
}

/// A raw HTTP/1.1 answer recorded from a real PeerTube 6.3 server (`tests/fixtures/peertube-6.3`).
pub fn fixture(name: &str) -> http::Response<Vec<u8>> {
    recorded("peertube-6.3", name)
}

/// A raw HTTP/1.1 answer recorded from a real PeerTube 8.0.1 server (`tests/fixtures/peertube-8.0`).
pub fn fixture8(name: &str) -> http::Response<Vec<u8>> {
    recorded("peertube-8.0", name)
}

fn recorded(server: &str, name: &str) -> http::Response<Vec<u8>> {
    let path = format!(
        "{}/tests/fixtures/{server}/{name}.http",
        env!("CARGO_MANIFEST_DIR")
    );
    let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    parse_raw(&raw)
}

fn parse_raw(raw: &[u8]) -> http::Response<Vec<u8>> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("head and body are separated by an empty line");
    let head = std::str::from_utf8(&raw[..split]).expect("the head is text");
    let body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("a status line");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    let mut builder = http::Response::builder().status(status);
    for line in lines {
        let (name, value) = line.split_once(':').expect("a header line");
        builder = builder.header(name.trim(), value.trim());
    }
    builder.body(body).expect("a valid response")
}

/// A response with the given status, headers and body.
pub fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> http::Response<Vec<u8>> {
    let mut builder = http::Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder
        .body(body.as_bytes().to_vec())
        .expect("a valid response")
}

pub fn json(status: u16, body: &str) -> http::Response<Vec<u8>> {
    answer(
        status,
        &[("content-type", "application/json; charset=utf-8")],
        body,
    )
}

pub fn problem(status: u16, body: &str) -> http::Response<Vec<u8>> {
    answer(
        status,
        &[("content-type", "application/problem+json; charset=utf-8")],
        body,
    )
}

/// A token answer as PeerTube sends it.
pub fn tokens(access: &str, refresh: &str) -> http::Response<Vec<u8>> {
    json(
        200,
        &format!(
            r#"{{"token_type":"Bearer","access_token":"{access}","refresh_token":"{refresh}","expires_in":86399,"refresh_token_expires_in":1209599}}"#
        ),
    )
}

/// The form fields of a request body, decoded.
pub fn form_fields(body: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes(body).expect("a form-urlencoded body")
}

/// Runs every scenario with both drivers: the test file defines `blocking` and `asynchronous`,
/// each making a client of one driver kind, and each scenario takes one of them.
#[macro_export]
macro_rules! with_both_drivers {
    ($($scenario:ident),* $(,)?) => {
        mod with_ureq {
            $(#[test] fn $scenario() { super::$scenario(super::blocking); })*
        }
        mod with_hyper {
            $(#[test] fn $scenario() { super::$scenario(super::asynchronous); })*
        }
        #[cfg(feature = "reqwest")]
        mod with_reqwest {
            $(#[test] fn $scenario() { super::$scenario(super::over_reqwest); })*
        }
    };
}

/// A new, empty directory under the system's temporary one, unique to this process and
/// moment. Whoever makes it removes it.
pub fn scratch_dir(name: &str) -> std::path::PathBuf {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "peertube-session-{name}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The fake PeerTube served on a loopback port, for the driver suites.
#[cfg(feature = "fake")]
pub struct Served {
    pub fake: peertube_session::fake::FakePeerTube,
    pub server: peertube_session::fake::LoopbackServer,
}

#[cfg(feature = "fake")]
impl Served {
    pub fn new(fake: peertube_session::fake::FakePeerTube) -> Self {
        let server = fake.serve().expect("serve the fake on loopback");
        Served { fake, server }
    }

    /// The instance it plays.
    pub fn instance(&self) -> peertube_session::Instance {
        peertube_session::Instance::new(&self.server.base_url()).unwrap()
    }
}

/// Keeps the fake's clock on the real one (moved every 20 ms) until dropped: for tests where
/// processes on real clocks meet expiries and windows in real time.
#[cfg(feature = "fake")]
pub struct RealTime {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[cfg(feature = "fake")]
impl RealTime {
    pub fn follow(fake: &peertube_session::fake::FakePeerTube) -> RealTime {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (fake, stopped) = (fake.clone(), stop.clone());
        fake.set_now(SystemTime::now());
        let thread = std::thread::spawn(move || {
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                fake.set_now(SystemTime::now());
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        RealTime {
            stop,
            thread: Some(thread),
        }
    }
}

#[cfg(feature = "fake")]
impl Drop for RealTime {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A server on 127.0.0.1 that answers each of at most 16 connections `200` with the body
/// `answer` makes of the request's head (lower-cased), then closes it. Returns its URL and the
/// heads it got.
pub fn answering_server(
    answer: impl Fn(&str) -> String + Send + 'static,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = heads.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(16) {
            let Ok(mut stream) = stream else { return };
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
                match stream.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            let head = String::from_utf8_lossy(&head).to_lowercase();
            let body = answer(&head);
            seen.lock().unwrap().push(head);
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    (format!("http://{address}"), heads)
}
