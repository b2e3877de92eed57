//! One process's clients over a [`FaultyStore`] and the fake in process: the setup of the
//! suites that fault the store under a single process (`store_outages`, `store_under_lease`).
#![cfg(all(feature = "blocking-client", feature = "fake"))]
#![allow(dead_code)]

use super::faulty_store::FaultyStore;
use peertube_session::blocking::{BlockingClient, Config};
use peertube_session::fake::{FakePeerTube, FakeUser};
use peertube_session::{Body, Credentials, Instance, TransportError};
use std::sync::Arc;
use std::time::Duration;

/// The fake's access-token lifetime, in seconds.
pub const LIFETIME: u64 = 3600;

pub fn fake() -> FakePeerTube {
    FakePeerTube::builder()
        .user(FakeUser::new("alice", "alice@example.org", "alice-pw"))
        .no_rate_limit()
        .token_lifetimes(Duration::from_secs(LIFETIME), Duration::from_secs(7200))
        .build()
}

pub type Answer = Result<http::Response<Vec<u8>>, TransportError>;
pub type Transport = Box<dyn Fn(http::Request<Body>) -> Answer + Send + Sync>;

/// Whether `request` is a refresh (a token request with the refresh-token grant).
pub fn is_refresh(request: &http::Request<Body>) -> bool {
    String::from_utf8_lossy(request.body().as_ref()).contains("grant_type=refresh_token")
}

/// The fake in process; `before_refresh` runs when a refresh request arrives, before it is
/// answered.
pub fn transport(
    fake: &FakePeerTube,
    before_refresh: impl Fn() + Send + Sync + 'static,
) -> Transport {
    let fake = fake.clone();
    Box::new(move |request| {
        if is_refresh(&request) {
            before_refresh();
        }
        Ok(fake.handle(&request))
    })
}

pub fn client(fake: &FakePeerTube, store: &Arc<FaultyStore>, call_timeout: Duration) -> Client {
    hooked_client(fake, store, call_timeout, || {})
}

pub fn hooked_client(
    fake: &FakePeerTube,
    store: &Arc<FaultyStore>,
    call_timeout: Duration,
    before_refresh: impl Fn() + Send + Sync + 'static,
) -> Client {
    client_over(fake, store, call_timeout, transport(fake, before_refresh))
}

pub fn client_over(
    fake: &FakePeerTube,
    store: &Arc<FaultyStore>,
    call_timeout: Duration,
    transport: Transport,
) -> Client {
    let clock = fake.clone();
    let config = Config::builder()
        .clock(move || clock.now())
        .call_timeout(call_timeout)
        .build();
    BlockingClient::new(transport, Instance::new("http://127.0.0.1:9").unwrap())
        .with_config(config)
        .with_store(store.clone())
}

pub fn me() -> http::Request<()> {
    http::Request::get("/api/v1/users/me").body(()).unwrap()
}

pub fn login(client: &Client) {
    client
        .login(&Credentials::password("alice", "alice-pw"))
        .unwrap();
}

/// A call timeout that never ends a test's call.
pub const MINUTE: Duration = Duration::from_secs(60);

/// A client of this setup.
pub type Client = BlockingClient<Transport, Arc<FaultyStore>>;
