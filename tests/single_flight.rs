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
