//! PeerTube's rate limits count refreshes too (PROTOCOL.md §6b): a refresh refused with 429
//! while the access token still works costs the call nothing, and nothing is sent again before
//! `Retry-After`, in this process or (through the store) in another. A caller whose token has
//! really expired meanwhile gets `RateLimited` at once, with nothing sent. Then fleets of real
//! processes behind the fake's default login limit, and behind the API limit they keep
//! exceeding themselves.
#![cfg(all(feature = "ureq", feature = "fake", feature = "file-store"))]

mod support;

#[path = "support/fleet.rs"]
mod fleet;

use fleet::{Fleet, Job};
use peertube_session::blocking::{BlockingClient, Config, UreqTransport};
use peertube_session::fake::{FakePeerTube, FakeUser};
use peertube_session::store::{MemoryStore, SessionStore};
use peertube_session::{Body, Credentials, Error, Instance, TransportError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use support::RealTime;

const ENTRY: &str = "worker";

/// A worker process; nothing in the normal test run.
#[test]
fn worker() {
    fleet::work_if_worker();
}

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static PROCESSES_AT_ONCE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    PROCESSES_AT_ONCE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

type Answer = Result<http::Response<Vec<u8>>, TransportError>;
type Transport = Box<dyn Fn(http::Request<Body>) -> Answer + Send + Sync>;

fn in_process(fake: &FakePeerTube) -> Transport {
    let fake = fake.clone();
    Box::new(move |request| Ok(fake.handle(&request)))
}

fn client<S: SessionStore>(fake: &FakePeerTube, store: S) -> BlockingClient<Transport, S> {
    let clock = fake.clone();
    BlockingClient::new(
        in_process(fake),
        Instance::new("http://127.0.0.1:9").unwrap(),
    )
    .with_config(Config::builder().clock(move || clock.now()).build())
    .with_store(store)
}

fn me() -> http::Request<()> {
    http::Request::get("/api/v1/users/me").body(()).unwrap()
}

/// Token requests that fill the address's login window (wrong passwords, as a login storm on
/// the same machine would send).
fn storm(fake: &FakePeerTube, requests: u32) {
    let (id, secret) = fake.client_pair();
    for _ in 0..requests {
        let body = format!(
            "client_id={id}&client_secret={secret}&grant_type=password&username=alice&password=wrong"
        );
        let request = http::Request::post("http://127.0.0.1:9/api/v1/users/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.into_bytes())
            .unwrap();
        fake.handle(&request);
    }
}

const LIFETIME: u64 = 3600;

fn limited_fake(window: Duration) -> FakePeerTube {
    FakePeerTube::builder()
        .user(FakeUser::new("alice", "alice@example.org", "alice-pw"))
        .token_lifetimes(Duration::from_secs(LIFETIME), Duration::from_secs(7200))
        .login_rate_limit(4, window)
        .build()
}

#[test]
fn a_refresh_refused_with_429_costs_calls_nothing_and_nothing_is_sent_before_retry_after() {
    let fake = limited_fake(Duration::from_secs(2));
    let client = client(&fake, MemoryStore::new());
    client
        .login(&Credentials::password("alice", "alice-pw"))
        .unwrap();
    // 30 s before expiry: inside the refresh margin, the token still good; a login storm from
    // the same address has just filled the window.
    fake.advance(Duration::from_secs(LIFETIME - 30));
    storm(&fake, 4);
    for _ in 0..20 {
        assert_eq!(client.send_authorized(me()).unwrap().status(), 200);
    }
    let counters = fake.counters();
    assert_eq!(counters.rate_limited, 1, "one refresh tried: {counters:?}");
    assert_eq!(counters.token_requests, 6, "{counters:?}");
    // The token dies while the server still asks to wait: `RateLimited` at once, nothing sent.
    fake.advance(Duration::from_secs(1));
    fake.set_now(fake.now() + Duration::from_secs(30));
    let started = Instant::now();
    match client.send_authorized(me()) {
        Err(Error::RateLimited(limit)) => {
            let wait = limit.retry_after.unwrap();
            assert!(
                wait > Duration::ZERO && wait <= Duration::from_secs(2),
                "{wait:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_millis(100));
    assert_eq!(fake.counters().token_requests, 6);
    // Once the wait is over, the refresh is sent and the call goes on.
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(client.send_authorized(me()).unwrap().status(), 200);
    let counters = fake.counters();
    assert_eq!((counters.token_requests, counters.refreshes), (7, 1));
}

#[test]
fn a_429_seen_by_one_client_holds_back_every_client_of_the_store() {
    let fake = limited_fake(Duration::from_secs(300));
    let store = Arc::new(MemoryStore::new());
    let (first, second) = (client(&fake, store.clone()), client(&fake, store.clone()));
    first
        .login(&Credentials::password("alice", "alice-pw"))
        .unwrap();
    assert_eq!(second.send_authorized(me()).unwrap().status(), 200);
    fake.advance(Duration::from_secs(LIFETIME - 30));
    storm(&fake, 4);
    assert_eq!(first.send_authorized(me()).unwrap().status(), 200);
    assert_eq!(fake.counters().rate_limited, 1);
    let record = pollster::block_on(store.load(Instant::now() + Duration::from_secs(1))).unwrap();
    // In the server's time: its clock (which has not moved) and the 429's `Retry-After` (the
    // whole window, opened by the storm), a fraction of a second left rounded up, not down.
    let server_now = fake.now().duration_since(SystemTime::UNIX_EPOCH).unwrap();
    assert_eq!(
        record.refresh_not_before,
        Some(server_now.as_secs() + 300),
        "the wait is in the store"
    );
    // The other client reads the store and sends nothing either, for a call that goes on or
    // one whose token has died.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(second.send_authorized(me()).unwrap().status(), 200);
    fake.advance(Duration::from_secs(31));
    assert!(matches!(
        second.send_authorized(me()),
        Err(Error::RateLimited(_))
    ));
    assert_eq!(fake.counters().token_requests, 6);
}

/// 8 processes x 8 threads behind PeerTube's default login limit (15 per 5 minutes), the
/// access token living 16 s and refreshed in its last 8: a login storm from the same address
/// fills the window just before the refresh is due, so the fleet's refresh gets 429.
/// A longer wait learned later (here from the store, as another process's 429 would bring it)
/// extends the block; it never shortens to the wait first seen.
#[test]
fn a_longer_wait_learned_later_extends_the_block() {
    let fake = limited_fake(Duration::from_secs(2));
    let store = Arc::new(MemoryStore::new());
    let client = client(&fake, store.clone());
    client
        .login(&Credentials::password("alice", "alice-pw"))
        .unwrap();
    fake.advance(Duration::from_secs(LIFETIME - 30));
    storm(&fake, 4);
    // A 429 with a wait of 2 s at most.
    assert_eq!(client.send_authorized(me()).unwrap().status(), 200);
    assert_eq!(fake.counters().rate_limited, 1);
    // Another process met a 429 asking for 5 minutes, and said so in the store.
    let until = Instant::now() + Duration::from_secs(1);
    let version = pollster::block_on(store.version(until)).unwrap();
    let mut record = pollster::block_on(store.load(until)).unwrap();
    let server_now = fake.now().duration_since(SystemTime::UNIX_EPOCH).unwrap();
    record.refresh_not_before = Some(server_now.as_secs() + 300);
    pollster::block_on(store.save(version, record, None, until)).unwrap();
    // Read at the next periodic read; then the first wait runs out and the token dies.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(client.send_authorized(me()).unwrap().status(), 200);
    std::thread::sleep(Duration::from_millis(2100));
    fake.advance(Duration::from_secs(31));
    match client.send_authorized(me()) {
        Err(Error::RateLimited(limit)) => {
            let wait = limit.retry_after.unwrap();
            assert!(wait > Duration::from_secs(250), "{wait:?}");
        }
        other => panic!("the longer wait holds: {other:?}"),
    }
    let counters = fake.counters();
    assert_eq!(
        (counters.refreshes, counters.rate_limited),
        (0, 1),
        "{counters:?}"
    );
}

#[test]
fn a_fleet_behind_the_default_login_limit_keeps_every_call_through_a_refused_refresh() {
    let _alone = one_at_a_time();
    let fake = FakePeerTube::builder()
        .user(FakeUser::new("alice", "alice@example.org", "alice-pw"))
        .token_lifetimes(Duration::from_secs(16), Duration::from_secs(3600))
        .build();
    let _real_time = RealTime::follow(&fake);
    let server = fake.serve().unwrap();
    let dir = support::scratch_dir("limits");
    let place = dir.join("session.json").display().to_string();
    let mut job = Job::new(&server.base_url(), &place, &dir.join("stop"));
    job.margin_secs = Some(8);
    job.pace_ms = 5;
    let login = BlockingClient::new(
        UreqTransport::new(),
        Instance::new(&server.base_url()).unwrap(),
    )
    .with_store(peertube_session::store::FileStore::open(&place).unwrap());
    login
        .login(&Credentials::password("alice", "alice-pw"))
        .unwrap();
    let started = Instant::now();
    let fleet = Fleet::start(&job, 8, ENTRY);
    std::thread::sleep(Duration::from_secs(5));
    storm(&fake, 14);
    // The refresh is due 8 s after the login and refused; the token lives until 16 s.
    std::thread::sleep(Duration::from_secs(13).saturating_sub(started.elapsed()));
    let reports = fleet.stop();
    let total = fleet::total(&reports);
    let counters = fake.counters();
    assert_eq!(total.failed, 0, "{total:?} {counters:?}");
    assert!(total.calls > 1000, "{total:?}");
    assert_eq!(
        counters.rate_limited, 1,
        "one refresh tried, none again before Retry-After: {counters:?}"
    );
    assert_eq!(counters.token_requests, 1 + 14 + 1, "{counters:?}");
    assert_eq!(counters.refreshes, 0, "{counters:?}");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = SystemTime::now();
}

/// The API limit (50 requests per 10 s per address) on as well, and the fleet keeping the
/// address over it (8 processes calling 5 times a second each: 40 calls a second). Its calls
/// get PeerTube's 429s as answers; the refresh, due early (a 20 s margin on a 40 s token: room
/// for two windows), is refused until a window opens, then goes out first, while the fleet's
/// callers wait for it.
#[test]
fn a_fleet_over_the_api_limit_gets_its_refresh_in_when_a_window_opens() {
    let _alone = one_at_a_time();
    let fake = FakePeerTube::builder()
        .user(FakeUser::new("alice", "alice@example.org", "alice-pw"))
        .token_lifetimes(Duration::from_secs(40), Duration::from_secs(3600))
        .peertube_rate_limits()
        .build();
    let _real_time = RealTime::follow(&fake);
    let server = fake.serve().unwrap();
    let dir = support::scratch_dir("api-limit");
    let place = dir.join("session.json").display().to_string();
    let mut job = Job::new(&server.base_url(), &place, &dir.join("stop"));
    job.threads = 1;
    job.margin_secs = Some(20);
    job.pace_ms = 200;
    job.accept_429 = true;
    let login = BlockingClient::new(
        UreqTransport::new(),
        Instance::new(&server.base_url()).unwrap(),
    )
    .with_store(peertube_session::store::FileStore::open(&place).unwrap());
    login
        .login(&Credentials::password("alice", "alice-pw"))
        .unwrap();
    let fleet = Fleet::start(&job, 8, ENTRY);
    std::thread::sleep(Duration::from_secs(37));
    let reports = fleet.stop();
    let total = fleet::total(&reports);
    let counters = fake.counters();
    assert_eq!(total.failed, 0, "{total:?} {counters:?}");
    assert!(
        total.rate_limited > 0,
        "the fleet kept the address over the limit: {total:?}"
    );
    assert!(
        counters.refreshes >= 1,
        "the refresh landed before the token died: {counters:?}"
    );
    assert_eq!(counters.invalid_grants, 0, "{counters:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
