//! Both drivers under failure: what every caller of a shared refresh gets, racing logins,
//! re-entrant calls, one deadline per call. Transports here are closures around the fake's
//! in-process model, so the tests decide when each answer arrives. Every wait is bounded.
#![cfg(all(feature = "ureq", feature = "hyper", feature = "fake"))]

mod support;

use http::StatusCode;
use peertube_session::asynchronous::AsyncClient;
use peertube_session::blocking::Config;
use peertube_session::blocking::{BlockingClient, CallDeadline};
use peertube_session::fake::{FakePeerTube, FakeUser};
use peertube_session::{
    Body, Credentials, Error, Instance, Session, State, TransportError, TransportErrorKind,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::door::{BOUND, Door, eventually, held_at, is_login, is_refresh};

const WAITERS: usize = 8;

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

fn invalid_grant() -> http::Response<Vec<u8>> {
    http::Response::builder()
        .status(400)
        .header("content-type", "application/problem+json; charset=utf-8")
        .body(br#"{"status":400,"code":"invalid_grant","detail":"Invalid grant: refresh token is invalid"}"#.to_vec())
        .unwrap()
}

fn is_timeout(error: &Error) -> bool {
    matches!(error, Error::Transport(e) if e.kind() == TransportErrorKind::Timeout)
}

type Answer =
    fn(&FakePeerTube, &http::Request<Body>) -> Result<http::Response<Vec<u8>>, TransportError>;

/// A blocking client whose refresh requests wait at `door`, then get `refresh_answer`.
fn held_blocking_client(
    fake: &FakePeerTube,
    door: &Arc<Door>,
    refresh_answer: Answer,
    call_timeout: Duration,
) -> Arc<BlockingClient<impl peertube_session::blocking::Transport + use<>>> {
    let (server, door) = (fake.clone(), door.clone());
    let transport = move |request: http::Request<Body>| {
        if is_refresh(&request) {
            door.pass();
            return refresh_answer(&server, &request);
        }
        Ok(server.handle(&request))
    };
    let clock = fake.clone();
    let client = BlockingClient::new(transport, instance()).with_config(
        Config::builder()
            .clock(move || clock.now())
            .call_timeout(call_timeout)
            .build(),
    );
    client.login(&alice()).unwrap();
    fake.advance(Duration::from_secs(3601));
    Arc::new(client)
}

/// Starts a leader whose refresh waits at the door, then [`WAITERS`] callers that need the
/// same refresh, opens the door, and returns what each caller got and how many refreshes left.
fn blocking_flight(refresh_answer: Answer) -> (Vec<Result<(), Error>>, usize, FakePeerTube) {
    let fake = fake();
    let door = Arc::new(Door::default());
    let client = held_blocking_client(&fake, &door, refresh_answer, BOUND);
    let call = |client: &Arc<_>| {
        let client: Arc<BlockingClient<_>> = Arc::clone(client);
        std::thread::spawn(move || client.ensure_fresh())
    };
    let mut callers = vec![call(&client)];
    eventually("the leader's refresh", || door.arrived() == 1);
    callers.extend((0..WAITERS).map(|_| call(&client)));
    // The waiters park on the flight; give them time to get there.
    std::thread::sleep(Duration::from_millis(300));
    door.open();
    let outcomes = callers.into_iter().map(|c| c.join().unwrap()).collect();
    (outcomes, door.arrived(), fake)
}

/// The same with the async client on a single-threaded runtime, where "every waiter is waiting"
/// is reached deterministically by yielding.
fn async_flight(refresh_answer: Answer) -> (Vec<Result<(), Error>>, usize) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let fake = fake();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let arrived = Arc::new(AtomicUsize::new(0));
    let (server, held, count) = (fake.clone(), gate.clone(), arrived.clone());
    let transport = move |request: http::Request<Body>| {
        let (server, held, count) = (server.clone(), held.clone(), count.clone());
        async move {
            if is_refresh(&request) {
                count.fetch_add(1, Ordering::SeqCst);
                let _pass = held.acquire().await.unwrap();
                return refresh_answer(&server, &request);
            }
            Ok(server.handle(&request))
        }
    };
    let clock = fake.clone();
    let client = Arc::new(
        AsyncClient::new(transport, instance())
            .with_config(Config::builder().clock(move || clock.now()).build()),
    );
    runtime.block_on(async {
        client.login(&alice()).await.unwrap();
        fake.advance(Duration::from_secs(3601));
        let tasks: Vec<_> = (0..=WAITERS)
            .map(|_| {
                let client = client.clone();
                tokio::spawn(async move { client.ensure_fresh().await })
            })
            .collect();
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            arrived.load(Ordering::SeqCst),
            1,
            "one leader, the rest waiting"
        );
        gate.add_permits(WAITERS + 1);
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(tokio::time::timeout(BOUND, task).await.unwrap().unwrap());
        }
        (outcomes, arrived.load(Ordering::SeqCst))
    })
}

