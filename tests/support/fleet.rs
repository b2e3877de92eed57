//! A fleet: worker processes (copies of the test binary) whose threads call the fake PeerTube
//! through one session shared in a store, until told to stop. Each worker reports what its
//! calls met on its standard output. Every wait is bounded.
#![allow(dead_code)]

use http::StatusCode;
use peertube_session::blocking::{BlockingClient, Config, Relogin, UreqTransport};
use peertube_session::store::{FileStore, SessionStore};
use peertube_session::{Credentials, Instance};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

#[cfg(feature = "tracing")]
#[path = "capture.rs"]
mod capture;

/// The session's events during one call, told with the call's failure (feature `tracing`):
/// which sends met a dead token, which refreshes ran, so that a rare failure in a long run
/// says why.
#[cfg(feature = "tracing")]
struct Trail(capture::Capture);

#[cfg(feature = "tracing")]
impl Trail {
    fn new() -> Trail {
        Trail(capture::Capture::new())
    }

    fn during<R>(&self, call: impl FnOnce() -> R) -> R {
        self.0.clear();
        self.0.during(call)
    }

    fn told(&self) -> String {
        let events: Vec<String> = self
            .0
            .events()
            .iter()
            .map(|event| {
                let fields: Vec<String> = event
                    .fields
                    .iter()
                    .map(|(n, v)| format!("{n}={v}"))
                    .collect();
                format!("{} [{}]", event.message, fields.join(" "))
            })
            .collect();
        format!(" after: {}", events.join("; "))
    }
}

#[cfg(not(feature = "tracing"))]
struct Trail;

#[cfg(not(feature = "tracing"))]
impl Trail {
    fn new() -> Trail {
        Trail
    }

    fn during<R>(&self, call: impl FnOnce() -> R) -> R {
        call()
    }

    fn told(&self) -> String {
        String::new()
    }
}

/// Set in a worker process: its job, as JSON.
const WORKER: &str = "PEERTUBE_SESSION_FLEET_WORKER";
/// A worker stops by itself after this long, whatever happens.
const WORKER_BOUND: Duration = Duration::from_secs(150);
/// The parent kills the workers still running after this long.
const FLEET_BOUND: Duration = Duration::from_secs(180);

/// What a worker process does.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub base_url: String,
    /// A file store's path, or a `redis://` URL.
    pub place: String,
    pub threads: usize,
    /// The worker stops once this file exists.
    pub stop: PathBuf,
    /// The exchange timeout (the lease lives 5 s longer).
    pub timeout_ms: u64,
    /// Run as this user and group (a root test dropping privileges, so that file modes bind).
    pub user: Option<(u32, u32)>,
    /// How far this worker's clock is off (seconds; negative: behind).
    #[serde(default)]
    pub skew_secs: i64,
    /// What the worker does before its calls, with alice's password.
    #[serde(default)]
    pub boot: Boot,
    /// Log in again by itself with this password when the refresh token is dead.
    #[serde(default)]
    pub relogin: Option<String>,
    /// Stop after this many calls per thread (besides the stop file).
    #[serde(default)]
    pub calls: Option<u64>,
    /// The refresh margin, when not the default.
    #[serde(default)]
    pub margin_secs: Option<u64>,
    /// Each thread waits this long between two calls.
    #[serde(default)]
    pub pace_ms: u64,
    /// An API limiter's 429 is an answer like any other (counted, not a failure).
    #[serde(default)]
    pub accept_429: bool,
}

/// What a worker does before its calls.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub enum Boot {
    /// Nothing: it uses the session in the store.
    #[default]
    Nothing,
    /// `login` with this password (every worker logs in: the racing-logins case).
    Login(String),
    /// `login_if_needed` with this password (what a fleet should do).
    LoginIfNeeded(String),
}

impl Job {
    pub fn new(base_url: &str, place: &str, stop: &Path) -> Job {
        Job {
            base_url: base_url.to_owned(),
            place: place.to_owned(),
            threads: 8,
            stop: stop.to_path_buf(),
            timeout_ms: 10_000,
            user: None,
            skew_secs: 0,
            boot: Boot::Nothing,
            relogin: None,
            calls: None,
            margin_secs: None,
            pace_ms: 0,
            accept_429: false,
        }
    }

