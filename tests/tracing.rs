//! What the drivers tell through `tracing` (feature `tracing`): a span per call with the
//! instance and the account, and the events a person needs to see what the session did, each
//! at its level. A capturing subscriber keeps them; every test also checks that no secret is in
//! any of them.
#![cfg(all(feature = "tracing", feature = "blocking-client", feature = "fake"))]

mod support;

#[path = "support/capture.rs"]
mod capture;

use capture::Capture;
use peertube_session::blocking::{BlockingClient, Config};
use peertube_session::fake::{FakePeerTube, FakeUser};
use peertube_session::store::MemoryStore;
use peertube_session::{Body, Credentials, Error, Instance, TransportError};
use std::sync::Arc;
use std::time::Duration;
use support::door::{Door, eventually, held_at, is_login};
use support::faulty_store::FaultyStore;
use tracing::Level;

const PASSWORD: &str = "alice-secret-pw";

fn fake() -> FakePeerTube {
    FakePeerTube::builder()
        .user(FakeUser::new("alice", "alice@example.org", PASSWORD))
        .no_rate_limit()
        .token_lifetimes(Duration::from_secs(3600), Duration::from_secs(7200))
        .build()
}

type Answer = Result<http::Response<Vec<u8>>, TransportError>;

fn transport(fake: &FakePeerTube) -> impl Fn(http::Request<Body>) -> Answer + Send + Sync {
    let fake = fake.clone();
    move |request| Ok(fake.handle(&request))
}

fn client(fake: &FakePeerTube) -> BlockingClient<impl peertube_session::blocking::Transport> {
    let clock = fake.clone();
    BlockingClient::new(
        transport(fake),
        Instance::new("http://127.0.0.1:9").unwrap(),
    )
    .with_config(Config::builder().clock(move || clock.now()).build())
}

/// A logged-in client of `store` with this exchange timeout and call deadline, its token
/// expired, and the store's lease held by another process.
fn due_with_the_lease_held(
    fake: &FakePeerTube,
    store: &Arc<FaultyStore>,
    timeout: Duration,
    call_timeout: Duration,
) -> BlockingClient<impl peertube_session::blocking::Transport, Arc<FaultyStore>> {
    let clock = fake.clone();
    let client = BlockingClient::new(
        transport(fake),
        Instance::new("http://127.0.0.1:9").unwrap(),
    )
    .with_config(
        Config::builder()
            .clock(move || clock.now())
            .timeout(timeout)
            .call_timeout(call_timeout)
            .build(),
    )
    .with_store(store.clone());
    log_in(&client);
    fake.advance(Duration::from_secs(3600));
    store
        .lease_taken
        .store(true, std::sync::atomic::Ordering::SeqCst);
    client
}

/// Two clients sharing a memory store: `a` logged in, `b` took its pair with one call.
fn two_sharing(
    fake: &FakePeerTube,
) -> (
    BlockingClient<impl peertube_session::blocking::Transport, Arc<MemoryStore>>,
    BlockingClient<impl peertube_session::blocking::Transport, Arc<MemoryStore>>,
) {
    let store = Arc::new(MemoryStore::new());
    let (a, b) = (
        client(fake).with_store(store.clone()),
        client(fake).with_store(store),
    );
    log_in(&a);
    assert_eq!(b.send_authorized(me()).unwrap().status(), 200);
    (a, b)
}

fn me() -> http::Request<()> {
    http::Request::get("/api/v1/users/me").body(()).unwrap()
}

fn log_in(
    client: &BlockingClient<
        impl peertube_session::blocking::Transport,
        impl peertube_session::store::SessionStore,
    >,
) {
    client
        .login(&Credentials::password("alice", PASSWORD))
        .unwrap();
}

