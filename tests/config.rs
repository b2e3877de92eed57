//! One configuration value per client: every setting takes effect, in both drivers. The
//! transports are closures around the fake's in-process model that record what each request
//! carries.
#![cfg(all(feature = "ureq", feature = "hyper", feature = "fake"))]

use http::{HeaderValue, StatusCode};
use peertube_session::asynchronous::AsyncClient;
use peertube_session::blocking::{
    BlockingClient, CallDeadline, Config, DEFAULT_USER_AGENT, ExchangeLimits,
};
use peertube_session::fake::{FakePeerTube, FakeUser};
use peertube_session::{Body, Credentials, Error, Instance, TransportError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn fake() -> FakePeerTube {
    FakePeerTube::builder()
        .user(FakeUser::new("alice", "alice@example.org", "alice-pw"))
        .no_rate_limit()
        .token_lifetimes(Duration::from_secs(3600), Duration::from_secs(7200))
        .build()
}

fn instance() -> Instance {
    Instance::new("http://127.0.0.1:9").unwrap()
}

fn alice() -> Credentials {
    Credentials::password("alice", "alice-pw")
}

/// What one request carried to the transport.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    path: String,
    user_agent: Option<HeaderValue>,
    limits: Option<ExchangeLimits>,
    has_deadline: bool,
}

type Log = Arc<Mutex<Vec<Seen>>>;

type Answer = Result<http::Response<Vec<u8>>, TransportError>;

fn recording(
    fake: &FakePeerTube,
) -> (
    Log,
    impl Fn(http::Request<Body>) -> Answer + Clone + Send + Sync + 'static,
) {
    let log = Log::default();
    let (fake, seen) = (fake.clone(), log.clone());
    let transport = move |request: http::Request<Body>| {
        seen.lock().unwrap().push(Seen {
            path: request.uri().path().to_owned(),
            user_agent: request.headers().get(http::header::USER_AGENT).cloned(),
            limits: request.extensions().get::<ExchangeLimits>().copied(),
            has_deadline: request.extensions().get::<CallDeadline>().is_some(),
        });
        Ok(fake.handle(&request))
    };
    (log, transport)
}

fn config(fake: &FakePeerTube) -> Config {
    let clock = fake.clone();
    Config::builder()
        .timeout(Duration::from_secs(7))
        .body_limit(12_345)
        .user_agent(HeaderValue::from_static("uploader/2.1"))
        .clock(move || clock.now())
        .build()
}

fn me(user_agent: Option<&'static str>) -> http::Request<()> {
    let mut request = http::Request::get("/api/v1/users/me");
    if let Some(user_agent) = user_agent {
        request = request.header(http::header::USER_AGENT, user_agent);
    }
    request.body(()).unwrap()
}

/// Every request got the configured limits and a deadline; the configured `User-Agent` went
/// on every request but the one that had its own.
fn assert_carried(log: &Log) {
    let seen = log.lock().unwrap().clone();
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/api/v1/oauth-clients/local",
            "/api/v1/users/token",
            "/api/v1/users/me",
            "/api/v1/users/me",
            "/api/v1/users/revoke-token",
        ]
    );
    for (i, request) in seen.iter().enumerate() {
        let expected = if i == 3 { "mine/1.0" } else { "uploader/2.1" };
        assert_eq!(request.user_agent, Some(HeaderValue::from_static(expected)));
        assert_eq!(
            request.limits,
            Some(ExchangeLimits::new(Duration::from_secs(7), 12_345))
        );
        assert!(request.has_deadline, "{request:?}");
    }
}

#[test]
fn every_request_of_the_blocking_client_carries_the_configuration() {
    let fake = fake();
    let (log, transport) = recording(&fake);
    let client = BlockingClient::new(transport, instance()).with_config(config(&fake));
    client.login(&alice()).unwrap();
    assert_eq!(
        client.send_authorized(me(None)).unwrap().status(),
        StatusCode::OK
    );
    let own = client.send_authorized(me(Some("mine/1.0"))).unwrap();
    assert_eq!(own.status(), StatusCode::OK);
    client.logout().unwrap();
    assert_carried(&log);
    assert_eq!(client.config().timeout(), Duration::from_secs(7));
}