fn refresh_rejected(
    _: &FakePeerTube,
    _: &http::Request<Body>,
) -> Result<http::Response<Vec<u8>>, TransportError> {
    Ok(invalid_grant())
}

fn refresh_timed_out(
    _: &FakePeerTube,
    _: &http::Request<Body>,
) -> Result<http::Response<Vec<u8>>, TransportError> {
    Err(TransportError::of_kind(TransportErrorKind::Timeout))
}

fn refresh_answered(
    server: &FakePeerTube,
    request: &http::Request<Body>,
) -> Result<http::Response<Vec<u8>>, TransportError> {
    Ok(server.handle(request))
}

fn assert_all(outcomes: &[Result<(), Error>], expected: impl Fn(&Result<(), Error>) -> bool) {
    assert_eq!(outcomes.len(), WAITERS + 1);
    for outcome in outcomes {
        assert!(expected(outcome), "{outcome:?}");
    }
}

#[test]
fn every_caller_of_a_rejected_refresh_must_log_in_again_blocking() {
    let (outcomes, refreshes, _) = blocking_flight(refresh_rejected);
    assert_all(&outcomes, |o| matches!(o, Err(Error::LoginRequired(_))));
    assert_eq!(refreshes, 1);
}

#[test]
fn every_caller_of_a_rejected_refresh_must_log_in_again_async() {
    let (outcomes, refreshes) = async_flight(refresh_rejected);
    assert_all(&outcomes, |o| matches!(o, Err(Error::LoginRequired(_))));
    assert_eq!(refreshes, 1);
}

#[test]
fn a_refresh_lost_on_the_way_fails_its_waiters_once_blocking() {
    let (outcomes, refreshes, _) = blocking_flight(refresh_timed_out);
    assert_all(&outcomes, |o| o.as_ref().is_err_and(is_timeout));
    assert_eq!(
        refreshes, 1,
        "no waiter sends a refresh of its own after the failed one"
    );
}

#[test]
fn a_refresh_lost_on_the_way_fails_its_waiters_once_async() {
    let (outcomes, refreshes) = async_flight(refresh_timed_out);
    assert_all(&outcomes, |o| o.as_ref().is_err_and(is_timeout));
    assert_eq!(refreshes, 1);
}

#[test]
fn a_caller_after_a_failed_flight_starts_the_next_one() {
    let fake = fake();
    let door = Arc::new(Door::default());
    door.open();
    let failures = Arc::new(AtomicUsize::new(1));
    let (server, left) = (fake.clone(), failures.clone());
    let transport = move |request: http::Request<Body>| {
        if is_refresh(&request) && left.fetch_sub(1, Ordering::SeqCst) == 1 {
            return Err(TransportError::of_kind(
                TransportErrorKind::ConnectionClosed,
            ));
        }
        Ok(server.handle(&request))
    };
    let clock = fake.clone();
    let client = BlockingClient::new(transport, instance())
        .with_config(Config::builder().clock(move || clock.now()).build());
    client.login(&alice()).unwrap();
    fake.advance(Duration::from_secs(3601));
    assert!(matches!(client.ensure_fresh(), Err(Error::Transport(_))));
    client.ensure_fresh().unwrap();
    assert_eq!(fake.counters().refreshes, 1);
}

#[test]
fn waiters_of_a_successful_refresh_all_go_on_with_one_refresh() {
    let (outcomes, refreshes, fake) = blocking_flight(refresh_answered);
    assert_all(&outcomes, Result::is_ok);
    assert_eq!((refreshes, fake.counters().refreshes), (1, 1));
    let (outcomes, refreshes) = async_flight(refresh_answered);
    assert_all(&outcomes, Result::is_ok);
    assert_eq!(refreshes, 1);
}