/// No event or span field holds the password, a token or the client secret the fake handed
/// out (the fake's secrets are the ones in the session the client saved).
fn assert_no_secret(
    capture: &Capture,
    client: &BlockingClient<
        impl peertube_session::blocking::Transport,
        impl peertube_session::store::SessionStore,
    >,
) {
    let saved = serde_json::to_string(&client.save()).unwrap();
    let saved: serde_json::Value = serde_json::from_str(&saved).unwrap();
    let mut secrets = vec![PASSWORD.to_owned()];
    collect_strings(&saved, &mut secrets);
    secrets.retain(|s| s.len() >= 12 && !s.starts_with("http"));
    for event in capture.events() {
        let text = event.text();
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "a secret in: {text}");
        }
    }
}

fn collect_strings(value: &serde_json::Value, into: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) => into.push(s.clone()),
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_strings(v, into)),
        serde_json::Value::Object(map) => map.values().for_each(|v| collect_strings(v, into)),
        _ => {}
    }
}

#[test]
fn a_login_and_a_refresh_by_the_clock_tell_what_they_did_in_spans_with_host_and_account() {
    let fake = fake();
    let client = client(&fake);
    let capture = Capture::new();
    capture.during(|| {
        log_in(&client);
        // Inside the refresh margin (60 s), still usable: refreshed ahead of time.
        fake.advance(Duration::from_secs(3590));
        client.ensure_fresh().unwrap();
    });
    let logging_in = capture.one("logging in");
    assert_eq!(logging_in.level, Level::INFO);
    assert_eq!(logging_in.target, "peertube_session");
    let span = logging_in.in_span("login").expect("in the login span");
    assert!(
        span.contains(&("host".into(), "127.0.0.1:9".into())),
        "{span:?}"
    );
    assert!(
        span.contains(&("account".into(), "alice".into())),
        "{span:?}"
    );
    assert_eq!(capture.one("logged in").level, Level::INFO);

    let sent = capture.one("refresh sent");
    assert_eq!(sent.level, Level::DEBUG);
    assert_eq!(sent.field("why"), Some("due by the clock (still usable)"));
    assert!(sent.in_span("refresh").is_some(), "{}", sent.text());
    assert!(capture.one("refresh lease taken").field("fence").is_some());
    let answered: Vec<_> = capture
        .find("answered")
        .into_iter()
        .filter(|e| e.field("operation") == Some("refresh"))
        .collect();
    assert_eq!(answered.len(), 1, "{}", capture.listing());
    assert!(answered[0].field("took_ms").is_some());
    assert!(
        capture
            .one("the new pair: saved")
            .field("version")
            .is_some()
    );
    assert_eq!(
        capture.one("refresh done").field("outcome"),
        Some("ok"),
        "{}",
        capture.listing()
    );
    assert_no_secret(&capture, &client);
}

#[test]
fn a_401_tells_that_the_token_was_dead_and_the_refresh_why() {
    let fake = FakePeerTube::builder()
        .user(FakeUser::new("alice", "alice@example.org", PASSWORD))
        .no_rate_limit()
        .access_token_uses(1)
        .build();
    let client = client(&fake);
    let capture = Capture::new();
    capture.during(|| {
        log_in(&client);
        assert_eq!(client.send_authorized(me()).unwrap().status(), 200);
        assert_eq!(client.send_authorized(me()).unwrap().status(), 200);
    });
    let dead = capture.one("401 invalid_token");
    assert_eq!(dead.field("sends"), Some("1"));
    assert!(dead.in_span("send_authorized").is_some());
    assert_eq!(
        capture.one("refresh sent").field("why"),
        Some("refused by the server (401)")
    );
    assert_no_secret(&capture, &client);
}

