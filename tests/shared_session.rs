//! One session shared by real OS processes through the file store, against the fake served on
//! loopback: the test binary starts copies of itself as workers. Every wait is bounded.
#![cfg(all(feature = "ureq", feature = "fake", feature = "file-store"))]

use http::StatusCode;
use peertube_session::blocking::{BlockingClient, Config, UreqTransport};
use peertube_session::fake::{FakePeerTube, FakeUser};
use peertube_session::store::FileStore;
use peertube_session::{Credentials, Error, Instance};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Set in a worker process: what it is to do.
const WORKER: &str = "PEERTUBE_SESSION_TEST_WORKER";
const PROCESSES: usize = 8;
const THREADS: usize = 8;
const CALLS: usize = 40;
/// Each access token serves this many calls, then dies (401 `invalid_token`): more than the
/// 64 calls in the air at once, so a caller retrying with a new token is not starved.
const USES: u64 = 500;
const BOUND: Duration = Duration::from_secs(120);

fn client(base_url: &str, store: &Path) -> BlockingClient<UreqTransport, FileStore> {
    BlockingClient::new(UreqTransport::new(), Instance::new(base_url).unwrap())
        .with_store(FileStore::open(store).unwrap())
        .with_config(Config::builder().timeout(Duration::from_secs(10)).build())
}

/// A worker: THREADS threads making CALLS authorized calls each; every one must be answered
/// 200. Does nothing in the normal test run.
#[test]
fn worker() {
    let Ok(spec) = std::env::var(WORKER) else {
        return;
    };
    let (base_url, store) = spec.split_once('|').unwrap();
    let client = Arc::new(client(base_url, Path::new(store)));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let client = client.clone();
            std::thread::spawn(move || {
                for _ in 0..CALLS {
                    let me = http::Request::get("/api/v1/users/me").body(()).unwrap();
                    let answer = client.send_authorized(me).unwrap();
                    assert_eq!(answer.status(), StatusCode::OK);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

fn scratch_dir() -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "peertube-session-test-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn spawn_worker(base_url: &str, store: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "worker", "--test-threads=1", "--nocapture"])
        .env(WORKER, format!("{base_url}|{}", store.display()))
        .spawn()
        .unwrap()
}

/// Waits for every child, killing them all past [`BOUND`].
fn wait_all(mut children: Vec<Child>) -> Vec<bool> {
    let started = Instant::now();
    let mut outcomes = vec![None; children.len()];
    while outcomes.iter().any(Option::is_none) {
        for (child, outcome) in children.iter_mut().zip(outcomes.iter_mut()) {
            if outcome.is_none()
                && let Some(status) = child.try_wait().unwrap()
            {
                *outcome = Some(status.success());
            }
        }
        if started.elapsed() > BOUND {
            for child in &mut children {
                let _ = child.kill();
            }
            panic!("workers still running after {BOUND:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    outcomes
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect()
}

#[test]
fn processes_sharing_a_file_store_refresh_once_per_expiry() {
    let fake = FakePeerTube::builder()
        .user(FakeUser::new("alice", "alice@example.org", "alice-pw"))
        .no_rate_limit()
        .access_token_uses(USES)
        .build();
    let server = fake.serve().unwrap();
    let dir = scratch_dir();
    let store = dir.join("session.json");

    let first = client(&server.base_url(), &store);
    first
        .login(&Credentials::password("alice", "alice-pw"))
        .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&store).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the record holds tokens");
    }

    let workers = (0..PROCESSES)
        .map(|_| spawn_worker(&server.base_url(), &store))
        .collect();
    let outcomes = wait_all(workers);
    assert!(
        outcomes.iter().all(|&ok| ok),
        "a worker failed: {:?}",
        fake.counters()
    );

    let counters = fake.counters();
    let calls = (PROCESSES * THREADS * CALLS) as u64;
    assert!(
        counters.worn_out_tokens >= calls / (USES + 1),
        "{counters:?}"
    );
    assert_eq!(counters.refreshes, counters.worn_out_tokens, "{counters:?}");
    assert_eq!(counters.max_refreshes_per_token(), 1, "{counters:?}");
    assert_eq!(counters.invalid_grants, 0, "{counters:?}");
    assert_eq!(counters.logins, 1, "{counters:?}");
    assert_eq!(counters.live_sessions, 1, "{counters:?}");

    // A logout by one process is seen by every other.
    first.logout().unwrap();
    assert_eq!(fake.counters().live_sessions, 0);
    let other = client(&server.base_url(), &store);
    assert_eq!(other.access_token().unwrap_err(), Error::LoggedOut);
    let me = http::Request::get("/api/v1/users/me").body(()).unwrap();
    assert_eq!(other.send_authorized(me).unwrap_err(), Error::LoggedOut);
    std::fs::remove_dir_all(&dir).unwrap();
}
