//! Clocks that disagree: token deadlines are kept in the server's time (from the answers'
//! `Date`), and each client decides "due" on the server's clock, so a machine whose clock is a
//! day off neither refreshes for nothing nor saves deadlines that mislead the others.
#![cfg(all(feature = "ureq", feature = "fake", feature = "file-store"))]

mod support;

#[path = "support/fleet.rs"]
mod fleet;

use fleet::{Fleet, Job};
use peertube_session::blocking::{BlockingClient, Config, UreqTransport};
use peertube_session::fake::{FakePeerTube, FakeUser};
use peertube_session::store::{FileStore, Record, SessionStore};
use peertube_session::{Body, Credentials, Instance, TransportError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::RealTime;

const ENTRY: &str = "worker";
const DAY: i64 = 86_400;

/// A worker process; nothing in the normal test run.
#[test]
fn worker() {
    fleet::work_if_worker();
}

type Answer = Result<http::Response<Vec<u8>>, TransportError>;

fn secs(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[test]
fn a_client_a_day_off_refreshes_when_the_server_says_and_saves_the_servers_deadlines() {
    for skew in [DAY, -DAY] {
        let fake = FakePeerTube::builder()
            .user(FakeUser::new("alice", "alice@example.org", "alice-pw"))
            .token_lifetimes(Duration::from_secs(3600), Duration::from_secs(7200))
            .no_rate_limit()
            .build();
        let handler = fake.clone();
        let transport =
            move |request: http::Request<Body>| -> Answer { Ok(handler.handle(&request)) };
        let clock = fake.clone();
        let client = BlockingClient::new(transport, Instance::new("http://127.0.0.1:9").unwrap())
            .with_config(
                Config::builder()
                    .clock(move || fleet::skewed(clock.now(), skew))
                    .build(),
            );
        client
            .login(&Credentials::password("alice", "alice-pw"))
            .unwrap();
        assert_eq!(client.with_session(|s| s.clock_offset()), Some(-skew));
        // Deadlines in the server's time: what another machine reads in the store is right.
        let saved = client.save().tokens.unwrap();
        assert_eq!(saved.issued_at, secs(fake.now()));
        assert_eq!(saved.access_expires_at, Some(secs(fake.now()) + 3599));
        // Shown on this machine's clock.
        let expires = client.with_session(|s| s.access_expires_at()).unwrap();
        assert_eq!(
            expires,
            fleet::skewed(fake.now(), skew) + Duration::from_secs(3599)
        );
        for _ in 0..10 {
            let me = http::Request::get("/api/v1/users/me").body(()).unwrap();
            assert_eq!(client.send_authorized(me).unwrap().status(), 200);
        }
        assert_eq!(
            fake.counters().refreshes,
            0,
            "skew {skew}: no refresh for nothing"
        );
        // Due by the server's clock: refreshed once, at the right time.
        fake.advance(Duration::from_secs(3599 - 30));
        let me = http::Request::get("/api/v1/users/me").body(()).unwrap();
        assert_eq!(client.send_authorized(me).unwrap().status(), 200);
        let counters = fake.counters();
        assert_eq!(
            (counters.refreshes, counters.refused_tokens),
            (1, 0),
            "{counters:?}"
        );
    }
}

#[test]
fn a_process_a_day_ahead_starting_on_a_stored_session_asks_the_servers_time_before_refreshing() {
    let fake = FakePeerTube::builder()
        .user(FakeUser::new("alice", "alice@example.org", "alice-pw"))
        .no_rate_limit()
        .build();
    let server = fake.serve().unwrap();
    let dir = support::scratch_dir("skew-start");
    let path = dir.join("session.json");
    let clock = fake.clone();
    BlockingClient::new(
        UreqTransport::new(),
        Instance::new(&server.base_url()).unwrap(),
    )
    .with_config(Config::builder().clock(move || clock.now()).build())
    .with_store(FileStore::open(&path).unwrap())
    .login(&Credentials::password("alice", "alice-pw"))
    .unwrap();
    // A day ahead, it has seen no answer yet: the stored token looks expired by its clock.
    let clock = fake.clone();
    let ahead = BlockingClient::new(
        UreqTransport::new(),
        Instance::new(&server.base_url()).unwrap(),
    )
    .with_config(
        Config::builder()
            .clock(move || fleet::skewed(clock.now(), DAY))
            .build(),
    )
    .with_store(FileStore::open(&path).unwrap());
    // A script's token: refreshed only if the server's clock says so (it does not).
    ahead.access_token().unwrap();
    let counters = fake.counters();
    assert_eq!(
        (counters.refreshes, counters.other_requests),
        (0, 0),
        "{counters:?}"
    );
    assert_eq!(ahead.with_session(|s| s.clock_offset()), Some(-DAY));
    let _ = std::fs::remove_dir_all(&dir);
}

/// 8 processes sharing a file store, one with a clock a day ahead and one a day behind; the
/// access token lives 12 s (refreshed 6 s in, by the server's clock); 20 s of calls.
#[test]
fn a_fleet_with_clocks_a_day_off_refreshes_once_per_expiry_on_the_servers_clock() {
    let fake = FakePeerTube::builder()
        .user(FakeUser::new("alice", "alice@example.org", "alice-pw"))
        .token_lifetimes(Duration::from_secs(12), Duration::from_secs(3600))
        .no_rate_limit()
        .build();
    let _real_time = RealTime::follow(&fake);
    let server = fake.serve().unwrap();
    let dir = support::scratch_dir("skew");
    let place = dir.join("session.json").display().to_string();
    BlockingClient::new(
        UreqTransport::new(),
        Instance::new(&server.base_url()).unwrap(),
    )
    .with_store(FileStore::open(&place).unwrap())
    .login(&Credentials::password("alice", "alice-pw"))
    .unwrap();
    let started = Instant::now();
    let mut job = Job::new(&server.base_url(), &place, &dir.join("stop"));
    job.threads = 2;
    job.pace_ms = 10;
    let mut fleet = Fleet::start(&job, 6, ENTRY);
    for skew in [DAY, -DAY] {
        fleet.add(
            &Job {
                skew_secs: skew,
                ..job.clone()
            },
            ENTRY,
        );
    }
    std::thread::sleep(Duration::from_secs(20));
    let reports = fleet.stop();
    let ran = started.elapsed().as_secs();
    let total = fleet::total(&reports);
    let counters = fake.counters();
    assert_eq!(total.failed, 0, "{total:?} {counters:?}");
    // One refresh every 6 s of server time, give or take the one under way at the end.
    let expected = ran / 6;
    assert!(
        (expected.saturating_sub(1)..=expected + 1).contains(&counters.refreshes),
        "{} refreshes in {ran} s: {counters:?}",
        counters.refreshes
    );
    // No 401 storm: no thread meets a rotated token more than once per rotation. A call
    // already on its way with the old token when another process rotates it can meet one
    // (seen from 0 on an idle machine to 18 in a run with a build beside it, when threads wait
    // long for a core between the check and the send); after it, the process takes the new
    // pair. A storm (what a clock a day off did before deadlines were kept in the server's
    // time) is every call after each expiry.
    let threads = job.threads as u64 * 8;
    assert!(
        counters.refused_tokens <= threads * counters.refreshes.max(1),
        "no 401 storm: {counters:?}"
    );
    assert_eq!(counters.max_refreshes_per_token(), 1, "{counters:?}");
    // The store holds the server's deadlines.
    let record: Record = pollster::block_on(
        FileStore::open(&place)
            .unwrap()
            .load(Instant::now() + Duration::from_secs(1)),
    )
    .unwrap();
    let tokens = record.session.unwrap().tokens.unwrap();
    let now = secs(fake.now());
    assert!(
        tokens.issued_at <= now && now - tokens.issued_at <= 12,
        "{} vs {now}",
        tokens.issued_at
    );
    assert_eq!(tokens.access_expires_at, Some(tokens.issued_at + 11));
    let _ = std::fs::remove_dir_all(&dir);
}
