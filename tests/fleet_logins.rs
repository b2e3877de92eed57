//! Logins racing on one store: real processes that all start at once and log in, through a
//! file store and through a real `redis-server`. Plain logins supersede each other (each one
//! revokes the pair it replaced): one session alive. `login_if_needed`: one login for all.
#![cfg(all(feature = "ureq", feature = "fake", feature = "file-store"))]

mod support;

#[path = "support/fleet.rs"]
mod fleet;
#[path = "support/redis_server.rs"]
mod redis_server;

use fleet::{Boot, Fleet, Job};
use peertube_session::fake::{Counters, FakePeerTube, FakeUser};

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

/// `processes` workers start together, each booting with `boot`, then make 20 calls on each of
/// 2 threads. Behind PeerTube's default login limit (15 per 5 minutes). What the fake saw.
fn race(place: impl FnOnce(&std::path::Path) -> String, processes: usize, boot: Boot) -> Counters {
    let fake = FakePeerTube::builder()
        .user(FakeUser::new("alice", "alice@example.org", "alice-pw"))
        .build();
    let server = fake.serve().unwrap();
    let dir = support::scratch_dir("logins");
    let mut job = Job::new(&server.base_url(), &place(&dir), &dir.join("stop"));
    job.threads = 2;
    job.calls = Some(20);
    job.boot = boot;
    let reports = Fleet::start(&job, processes, ENTRY).wait();
    let total = fleet::total(&reports);
    let counters = fake.counters();
    assert_eq!(total.calls, processes as u64 * 40, "{total:?}");
    assert_eq!(total.failed, 0, "{total:?} {counters:?}");
    assert_eq!(counters.live_sessions, 1, "one session alive: {counters:?}");
    assert_eq!(counters.rate_limited, 0, "{counters:?}");
    assert_eq!(counters.invalid_grants, 0, "{counters:?}");
    let _ = std::fs::remove_dir_all(&dir);
    counters
}

fn file(dir: &std::path::Path) -> String {
    dir.join("session.json").display().to_string()
}

#[test]
fn logins_racing_on_a_file_store_leave_one_session() {
    let _alone = one_at_a_time();
    for processes in [2, 4, 8] {
        let counters = race(file, processes, Boot::Login("alice-pw".to_owned()));
        // Each login replaced the one before and revoked it.
        assert_eq!(counters.logins, processes as u64, "{counters:?}");
        assert_eq!(counters.revocations, processes as u64 - 1, "{counters:?}");
    }
}

#[test]
fn login_if_needed_logs_in_once_for_a_fleet_on_a_file_store() {
    let _alone = one_at_a_time();
    let counters = race(file, 8, Boot::LoginIfNeeded("alice-pw".to_owned()));
    assert_eq!(
        (counters.logins, counters.revocations),
        (1, 0),
        "{counters:?}"
    );
}

#[cfg(feature = "redis")]
#[test]
fn logins_racing_on_redis_leave_one_session_and_login_if_needed_logs_in_once() {
    let _alone = one_at_a_time();
    for processes in [2, 4, 8] {
        let Some(redis) = redis_server::RedisServer::start(None) else {
            return;
        };
        let counters = race(
            |_| redis.url(),
            processes,
            Boot::Login("alice-pw".to_owned()),
        );
        assert_eq!(counters.logins, processes as u64, "{counters:?}");
        assert_eq!(counters.revocations, processes as u64 - 1, "{counters:?}");
    }
    let Some(redis) = redis_server::RedisServer::start(None) else {
        return;
    };
    let counters = race(
        |_| redis.url(),
        8,
        Boot::LoginIfNeeded("alice-pw".to_owned()),
    );
    assert_eq!(
        (counters.logins, counters.revocations),
        (1, 0),
        "{counters:?}"
    );
}