    /// Starts a worker: this test binary, running only the test `entry` (which must call
    /// [`work_if_worker`] first).
    pub fn spawn(&self, entry: &str) -> Child {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args(["--exact", entry, "--test-threads=1", "--nocapture"])
            .env(WORKER, serde_json::to_string(self).unwrap())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        #[cfg(unix)]
        if let Some((uid, gid)) = self.user {
            use std::os::unix::process::CommandExt;
            command.uid(uid).gid(gid);
        }
        command.spawn().unwrap()
    }
}

/// What one worker's calls met.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Report {
    pub calls: u64,
    pub failed: u64,
    /// The first few failures, as the error printed them.
    pub failures: Vec<String>,
    /// The slowest call, in milliseconds.
    pub slowest_ms: u64,
    /// Calls answered 429 by the instance's API limit (with `accept_429`).
    #[serde(default)]
    pub rate_limited: u64,
}

const REPORT: &str = "FLEET-REPORT ";

/// In a worker process: does the job and returns `true`; elsewhere returns `false` at once.
pub fn work_if_worker() -> bool {
    let Ok(spec) = std::env::var(WORKER) else {
        return false;
    };
    let job: Job = serde_json::from_str(&spec).unwrap();
    let instance = Instance::new(&job.base_url).unwrap();
    let skew = job.skew_secs;
    let mut config = Config::builder()
        .timeout(Duration::from_millis(job.timeout_ms))
        .clock(move || skewed(SystemTime::now(), skew));
    if let Some(margin) = job.margin_secs {
        config = config.refresh_margin(Duration::from_secs(margin));
    }
    let config = config.build();
    let transport = UreqTransport::new();
    #[cfg(feature = "redis")]
    if job.place.starts_with("redis://") {
        let store =
            peertube_session::store::RedisStore::open(&job.place, &instance, "alice").unwrap();
        let client = BlockingClient::new(transport, instance)
            .with_store(store)
            .with_config(config);
        report(&calls(client, &job));
        return true;
    }
    let store = FileStore::open(&job.place).unwrap();
    let client = BlockingClient::new(transport, instance)
        .with_store(store)
        .with_config(config);
    report(&calls(client, &job));
    true
}

fn report(report: &Report) {
    // On a line of its own: the test harness has already printed "test worker ... ".
    println!("\n{REPORT}{}", serde_json::to_string(report).unwrap());
}

/// `at`, moved by `skew` seconds.
pub fn skewed(at: SystemTime, skew: i64) -> SystemTime {
    let by = Duration::from_secs(skew.unsigned_abs());
    if skew >= 0 { at + by } else { at - by }
}

/// The job's threads call `GET /api/v1/users/me` until the stop file appears.
fn calls<S: SessionStore + 'static>(client: BlockingClient<UreqTransport, S>, job: &Job) -> Report {
    let client = match &job.relogin {
        Some(password) => {
            let password = password.clone();
            client.with_relogin(Relogin::new(move || {
                Some(Credentials::password("alice", password.as_str()))
            }))
        }
        None => client,
    };
    let client = Arc::new(client);
    let booted = match &job.boot {
        Boot::Nothing => Ok(()),
        Boot::Login(password) => client.login(&Credentials::password("alice", password.as_str())),
        Boot::LoginIfNeeded(password) => client
            .login_if_needed(&Credentials::password("alice", password.as_str()))
            .map(drop),
    };
    let started = Instant::now();
    let slowest = Arc::new(AtomicU64::new(0));
    let ready = Arc::new(std::sync::Once::new());
    let threads: Vec<_> = (0..job.threads)
        .map(|_| {
            let (client, stop, slowest) = (client.clone(), job.stop.clone(), slowest.clone());
            let ready = ready.clone();
            let limit = job.calls;
            let (pace, accept_429) = (Duration::from_millis(job.pace_ms), job.accept_429);
            std::thread::spawn(move || {
                let mut report = Report::default();
                let trail = Trail::new();
                while !stop.exists()
                    && started.elapsed() < WORKER_BOUND
                    && limit.is_none_or(|limit| report.calls < limit)
                {
                    let me = http::Request::get("/api/v1/users/me").body(()).unwrap();
                    let call = Instant::now();
                    let outcome = trail.during(|| client.send_authorized(me));
                    let took = u64::try_from(call.elapsed().as_millis()).unwrap_or(u64::MAX);
                    slowest.fetch_max(took, Ordering::Relaxed);
                    report.calls += 1;
                    std::thread::sleep(pace);
                    let failure = match outcome {
                        Ok(answer) if answer.status() == StatusCode::OK => {
                            ready.call_once(|| {
                                std::fs::write(ready_marker(&stop, std::process::id()), b"")
                                    .unwrap();
                            });
                            continue;
                        }
                        Ok(answer)
                            if accept_429 && answer.status() == StatusCode::TOO_MANY_REQUESTS =>
                        {
                            report.rate_limited += 1;
                            continue;
                        }
                        Ok(answer) => format!("answered {}{}", answer.status(), trail.told()),
                        Err(error) => format!("{error:?}{}", trail.told()),
                    };
                    report.failed += 1;
                    if report.failures.len() < 3 {
                        report.failures.push(failure);
                    }
                }
                report
            })
        })
        .collect();
    let mut total = Report::default();
    if let Err(error) = &booted {
        total.failed += 1;
        total.failures.push(format!("at boot: {error:?}"));
    }
    for thread in threads {
        let report = thread.join().unwrap();
        total.calls += report.calls;
        total.failed += report.failed;
        total.rate_limited += report.rate_limited;
        total.failures.extend(report.failures);
    }
    total.failures.truncate(5);
    total.slowest_ms = slowest.load(Ordering::Relaxed);
    total
}

