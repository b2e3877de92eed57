//! A session shared by many threads or tasks never sends two refreshes with the same refresh
//! token: PeerTube rotates it, and a second refresh either loses the login or leaks a session.
#![cfg(all(feature = "ureq", feature = "hyper", feature = "fake"))]

use http::StatusCode;
use peertube_session::asynchronous::{AsyncClient, HyperTransport};
use peertube_session::blocking::Config;
use peertube_session::blocking::{BlockingClient, UreqTransport};
use peertube_session::fake::{FakePeerTube, FakeUser};
use peertube_session::{Body, Credentials, Instance};
use std::sync::{Arc, Barrier};
use std::time::Duration;

const CALLERS: usize = 32;

fn fake() -> FakePeerTube {
    FakePeerTube::builder()
        .user(FakeUser::new("alice", "alice@example.org", "alice-pw"))
        .no_rate_limit()
        .build()
}

fn me(instance: &Instance) -> http::Request<Body> {
    http::Request::get(instance.uri("/api/v1/users/me").unwrap())
        .body(Body::default())
        .unwrap()
}

#[test]
fn thirty_two_threads_with_an_expired_token_cause_one_refresh() {
    let fake = fake();
    let server = fake.serve().unwrap();
    let instance = Instance::new(&server.base_url()).unwrap();
    let clock = fake.clone();
    let client = Arc::new(
        BlockingClient::new(UreqTransport::new(), instance.clone()).with_config(
            Config::builder()
                .timeout(Duration::from_secs(10))
                .clock(move || clock.now())
                .build(),
        ),
    );
    client
        .login(&Credentials::password("alice", "alice-pw"))
        .unwrap();
    fake.advance(Duration::from_secs(24 * 3600 + 1));

    let start = Arc::new(Barrier::new(CALLERS));
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (client, start, instance) = (client.clone(), start.clone(), instance.clone());
            std::thread::spawn(move || {
                start.wait();
                client.send_authorized(me(&instance)).map(|r| r.status())
            })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.join().unwrap().unwrap(), StatusCode::OK);
    }
    let counters = fake.counters();
    assert_eq!(counters.refreshes, 1);
    assert_eq!(counters.invalid_grants, 0);
    assert_eq!(counters.max_refreshes_per_token(), 1);
    assert_eq!(counters.me_requests, CALLERS as u64);
    assert_eq!(counters.live_sessions, 1);
}

#[test]
fn thirty_two_tasks_with_an_expired_token_cause_one_refresh() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let fake = fake();
    let server = fake.serve().unwrap();
    let instance = Instance::new(&server.base_url()).unwrap();
    let clock = fake.clone();
    runtime.block_on(async {
        let config = Config::builder()
            .timeout(Duration::from_secs(10))
            .clock(move || clock.now())
            .build();
        let client =
            Arc::new(AsyncClient::new(HyperTransport::new(), instance.clone()).with_config(config));
        client
            .login(&Credentials::password("alice", "alice-pw"))
            .await
            .unwrap();
        fake.advance(Duration::from_secs(24 * 3600 + 1));

        let start = Arc::new(tokio::sync::Barrier::new(CALLERS));
        let tasks: Vec<_> = (0..CALLERS)
            .map(|_| {
                let (client, start, instance) = (client.clone(), start.clone(), instance.clone());
                tokio::spawn(async move {
                    start.wait().await;
                    client
                        .send_authorized(me(&instance))
                        .await
                        .map(|r| r.status())
                })
            })
            .collect();
        for task in tasks {
            let status = tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("bounded")
                .unwrap()
                .unwrap();
            assert_eq!(status, StatusCode::OK);
        }
    });
    let counters = fake.counters();
    assert_eq!(counters.refreshes, 1);
    assert_eq!(counters.invalid_grants, 0);
    assert_eq!(counters.max_refreshes_per_token(), 1);
    assert_eq!(counters.me_requests, CALLERS as u64);
}

/// splitmix64: the seeded jitter of the race tests below.
fn jitter(seed: &mut u64) -> Duration {
    *seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *seed;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    Duration::from_micros((z ^ (z >> 31)) % 200)
}