#[test]
fn a_token_that_dies_between_the_check_and_its_use_is_refreshed_not_an_error() {
    // The clock says "fresh" at the freshness check and "expired" right after, as when another
    // thread learns of a 401 in between: the call must wait for the refresh and go on.
    let fake = fake();
    let server = fake.clone();
    let transport = move |request: http::Request<Body>| Ok(server.handle(&request));
    let reads = Arc::new(AtomicUsize::new(usize::MAX));
    let (clock, counter) = (fake.clone(), reads.clone());
    let client = BlockingClient::new(transport, instance()).with_config(
        Config::builder()
            .clock(move || {
                match counter.fetch_add(1, Ordering::SeqCst) {
                    // The first read after arming: the freshness check, still before the expiry.
                    0 => clock.now(),
                    n if n < usize::MAX / 2 => clock.now() + Duration::from_secs(3601),
                    _ => clock.now(),
                }
            })
            .build(),
    );
    client.login(&alice()).unwrap();
    reads.store(0, Ordering::SeqCst);
    let me = http::Request::get("/api/v1/users/me")
        .body(Body::default())
        .unwrap();
    let answer = client.send_authorized(me).unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(fake.counters().refreshes, 1);
}

#[test]
fn a_path_only_request_goes_to_the_instance() {
    let fake = fake();
    let server = fake.clone();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let transport = move |request: http::Request<Body>| {
        log.lock().unwrap().push(request.uri().to_string());
        Ok(server.handle(&request))
    };
    let client = BlockingClient::new(transport, instance());
    client.login(&alice()).unwrap();
    let me = http::Request::get("/api/v1/users/me")
        .body(Body::default())
        .unwrap();
    client.send_authorized(me).unwrap();
    assert_eq!(
        seen.lock().unwrap().last().unwrap(),
        "http://127.0.0.1:9/api/v1/users/me"
    );
    let climbing = http::Request::get("/../admin")
        .body(Body::default())
        .unwrap();
    assert!(matches!(
        client.send_authorized(climbing),
        Err(Error::InvalidUrl(_))
    ));
}

#[test]
fn two_racing_logins_leave_one_live_session_on_the_server() {
    let fake = fake();
    let door = Arc::new(Door::default());
    let transport = held_at(&door, is_login, &fake);
    let client = Arc::new(BlockingClient::new(transport, instance()));
    client.fetch_client().unwrap();
    let logins: Vec<_> = (0..2)
        .map(|_| {
            let client = client.clone();
            std::thread::spawn(move || client.login(&alice()))
        })
        .collect();
    // Logins take the store's lease: one reaches the server, the other waits for the lease.
    eventually("a login at the server", || door.arrived() == 1);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(door.arrived(), 1, "the second login waits for the lease");
    door.open();
    let outcomes: Vec<_> = logins.into_iter().map(|l| l.join().unwrap()).collect();
    assert_eq!(
        outcomes.iter().filter(|o| o.is_ok()).count(),
        1,
        "{outcomes:?}"
    );
    // The one that waited learns that another login of this client finished first, and sends
    // nothing.
    assert!(
        outcomes
            .iter()
            .any(|o| matches!(o, Err(Error::StaleResponse(_)))),
        "{outcomes:?}"
    );
    let counters = fake.counters();
    assert_eq!((counters.logins, counters.revocations), (1, 0));
    assert_eq!(counters.live_sessions, 1);
    assert_eq!(client.state(), State::LoggedIn);
}

/// A login whose answer arrives after the session changed (here the client pair was fetched
/// again meanwhile) is stale: the live pair it carries is revoked, not left on the server for
/// its whole lifetime.
#[test]
fn a_login_answer_made_stale_in_flight_is_revoked() {
    let fake = fake();
    let door = Arc::new(Door::default());
    let transport = held_at(&door, is_login, &fake);
    let client = Arc::new(BlockingClient::new(transport, instance()));
    client.fetch_client().unwrap();
    let login = {
        let client = client.clone();
        std::thread::spawn(move || client.login(&alice()))
    };
    eventually("the login at the server", || door.arrived() == 1);
    client.fetch_client().unwrap();
    door.open();
    let outcome = login.join().unwrap();
    assert_eq!(
        outcome,
        Err(Error::StaleResponse(peertube_session::Operation::Login))
    );
    let counters = fake.counters();
    assert_eq!((counters.logins, counters.revocations), (1, 1));
    assert_eq!(counters.live_sessions, 0);
    assert_eq!(client.state(), State::HaveClient);
}