#[test]
fn a_client_that_takes_the_pair_another_saved_says_so() {
    let fake = fake();
    let (a, b) = two_sharing(&fake);
    fake.advance(Duration::from_secs(3600));
    a.ensure_fresh().unwrap();
    let capture = Capture::new();
    capture.during(|| {
        // Expired here too: the store's newer pair is taken, no refresh sent.
        assert_eq!(b.send_authorized(me()).unwrap().status(), 200);
    });
    let took = capture.one("took the pair another process saved");
    assert_eq!(took.level, Level::DEBUG);
    assert_eq!(took.field("refreshes"), Some("1"));
    assert!(
        capture.find("refresh sent").is_empty(),
        "{}",
        capture.listing()
    );
    assert_eq!(fake.counters().refreshes, 1);
    assert_no_secret(&capture, &b);
}

#[test]
fn a_logout_seen_from_another_client_is_told_at_info() {
    let fake = fake();
    let (a, b) = two_sharing(&fake);
    let capture = Capture::new();
    capture.during(|| {
        a.logout().unwrap();
        // Past the store's read interval.
        std::thread::sleep(Duration::from_millis(300));
        assert!(b.send_authorized(me()).is_err());
    });
    assert_eq!(capture.one("logged out:").level, Level::INFO);
    let seen = capture.one("logged out by another process");
    assert_eq!(seen.level, Level::INFO);
    assert!(seen.in_span("send_authorized").is_some());
}

#[test]
fn a_refused_refresh_is_a_warning_with_the_code() {
    let fake = fake();
    let client = client(&fake);
    log_in(&client);
    fake.change_password("alice", "new-pw");
    fake.advance(Duration::from_secs(3600));
    let capture = Capture::new();
    capture.during(|| {
        assert!(matches!(
            client.ensure_fresh(),
            Err(Error::LoginRequired(_))
        ));
    });
    let refused = capture.one("the refresh was refused");
    assert_eq!(refused.level, Level::WARN);
    assert_eq!(refused.field("status"), Some("400"));
    assert_eq!(refused.field("code"), Some("invalid_grant"));
    let fenced = capture.one("refresh refused (invalid_grant)");
    assert_eq!(fenced.level, Level::WARN);
    assert_eq!(fenced.field("ends_the_others"), Some("true"));
    assert_no_secret(&capture, &client);
}

#[test]
fn a_store_that_fails_is_a_warning_and_the_call_goes_on() {
    let fake = fake();
    let store = FaultyStore::new();
    let client = client(&fake).with_store(store.clone());
    log_in(&client);
    store.away.store(true, std::sync::atomic::Ordering::SeqCst);
    let capture = Capture::new();
    capture.during(|| {
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(client.send_authorized(me()).unwrap().status(), 200);
    });
    let failed = capture.one("the store could not be read");
    assert_eq!(failed.level, Level::WARN);
    assert!(
        failed
            .field("error")
            .is_some_and(|e| e.contains("store away")),
        "{}",
        failed.text()
    );
}

#[test]
fn a_lease_held_elsewhere_for_the_whole_call_is_a_warning() {
    let fake = fake();
    let store = FaultyStore::new();
    let client = due_with_the_lease_held(
        &fake,
        &store,
        Duration::from_secs(30),
        Duration::from_millis(300),
    );
    let capture = Capture::new();
    capture.during(|| assert!(client.ensure_fresh().is_err()));
    let timed_out = capture.one("no refresh lease before the call's deadline");
    assert_eq!(timed_out.level, Level::WARN);
    assert!(timed_out.field("waited_ms").is_some());
}

