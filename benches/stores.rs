//! Session stores: authorized calls per second for 64 callers (a) in one process with the
//! memory store, (b) in 4 processes over the file store, (c) in 4 processes over the Redis
//! store; the cost of checking that a copy is current; the cost of one shared refresh.
//! Needs `redis-server` on the PATH. Prints Markdown tables.
//!
//!     cargo bench --bench stores --features ureq,fake,file-store,redis
//!
//! Results: BENCHMARKS.md.

#[path = "../tests/support/redis_server.rs"]
mod redis_server;

use peertube_session::blocking::{BlockingClient, Config, UreqTransport};
use peertube_session::fake::{FakePeerTube, FakeUser};
use peertube_session::store::{FileStore, MemoryStore, Record, RedisStore, SessionStore, Version};
use peertube_session::{Credentials, Instance, Session};
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

const CALLERS: usize = 64;
const PROCESSES: usize = 4;
const CALLS_PER_CALLER: usize = 200;
const ROUNDS: usize = 5;

fn fake() -> FakePeerTube {
    FakePeerTube::builder()
        .user(FakeUser::new("alice", "alice@example.org", "alice-pw"))
        .no_rate_limit()
        .build()
}

/// Nanoseconds since the Unix epoch: the moment processes agree on.
fn unix_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// `threads` callers making their calls at once on `client`; the seconds it took.
fn hammer<S: SessionStore + 'static>(
    client: BlockingClient<UreqTransport, S>,
    threads: usize,
) -> f64 {
    let client = Arc::new(client);
    let start = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (client, start) = (client.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                for _ in 0..CALLS_PER_CALLER {
                    let me = http::Request::get("/api/v1/users/me").body(()).unwrap();
                    assert_eq!(client.send_authorized(me).unwrap().status(), 200);
                }
            })
        })
        .collect();
    let started = Instant::now();
    start.wait();
    for handle in handles {
        handle.join().unwrap();
    }
    started.elapsed().as_secs_f64()
}

fn client(base_url: &str) -> BlockingClient<UreqTransport> {
    BlockingClient::new(UreqTransport::new(), Instance::new(base_url).unwrap())
}

/// A worker process: `CALLERS / PROCESSES` callers over the store named on the command line.
/// Sets up, waits for the agreed start (so that starting processes is not timed), makes its
/// calls, and prints when it was done.
fn worker(base_url: &str, place: &str, start_at: u128) {
    let instance = Instance::new(base_url).unwrap();
    let threads = CALLERS / PROCESSES;
    let wait = || {
        let now = unix_nanos();
        if start_at > now {
            std::thread::sleep(Duration::from_nanos((start_at - now) as u64));
        }
    };
    if let Some(saved) = place.strip_prefix("memory:") {
        // No shared store: the session restored from its saved form, each process on its own.
        let saved = std::fs::read(saved).unwrap();
        let session = Session::restore(serde_json::from_slice(&saved).unwrap()).unwrap();
        let client = BlockingClient::from_session(UreqTransport::new(), session);
        wait();
        hammer(client, threads);
    } else if place.starts_with("redis://") {
        let store = RedisStore::open(place, &instance, "alice").unwrap();
        let client = client(base_url).with_store(store);
        wait();
        hammer(client, threads);
    } else {
        let client = client(base_url).with_store(FileStore::open(place).unwrap());
        wait();
        hammer(client, threads);
    }
    println!("{}", unix_nanos());
}

/// Calls per second of 4 worker processes sharing the session at `place`.
/// From the agreed start (500 ms after they are started, time enough to set up) to the last
/// one's end: starting processes is not what is measured.
fn across_processes(base_url: &str, place: &str) -> f64 {
    let start_at = unix_nanos() + 500_000_000;
    let children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args(["worker", base_url, place, &start_at.to_string()])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut last_end = 0u128;
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success());
        let end: u128 = String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .unwrap();
        last_end = last_end.max(end);
    }
    let seconds = (last_end - start_at) as f64 / 1e9;
    (CALLERS * CALLS_PER_CALLER) as f64 / seconds
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Nanoseconds per `version()` of `store`, the check each call makes.
fn version_cost(store: &impl SessionStore) -> f64 {
    const CHECKS: u32 = 20_000;
    let started = Instant::now();
    for _ in 0..CHECKS {
        pollster::block_on(store.version(Instant::now() + Duration::from_secs(5))).unwrap();
    }
    started.elapsed().as_nanos() as f64 / f64::from(CHECKS)
}