#[test]
fn every_request_of_the_async_client_carries_the_configuration() {
    let fake = fake();
    let (log, transport) = recording(&fake);
    let transport = move |request| std::future::ready(transport(request));
    let client = AsyncClient::new(transport, instance()).with_config(config(&fake));
    pollster::block_on(async {
        client.login(&alice()).await.unwrap();
        let answer = client.send_authorized(me(None)).await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        let own = client.send_authorized(me(Some("mine/1.0"))).await.unwrap();
        assert_eq!(own.status(), StatusCode::OK);
        client.logout().await.unwrap();
    });
    assert_carried(&log);
    assert_eq!(client.config().body_limit(), 12_345);
}

#[test]
fn by_default_requests_name_this_crate_and_carry_the_default_limits() {
    assert_eq!(
        DEFAULT_USER_AGENT,
        format!("peertube-session/{}", env!("CARGO_PKG_VERSION"))
    );
    let fake = fake();
    let (log, transport) = recording(&fake);
    let client = BlockingClient::new(transport, instance());
    client.login(&alice()).unwrap();
    for request in log.lock().unwrap().iter() {
        assert_eq!(
            request.user_agent,
            Some(HeaderValue::from_static(DEFAULT_USER_AGENT))
        );
        assert_eq!(request.limits, Some(ExchangeLimits::default()));
        assert_eq!(
            request.limits,
            Some(ExchangeLimits::new(Duration::from_secs(30), 64 * 1024))
        );
    }
    let defaults = client.config();
    assert_eq!(defaults.call_timeout(), Duration::from_secs(60));
    assert_eq!(defaults.refresh_margin(), Duration::from_secs(60));
    assert_eq!(defaults.user_agent(), DEFAULT_USER_AGENT);
}

#[test]
fn the_configured_body_limit_bounds_what_the_session_reads() {
    let fake = fake();
    let (_, transport) = recording(&fake);
    let size = fake
        .handle(
            &http::Request::get("/api/v1/oauth-clients/local")
                .body(Vec::new())
                .unwrap(),
        )
        .body()
        .len();
    for (limit, fits) in [(size, true), (size - 1, false)] {
        let config = Config::builder().body_limit(limit).build();
        let client = BlockingClient::new(transport.clone(), instance()).with_config(config);
        match client.fetch_client() {
            Ok(()) => assert!(fits),
            Err(Error::ResponseTooLarge { limit: seen, .. }) => {
                assert!(!fits);
                assert_eq!(seen, limit);
            }
            Err(other) => panic!("{other:?}"),
        }
    }
}

#[test]
fn the_configured_refresh_margin_decides_when_a_refresh_is_due() {
    // 3100 s into a 3600 s token: due with a 600 s margin, not with the default 60 s.
    for (margin, refreshes) in [(None, 0), (Some(Duration::from_secs(600)), 1)] {
        let fake = fake();
        let (_, transport) = recording(&fake);
        let clock = fake.clone();
        let mut config = Config::builder().clock(move || clock.now());
        if let Some(margin) = margin {
            config = config.refresh_margin(margin);
        }
        let client = BlockingClient::new(transport, instance()).with_config(config.build());
        client.login(&alice()).unwrap();
        fake.advance(Duration::from_secs(3100));
        client.access_token().unwrap();
        assert_eq!(fake.counters().refreshes, refreshes, "margin {margin:?}");
    }
}

#[test]
fn the_configuration_is_readable_and_prints_no_clock() {
    let config = Config::builder()
        .call_timeout(Duration::from_secs(5))
        .build();
    assert_eq!(config.call_timeout(), Duration::from_secs(5));
    // What the drivers ask of every exchange, for a transport of the caller's to read too.
    assert_eq!(
        self::config(&fake()).exchange_limits(),
        ExchangeLimits::new(Duration::from_secs(7), 12_345)
    );
    let printed = format!("{config:?}");
    assert!(printed.contains("call_timeout: 5s"), "{printed}");
    assert!(printed.contains(DEFAULT_USER_AGENT), "{printed}");
    let client = BlockingClient::new(recording(&fake()).1, instance()).with_config(config);
    assert!(format!("{client:?}").contains("call_timeout: 5s"));
}