#[test]
fn a_caller_that_waited_for_another_callers_refresh_says_so() {
    let fake = fake();
    let server = fake.clone();
    let (entered, go) = (
        Arc::new(std::sync::Barrier::new(2)),
        Arc::new(std::sync::Barrier::new(2)),
    );
    let (hold_entered, hold_go) = (entered.clone(), go.clone());
    let clock = fake.clone();
    let client = Arc::new(
        BlockingClient::new(
            move |request: http::Request<Body>| {
                if request.uri().path() == "/api/v1/users/token"
                    && String::from_utf8_lossy(request.body().as_bytes()).contains("refresh_token")
                {
                    // The refresh is out: the other caller comes now, and waits for it.
                    hold_entered.wait();
                    hold_go.wait();
                }
                Ok(server.handle(&request))
            },
            Instance::new("http://127.0.0.1:9").unwrap(),
        )
        .with_config(Config::builder().clock(move || clock.now()).build()),
    );
    log_in(&client);
    fake.advance(Duration::from_secs(3600));
    let capture = Capture::new();
    let leader = {
        let (client, capture) = (client.clone(), capture.clone());
        std::thread::spawn(move || capture.during(|| client.ensure_fresh()))
    };
    entered.wait();
    let waiter = {
        let (client, capture) = (client.clone(), capture.clone());
        std::thread::spawn(move || capture.during(|| client.ensure_fresh()))
    };
    // Time for the waiter to join the refresh in the air.
    std::thread::sleep(Duration::from_millis(200));
    go.wait();
    leader.join().unwrap().unwrap();
    waiter.join().unwrap().unwrap();
    let waited = capture.one("waited for another caller's refresh");
    assert_eq!(waited.field("outcome"), Some("ok"), "{}", capture.listing());
    assert_eq!(capture.find("refresh sent").len(), 1);
    assert_eq!(fake.counters().refreshes, 1);
}

#[test]
fn a_login_asked_for_a_two_factor_code_and_a_wrong_password_say_so() {
    const SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    let fake = FakePeerTube::builder()
        .user(FakeUser::new("bob", "bob@example.org", PASSWORD).with_totp(SECRET))
        .no_rate_limit()
        .build();
    let client = client(&fake);
    let capture = Capture::new();
    capture.during(|| {
        let asked = client.login(&Credentials::password("bob", PASSWORD));
        assert!(matches!(asked, Err(Error::TwoFactorRequired(_))));
        let wrong = client.login(&Credentials::password("bob", "not-the-password"));
        assert!(wrong.is_err());
    });
    assert_eq!(
        capture.one("the server asks for a two-factor code").level,
        Level::INFO
    );
    let refused = capture
        .find("refused")
        .into_iter()
        .find(|e| e.field("operation") == Some("login"))
        .unwrap_or_else(|| panic!("{}", capture.listing()));
    assert_eq!(refused.level, Level::INFO);
    assert_eq!(refused.field("status"), Some("400"));
    assert!(refused.in_span("login").is_some());
    for event in capture.events() {
        assert!(
            !event.text().contains("not-the-password"),
            "{}",
            event.text()
        );
        assert!(!event.text().contains(PASSWORD), "{}", event.text());
    }
}

#[test]
fn a_lease_taken_once_its_holders_time_ran_out_is_a_warning() {
    let fake = fake();
    let store = FaultyStore::new();
    // An exchange timeout of 100 ms: a live holder gives the lease back within it.
    // Held by a process that is gone, until its time runs out 400 ms from now.
    let client = due_with_the_lease_held(
        &fake,
        &store,
        Duration::from_millis(100),
        Duration::from_secs(5),
    );
    let freed = {
        let store = store.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(400));
            store
                .lease_taken
                .store(false, std::sync::atomic::Ordering::SeqCst);
        })
    };
    let capture = Capture::new();
    capture.during(|| client.ensure_fresh().unwrap());
    freed.join().unwrap();
    let taken = capture.one("refresh lease taken once its time ran out");
    assert_eq!(taken.level, Level::WARN);
    assert!(
        taken
            .field("waited_ms")
            .and_then(|ms| ms.parse::<u64>().ok())
            .is_some_and(|ms| ms >= 300),
        "{}",
        taken.text()
    );
}

