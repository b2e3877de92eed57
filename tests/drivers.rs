//! The blocking (ureq) and async (hyper) drivers pass the same behavioural list against the
//! fake PeerTube on loopback. Every test is bounded: transports time out after a few seconds.
#![cfg(all(feature = "ureq", feature = "hyper", feature = "fake"))]

#[macro_use]
mod support;

use http::StatusCode;
#[cfg(feature = "reqwest")]
use peertube_session::asynchronous::ReqwestTransport;
use peertube_session::asynchronous::{AsyncClient, AsyncTransport, HttpsConnector, HyperTransport};
use peertube_session::blocking::Config;
use peertube_session::blocking::{BlockingClient, UreqTransport};
use peertube_session::fake::{FakePeerTube, FakeUser, Fault, totp};
use peertube_session::{
    Body, Credentials, Error, Instance, SavedSession, Session, State, TransportErrorKind,
};
use std::time::Duration;
use support::Served as Setup;

const TOTP_SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const TIMEOUT: Duration = Duration::from_secs(5);

/// One interface over both drivers, so each scenario is written once.
trait Driver {
    fn login(&self, credentials: &Credentials) -> Result<(), Error>;
    fn login_with_otp(&self, credentials: &Credentials, otp: Option<String>) -> Result<(), Error>;
    fn send_authorized(
        &self,
        request: http::Request<Body>,
    ) -> Result<http::Response<Vec<u8>>, Error>;
    fn ensure_fresh(&self) -> Result<(), Error>;
    fn logout(&self) -> Result<Option<String>, Error>;
    fn state(&self) -> State;
    fn save(&self) -> SavedSession;
}

impl Driver for BlockingClient<UreqTransport> {
    fn login(&self, credentials: &Credentials) -> Result<(), Error> {
        BlockingClient::login(self, credentials)
    }
    fn login_with_otp(&self, credentials: &Credentials, otp: Option<String>) -> Result<(), Error> {
        self.login_with_otp_prompt(credentials, || otp)
    }
    fn send_authorized(
        &self,
        request: http::Request<Body>,
    ) -> Result<http::Response<Vec<u8>>, Error> {
        BlockingClient::send_authorized(self, request)
    }
    fn ensure_fresh(&self) -> Result<(), Error> {
        BlockingClient::ensure_fresh(self)
    }
    fn logout(&self) -> Result<Option<String>, Error> {
        BlockingClient::logout(self).map(|answer| answer.redirect_url)
    }
    fn state(&self) -> State {
        BlockingClient::state(self)
    }
    fn save(&self) -> SavedSession {
        BlockingClient::save(self)
    }
}

struct Async<T = HyperTransport<HttpsConnector>> {
    runtime: tokio::runtime::Runtime,
    client: AsyncClient<T>,
}

impl<T: AsyncTransport> Driver for Async<T> {
    fn login(&self, credentials: &Credentials) -> Result<(), Error> {
        self.runtime.block_on(self.client.login(credentials))
    }
    fn login_with_otp(&self, credentials: &Credentials, otp: Option<String>) -> Result<(), Error> {
        self.runtime.block_on(
            self.client
                .login_with_otp_prompt(credentials, || async { otp }),
        )
    }
    fn send_authorized(
        &self,
        request: http::Request<Body>,
    ) -> Result<http::Response<Vec<u8>>, Error> {
        self.runtime.block_on(self.client.send_authorized(request))
    }
    fn ensure_fresh(&self) -> Result<(), Error> {
        self.runtime.block_on(self.client.ensure_fresh())
    }
    fn logout(&self) -> Result<Option<String>, Error> {
        self.runtime
            .block_on(self.client.logout())
            .map(|answer| answer.redirect_url)
    }
    fn state(&self) -> State {
        self.client.state()
    }
    fn save(&self) -> SavedSession {
        self.client.save()
    }
}

impl Setup {
    fn me(&self) -> http::Request<Body> {
        http::Request::get(self.instance().uri("/api/v1/users/me").unwrap())
            .body(Body::default())
            .unwrap()
    }
}