/// While a refresh is in the air, a call waits for it rather than sending the token the
/// refresh is about to kill (PeerTube revokes the old access token when it rotates the pair),
/// though the token looked good by the caller's reading of the clock: here the caller's
/// thread reads it a minute behind (a reading taken just before the refresh became due).
#[test]
fn a_call_while_a_refresh_is_in_the_air_waits_for_the_new_token() {
    let fake = fake();
    let door = Arc::new(Door::default());
    let transport = held_at(&door, is_refresh, &fake);
    let clock = fake.clone();
    let behind = move || match std::thread::current().name() {
        Some("behind") => clock.now() - Duration::from_secs(60),
        _ => clock.now(),
    };
    let client = Arc::new(
        BlockingClient::new(transport, instance())
            .with_config(Config::builder().clock(behind).build()),
    );
    client.login(&alice()).unwrap();
    fake.advance(Duration::from_secs(3600 - 30));
    let refresh = {
        let client = client.clone();
        std::thread::spawn(move || client.ensure_fresh())
    };
    eventually("the early refresh at the server", || door.arrived() == 1);
    let call = {
        let client = client.clone();
        std::thread::Builder::new()
            .name("behind".to_owned())
            .spawn(move || client.send_authorized(me()).map(|a| a.status()))
            .unwrap()
    };
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        fake.counters().me_requests,
        0,
        "the call went out with the old token"
    );
    door.open();
    assert!(refresh.join().unwrap().is_ok());
    assert_eq!(call.join().unwrap().unwrap(), StatusCode::OK);
    let counters = fake.counters();
    assert_eq!(
        (
            counters.refreshes,
            counters.me_requests,
            counters.refused_tokens
        ),
        (1, 1, 0)
    );
}

/// Runs `f` on another thread and fails if it does not end within [`BOUND`] (a deadlock).
fn ends_in_time<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || sender.send(f()));
    receiver.recv_timeout(BOUND).expect("the call hung")
}

#[test]
fn reading_the_client_from_its_own_callbacks_does_not_hang() {
    let fake = fake();
    let server = fake.clone();
    let transport = move |request: http::Request<Body>| Ok(server.handle(&request));
    let slot: Arc<std::sync::OnceLock<std::sync::Weak<BlockingClient<_>>>> = Arc::default();
    let (clock, me) = (fake.clone(), slot.clone());
    let client = Arc::new(
        BlockingClient::new(transport, instance()).with_config(
            Config::builder()
                .clock(move || {
                    if let Some(client) = me.get().and_then(std::sync::Weak::upgrade) {
                        let _ = client.state();
                    }
                    clock.now()
                })
                .build(),
        ),
    );
    slot.set(Arc::downgrade(&client)).ok().unwrap();
    let inner = client.clone();
    ends_in_time(move || {
        inner.login(&alice()).unwrap();
        let state = inner.with_session(|_| inner.state());
        assert_eq!(state, State::LoggedIn);
        let printed = inner.with_session(|_| format!("{inner:?}"));
        assert!(printed.contains("BlockingClient"));
        assert!(!printed.contains("alice-pw"));
    });

    let server = fake.clone();
    let transport = move |request: http::Request<Body>| {
        let server = server.clone();
        async move { Ok(server.handle(&request)) }
    };
    let client = Arc::new(AsyncClient::new(transport, instance()));
    ends_in_time(move || {
        pollster::block_on(client.login(&alice())).unwrap();
        assert_eq!(client.with_session(|_| client.state()), State::LoggedIn);
        assert!(
            client
                .with_session(|_| format!("{client:?}"))
                .contains("AsyncClient")
        );
    });
}