/// A client whose refreshes the server answers with `status` (and `Retry-After: 300`).
fn client_refused_with(
    fake: &FakePeerTube,
    status: u16,
) -> BlockingClient<impl peertube_session::blocking::Transport> {
    let (server, clock) = (fake.clone(), fake.clone());
    BlockingClient::new(
        move |request: http::Request<Body>| {
            let refresh = request.uri().path() == "/api/v1/users/token"
                && String::from_utf8_lossy(request.body().as_bytes()).contains("refresh_token");
            if refresh {
                return Ok(http::Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .header("retry-after", "300")
                    .body(br#"{"error":"no"}"#.to_vec())
                    .unwrap());
            }
            Ok(server.handle(&request))
        },
        Instance::new("http://127.0.0.1:9").unwrap(),
    )
    .with_config(Config::builder().clock(move || clock.now()).build())
}

#[test]
fn a_429_and_a_server_error_on_refresh_are_warnings_with_what_to_wait() {
    for (status, message) in [(429, "rate limited"), (500, "refused")] {
        let fake = fake();
        let client = client_refused_with(&fake, status);
        log_in(&client);
        fake.advance(Duration::from_secs(3600));
        let capture = Capture::new();
        capture.during(|| assert!(client.ensure_fresh().is_err()));
        let event = capture
            .find(message)
            .into_iter()
            .find(|e| e.field("operation") == Some("refresh"))
            .unwrap_or_else(|| panic!("{status}: {}", capture.listing()));
        assert_eq!(event.level, Level::WARN, "{}", event.text());
        assert_eq!(event.field("status"), Some(status.to_string().as_str()));
        if status == 429 {
            assert_eq!(event.field("retry_after_s"), Some("300"));
        } else {
            assert_eq!(event.field("error"), Some("server"));
        }
    }
}

#[test]
fn an_api_call_that_fails_on_the_way_is_a_warning_with_its_kind() {
    let fake = fake();
    let server = fake.clone();
    let clock = fake.clone();
    let client = BlockingClient::new(
        move |request: http::Request<Body>| {
            if request.uri().path() == "/api/v1/users/me" {
                return Err(TransportError::of_kind(
                    peertube_session::TransportErrorKind::ConnectionClosed,
                ));
            }
            Ok(server.handle(&request))
        },
        Instance::new("http://127.0.0.1:9").unwrap(),
    )
    .with_config(Config::builder().clock(move || clock.now()).build());
    log_in(&client);
    let capture = Capture::new();
    capture.during(|| assert!(client.send_authorized(me()).is_err()));
    let failed = capture.one("the authorized request failed on the way");
    assert_eq!(failed.level, Level::WARN);
    assert!(failed.field("kind").is_some(), "{}", failed.text());
    assert!(failed.in_span("send_authorized").is_some());
}

/// A login answer made stale in flight (the client pair was fetched again meanwhile) is told
/// as a stale answer at `debug`, not as a refusal: the server refused nothing, and the pair it
/// carried is revoked.
#[test]
fn a_login_answer_made_stale_in_flight_is_told_at_debug() {
    let fake = fake();
    let door = Arc::new(Door::default());
    let client = Arc::new(BlockingClient::new(
        held_at(&door, is_login, &fake),
        Instance::new("http://127.0.0.1:9").unwrap(),
    ));
    client.fetch_client().unwrap();
    let capture = Capture::new();
    let login = {
        let (client, capture) = (client.clone(), capture.clone());
        std::thread::spawn(move || {
            capture.during(|| client.login(&Credentials::password("alice", PASSWORD)))
        })
    };
    eventually("the login at the server", || door.arrived() == 1);
    client.fetch_client().unwrap();
    door.open();
    assert!(matches!(
        login.join().unwrap(),
        Err(Error::StaleResponse(_))
    ));
    let stale = capture
        .find("answered")
        .into_iter()
        .find(|e| e.field("operation") == Some("login"))
        .unwrap_or_else(|| panic!("{}", capture.listing()));
    assert_eq!(stale.level, Level::DEBUG);
    assert_eq!(stale.field("error"), Some("stale_response"));
    assert!(capture.find("refused").is_empty(), "{}", capture.listing());
    assert_eq!(fake.counters().revocations, 1);
    assert_no_secret(&capture, &client);
}