/// Workers started together, stopped together.
pub struct Fleet {
    children: Vec<Child>,
    stop: PathBuf,
}

impl Fleet {
    /// `count` workers doing `job`.
    pub fn start(job: &Job, count: usize, entry: &str) -> Fleet {
        let _ = std::fs::remove_file(&job.stop);
        Fleet {
            children: (0..count).map(|_| job.spawn(entry)).collect(),
            stop: job.stop.clone(),
        }
    }

    /// Waits until every worker has had a call answered 200 (so each holds the session in
    /// memory: a fault injected before that would meet a process with nothing to go on with,
    /// whose calls rightly fail; on a loaded machine a process can take over a second to get
    /// there). At most 60 s.
    pub fn await_ready(&self) {
        let started = Instant::now();
        loop {
            let ready = self
                .children
                .iter()
                .filter(|child| ready_marker(&self.stop, child.id()).exists())
                .count();
            if ready == self.children.len() {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{ready} of {} workers had a call answered within 60 s",
                self.children.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One more worker, stopped with the others.
    pub fn add(&mut self, job: &Job, entry: &str) {
        self.children.push(job.spawn(entry));
    }

    /// Tells every worker to stop and gathers their reports; a worker that crashed or
    /// reported nothing fails the test.
    pub fn stop(self) -> Vec<Report> {
        std::fs::write(&self.stop, b"stop").unwrap();
        self.wait()
    }

    /// Waits for every worker to end by itself (jobs with a number of calls), and gathers their
    /// reports, as [`Fleet::stop`] does.
    pub fn wait(mut self) -> Vec<Report> {
        let started = Instant::now();
        let mut reports = Vec::new();
        for child in &mut self.children {
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    let mut out = String::new();
                    child
                        .stdout
                        .take()
                        .unwrap()
                        .read_to_string(&mut out)
                        .unwrap();
                    let report = out
                        .lines()
                        .find_map(|line| line.split_once(REPORT).map(|(_, json)| json))
                        .map(|json| serde_json::from_str(json).unwrap());
                    assert!(status.success(), "a worker failed ({status}): {out}");
                    reports.push(report.expect("a worker reported nothing"));
                    break;
                }
                if started.elapsed() > FLEET_BOUND {
                    for child in &mut self.children {
                        let _ = child.kill();
                    }
                    panic!("workers still running after {FLEET_BOUND:?}");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        reports
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The file a worker creates beside the stop file once a call of its was answered 200.
fn ready_marker(stop: &Path, pid: u32) -> PathBuf {
    let mut name = stop.as_os_str().to_owned();
    name.push(format!(".ready-{pid}"));
    PathBuf::from(name)
}

/// The reports summed up, for assertions and messages.
pub fn total(reports: &[Report]) -> Report {
    let mut total = Report::default();
    for report in reports {
        total.calls += report.calls;
        total.failed += report.failed;
        total.rate_limited += report.rate_limited;
        total.failures.extend(report.failures.iter().cloned());
        total.slowest_ms = total.slowest_ms.max(report.slowest_ms);
    }
    total
}
