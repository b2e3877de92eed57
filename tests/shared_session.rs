//! One session shared by real OS processes through the file store, against the fake served on
//! loopback: the test binary starts copies of itself as workers. Every wait is bounded.
#![cfg(all(feature = "ureq", feature = "fake", feature = "file-store"))]

#[cfg(feature = "redis")]
mod support;

#[path = "support/redis_server.rs"]
mod redis_server;

use http::StatusCode;
use peertube_session::blocking::{BlockingClient, Config, Relogin, UreqTransport};
use peertube_session::fake::Fault;
use peertube_session::fake::{FakePeerTube, FakeUser};
#[cfg(feature = "redis")]
use peertube_session::store::RedisStore;
use peertube_session::store::{FileStore, SessionStore};
use peertube_session::{Credentials, Error, Instance};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Set in a worker process: what it is to do.
const WORKER: &str = "PEERTUBE_SESSION_TEST_WORKER";
const PROCESSES: usize = 8;
const THREADS: usize = 8;
const CALLS: usize = 50;
/// Each access token serves this many calls, then dies (401 `invalid_token`): far more than the
/// 64 calls in the air at once, so that a caller retrying with a new token is not starved by
/// the others using it up first (real tokens die by time or rotation, not by use).
const USES: u64 = 800;
const BOUND: Duration = Duration::from_secs(120);

/// The tests that start processes run one at a time: dozens of processes at once on a small
/// machine would starve some of them of the CPU.
static PROCESSES_AT_ONCE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    PROCESSES_AT_ONCE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn client(base_url: &str, store: &Path) -> BlockingClient<UreqTransport, FileStore> {
    client_with_timeout(base_url, store, Duration::from_secs(10))
}

/// The refresh lease lives for the exchange's timeout plus 5 s.
fn client_with_timeout(
    base_url: &str,
    store: &Path,
    timeout: Duration,
) -> BlockingClient<UreqTransport, FileStore> {
    BlockingClient::new(UreqTransport::new(), Instance::new(base_url).unwrap())
        .with_store(FileStore::open(store).unwrap())
        .with_config(Config::builder().timeout(timeout).build())
}

/// What a worker process does.
struct Job {
    base_url: String,
    store: PathBuf,
    threads: usize,
    calls: usize,
    /// Log in again with this password when the refresh token is dead.
    relogin: Option<String>,
    timeout: Duration,
}

impl Job {
    fn spec(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}|{}",
            self.base_url,
            self.store.display(),
            self.threads,
            self.calls,
            self.relogin.as_deref().unwrap_or(""),
            self.timeout.as_millis()
        )
    }

    fn parse(spec: &str) -> Job {
        let parts: Vec<&str> = spec.split('|').collect();
        Job {
            base_url: parts[0].to_owned(),
            store: PathBuf::from(parts[1]),
            threads: parts[2].parse().unwrap(),
            calls: parts[3].parse().unwrap(),
            relogin: Some(parts[4]).filter(|p| !p.is_empty()).map(str::to_owned),
            timeout: Duration::from_millis(parts[5].parse().unwrap()),
        }
    }

    fn spawn(&self) -> Child {
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "worker", "--test-threads=1", "--nocapture"])
            .env(WORKER, self.spec())
            .spawn()
            .unwrap()
    }
}

/// A worker: its threads make their calls; every one must be answered 200. Does nothing in
/// the normal test run.
#[test]
fn worker() {
    let Ok(spec) = std::env::var(WORKER) else {
        return;
    };
    let job = Job::parse(&spec);
    let place = job.store.to_string_lossy().into_owned();
    #[cfg(feature = "redis")]
    if place.starts_with("redis://") {
        let instance = Instance::new(&job.base_url).unwrap();
        let store = RedisStore::open(&place, &instance, "alice").unwrap();
        let client = BlockingClient::new(UreqTransport::new(), instance)
            .with_store(store)
            .with_config(Config::builder().timeout(job.timeout).build());
        return work(client, &job);
    }
    work(
        client_with_timeout(&job.base_url, &job.store, job.timeout),
        &job,
    );
}