fn standard_fake() -> FakePeerTube {
    FakePeerTube::builder()
        .user(FakeUser::new("alice", "alice@example.org", "alice-pw"))
        .user(FakeUser::new("bob", "bob@example.org", "bob-pw").with_totp(TOTP_SECRET))
        .token_lifetimes(Duration::from_secs(3600), Duration::from_secs(7200))
        .build()
}

fn blocking(setup: &Setup, session: Session) -> BlockingClient<UreqTransport> {
    let fake = setup.fake.clone();
    BlockingClient::from_session(UreqTransport::new(), session).with_config(
        Config::builder()
            .timeout(TIMEOUT)
            .clock(move || fake.now())
            .build(),
    )
}

fn asynchronous(setup: &Setup, session: Session) -> Async {
    over(setup, session, HyperTransport::new)
}

#[cfg(feature = "reqwest")]
fn over_reqwest(setup: &Setup, session: Session) -> Async<ReqwestTransport> {
    over(setup, session, ReqwestTransport::new)
}

/// The async driver over the transport `make` gives (made on the driver's runtime).
fn over<T: AsyncTransport>(setup: &Setup, session: Session, make: fn() -> T) -> Async<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let fake = setup.fake.clone();
    let transport = runtime.block_on(async { make() });
    let client = AsyncClient::from_session(transport, session).with_config(
        Config::builder()
            .timeout(TIMEOUT)
            .clock(move || fake.now())
            .build(),
    );
    Async { runtime, client }
}

fn alice() -> Credentials {
    Credentials::password("alice", "alice-pw")
}

// ----- scenarios, each run with both drivers -----