/// Microseconds per refresh through `client` (the fake's clock moves a day between them).
fn refresh_cost<S: SessionStore>(
    fake: &FakePeerTube,
    client: &BlockingClient<UreqTransport, S>,
) -> f64 {
    const REFRESHES: u32 = 200;
    client
        .login(&Credentials::password("alice", "alice-pw"))
        .unwrap();
    let started = Instant::now();
    for _ in 0..REFRESHES {
        fake.advance(Duration::from_secs(86_400));
        client.ensure_fresh().unwrap();
    }
    started.elapsed().as_micros() as f64 / f64::from(REFRESHES)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, mode, base_url, place, start_at] = args.as_slice()
        && mode == "worker"
    {
        return worker(base_url, place, start_at.parse().unwrap());
    }
    if args.iter().any(|a| a == "--test" || a == "--list") {
        return; // run by hand only
    }
    let redis = redis_server::RedisServer::start(None).expect("redis-server is needed");
    let dir = std::env::temp_dir().join(format!("peertube-session-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    println!("# peertube-session store benchmarks\n");
    println!(
        "## {CALLERS} callers, {CALLS_PER_CALLER} calls each, tokens not rotating (median of {ROUNDS} rounds)\n"
    );
    println!("| variant | calls/s | time per call vs (a) | vs 4 processes without a store |");
    println!("|---|---|---|---|");
    let (mut memory, mut unshared, mut file, mut redis_rates) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let fake = fake();
        let server = fake.serve().unwrap();
        let base = server.base_url();
        let one = client(&base);
        one.login(&Credentials::password("alice", "alice-pw"))
            .unwrap();
        let saved = dir.join(format!("saved-{round}.json"));
        std::fs::write(&saved, serde_json::to_vec(&one.save()).unwrap()).unwrap();
        memory.push((CALLERS * CALLS_PER_CALLER) as f64 / hammer(one, CALLERS));
        unshared.push(across_processes(
            &base,
            &format!("memory:{}", saved.display()),
        ));

        let path = dir.join(format!("session-{round}.json"));
        let path = path.to_string_lossy().into_owned();
        client(&base)
            .with_store(FileStore::open(&path).unwrap())
            .login(&Credentials::password("alice", "alice-pw"))
            .unwrap();
        file.push(across_processes(&base, &path));

        // Each round has its own key: the fake's port is part of the instance.
        let instance = Instance::new(&base).unwrap();
        let url = redis.url();
        client(&base)
            .with_store(RedisStore::open(&url, &instance, "alice").unwrap())
            .login(&Credentials::password("alice", "alice-pw"))
            .unwrap();
        redis_rates.push(across_processes(&base, &url));
    }
    let a = median(memory);
    let apart = median(unshared);
    for (name, rate) in [
        ("(a) one process, 64 threads, memory store", a),
        (
            "4 processes x 16 threads, each its own copy, no store",
            apart,
        ),
        ("(b) 4 processes x 16 threads, file store", median(file)),
        (
            "(c) 4 processes x 16 threads, Redis store",
            median(redis_rates),
        ),
    ] {
        println!(
            "| {name} | {rate:.0} | {:.2} | {:.2} |",
            a / rate,
            apart / rate
        );
    }

    println!("\n## Checking that a copy is current (`version()`, one call's added cost)\n");
    println!("| store | ns per check |");
    println!("|---|---|");
    let instance = Instance::new("http://127.0.0.1:9").unwrap();
    let file_store = FileStore::open(dir.join("version.json")).unwrap();
    let redis_store = RedisStore::open(&redis.url(), &instance, "version").unwrap();
    for store_name in ["memory", "file", "Redis"] {
        let cost = match store_name {
            "memory" => version_cost(&MemoryStore::new()),
            "file" => {
                let record = Record::new(
                    peertube_session::Session::new(instance.clone()).save(),
                    None,
                );
                pollster::block_on(file_store.save(
                    Version::EMPTY,
                    record,
                    None,
                    Instant::now() + Duration::from_secs(5),
                ))
                .unwrap();
                version_cost(&file_store)
            }
            _ => version_cost(&redis_store),
        };
        println!("| {store_name} | {cost:.0} |");
    }

    println!("\n## One refresh, sent alone (lease, reload, refresh, save, release)\n");
    println!("| store | µs per refresh |");
    println!("|---|---|");
    let fake = fake();
    let server = fake.serve().unwrap();
    let base = server.base_url();
    let instance = Instance::new(&base).unwrap();
    let clocked = |fake: &FakePeerTube| {
        let clock = fake.clone();
        Config::builder().clock(move || clock.now()).build()
    };
    let memory_client = client(&base).with_config(clocked(&fake));
    println!("| memory | {:.0} |", refresh_cost(&fake, &memory_client));
    let file_client = client(&base)
        .with_config(clocked(&fake))
        .with_store(FileStore::open(dir.join("refresh.json")).unwrap());
    println!("| file | {:.0} |", refresh_cost(&fake, &file_client));
    let redis_client = client(&base)
        .with_config(clocked(&fake))
        .with_store(RedisStore::open(&redis.url(), &instance, "refresh").unwrap());
    println!("| Redis | {:.0} |", refresh_cost(&fake, &redis_client));
    std::fs::remove_dir_all(&dir).unwrap();
}