/// The worker's calls, over any store.
fn work<S: SessionStore + 'static>(mut client: BlockingClient<UreqTransport, S>, job: &Job) {
    if let Some(password) = job.relogin.clone() {
        client = client.with_relogin(Relogin::new(move || {
            Some(Credentials::password("alice", password.as_str()))
        }));
    }
    let client = Arc::new(client);
    let threads: Vec<_> = (0..job.threads)
        .map(|_| {
            let client = client.clone();
            let calls = job.calls;
            std::thread::spawn(move || {
                for _ in 0..calls {
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
    let _alone = one_at_a_time();
    let dir = support::scratch_dir("test");
    let store = dir.join("session.json");
    shared_by_processes(&store, |base_url| client(base_url, &store).into_dyn());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&store).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the record holds tokens");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(feature = "redis")]
#[test]
fn processes_sharing_a_redis_store_refresh_once_per_expiry() {
    let _alone = one_at_a_time();
    let Some(redis) = redis_server::RedisServer::start(None) else {
        return;
    };
    let url = redis.url();
    shared_by_processes(Path::new(&url), |base_url| {
        let instance = Instance::new(base_url).unwrap();
        let store = RedisStore::open(&url, &instance, "alice").unwrap();
        BlockingClient::new(UreqTransport::new(), instance)
            .with_store(store)
            .with_config(Config::builder().timeout(Duration::from_secs(10)).build())
            .into_dyn()
    });
}

type Login = Box<dyn Fn(&Credentials) -> Result<(), Error>>;

/// A client over some store, for the parts of a test that do not care which.
struct AnyClient {
    login: Login,
    logout: Box<dyn Fn() -> Result<(), Error>>,
    access_token: Box<dyn Fn() -> Result<(), Error>>,
    me: Box<dyn Fn() -> Result<StatusCode, Error>>,
}

trait IntoDyn {
    fn into_dyn(self) -> AnyClient;
}

impl<S: SessionStore + 'static> IntoDyn for BlockingClient<UreqTransport, S> {
    fn into_dyn(self) -> AnyClient {
        let client = Arc::new(self);
        let (a, b, c, d) = (client.clone(), client.clone(), client.clone(), client);
        AnyClient {
            login: Box::new(move |credentials| a.login(credentials)),
            logout: Box::new(move || b.logout().map(drop)),
            access_token: Box::new(move || c.access_token().map(drop)),
            me: Box::new(move || {
                let me = http::Request::get("/api/v1/users/me").body(()).unwrap();
                d.send_authorized(me).map(|answer| answer.status())
            }),
        }
    }
}

/// 8 processes x 8 threads share one session through the store at `place` (a file or a
/// `redis://` URL), while access tokens die every [`USES`] calls.
fn shared_by_processes(place: &Path, client: impl Fn(&str) -> AnyClient) {
    let fake = FakePeerTube::builder()
        .user(FakeUser::new("alice", "alice@example.org", "alice-pw"))
        .no_rate_limit()
        .access_token_uses(USES)
        .build();
    let server = fake.serve().unwrap();
    let first = client(&server.base_url());
    (first.login)(&Credentials::password("alice", "alice-pw")).unwrap();

    let job = Job {
        base_url: server.base_url(),
        store: place.to_path_buf(),
        threads: THREADS,
        calls: CALLS,
        relogin: None,
        timeout: Duration::from_secs(10),
    };
    let workers = (0..PROCESSES).map(|_| job.spawn()).collect();
    let outcomes = wait_all(workers);
    let counters = fake.counters();
    assert!(
        outcomes.iter().all(|&ok| ok),
        "a worker failed: {counters:?}"
    );
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
    (first.logout)().unwrap();
    assert_eq!(fake.counters().live_sessions, 0);
    let other = client(&server.base_url());
    assert_eq!((other.access_token)().unwrap_err(), Error::LoggedOut);
    assert_eq!((other.me)().unwrap_err(), Error::LoggedOut);
}

#[test]
fn a_dead_refresh_token_means_one_login_across_every_process() {
    let _alone = one_at_a_time();
    let fake = FakePeerTube::builder()
        .user(FakeUser::new("alice", "alice@example.org", "old-pw"))
        .no_rate_limit()
        .build();
    let server = fake.serve().unwrap();
    let dir = support::scratch_dir("test");
    let store = dir.join("session.json");
    client(&server.base_url(), &store)
        .login(&Credentials::password("alice", "old-pw"))
        .unwrap();
    // Every token pair of the account dies, as when the password changes.
    fake.change_password("alice", "new-pw");

    let job = Job {
        base_url: server.base_url(),
        store: store.clone(),
        threads: 4,
        calls: 5,
        relogin: Some("new-pw".to_owned()),
        timeout: Duration::from_secs(10),
    };
    let workers = (0..PROCESSES).map(|_| job.spawn()).collect();
    let outcomes = wait_all(workers);
    let counters = fake.counters();
    assert!(
        outcomes.iter().all(|&ok| ok),
        "a worker failed: {counters:?}"
    );
    assert_eq!(counters.logins, 2, "{counters:?}");
    assert_eq!(counters.invalid_grants, 1, "{counters:?}");
    assert_eq!(counters.max_refreshes_per_token(), 1, "{counters:?}");
    assert_eq!(counters.live_sessions, 1, "{counters:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_lease_holder_killed_mid_refresh_holds_the_others_only_until_its_lease_ends() {
    let _alone = one_at_a_time();
    let fake = FakePeerTube::builder()
        .user(FakeUser::new("alice", "alice@example.org", "alice-pw"))
        .no_rate_limit()
        .build();
    let server = fake.serve().unwrap();
    let dir = support::scratch_dir("test");
    let store = dir.join("session.json");
    client(&server.base_url(), &store)
        .login(&Credentials::password("alice", "alice-pw"))
        .unwrap();
    // The access token expires on the server (its refresh token stays good)…
    fake.advance(Duration::from_secs(86_400 + 1));
    // …and the refresh that follows is held by the server for 3 s, then handled.
    server.inject(
        Some("/api/v1/users/token"),
        Fault::Delay(Duration::from_secs(3)),
    );

    // A 1 s timeout: the lease lives 6 s.
    let job = Job {
        base_url: server.base_url(),
        store: store.clone(),
        threads: 1,
        calls: 1,
        relogin: Some("alice-pw".to_owned()),
        timeout: Duration::from_secs(1),
    };
    let mut holder = job.spawn();
    let lease = PathBuf::from(format!("{}.lease", store.display()));
    let waited = Instant::now();
    while !std::fs::read_to_string(&lease).is_ok_and(|l| l.contains("\"holder\":\"")) {
        assert!(
            waited.elapsed() < BOUND,
            "the first worker never took the lease"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    holder.kill().unwrap(); // SIGKILL on unix: no clean-up runs
    holder.wait().unwrap();
    let killed_at = Instant::now();

    let others = Job {
        threads: 4,
        calls: 3,
        timeout: Duration::from_secs(10),
        ..job
    };
    let workers = (0..4).map(|_| others.spawn()).collect();
    let outcomes = wait_all(workers);
    let counters = fake.counters();
    assert!(
        outcomes.iter().all(|&ok| ok),
        "a worker failed: {counters:?}"
    );
    // They waited for the dead holder's lease to end (6 s after it was taken), not for ever.
    let waited = killed_at.elapsed();
    assert!(
        waited > Duration::from_secs(3),
        "{waited:?}: the lease was not honoured"
    );
    assert!(waited < Duration::from_secs(30), "{waited:?}");
    // The killed refresh may have been handled by the server (its pair is then orphaned, as
    // with any lost answer) or not: either way one refresh or one login repaired it.
    assert!(counters.refreshes + counters.logins <= 3, "{counters:?}");
    assert_eq!(counters.max_refreshes_per_token(), 1, "{counters:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