#[test]
fn one_deadline_covers_every_exchange_of_a_call() {
    // Each exchange takes 400 ms, well within a transport timeout; a login needs two (client
    // pair, password grant) and a call deadline of 600 ms allows only one. This transport
    // honours the deadline it is handed, as the crate's own do.
    let fake = fake();
    let server = fake.clone();
    let slow = move |request: http::Request<Body>| {
        let deadline = request.extensions().get::<CallDeadline>().copied();
        let remaining = deadline.expect("every request carries its call's deadline");
        let left = remaining.remaining(Instant::now());
        if left < Duration::from_millis(400) {
            std::thread::sleep(left);
            return Err(TransportError::of_kind(TransportErrorKind::Timeout));
        }
        std::thread::sleep(Duration::from_millis(400));
        Ok(server.handle(&request))
    };
    let client = BlockingClient::new(slow, instance()).with_config(
        Config::builder()
            .call_timeout(Duration::from_millis(600))
            .build(),
    );
    let start = Instant::now();
    let error = client.login(&alice()).unwrap_err();
    assert!(is_timeout(&error), "{error:?}");
    assert!(
        start.elapsed() < Duration::from_millis(800),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(fake.counters().logins, 0);

    // The async driver cuts a slow exchange itself at the deadline, whatever the transport.
    let server = fake.clone();
    let slow = move |request: http::Request<Body>| {
        let server = server.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            Ok(server.handle(&request))
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = AsyncClient::new(slow, instance()).with_config(
        Config::builder()
            .call_timeout(Duration::from_millis(600))
            .build(),
    );
    let start = Instant::now();
    let error = runtime.block_on(client.login(&alice())).unwrap_err();
    assert!(is_timeout(&error), "{error:?}");
    assert!(
        start.elapsed() < Duration::from_millis(800),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(client.state(), State::HaveClient);
}

#[test]
fn the_crates_transports_end_an_exchange_at_the_calls_deadline() {
    use peertube_session::asynchronous::HyperTransport;
    use peertube_session::blocking::UreqTransport;
    use peertube_session::fake::Fault;
    // Two stalled exchanges of 700 ms each, transports allowing 5 s each, a call deadline of
    // 1 s: the second exchange is cut at the deadline.
    let fake = fake();
    let server = fake.serve().unwrap();
    let instance = Instance::new(&server.base_url()).unwrap();
    let stall = || {
        for _ in 0..2 {
            server.inject(None, Fault::Delay(Duration::from_millis(700)));
        }
    };
    stall();
    let config = Config::builder()
        .timeout(Duration::from_secs(5))
        .call_timeout(Duration::from_secs(1))
        .build();
    let client = BlockingClient::new(UreqTransport::new(), instance.clone()).with_config(config);
    let start = Instant::now();
    let error = client.login(&alice()).unwrap_err();
    assert!(is_timeout(&error), "{error:?}");
    assert!(
        start.elapsed() < Duration::from_millis(1300),
        "{:?}",
        start.elapsed()
    );

    async_login_is_cut_at_the_deadline(&stall, &instance, HyperTransport::new);
    #[cfg(feature = "reqwest")]
    async_login_is_cut_at_the_deadline(
        &stall,
        &instance,
        peertube_session::asynchronous::ReqwestTransport::new,
    );
}

/// The async client over the transport `make` gives, its login's exchanges stalled (`stall`)
/// 700 ms each, transports allowing 5 s each and the call 1 s: the call ends at its deadline.
fn async_login_is_cut_at_the_deadline<T: peertube_session::asynchronous::AsyncTransport>(
    stall: &dyn Fn(),
    instance: &Instance,
    make: fn() -> T,
) {
    std::thread::sleep(Duration::from_millis(800)); // let the stalled answers drain
    stall();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let transport = runtime.block_on(async { make() });
    let config = Config::builder()
        .timeout(Duration::from_secs(5))
        .call_timeout(Duration::from_secs(1))
        .build();
    let client = AsyncClient::new(transport, instance.clone()).with_config(config);
    let start = Instant::now();
    let error = runtime.block_on(client.login(&alice())).unwrap_err();
    assert!(is_timeout(&error), "{error:?}");
    assert!(
        start.elapsed() < Duration::from_millis(1300),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_waiter_gives_up_at_its_own_deadline() {
    let fake = fake();
    let door = Arc::new(Door::default());
    let client = held_blocking_client(&fake, &door, refresh_answered, Duration::from_millis(300));
    let leader = {
        let client = client.clone();
        std::thread::spawn(move || client.ensure_fresh())
    };
    eventually("the leader's refresh", || door.arrived() == 1);
    let start = Instant::now();
    let waited = client.ensure_fresh();
    assert!(waited.as_ref().is_err_and(is_timeout), "{waited:?}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    door.open();
    // The leader's exchange was under way: its answer is still handled.
    assert!(leader.join().unwrap().is_ok());
    assert_eq!(fake.counters().refreshes, 1);
}

#[test]
fn a_session_restored_from_another_accepts_none_of_its_handles() {
    let original = Session::with_client(
        instance(),
        peertube_session::OAuthClient::new("id", "secret"),
    );
    let (_, pending) = original.login(&alice()).unwrap();
    let mut copy = Session::restore(original.save()).unwrap();
    let answer = http::Response::builder()
        .status(200)
        .body(
            br#"{"token_type":"Bearer","access_token":"a","refresh_token":"r","expires_in":60}"#
                .to_vec(),
        )
        .unwrap();
    assert_eq!(
        copy.handle(pending, &answer, std::time::SystemTime::UNIX_EPOCH),
        Err(Error::StaleResponse(peertube_session::Operation::Login))
    );
    assert_eq!(original.state(), State::HaveClient);
}

/// `Session` is not `Clone`: two copies could each spend the same rotating refresh token. This
/// only compiles while that holds (the call is ambiguous for a `Clone` type).
#[test]
fn a_session_cannot_be_cloned() {
    trait AmbiguousIfClone<A> {
        fn check() {}
    }
    impl<T: ?Sized> AmbiguousIfClone<()> for T {}
    #[allow(dead_code)]
    struct IsClone;
    impl<T: Clone> AmbiguousIfClone<IsClone> for T {}
    <Session as AmbiguousIfClone<_>>::check();
}

fn invalid_token() -> http::Response<Vec<u8>> {
    http::Response::builder()
        .status(401)
        .header("content-type", "application/problem+json; charset=utf-8")
        .body(br#"{"status":401,"code":"invalid_token","detail":"Token is invalid."}"#.to_vec())
        .unwrap()
}

fn is_api_call(request: &http::Request<Body>) -> bool {
    request.uri().path() == "/api/v1/users/me"
}

fn me() -> http::Request<Body> {
    http::Request::get("/api/v1/users/me")
        .body(Body::default())
        .unwrap()
}

#[test]
fn a_call_refreshes_its_own_dead_token_once_then_gives_the_answer_back() {
    let fake = fake();
    let server = fake.clone();
    let api_calls = Arc::new(AtomicUsize::new(0));
    let counted = api_calls.clone();
    let transport = move |request: http::Request<Body>| {
        if is_api_call(&request) {
            counted.fetch_add(1, Ordering::SeqCst);
            return Ok(invalid_token());
        }
        Ok(server.handle(&request))
    };
    let client = BlockingClient::new(transport, instance());
    client.login(&alice()).unwrap();
    let answer = client.send_authorized(me()).unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(api_calls.load(Ordering::SeqCst), 2);
    assert_eq!(fake.counters().refreshes, 1);
}

/// Churn, not a server refusing every token: the call's token dies, its refresh gives a new
/// one, another call is answered with that one, and then it dies under this call's retry too
/// (used up by the others). The call refreshes once more and gets its answer, where it used to
/// be handed the 401 ("one refresh per call" is for tokens that never worked).
#[test]
fn a_call_whose_refreshed_token_served_others_before_dying_refreshes_again() {
    let fake = fake();
    let server = fake.clone();
    let api_calls = Arc::new(AtomicUsize::new(0));
    let (retry_out, retry_is_out) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let released = Mutex::new(released);
    let counted = api_calls.clone();
    let transport = move |request: http::Request<Body>| {
        if !is_api_call(&request) {
            return Ok(server.handle(&request));
        }
        match counted.fetch_add(1, Ordering::SeqCst) {
            // The call's first token dies.
            0 => Ok(invalid_token()),
            // Its retry, with the refreshed token, waits for another call to be answered
            // with that token, then finds it used up.
            1 => {
                retry_out.send(()).unwrap();
                let _ = released.lock().unwrap().recv_timeout(BOUND);
                Ok(invalid_token())
            }
            _ => Ok(server.handle(&request)),
        }
    };
    let client = Arc::new(BlockingClient::new(transport, instance()));
    client.login(&alice()).unwrap();
    let churned = {
        let client = client.clone();
        std::thread::spawn(move || client.send_authorized(me()))
    };
    retry_is_out.recv_timeout(BOUND).unwrap();
    let other = client.send_authorized(me()).unwrap();
    assert_eq!(other.status(), StatusCode::OK);
    release.send(()).unwrap();
    let answer = churned.join().unwrap().unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(fake.counters().refreshes, 2);
    assert_eq!(api_calls.load(Ordering::SeqCst), 4);
}

#[test]
fn a_call_whose_token_keeps_being_replaced_sends_eight_times_at_most() {
    // Each time the call's request is on the wire, another caller refreshes (the clock jumps a
    // token's lifetime ahead first), so the 401 is for a token that is no longer the session's:
    // worth another send (the session is moving on, not failing), but only up to the cap. A
    // driver without the cap would go on until the transport gives in (after 12 sends, with a
    // 200).
    let fake = fake();
    let server = fake.clone();
    let ahead = Arc::new(AtomicUsize::new(0));
    let (refresh_now, refresh_asked) = std::sync::mpsc::channel::<()>();
    let (refreshed, refresh_done) = std::sync::mpsc::channel::<()>();
    // Taken out at the end, so the other caller sees the channel close and stops.
    let refresh_now = Arc::new(Mutex::new(Some(refresh_now)));
    let stop = refresh_now.clone();
    let refresh_done = Mutex::new(refresh_done);
    let api_calls = Arc::new(AtomicUsize::new(0));
    let counted = api_calls.clone();
    let transport = move |request: http::Request<Body>| {
        if !is_api_call(&request) {
            return Ok(server.handle(&request));
        }
        if counted.fetch_add(1, Ordering::SeqCst) >= 12 {
            return Ok(server.handle(&request));
        }
        let asked = refresh_now.lock().unwrap().as_ref().map(|tx| tx.send(()));
        assert!(matches!(asked, Some(Ok(()))));
        refresh_done.lock().unwrap().recv_timeout(BOUND).unwrap();
        Ok(invalid_token())
    };
    let (clock, offset) = (fake.clone(), ahead.clone());
    let client = Arc::new(
        BlockingClient::new(transport, instance()).with_config(
            Config::builder()
                .clock(move || {
                    clock.now() + Duration::from_secs(offset.load(Ordering::SeqCst) as u64)
                })
                .build(),
        ),
    );
    client.login(&alice()).unwrap();
    let other = client.clone();
    let other_caller = std::thread::spawn(move || {
        while refresh_asked.recv_timeout(BOUND).is_ok() {
            ahead.fetch_add(3600, Ordering::SeqCst);
            other.ensure_fresh().unwrap();
            if refreshed.send(()).is_err() {
                return;
            }
        }
    });
    let answer = client.send_authorized(me()).unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(api_calls.load(Ordering::SeqCst), 8);
    assert_eq!(fake.counters().refreshes, 8);
    stop.lock().unwrap().take();
    other_caller.join().unwrap();
}

/// Counts the requests of each kind a transport saw: client-pair fetches and password grants.
#[derive(Default)]
struct Seen {
    fetches: AtomicUsize,
    logins: AtomicUsize,
}

fn invalid_client() -> http::Response<Vec<u8>> {
    http::Response::builder()
        .status(400)
        .header("content-type", "application/problem+json; charset=utf-8")
        .body(br#"{"status":400,"code":"invalid_client","detail":"Invalid client: client is invalid"}"#.to_vec())
        .unwrap()
}

/// A blocking client over the fake that counts, and answers every password grant with
/// `invalid_client` when `reject_every_login` is set.
fn counting_client(
    session: Session,
    reject_every_login: bool,
) -> (
    BlockingClient<impl peertube_session::blocking::Transport>,
    Arc<Seen>,
) {
    let fake = fake();
    let seen = Arc::new(Seen::default());
    let counted = seen.clone();
    let transport = move |request: http::Request<Body>| {
        if request.uri().path() == "/api/v1/oauth-clients/local" {
            counted.fetches.fetch_add(1, Ordering::SeqCst);
        }
        if is_login(&request) {
            counted.logins.fetch_add(1, Ordering::SeqCst);
            if reject_every_login {
                return Ok(invalid_client());
            }
        }
        Ok(fake.handle(&request))
    };
    (BlockingClient::from_session(transport, session), seen)
}

fn stale_pair() -> Session {
    let stale = peertube_session::OAuthClient::new("stale-id", "stale-secret");
    Session::with_client(instance(), stale)
}

#[test]
fn a_cached_client_pair_the_server_no_longer_knows_is_fetched_again_once() {
    let (client, seen) = counting_client(stale_pair(), false);
    client.login(&alice()).unwrap();
    assert_eq!(client.state(), State::LoggedIn);
    assert_eq!(seen.fetches.load(Ordering::SeqCst), 1);
    assert_eq!(seen.logins.load(Ordering::SeqCst), 2);
}

#[test]
fn a_freshly_fetched_pair_that_is_refused_is_not_fetched_again() {
    let (client, seen) = counting_client(Session::new(instance()), true);
    let error = client.login(&alice()).unwrap_err();
    assert!(matches!(error, Error::InvalidClient(_)), "{error:?}");
    assert_eq!(seen.fetches.load(Ordering::SeqCst), 1);
    assert_eq!(seen.logins.load(Ordering::SeqCst), 1);
}

#[test]
fn a_refetched_pair_that_is_refused_too_ends_the_login() {
    let (client, seen) = counting_client(stale_pair(), true);
    let error = client.login(&alice()).unwrap_err();
    assert!(matches!(error, Error::InvalidClient(_)), "{error:?}");
    assert_eq!(seen.fetches.load(Ordering::SeqCst), 1);
    assert_eq!(seen.logins.load(Ordering::SeqCst), 2);
}

#[test]
fn a_request_with_a_host_but_no_scheme_is_refused_not_sent_to_the_instance() {
    let fake = fake();
    let server = fake.clone();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let transport = move |request: http::Request<Body>| {
        log.lock().unwrap().push(request.uri().to_string());
        Ok(server.handle(&request))
    };
    let client = BlockingClient::new(transport, instance());
    client.login(&alice()).unwrap();
    let sent_before = seen.lock().unwrap().len();
    // An authority-form URI: a host, no scheme, no path.
    let elsewhere = http::Request::get("evil.example.org:443").body(()).unwrap();
    assert_eq!(
        client.send_authorized(elsewhere).unwrap_err(),
        Error::ForeignOrigin
    );
    assert_eq!(seen.lock().unwrap().len(), sent_before);
}

#[test]
fn a_token_dead_on_every_arrival_is_looked_for_three_times_then_given_up() {
    // Every read of the clock is two hours later than the one before, and tokens live one
    // hour: each refresh hands out a token that has expired by the time it is put on the
    // request. The call must give up after three tries, not go on refreshing.
    let fake = fake();
    let server = fake.clone();
    let transport = move |request: http::Request<Body>| Ok(server.handle(&request));
    let reads = Arc::new(AtomicUsize::new(0));
    let (clock, counter) = (fake.clone(), reads.clone());
    let client = BlockingClient::new(transport, instance()).with_config(
        Config::builder()
            .clock(move || {
                let n = counter.fetch_add(1, Ordering::SeqCst) as u64;
                clock.now() + Duration::from_secs(7200 * n)
            })
            .build(),
    );
    client.login(&alice()).unwrap();
    let error = client.send_authorized(me()).unwrap_err();
    assert_eq!(error, Error::AccessTokenExpired);
    assert_eq!(fake.counters().refreshes, 3);
}

#[test]
fn both_clients_fetch_the_client_pair_on_their_own() {
    let fake = fake();
    let server = fake.clone();
    let transport = move |request: http::Request<Body>| {
        let answer = server.handle(&request);
        async move { Ok(answer) }
    };
    let client = AsyncClient::new(transport, instance());
    assert_eq!(client.state(), State::NoClient);
    pollster::block_on(client.fetch_client()).unwrap();
    assert_eq!(client.state(), State::HaveClient);

    let server = fake.clone();
    let transport = move |request: http::Request<Body>| Ok(server.handle(&request));
    let blocking = BlockingClient::new(transport, instance());
    blocking.fetch_client().unwrap();
    assert_eq!(blocking.state(), State::HaveClient);
}

#[test]
fn a_call_deadline_of_centuries_is_far_away_not_near() {
    let now = Instant::now();
    let deadline = CallDeadline::after(now, Duration::MAX);
    let fifty_years = Duration::from_secs(50 * 365 * 24 * 3600);
    assert!(deadline.at() > now + fifty_years);
    assert!(deadline.remaining(now) > fifty_years);
    assert!(!deadline.has_passed(now));
    let soon = CallDeadline::after(now, Duration::from_secs(5));
    assert_eq!(soon.remaining(now), Duration::from_secs(5));
    assert!(soon.has_passed(now + Duration::from_secs(5)));
}

#[test]
fn a_call_out_of_time_says_so_in_its_error_chain() {
    use std::error::Error as _;
    let fake = fake();
    let server = fake.clone();
    let transport = move |request: http::Request<Body>| Ok(server.handle(&request));
    let client = BlockingClient::new(transport, instance())
        .with_config(Config::builder().call_timeout(Duration::ZERO).build());
    let error = client.login(&alice()).unwrap_err();
    assert!(is_timeout(&error), "{error:?}");
    let transport_error = error.source().expect("the transport error");
    assert_eq!(transport_error.to_string(), "timed out");
    let why = transport_error.source().expect("why it timed out");
    assert_eq!(why.to_string(), "the call's deadline passed");
}
