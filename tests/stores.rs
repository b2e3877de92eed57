//! Clients sharing one session through a store, in one process: both drivers, the memory
//! store. (Real processes and the file store: `tests/shared_session.rs`.)
#![cfg(all(
    feature = "async-client",
    feature = "blocking-client",
    feature = "fake"
))]

mod support;

use peertube_session::asynchronous::{AsyncClient, AsyncTransport, Config};
use peertube_session::blocking::{BlockingClient, Relogin};
use peertube_session::fake::{FakePeerTube, FakeUser};
use peertube_session::store::{MemoryStore, SessionStore, StoreError};
use peertube_session::{Body, Credentials, Error, Instance, TransportError};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};
use support::faulty_store::FaultyStore;

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

type Answer = Result<http::Response<Vec<u8>>, TransportError>;

fn transport(
    fake: &FakePeerTube,
) -> impl Fn(http::Request<Body>) -> Answer + Clone + Send + Sync + use<> {
    let fake = fake.clone();
    move |request| Ok(fake.handle(&request))
}

fn config(fake: &FakePeerTube) -> Config {
    let clock = fake.clone();
    Config::builder().clock(move || clock.now()).build()
}

/// A fake whose access tokens each serve `uses` calls, then die.
fn fake_with_uses(uses: u64) -> FakePeerTube {
    FakePeerTube::builder()
        .user(FakeUser::new("alice", "alice@example.org", "alice-pw"))
        .no_rate_limit()
        .access_token_uses(uses)
        .build()
}

/// A blocking client of `store`, on the fake's clock.
fn client_of<S: SessionStore>(
    fake: &FakePeerTube,
    store: S,
) -> BlockingClient<impl peertube_session::blocking::Transport + use<S>, S> {
    BlockingClient::new(transport(fake), instance())
        .with_config(config(fake))
        .with_store(store)
}