fn full_session<D: Driver>(make: fn(&Setup, Session) -> D) {
    let setup = Setup::new(standard_fake());
    let driver = make(&setup, Session::new(setup.instance()));
    assert_eq!(driver.state(), State::NoClient);
    driver.login(&alice()).unwrap();
    assert_eq!(driver.state(), State::LoggedIn);
    let answer = driver.send_authorized(setup.me()).unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert!(String::from_utf8_lossy(answer.body()).contains("\"username\":\"alice\""));
    setup.fake.advance(Duration::from_secs(3600 - 30));
    driver.ensure_fresh().unwrap();
    assert_eq!(setup.fake.counters().refreshes, 1);
    assert_eq!(
        driver.send_authorized(setup.me()).unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(driver.logout().unwrap(), None);
    assert_eq!(driver.state(), State::Revoked);
    let counters = setup.fake.counters();
    assert_eq!(
        (
            counters.client_requests,
            counters.logins,
            counters.refreshes,
            counters.revocations
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(counters.live_sessions, 0);
    assert_eq!(counters.max_refreshes_per_token(), 1);
}

fn two_factor_with_a_real_totp<D: Driver>(make: fn(&Setup, Session) -> D) {
    let setup = Setup::new(standard_fake());
    let driver = make(&setup, Session::new(setup.instance()));
    let bob = Credentials::password("bob", "bob-pw");
    assert!(matches!(
        driver.login(&bob),
        Err(Error::TwoFactorRequired(_))
    ));
    assert!(matches!(
        driver.login_with_otp(&bob, None),
        Err(Error::TwoFactorRequired(_))
    ));
    assert!(matches!(
        driver.login_with_otp(&bob, Some("000000".into())),
        Err(Error::InvalidTwoFactor(_))
    ));
    let code = totp(TOTP_SECRET, setup.fake.now()).unwrap();
    driver.login_with_otp(&bob, Some(code)).unwrap();
    assert_eq!(driver.state(), State::LoggedIn);
}

fn wrong_password<D: Driver>(make: fn(&Setup, Session) -> D) {
    let setup = Setup::new(standard_fake());
    let driver = make(&setup, Session::new(setup.instance()));
    let error = driver
        .login(&Credentials::password("alice", "nope"))
        .unwrap_err();
    assert!(matches!(error, Error::BadCredentials(_)), "{error:?}");
    assert_eq!(error.status(), Some(StatusCode::BAD_REQUEST));
    assert_eq!(driver.state(), State::HaveClient);
}

fn rate_limited_login_is_not_retried<D: Driver>(make: fn(&Setup, Session) -> D) {
    let fake = FakePeerTube::builder()
        .user(FakeUser::new("alice", "alice@example.org", "alice-pw"))
        .login_rate_limit(1, Duration::from_secs(300))
        .build();
    let setup = Setup::new(fake);
    let driver = make(&setup, Session::new(setup.instance()));
    assert!(
        driver
            .login(&Credentials::password("alice", "nope"))
            .is_err()
    );
    let error = driver.login(&alice()).unwrap_err();
    assert!(matches!(error, Error::RateLimited(_)), "{error:?}");
    assert_eq!(error.retry_after(), Some(Duration::from_secs(300)));
    assert_eq!(setup.fake.counters().token_requests, 2);
}

fn expired_access_token_is_refreshed_transparently<D: Driver>(make: fn(&Setup, Session) -> D) {
    let setup = Setup::new(standard_fake());
    let driver = make(&setup, Session::new(setup.instance()));
    driver.login(&alice()).unwrap();
    setup.fake.advance(Duration::from_secs(3601));
    assert_eq!(
        driver.send_authorized(setup.me()).unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(setup.fake.counters().refreshes, 1);
}

fn a_token_killed_on_the_server_is_refreshed_and_the_call_retried<D: Driver>(
    make: fn(&Setup, Session) -> D,
) {
    let setup = Setup::new(standard_fake());
    let driver = make(&setup, Session::new(setup.instance()));
    driver.login(&alice()).unwrap();
    // The client still thinks its token is fine; the server answers 401 invalid_token.
    let mut saved = driver.save();
    saved.tokens.as_mut().unwrap().access_token = "0000000000000000000000000000000000000000".into();
    let driver = make(&setup, Session::restore(saved).unwrap());
    assert_eq!(
        driver.send_authorized(setup.me()).unwrap().status(),
        StatusCode::OK
    );
    let counters = setup.fake.counters();
    assert_eq!((counters.me_requests, counters.refreshes), (2, 1));
}

fn expired_refresh_token_means_log_in_again<D: Driver>(make: fn(&Setup, Session) -> D) {
    let setup = Setup::new(standard_fake());
    let driver = make(&setup, Session::new(setup.instance()));
    driver.login(&alice()).unwrap();
    setup.fake.advance(Duration::from_secs(7201));
    let error = driver.send_authorized(setup.me()).unwrap_err();
    assert!(matches!(error, Error::LoginRequired(_)), "{error:?}");
    assert_eq!(driver.state(), State::HaveClient);
    driver.login(&alice()).unwrap();
    assert_eq!(setup.fake.counters().client_requests, 1);
}

fn a_stalled_server_times_out<D: Driver>(make: fn(&Setup, Session) -> D) {
    let setup = Setup::new(standard_fake());
    setup
        .server
        .inject(None, Fault::Delay(Duration::from_secs(60)));
    let driver = make(&setup, Session::new(setup.instance()));
    let started = std::time::Instant::now();
    let error = driver.login(&alice()).unwrap_err();
    assert!(
        matches!(&error, Error::Transport(e) if e.kind() == TransportErrorKind::Timeout),
        "{error:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(driver.state(), State::NoClient);
}

fn a_body_over_the_cap_is_refused<D: Driver>(make: fn(&Setup, Session) -> D) {
    let setup = Setup::new(standard_fake());
    setup.fake.respond_once(
        None,
        StatusCode::OK,
        &[("content-type", "application/json")],
        vec![b' '; 200 * 1024],
    );
    let driver = make(&setup, Session::new(setup.instance()));
    let error = driver.login(&alice()).unwrap_err();
    assert!(
        matches!(&error, Error::Transport(e) if e.kind() == TransportErrorKind::BodyTooLarge),
        "{error:?}"
    );
}

fn a_connection_closed_mid_answer_is_a_transport_error<D: Driver>(make: fn(&Setup, Session) -> D) {
    let setup = Setup::new(standard_fake());
    setup
        .server
        .inject(Some("/api/v1/oauth-clients/local"), Fault::TruncateBody);
    let driver = make(&setup, Session::new(setup.instance()));
    let error = driver.login(&alice()).unwrap_err();
    assert!(
        matches!(&error, Error::Transport(e) if e.kind() == TransportErrorKind::ConnectionClosed),
        "{error:?}"
    );
    assert!(std::error::Error::source(&error).is_some());
    // The next attempt works.
    driver.login(&alice()).unwrap();
}

fn a_refused_connection_is_a_transport_error<D: Driver>(make: fn(&Setup, Session) -> D) {
    let setup = Setup::new(standard_fake());
    let instance = setup.instance();
    let Setup { fake, server } = setup;
    drop(server);
    let setup = Setup::new(fake);
    let driver = make(&setup, Session::new(instance));
    let error = driver.login(&alice()).unwrap_err();
    assert!(
        matches!(&error, Error::Transport(e) if e.kind() == TransportErrorKind::Connect),
        "{error:?}"
    );
}

fn a_redirect_to_another_host_is_not_followed<D: Driver>(make: fn(&Setup, Session) -> D) {
    let setup = Setup::new(standard_fake());
    let elsewhere = Setup::new(standard_fake());
    let driver = make(&setup, Session::new(setup.instance()));
    driver.login(&alice()).unwrap();
    let target = format!("{}/api/v1/users/me", elsewhere.server.base_url());
    setup.fake.respond_once(
        Some("/api/v1/users/me"),
        StatusCode::TEMPORARY_REDIRECT,
        &[("location", &target)],
        Vec::new(),
    );
    let answer = driver.send_authorized(setup.me()).unwrap();
    assert_eq!(answer.status(), StatusCode::TEMPORARY_REDIRECT);
    setup.fake.respond_once(
        Some("/api/v1/users/token"),
        StatusCode::PERMANENT_REDIRECT,
        &[("location", &target)],
        Vec::new(),
    );
    driver.logout().unwrap();
    let error = driver.login(&alice()).unwrap_err();
    assert_eq!(error.status(), Some(StatusCode::PERMANENT_REDIRECT));
    let seen = elsewhere.fake.counters();
    assert_eq!(
        seen.me_requests + seen.token_requests + seen.other_requests,
        0
    );
}

fn save_restore_continue<D: Driver>(make: fn(&Setup, Session) -> D) {
    let setup = Setup::new(standard_fake());
    let driver = make(&setup, Session::new(setup.instance()));
    driver.login(&alice()).unwrap();
    let text = serde_json::to_string(&driver.save()).unwrap();
    drop(driver);
    let restored = make(
        &setup,
        Session::restore(serde_json::from_str(&text).unwrap()).unwrap(),
    );
    assert_eq!(
        restored.send_authorized(setup.me()).unwrap().status(),
        StatusCode::OK
    );
    restored.logout().unwrap();
}

fn a_plugin_logout_redirect_is_returned<D: Driver>(make: fn(&Setup, Session) -> D) {
    let fake = FakePeerTube::builder()
        .user(
            FakeUser::new("erin", "erin@example.org", "erin-pw")
                .with_logout_redirect("https://sso.example.org/bye"),
        )
        .build();
    let setup = Setup::new(fake);
    let driver = make(&setup, Session::new(setup.instance()));
    driver
        .login(&Credentials::password("erin", "erin-pw"))
        .unwrap();
    assert_eq!(
        driver.logout().unwrap().as_deref(),
        Some("https://sso.example.org/bye")
    );
}

fn external_auth_login<D: Driver>(make: fn(&Setup, Session) -> D) {
    let setup = Setup::new(standard_fake());
    let driver = make(&setup, Session::new(setup.instance()));
    let token = setup.fake.issue_external_auth_token("alice");
    driver
        .login(&Credentials::external_auth("alice", token.as_str()))
        .unwrap();
    assert_eq!(driver.state(), State::LoggedIn);
    driver.logout().unwrap();
    // Single use: the same token is refused the second time, with PeerTube's plain `Error` code.
    let error = driver
        .login(&Credentials::external_auth("alice", token.as_str()))
        .unwrap_err();
    assert_eq!(
        error.code(),
        Some(&peertube_session::ErrorCode::PlainError),
        "{error:?}"
    );
}

fn a_user_blocked_mid_session_must_log_in_again<D: Driver>(make: fn(&Setup, Session) -> D) {
    let setup = Setup::new(standard_fake());
    let driver = make(&setup, Session::new(setup.instance()));
    driver.login(&alice()).unwrap();
    setup.fake.block_user("alice");
    // 401 invalid_token → one refresh → invalid_grant: the session drops its tokens.
    let error = driver.send_authorized(setup.me()).unwrap_err();
    assert!(matches!(error, Error::LoginRequired(_)), "{error:?}");
    assert_eq!(driver.state(), State::HaveClient);
    let error = driver.login(&alice()).unwrap_err();
    assert!(matches!(error, Error::AccountUnavailable(_)), "{error:?}");
}

with_both_drivers!(
    full_session,
    two_factor_with_a_real_totp,
    wrong_password,
    rate_limited_login_is_not_retried,
    expired_access_token_is_refreshed_transparently,
    a_token_killed_on_the_server_is_refreshed_and_the_call_retried,
    expired_refresh_token_means_log_in_again,
    a_stalled_server_times_out,
    a_body_over_the_cap_is_refused,
    a_connection_closed_mid_answer_is_a_transport_error,
    a_refused_connection_is_a_transport_error,
    a_redirect_to_another_host_is_not_followed,
    save_restore_continue,
    a_plugin_logout_redirect_is_returned,
    external_auth_login,
    a_user_blocked_mid_session_must_log_in_again,
);

// ----- async specifics -----

#[test]
fn async_client_futures_are_send() {
    fn assert_send<F: std::future::Future + Send>(_: F) {}
    let client = AsyncClient::new(
        |_: http::Request<Body>| async {
            Err(peertube_session::TransportError::of_kind(
                TransportErrorKind::Other,
            ))
        },
        Instance::new("https://video.example.org").unwrap(),
    );
    let credentials = alice();
    assert_send(client.login(&credentials));
    assert_send(client.login_with_otp_prompt(&credentials, || async { None }));
    assert_send(client.ensure_fresh());
    assert_send(client.access_token());
    assert_send(client.send_authorized(http::Request::new(Body::default())));
    assert_send(client.logout());
    assert_send(client.fetch_client());
}

#[test]
fn both_tls_stacks_can_live_in_one_process() {
    // hyper's rustls uses its own ring provider, never the process default: building both
    // transports (in either order) must not panic.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _ureq = UreqTransport::new();
    let _hyper = runtime.block_on(async { HyperTransport::new() });
    let _ureq_again = UreqTransport::new();
}

#[test]
fn requests_whose_token_other_callers_rotated_are_retried_with_the_new_token() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, OnceLock};

    let fake = standard_fake();
    let ahead = Arc::new(AtomicU64::new(0));
    type SharedTransport = Box<
        dyn Fn(
                http::Request<Body>,
            ) -> Result<http::Response<Vec<u8>>, peertube_session::TransportError>
            + std::marker::Send
            + Sync,
    >;
    let client_slot: Arc<OnceLock<Arc<BlockingClient<SharedTransport>>>> =
        Arc::new(OnceLock::new());
    let rotations_left = Arc::new(AtomicU64::new(2));
    let transport: SharedTransport = {
        let (fake, ahead, client_slot) = (fake.clone(), ahead.clone(), client_slot.clone());
        Box::new(move |request: http::Request<Body>| {
            if request.uri().path() == "/api/v1/users/me"
                && rotations_left.load(Ordering::SeqCst) > 0
            {
                // Another caller refreshes while this request is on its way: PeerTube kills
                // the access token it carries. Twice.
                rotations_left.fetch_sub(1, Ordering::SeqCst);
                ahead.fetch_add(7200, Ordering::SeqCst);
                client_slot.get().unwrap().ensure_fresh().unwrap();
            }
            Ok(fake.handle(&request))
        })
    };
    let clock = {
        let (fake, ahead) = (fake.clone(), ahead.clone());
        move || fake.now() + Duration::from_secs(ahead.load(Ordering::SeqCst))
    };
    let instance = Instance::new("http://127.0.0.1:9000").unwrap();
    let client = Arc::new(
        BlockingClient::new(transport, instance.clone())
            .with_config(Config::builder().clock(clock).build()),
    );
    client_slot.set(client.clone()).ok().unwrap();
    client.login(&alice()).unwrap();

    let me = http::Request::get(instance.uri("/api/v1/users/me").unwrap())
        .body(Body::default())
        .unwrap();
    assert_eq!(client.send_authorized(me).unwrap().status(), StatusCode::OK);
    // Three sends, and no refresh of its own: both were the other callers'.
    let counters = fake.counters();
    assert_eq!((counters.me_requests, counters.refreshes), (3, 2));
}

#[test]
fn a_user_agent_keeps_error_answers_and_follows_no_redirect() {
    use peertube_session::blocking::Transport;
    let setup = Setup::new(standard_fake());
    // ureq's defaults turn 4xx into errors and follow redirects; the transport overrides both.
    let transport = UreqTransport::with_agent(ureq::Agent::new_with_defaults());
    let target = format!("{}/api/v1/users/me", setup.server.base_url());
    setup.fake.respond_once(
        None,
        StatusCode::FOUND,
        &[("location", &target)],
        Vec::new(),
    );
    let get = |path: &str| {
        http::Request::get(setup.instance().uri(path).unwrap())
            .body(Body::default())
            .unwrap()
    };
    let answer = transport.send(get("/api/v1/oauth-clients/local")).unwrap();
    assert_eq!(answer.status(), StatusCode::FOUND);
    let answer = transport.send(get("/api/v1/users/me")).unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    assert!(String::from_utf8_lossy(answer.body()).contains("unauthorized_request"));
    assert_eq!(setup.fake.counters().me_requests, 1);
}

#[test]
fn a_cancelled_refresh_does_not_block_the_next_one() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let fake = standard_fake();
    let stall_next_refresh = Arc::new(AtomicBool::new(false));
    let transport = {
        let (fake, stall) = (fake.clone(), stall_next_refresh.clone());
        move |request: http::Request<Body>| {
            let (fake, stall) = (fake.clone(), stall.clone());
            async move {
                if request.uri().path() == "/api/v1/users/token"
                    && stall.swap(false, Ordering::SeqCst)
                {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                Ok(fake.handle(&request))
            }
        }
    };
    let ahead = Arc::new(AtomicU64::new(0));
    let clock = {
        let (fake, ahead) = (fake.clone(), ahead.clone());
        move || fake.now() + Duration::from_secs(ahead.load(Ordering::SeqCst))
    };
    let client = AsyncClient::new(transport, Instance::new("http://127.0.0.1:9000").unwrap())
        .with_config(Config::builder().clock(clock).build());
    runtime.block_on(async {
        client.login(&alice()).await.unwrap();
        ahead.store(3600, Ordering::SeqCst);
        stall_next_refresh.store(true, Ordering::SeqCst);
        // The caller gives up on a refresh that hangs.
        let gave_up = tokio::time::timeout(Duration::from_millis(50), client.ensure_fresh()).await;
        assert!(gave_up.is_err());
        assert!(!client.with_session(|s| s.refresh_in_flight()));
        // The next caller refreshes instead of meeting `RefreshInFlight` forever.
        client.ensure_fresh().await.unwrap();
    });
    assert_eq!(fake.counters().refreshes, 1);
}