/// The seed of a race test: `PEERTUBE_SESSION_RACE_SEED` to replay one, else the clock's.
fn race_seed() -> u64 {
    std::env::var("PEERTUBE_SESSION_RACE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

/// A transport over the fake in process that waits a seeded moment before each answer, so that
/// the callers' steps interleave differently from one seed to the next.
fn jittery(
    fake: &FakePeerTube,
    seed: u64,
) -> impl Fn(http::Request<Body>) -> Result<http::Response<Vec<u8>>, peertube_session::TransportError>
+ Send
+ Sync
+ 'static {
    let fake = fake.clone();
    let seed = std::sync::Mutex::new(seed);
    move |request| {
        let pause = jitter(&mut seed.lock().unwrap());
        std::thread::sleep(pause);
        Ok(fake.handle(&request))
    }
}

/// 32 callers need a refresh whose pair the server killed (the password changed): every one of
/// them gets `LoginRequired`, never `InvalidState` (a caller that found the session emptied by
/// the refusal mid-call). 20 rounds, seeded.
#[test]
fn every_caller_waiting_on_a_refused_refresh_gets_login_required() {
    let seed = race_seed();
    for round in 0..20u64 {
        let fake = fake();
        let clock = fake.clone();
        let client = Arc::new(
            BlockingClient::new(
                jittery(&fake, seed.wrapping_add(round)),
                Instance::new("http://127.0.0.1:9").unwrap(),
            )
            .with_config(Config::builder().clock(move || clock.now()).build()),
        );
        client
            .login(&Credentials::password("alice", "alice-pw"))
            .unwrap();
        // Dead on the server, good by the clock: each caller learns it from a 401.
        fake.change_password("alice", "new-pw");
        let start = Arc::new(Barrier::new(CALLERS));
        let callers: Vec<_> = (0..CALLERS)
            .map(|_| {
                let (client, start) = (client.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    let me = http::Request::get("/api/v1/users/me").body(()).unwrap();
                    client.send_authorized(me)
                })
            })
            .collect();
        for caller in callers {
            let outcome = caller.join().unwrap();
            assert!(
                matches!(outcome, Err(peertube_session::Error::LoginRequired(_))),
                "seed {seed}, round {round}: {outcome:?}"
            );
        }
        assert_eq!(
            fake.counters().invalid_grants,
            1,
            "seed {seed}, round {round}"
        );
    }
}

/// 64 threads, each access token dying after 20 calls (the fake's use count): 20,000 calls,
/// and none of them ends with `AccessTokenExpired` (a token found dead between the freshness
/// check and `authorize` is waited out). Seeded.
#[test]
fn under_heavy_churn_no_call_ends_with_access_token_expired() {
    let seed = race_seed();
    let fake = FakePeerTube::builder()
        .user(FakeUser::new("alice", "alice@example.org", "alice-pw"))
        .no_rate_limit()
        .access_token_uses(20)
        .build();
    let clock = fake.clone();
    let client = Arc::new(
        BlockingClient::new(
            jittery(&fake, seed),
            Instance::new("http://127.0.0.1:9").unwrap(),
        )
        .with_config(Config::builder().clock(move || clock.now()).build()),
    );
    client
        .login(&Credentials::password("alice", "alice-pw"))
        .unwrap();
    let callers: Vec<_> = (0..64)
        .map(|_| {
            let client = client.clone();
            std::thread::spawn(move || {
                let mut expired = 0;
                for _ in 0..(20_000 / 64) {
                    let me = http::Request::get("/api/v1/users/me").body(()).unwrap();
                    match client.send_authorized(me) {
                        Err(peertube_session::Error::AccessTokenExpired) => expired += 1,
                        Ok(_) => {}
                        Err(other) => panic!("seed {seed}: {other:?}"),
                    }
                }
                expired
            })
        })
        .collect();
    let expired: u32 = callers.into_iter().map(|c| c.join().unwrap()).sum();
    assert_eq!(expired, 0, "seed {seed}");
    assert_eq!(fake.counters().invalid_grants, 0, "seed {seed}");
}