/// A blocking client of `store`, on the fake's clock, whose calls end after `call_timeout`.
fn client_with_call_timeout<S: SessionStore>(
    fake: &FakePeerTube,
    store: S,
    call_timeout: Duration,
) -> BlockingClient<impl peertube_session::blocking::Transport + use<S>, S> {
    let clock = fake.clone();
    BlockingClient::new(transport(fake), instance())
        .with_config(
            Config::builder()
                .clock(move || clock.now())
                .call_timeout(call_timeout)
                .build(),
        )
        .with_store(store)
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

fn me() -> http::Request<()> {
    http::Request::get("/api/v1/users/me").body(()).unwrap()
}

#[test]
fn async_clients_sharing_a_store_refresh_once_and_see_a_logout() {
    let fake = fake();
    let store = Arc::new(MemoryStore::new());
    let async_client = || {
        let transport = transport(&fake);
        AsyncClient::new(move |r| std::future::ready(transport(r)), instance())
            .with_config(config(&fake))
            .with_store(store.clone())
    };
    let (a, b) = (async_client(), async_client());
    pollster::block_on(share_refresh_and_logout(&fake, &a, &b));
    // Saves: login, refresh, logout.
    assert_eq!(pollster::block_on(store.version(far())).unwrap().0, 3);
}

#[cfg(feature = "reqwest")]
#[test]
fn async_clients_over_reqwest_sharing_a_store_refresh_once_and_see_a_logout() {
    use peertube_session::asynchronous::ReqwestTransport;
    let fake = fake();
    let server = fake.serve().unwrap();
    let store = Arc::new(MemoryStore::new());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let async_client = || {
        let transport = runtime.block_on(async { ReqwestTransport::new() });
        AsyncClient::new(transport, Instance::new(&server.base_url()).unwrap())
            .with_config(config(&fake))
            .with_store(store.clone())
    };
    let (a, b) = (async_client(), async_client());
    runtime.block_on(share_refresh_and_logout(&fake, &a, &b));
    assert_eq!(pollster::block_on(store.version(far())).unwrap().0, 3);
}

/// Two clients of one store: `b` takes `a`'s login and refresh from the store, `a` sees `b`'s
/// logout; one login and one refresh reach the server.
async fn share_refresh_and_logout<T: AsyncTransport>(
    fake: &FakePeerTube,
    a: &AsyncClient<T, Arc<MemoryStore>>,
    b: &AsyncClient<T, Arc<MemoryStore>>,
) {
    a.login(&Credentials::password("alice", "alice-pw"))
        .await
        .unwrap();
    // The other client takes the session from the store: no login of its own.
    assert_eq!(b.send_authorized(me()).await.unwrap().status(), 200);
    fake.advance(Duration::from_secs(3600));
    a.ensure_fresh().await.unwrap();
    // The pair a refreshed is b's too: no second refresh, and b's old token is never sent.
    let token = b.access_token().await.unwrap();
    assert_eq!(
        Some(&token),
        a.with_session(|s| s.access_token().cloned()).as_ref()
    );
    assert_eq!(b.send_authorized(me()).await.unwrap().status(), 200);
    b.logout().await.unwrap();
    assert_eq!(a.access_token().await.unwrap_err(), Error::LoggedOut);
    assert_eq!(a.send_authorized(me()).await.unwrap_err(), Error::LoggedOut);
    let counters = fake.counters();
    assert_eq!(
        (counters.logins, counters.refreshes),
        (1, 1),
        "{counters:?}"
    );
    assert_eq!(counters.live_sessions, 0);
}

#[test]
fn a_refused_refresh_reaches_every_client_as_login_required_and_relogin_repairs_it() {
    let fake = fake();
    let store = Arc::new(MemoryStore::new());
    let blocking = |relogin: bool| {
        let client = client_of(&fake, store.clone());
        if relogin {
            client.with_relogin(Relogin::new(|| {
                Some(Credentials::password("alice", "new-pw"))
            }))
        } else {
            client
        }
    };
    let (a, b) = (blocking(false), blocking(false));
    a.login(&Credentials::password("alice", "alice-pw"))
        .unwrap();
    fake.change_password("alice", "new-pw");
    fake.advance(Duration::from_secs(3600));
    assert!(matches!(a.access_token(), Err(Error::LoginRequired(_))));
    // b learns it from the store, with the server's reason, and sends no refresh of its own.
    match b.access_token() {
        Err(Error::LoginRequired(refusal)) => assert_eq!(refusal.status, 400),
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.counters().invalid_grants, 1);

    // A client that may log in again does so, once, for everyone.
    let c = blocking(true);
    assert_eq!(c.send_authorized(me()).unwrap().status(), 200);
    assert_eq!(b.send_authorized(me()).unwrap().status(), 200);
    let counters = fake.counters();
    assert_eq!(
        (counters.logins, counters.invalid_grants),
        (2, 1),
        "{counters:?}"
    );
}

#[test]
fn relogin_prints_whether_it_asks_for_a_code_and_never_a_credential() {
    let relogin = Relogin::new(|| Some(Credentials::password("alice", "alice-pw")));
    assert_eq!(format!("{relogin:?}"), "Relogin { otp: false, .. }");
    let relogin = relogin.with_otp(|| Some("123456".to_owned()));
    assert_eq!(format!("{relogin:?}"), "Relogin { otp: true, .. }");
}

#[test]
fn relogin_never_undoes_a_logout_and_a_wrong_password_is_the_answer() {
    let fake = fake();
    let client = BlockingClient::new(transport(&fake), instance())
        .with_config(config(&fake))
        .with_relogin(Relogin::new(|| {
            Some(Credentials::password("alice", "wrong"))
        }));
    client
        .login(&Credentials::password("alice", "alice-pw"))
        .unwrap();
    fake.change_password("alice", "other-pw");
    fake.advance(Duration::from_secs(3600));
    assert!(matches!(
        client.access_token(),
        Err(Error::BadCredentials(_))
    ));
    // Never loops: one login per call.
    assert_eq!(fake.counters().logins, 1);
    let attempts = fake.counters().token_requests;
    assert!(client.access_token().is_err());
    assert_eq!(fake.counters().token_requests, attempts + 1);

    let fake = self::fake();
    let client = BlockingClient::new(transport(&fake), instance())
        .with_config(config(&fake))
        .with_relogin(Relogin::new(|| {
            Some(Credentials::password("alice", "alice-pw"))
        }));
    client
        .login(&Credentials::password("alice", "alice-pw"))
        .unwrap();
    client.logout().unwrap();
    assert_eq!(client.access_token().unwrap_err(), Error::LoggedOut);
    assert_eq!(fake.counters().logins, 1);
}

#[test]
fn a_save_that_fails_costs_the_call_nothing_and_the_pair_is_written_back_later() {
    let fake = fake();
    let store = FaultyStore::new();
    let client = client_of(&fake, store.clone());
    client
        .login(&Credentials::password("alice", "alice-pw"))
        .unwrap();
    fake.advance(Duration::from_secs(3600));
    store.fail_saves.store(true, Ordering::SeqCst);
    client.ensure_fresh().unwrap();
    let refreshed = client.with_session(|s| s.lineage()).unwrap();
    assert_eq!(refreshed.refreshes, 1);
    let stored = store.record();
    assert_eq!(
        stored.lineage.map(|l| l.refreshes),
        Some(0),
        "the save failed"
    );
    // The refreshed pair was kept: no second refresh, and the stale stored pair is not taken
    // back over it.
    assert_eq!(client.send_authorized(me()).unwrap().status(), 200);
    assert_eq!(fake.counters().refreshes, 1);
    // Once the store takes saves again, the next read writes the newer pair back.
    store.fail_saves.store(false, Ordering::SeqCst);
    client.access_token().unwrap();
    let stored = store.record();
    assert_eq!(stored.lineage, Some(refreshed));
    assert_eq!(fake.counters().refreshes, 1);
}

#[test]
fn a_lease_held_elsewhere_for_the_whole_call_ends_it_with_a_typed_error_in_time() {
    let fake = fake();
    let store = FaultyStore::new();
    let call_timeout = Duration::from_millis(300);
    let client = client_with_call_timeout(&fake, store.clone(), call_timeout);
    client
        .login(&Credentials::password("alice", "alice-pw"))
        .unwrap();
    fake.advance(Duration::from_secs(3600));
    store.lease_taken.store(true, Ordering::SeqCst);
    let started = std::time::Instant::now();
    assert_eq!(
        client.ensure_fresh().unwrap_err(),
        Error::Store(StoreError::LeaseBusy)
    );
    assert!(started.elapsed() < call_timeout + Duration::from_secs(2));
    assert_eq!(fake.counters().refreshes, 0);
}

#[test]
fn a_lease_the_store_would_not_take_back_is_given_back_at_the_next_read() {
    let fake = fake();
    let store = FaultyStore::new();
    let (a, b) = (
        client_with_call_timeout(&fake, store.clone(), Duration::from_secs(30)),
        client_with_call_timeout(&fake, store.clone(), Duration::from_millis(300)),
    );
    a.login(&Credentials::password("alice", "alice-pw"))
        .unwrap();
    fake.advance(Duration::from_secs(3600));
    store.fail_releases.store(true, Ordering::SeqCst);
    a.ensure_fresh().unwrap();
    store.fail_releases.store(false, Ordering::SeqCst);
    // `a` still holds the lease in the store; its next periodic read gives it back.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(a.send_authorized(me()).unwrap().status(), 200);
    // So `b`, due again an hour later, gets it at once, not when its time runs out.
    fake.advance(Duration::from_secs(3600));
    b.ensure_fresh().unwrap();
    assert_eq!(fake.counters().refreshes, 2);
}

#[test]
fn a_client_waiting_for_the_lease_takes_the_pair_its_holder_saved_before_giving_it_back() {
    let fake = fake();
    let store = FaultyStore::new();
    let waiter = client_with_call_timeout(&fake, store.clone(), Duration::from_secs(5));
    waiter
        .login(&Credentials::password("alice", "alice-pw"))
        .unwrap();
    fake.advance(Duration::from_secs(3600));
    // Another process holds the lease, refreshes, and saves its new pair; it has not given the
    // lease back yet. The store takes 30 ms a step, well within the store budget.
    store.lease_taken.store(true, Ordering::SeqCst);
    store.step_delay_ms.store(30, Ordering::SeqCst);
    let holder = BlockingClient::from_session(
        transport(&fake),
        peertube_session::Session::restore(waiter.save()).unwrap(),
    )
    .with_config(config(&fake));
    let waiting = std::thread::spawn(move || {
        let started = std::time::Instant::now();
        (waiter.ensure_fresh(), started.elapsed(), waiter)
    });
    std::thread::sleep(Duration::from_millis(300));
    holder.ensure_fresh().unwrap();
    let saved = holder.save();
    let lineage = holder.with_session(|s| s.lineage());
    store.put(peertube_session::store::Record::new(saved, None).with_lineage(lineage));
    let (outcome, took, waiter) = waiting.join().unwrap();
    outcome.unwrap();
    assert!(took < Duration::from_secs(3), "waited {took:?}");
    assert_eq!(waiter.with_session(|s| s.lineage()), lineage);
    assert_eq!(fake.counters().refreshes, 1);
}

#[test]
fn after_a_401_a_client_takes_the_pair_another_saved_and_sends_no_refresh() {
    let fake = fake();
    let store = Arc::new(MemoryStore::new());
    let refresher = Arc::new(client_of(&fake, store.clone()));
    refresher
        .login(&Credentials::password("alice", "alice-pw"))
        .unwrap();
    // The other client's first call leaves with the current token; on its way the refresher
    // rotates the pair (as another process would), so it arrives dead: 401 `invalid_token`.
    let (server, racing, raced) = (
        fake.clone(),
        refresher.clone(),
        Arc::new(std::sync::atomic::AtomicBool::new(false)),
    );
    let clock = fake.clone();
    let hook = raced.clone();
    let other = BlockingClient::new(
        move |request: http::Request<Body>| {
            if request.uri().path() == "/api/v1/users/me" && !hook.swap(true, Ordering::SeqCst) {
                clock.advance(Duration::from_secs(3600));
                racing.ensure_fresh().unwrap();
            }
            Ok(server.handle(&request))
        },
        instance(),
    )
    .with_config(config(&fake))
    .with_store(store);
    assert_eq!(other.send_authorized(me()).unwrap().status(), 200);
    assert!(raced.load(Ordering::SeqCst));
    let counters = fake.counters();
    // Two calls to /me: the dead token, then the stored new one; one refresh, the refresher's.
    assert_eq!(
        (counters.me_requests, counters.refreshes),
        (2, 1),
        "{counters:?}"
    );
}

#[test]
fn a_stored_pair_that_is_dead_too_is_refreshed_not_handed_back() {
    // Each access token serves one call. `b`'s token dies; the pair it then takes from the store
    // (`a` refreshed and used it) is dead as well: `b` refreshes itself and gets its answer,
    // instead of giving back the second 401 as if its own refresh had failed.
    let fake = fake_with_uses(1);
    let store = Arc::new(MemoryStore::new());
    let client = || client_of(&fake, store.clone());
    let (a, b) = (client(), client());
    a.login(&Credentials::password("alice", "alice-pw"))
        .unwrap();
    assert_eq!(b.send_authorized(me()).unwrap().status(), 200); // the first token, used up
    assert_eq!(a.send_authorized(me()).unwrap().status(), 200); // refreshed, the second used up
    assert_eq!(fake.counters().refreshes, 1);
    assert_eq!(b.send_authorized(me()).unwrap().status(), 200);
    let counters = fake.counters();
    assert_eq!(counters.refreshes, 2, "{counters:?}");
    assert_eq!(counters.max_refreshes_per_token(), 1);
}

#[test]
fn a_second_401_is_not_handed_back_for_a_refresh_of_ours_sent_after_the_request_left() {
    // Each access token serves two calls. `b`'s call meets a dead token, takes the pair `a`
    // saved (used up too) and sends it; while that request is out, another caller of `b` meets
    // the same dead token and sends a refresh. The call's second 401 is for a token that no
    // refresh of `b` produced: it waits for that refresh and gets its answer.
    let fake = fake_with_uses(2);
    let store = Arc::new(MemoryStore::new());
    let a = client_of(&fake, store.clone());
    let wait = Duration::from_secs(10);
    let (start, started) = mpsc::channel::<()>();
    let (refresh_out, refresh_is_out) = mpsc::channel::<()>();
    let (answered, request_answered) = mpsc::channel::<()>();
    let (refresh_is_out, request_answered) =
        (Mutex::new(refresh_is_out), Mutex::new(request_answered));
    let (server, me_requests, armed) = (fake.clone(), AtomicUsize::new(0), AtomicBool::new(false));
    let b = Arc::new(
        BlockingClient::new(
            move |request: http::Request<Body>| {
                let path = request.uri().path();
                if path == "/api/v1/users/me" && me_requests.fetch_add(1, Ordering::SeqCst) == 2 {
                    // The call's request with the pair taken from the store.
                    armed.store(true, Ordering::SeqCst);
                    start.send(()).unwrap();
                    refresh_is_out.lock().unwrap().recv_timeout(wait).unwrap();
                    let answer = server.handle(&request);
                    answered.send(()).unwrap();
                    return Ok(answer);
                }
                if path == "/api/v1/users/token" && armed.swap(false, Ordering::SeqCst) {
                    refresh_out.send(()).unwrap();
                    request_answered.lock().unwrap().recv_timeout(wait).unwrap();
                }
                Ok(server.handle(&request))
            },
            instance(),
        )
        .with_config(config(&fake))
        .with_store(store),
    );
    a.login(&Credentials::password("alice", "alice-pw"))
        .unwrap();
    // The first token, used up by `b` and `a`; the second, refreshed by `a`, used up by `a`.
    assert_eq!(b.send_authorized(me()).unwrap().status(), 200);
    for _ in 0..3 {
        assert_eq!(a.send_authorized(me()).unwrap().status(), 200);
    }
    assert_eq!(fake.counters().refreshes, 1);
    let other_caller = {
        let b = b.clone();
        std::thread::spawn(move || {
            started.recv_timeout(wait).unwrap();
            b.send_authorized(me()).unwrap().status()
        })
    };
    assert_eq!(b.send_authorized(me()).unwrap().status(), 200);
    assert_eq!(other_caller.join().unwrap(), 200);
    let counters = fake.counters();
    assert_eq!(counters.refreshes, 2, "{counters:?}");
    assert_eq!(counters.max_refreshes_per_token(), 1);
}

/// A client whose token is still good reads the store every 250 ms: a pair another client
/// saved meanwhile is taken before the old token is ever sent (no 401 on the way).
#[test]
fn a_client_with_a_good_token_takes_a_newer_pair_at_its_next_periodic_read() {
    let fake = fake();
    let store = Arc::new(MemoryStore::new());
    let client = |margin: Duration| {
        let transport = transport(&fake);
        let clock = fake.clone();
        AsyncClient::new(move |r| std::future::ready(transport(r)), instance())
            .with_config(
                Config::builder()
                    .clock(move || clock.now())
                    .refresh_margin(margin)
                    .build(),
            )
            .with_store(store.clone())
    };
    // 2000 s into the token's hour, `a` finds it due (a margin of 1700 s); `b` does not.
    let (a, b) = (
        client(Duration::from_secs(1700)),
        client(Duration::from_secs(60)),
    );
    pollster::block_on(async {
        a.login(&Credentials::password("alice", "alice-pw"))
            .await
            .unwrap();
        assert_eq!(b.send_authorized(me()).await.unwrap().status(), 200);
        fake.advance(Duration::from_secs(2000));
        a.ensure_fresh().await.unwrap();
        assert_eq!(fake.counters().refreshes, 1);
        // Past the read interval: b's next call reads the store first.
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(b.send_authorized(me()).await.unwrap().status(), 200);
    });
    let counters = fake.counters();
    assert_eq!(
        (counters.refused_tokens, counters.refreshes),
        (0, 1),
        "{counters:?}"
    );
}

/// `b`'s token dies, `b` refreshes it; before `b`'s request with the new token reaches the
/// server, `a` (another process, as far as `b` can tell) takes that pair from the store and
/// refreshes it, which kills it. `b`'s token from its own refresh died before anything here was
/// answered with it, which alone would end the call (a server refusing every new token); the
/// store shows it was replaced, so `b` sends once more, with the newer pair, and is answered.
#[test]
fn a_token_of_our_own_refresh_another_process_refreshed_before_we_used_it_is_replaced() {
    let fake = fake();
    let store = Arc::new(MemoryStore::new());
    let a = Arc::new(client_of(&fake, store.clone()));
    let api_calls = Arc::new(AtomicUsize::new(0));
    let b_transport = {
        let (fake, a, api_calls) = (fake.clone(), a.clone(), api_calls.clone());
        move |request: http::Request<Body>| {
            if request.uri().path() != "/api/v1/users/me" {
                return Ok(fake.handle(&request));
            }
            match api_calls.fetch_add(1, Ordering::SeqCst) {
                // The token `b` logged in with, killed on the server (say, by an admin).
                0 => Ok(http::Response::builder()
                    .status(401)
                    .header("content-type", "application/problem+json; charset=utf-8")
                    .body(br#"{"status":401,"code":"invalid_token"}"#.to_vec())
                    .unwrap()),
                // `b`'s new token on the wire: `a` refreshes it first.
                1 => {
                    fake.advance(Duration::from_secs(3600));
                    let a = a.clone();
                    std::thread::spawn(move || a.ensure_fresh())
                        .join()
                        .unwrap()
                        .unwrap();
                    Ok(fake.handle(&request))
                }
                _ => Ok(fake.handle(&request)),
            }
        }
    };
    let b = BlockingClient::new(b_transport, instance())
        .with_config(config(&fake))
        .with_store(store.clone());
    b.login(&Credentials::password("alice", "alice-pw"))
        .unwrap();
    let answer = b.send_authorized(me()).unwrap();
    assert_eq!(answer.status(), 200);
    let counters = fake.counters();
    assert_eq!(api_calls.load(Ordering::SeqCst), 3, "{counters:?}");
    assert_eq!(
        (
            counters.refreshes,
            counters.invalid_grants,
            counters.live_sessions
        ),
        (2, 0, 1),
        "{counters:?}"
    );
}

/// The later of two logins through a store wins by the store's history, not by the server's
/// clock: a login made after the server's clock was set back an hour still replaces the one
/// before it, in every client.
#[test]
fn a_later_login_wins_though_the_server_s_clock_went_back() {
    let fake = fake();
    let store = Arc::new(MemoryStore::new());
    let (first, second) = (
        client_of(&fake, store.clone()),
        client_of(&fake, store.clone()),
    );
    first
        .login(&Credentials::password("alice", "alice-pw"))
        .unwrap();
    fake.set_now(fake.now() - Duration::from_secs(3600));
    second
        .login(&Credentials::password("alice", "alice-pw"))
        .unwrap();
    // The first client reads the store at its next call, and takes the later login's pair.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(first.send_authorized(me()).unwrap().status(), 200);
    let lineage = |c: &BlockingClient<_, _>| c.with_session(|s| s.lineage());
    assert_eq!(lineage(&first), lineage(&second));
    let stored = pollster::block_on(store.load(far())).unwrap();
    assert_eq!(stored.lineage, lineage(&second));
    assert_eq!(fake.counters().live_sessions, 1);
}
