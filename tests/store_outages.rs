//! A store that is away, stalled, wiped, refusing saves or garbled, seen by clients of one
//! process: calls with a usable token go on; a dead token waits for the store within its
//! deadline; a pair the store lost is written back, never revoked for it; a pair another
//! really superseded is revoked. (Real processes, Redis and the file store under the same
//! faults: `tests/store_faults.rs`.)
#![cfg(all(feature = "blocking-client", feature = "fake"))]

mod support;

use peertube_session::blocking::{BlockingClient, Config, STORE_BUDGET};
use peertube_session::store::{Ending, Record, StoreError, StoreFault};
use peertube_session::{Body, Credentials, Error, Instance, TransportError};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use support::faulty_store::FaultyStore;
use support::one_process::*;

#[test]
fn a_stalled_store_holds_a_call_with_a_usable_token_no_longer_than_the_store_budget() {
    let (fake, store) = (fake(), FaultyStore::new());
    let client = client(&fake, &store, MINUTE);
    login(&client);
    store.stalled.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    while started.elapsed() < Duration::from_millis(1500) {
        let call = Instant::now();
        assert_eq!(client.send_authorized(me()).unwrap().status(), 200);
        slowest = slowest.max(call.elapsed());
    }
    // Each read of the stalled store costs one call the budget, and no call more.
    assert!(
        slowest < STORE_BUDGET + Duration::from_millis(200),
        "{slowest:?}"
    );
    // After a failed read the next waits longer: a second or so, not every call.
    let steps = store.steps.load(Ordering::SeqCst);
    assert!((1..=6).contains(&steps), "{steps} reads in 1.5 s");
}

#[test]
fn an_early_refresh_the_store_cannot_lease_uses_the_token_and_is_tried_again_later() {
    let (fake, store) = (fake(), FaultyStore::new());
    let client = client(&fake, &store, MINUTE);
    login(&client);
    // 30 s before expiry: inside the 60 s refresh margin, the token still good.
    fake.advance(Duration::from_secs(LIFETIME - 30));
    store.away.store(true, Ordering::SeqCst);
    let steps_before = store.steps.load(Ordering::SeqCst);
    for _ in 0..20 {
        assert_eq!(client.send_authorized(me()).unwrap().status(), 200);
    }
    let counters = fake.counters();
    assert_eq!((counters.token_requests, counters.refreshes), (1, 0));
    // The failed try quiets early refreshes for a second: fewer store steps than calls (a
    // lease tried on every call costs several steps each: 160 in 20 calls).
    let steps = store.steps.load(Ordering::SeqCst) - steps_before;
    assert!((1..20).contains(&steps), "{steps} store steps in 20 calls");
    // Once the store is back and the pause after the failed try is over, the refresh happens.
    store.away.store(false, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(client.send_authorized(me()).unwrap().status(), 200);
    assert_eq!(fake.counters().refreshes, 1);
}

#[test]
fn a_dead_token_with_the_store_away_waits_until_the_deadline_and_never_refreshes_without_the_lease()
{
    let (fake, store) = (fake(), FaultyStore::new());
    let call_timeout = Duration::from_millis(600);
    let client = client(&fake, &store, call_timeout);
    login(&client);
    fake.advance(Duration::from_secs(LIFETIME + 1));
    store.away.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let error = client.send_authorized(me()).unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(
            &error,
            Error::Store(StoreError::Unavailable {
                fault: StoreFault::Refused,
                ..
            })
        ),
        "the store's own failure, not a bare timeout: {error:?}"
    );
    assert!(waited >= Duration::from_millis(400), "{waited:?}");
    assert!(waited < call_timeout + Duration::from_secs(1), "{waited:?}");
    assert_eq!(fake.counters().refreshes, 0);
}

#[test]
fn a_dead_token_waits_for_a_store_that_comes_back_within_the_call() {
    let (fake, store) = (fake(), FaultyStore::new());
    let client = client(&fake, &store, MINUTE);
    login(&client);
    fake.advance(Duration::from_secs(LIFETIME + 1));
    store.away.store(true, Ordering::SeqCst);
    let back = {
        let store = store.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            store.away.store(false, Ordering::SeqCst);
        })
    };
    let started = Instant::now();
    assert_eq!(client.send_authorized(me()).unwrap().status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(250));
    back.join().unwrap();
    assert_eq!(fake.counters().refreshes, 1);
    assert_eq!(store.record().lineage, client.with_session(|s| s.lineage()));
}

#[test]
fn a_client_with_no_session_of_its_own_and_the_store_away_says_so() {
    let (fake, store) = (fake(), FaultyStore::new());
    login(&client(&fake, &store, MINUTE));
    store.away.store(true, Ordering::SeqCst);
    let newcomer = client(&fake, &store, MINUTE);
    // Not `InvalidState`: the session is in the store, out of reach.
    the_store_is_away_until_it_is_back(&newcomer, &store);
}

/// With `store` away, `newcomer` (holding no session) gets the store's error, and the session
/// once the store is back.
fn the_store_is_away_until_it_is_back(newcomer: &Client, store: &FaultyStore) {
    let got = newcomer.access_token();
    assert!(
        matches!(got, Err(Error::Store(StoreError::Unavailable { .. }))),
        "{got:?}"
    );
    store.away.store(false, Ordering::SeqCst);
    newcomer.access_token().unwrap();
}

#[test]
fn a_save_refused_because_the_store_was_reset_keeps_the_pair_and_writes_it_back() {
    let (fake, store) = (fake(), FaultyStore::new());
    let wiped = store.clone();
    let client = hooked_client(&fake, &store, MINUTE, move || wiped.wipe());
    login(&client);
    fake.advance(Duration::from_secs(LIFETIME + 1));
    client.ensure_fresh().unwrap();
    let counters = fake.counters();
    assert_eq!(counters.refreshes, 1);
    assert_eq!(counters.revocations, 0, "a reset is not a lost race");
    assert_eq!(counters.live_sessions, 1);
    let stored = store.record();
    assert_eq!(stored.lineage, client.with_session(|s| s.lineage()));
    assert_eq!(stored.written_back, None, "written by its maker");
}

#[test]
fn a_pair_another_login_superseded_while_it_was_refreshed_is_revoked() {
    let (fake, store) = (fake(), FaultyStore::new());
    // Another process's login lands in the store while the refresh is on its way, past the
    // lease (its holder was too slow, or the store was away when the login was made).
    let elsewhere = client(&fake, &FaultyStore::new(), MINUTE);
    let (later, clock, shared) = (Arc::new(elsewhere), fake.clone(), store.clone());
    let other = later.clone();
    let client = hooked_client(&fake, &store, MINUTE, move || {
        clock.advance(Duration::from_secs(1));
        login(&later);
        shared.put(Record::new(later.save(), None));
    });
    login(&client);
    fake.advance(Duration::from_secs(LIFETIME + 1));
    client.ensure_fresh().unwrap();
    let counters = fake.counters();
    assert_eq!(
        (counters.logins, counters.refreshes),
        (2, 1),
        "{counters:?}"
    );
    assert_eq!(
        counters.revocations, 1,
        "the superseded new pair: {counters:?}"
    );
    assert_eq!(counters.live_sessions, 1, "{counters:?}");
    // The client is on the later login's pair.
    let lineage = |c: &Client| c.with_session(|s| s.lineage());
    assert_eq!(lineage(&client), lineage(&other));
    assert_eq!(store.record().lineage, lineage(&other));
}

#[test]
fn a_store_that_came_back_empty_is_filled_again_for_a_client_started_after() {
    let (fake, store) = (fake(), FaultyStore::new());
    let client = client(&fake, &store, MINUTE);
    login(&client);
    store.wipe();
    // The next read (at most every 250 ms) finds the store empty and writes the pair back.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(client.send_authorized(me()).unwrap().status(), 200);
    let stored = store.record();
    assert_eq!(stored.lineage, client.with_session(|s| s.lineage()));
    assert!(
        stored.written_back.is_some(),
        "written back by a holder, not its maker"
    );
    let newcomer = self::client(&fake, &store, MINUTE);
    assert_eq!(newcomer.send_authorized(me()).unwrap().status(), 200);
    assert_eq!(fake.counters().logins, 1);
}

#[test]
fn a_written_back_pair_is_refreshed_only_once_it_settled() {
    let (fake, store) = (fake(), FaultyStore::new());
    let client = client(&fake, &store, MINUTE);
    login(&client);
    store.wipe();
    fake.advance(Duration::from_secs(LIFETIME + 1));
    // The dead token is refreshed, but first written back and left to settle: a process
    // holding a newer pair (whose save the wipe lost) would have written it over meanwhile.
    let started = Instant::now();
    client.ensure_fresh().unwrap();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(2), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    assert_eq!(fake.counters().refreshes, 1);
    assert_eq!(
        store.record().written_back,
        None,
        "the refresh's maker saved it"
    );
    // Wiped once more: this write-back is a new one (its own mark), so it settles anew; one
    // taken for the write-back that settled before would be refreshed at once.
    store.wipe();
    fake.advance(Duration::from_secs(LIFETIME + 1));
    let started = Instant::now();
    client.ensure_fresh().unwrap();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(2), "{waited:?}");
    assert_eq!(fake.counters().refreshes, 2);
}

#[test]
fn a_logout_while_the_store_is_away_reaches_it_when_it_is_back() {
    let (fake, store) = (fake(), FaultyStore::new());
    let (client, other) = (client(&fake, &store, MINUTE), client(&fake, &store, MINUTE));
    login(&client);
    assert_eq!(other.send_authorized(me()).unwrap().status(), 200);
    store.away.store(true, Ordering::SeqCst);
    client.logout().unwrap();
    assert_eq!(fake.counters().live_sessions, 0);
    store.away.store(false, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(300));
    // The next read writes the ending; the other client learns it from the store.
    assert_eq!(client.access_token().unwrap_err(), Error::LoggedOut);
    assert_eq!(store.record().ending, Some(Ending::LoggedOut));
    assert_eq!(other.access_token().unwrap_err(), Error::LoggedOut);
}

#[cfg(feature = "file-store")]
#[test]
fn a_garbled_file_costs_calls_nothing_and_the_next_logout_or_login_replaces_it() {
    use peertube_session::store::{FileStore, Record};
    let fake = fake();
    let dir = support::scratch_dir("garbled");
    let path = dir.join("session.json");
    let clock = fake.clone();
    let client = || {
        let clock = clock.clone();
        BlockingClient::new(
            transport(&fake, || {}),
            Instance::new("http://127.0.0.1:9").unwrap(),
        )
        .with_config(Config::builder().clock(move || clock.now()).build())
        .with_store(FileStore::open(&path).unwrap())
    };
    let (first, second) = (client(), client());
    first
        .login(&Credentials::password("alice", "alice-pw"))
        .unwrap();
    assert_eq!(second.send_authorized(me()).unwrap().status(), 200);
    std::fs::write(&path, b"{\"format\": garbage").unwrap();
    for _ in 0..5 {
        assert_eq!(first.send_authorized(me()).unwrap().status(), 200);
        assert_eq!(second.send_authorized(me()).unwrap().status(), 200);
    }
    first.logout().unwrap();
    let stored = Record::from_json(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(stored.ending, Some(Ending::LoggedOut));
    assert_eq!(
        std::fs::read(dir.join("session.json.corrupt")).unwrap(),
        b"{\"format\": garbage"
    );
    assert_eq!(second.access_token().unwrap_err(), Error::LoggedOut);
    std::fs::write(&path, b"more garbage").unwrap();
    second
        .login(&Credentials::password("alice", "alice-pw"))
        .unwrap();
    let stored = Record::from_json(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(stored.lineage, second.with_session(|s| s.lineage()));
    assert_eq!(first.send_authorized(me()).unwrap().status(), 200);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_pair_the_store_could_not_take_serves_calls_while_the_store_is_away() {
    let (fake, store) = (fake(), FaultyStore::new());
    let client = client(&fake, &store, MINUTE);
    login(&client);
    // The refresh's save is refused (a full disk): the new pair is this client's alone.
    store.fail_saves.store(true, Ordering::SeqCst);
    fake.advance(Duration::from_secs(LIFETIME));
    assert_eq!(client.send_authorized(me()).unwrap().status(), 200);
    assert_eq!(fake.counters().refreshes, 1);
    // Then every step fails: calls past the read interval go on with that pair.
    store.away.store(true, Ordering::SeqCst);
    let steps = store.steps.load(Ordering::Relaxed);
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(client.send_authorized(me()).unwrap().status(), 200);
    }
    assert!(
        store.steps.load(Ordering::Relaxed) > steps,
        "the store was read"
    );
    assert_eq!(fake.counters().refreshes, 1);
}

#[test]
fn a_client_that_found_the_store_empty_and_then_meets_it_away_says_the_store_is_away() {
    let (fake, store) = (fake(), FaultyStore::new());
    let newcomer = client(&fake, &store, MINUTE);
    assert!(
        matches!(newcomer.access_token(), Err(Error::InvalidState { .. })),
        "nobody logged in yet"
    );
    // Another process logs in; then the store goes away before this one reads it again.
    login(&client(&fake, &store, MINUTE));
    store.away.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(300));
    // Not `InvalidState`: what the store held before says nothing of now.
    the_store_is_away_until_it_is_back(&newcomer, &store);
}

#[test]
fn callers_of_a_client_with_no_session_yet_each_wait_for_the_slow_store() {
    let (fake, store) = (fake(), FaultyStore::new());
    login(&client(&fake, &store, MINUTE));
    // Each store step takes 100 ms: the first caller's read is under way when the others come.
    store.step_delay_ms.store(100, Ordering::SeqCst);
    let newcomer = Arc::new(client(&fake, &store, MINUTE));
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let newcomer = newcomer.clone();
            std::thread::spawn(move || newcomer.send_authorized(me()).map(|a| a.status()))
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.join().unwrap().unwrap(), 200);
    }
    assert_eq!(fake.counters().logins, 1);
}

/// A refresh whose save the store refused (a full disk) leaves the new pair with this client
/// alone, and the pair it replaced in the store, its refresh token spent. The client keeps the
/// lease until it has written its pair back: another client, whose copy of the old pair has
/// expired, waits for that pair instead of refreshing the spent one (`invalid_grant`, which
/// the store would then carry to every process as the session's end).
#[test]
fn the_lease_of_a_refused_save_is_kept_until_the_pair_is_written_back() {
    let (fake, store) = (fake(), FaultyStore::new());
    let refusing = store.clone();
    let a = Arc::new(hooked_client(&fake, &store, MINUTE, move || {
        refusing.fail_saves.store(true, Ordering::SeqCst)
    }));
    let b = client(&fake, &store, MINUTE);
    login(&a);
    assert_eq!(b.send_authorized(me()).unwrap().status(), 200);
    fake.advance(Duration::from_secs(LIFETIME));
    assert_eq!(a.send_authorized(me()).unwrap().status(), 200);
    store.fail_saves.store(false, Ordering::SeqCst);
    // `a` writes its pair back at its next read of the store, while `b` waits for the lease.
    let writer = {
        let a = a.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            a.send_authorized(me()).map(|answer| answer.status())
        })
    };
    assert_eq!(b.send_authorized(me()).unwrap().status(), 200);
    assert_eq!(writer.join().unwrap().unwrap(), 200);
    let counters = fake.counters();
    assert_eq!(
        (
            counters.refreshes,
            counters.invalid_grants,
            counters.live_sessions
        ),
        (1, 0, 1),
        "{counters:?}"
    );
}

#[test]
fn a_login_and_a_refresh_give_the_store_s_lease_back_at_once() {
    let fake = fake();
    let store = FaultyStore::new();
    let client = client(&fake, &store, MINUTE);
    // Free for the next process each time, not held until it expires.
    let lease_is_free = || {
        let lease = pollster::block_on(peertube_session::store::SessionStore::try_lease(
            &store,
            MINUTE,
            Instant::now() + MINUTE,
        ));
        let free = matches!(&lease, Ok(Some(_)));
        if let Ok(Some(lease)) = lease {
            pollster::block_on(peertube_session::store::SessionStore::release(
                &store,
                lease,
                Instant::now() + MINUTE,
            ))
            .unwrap();
        }
        free
    };
    login(&client);
    assert!(lease_is_free(), "after the login");
    // An early refresh (the token still usable) and a refresh of a dead token.
    for advance in [LIFETIME - 60, LIFETIME + 1] {
        let refreshes = fake.counters().refreshes;
        fake.advance(Duration::from_secs(advance));
        assert_eq!(client.send_authorized(me()).unwrap().status(), 200);
        assert_eq!(fake.counters().refreshes, refreshes + 1);
        assert!(lease_is_free(), "after the refresh, {advance} s on");
    }
}

#[test]
fn a_login_waits_for_a_store_away_a_moment_and_then_for_its_lease() {
    let fake = fake();
    let store = FaultyStore::new();
    let client = client(&fake, &store, MINUTE);
    // The store is away, and back with its lease held by another process's login.
    store.away.store(true, Ordering::SeqCst);
    store.lease_taken.store(true, Ordering::SeqCst);
    std::thread::scope(|scope| {
        let login = scope.spawn(|| login(&client));
        std::thread::sleep(STORE_BUDGET / 2);
        store.away.store(false, Ordering::SeqCst);
        // Gone without the lease while it was away for less than the store budget, the login
        // would have been sent by now.
        std::thread::sleep(STORE_BUDGET * 2);
        assert_eq!(fake.counters().logins, 0);
        store.lease_taken.store(false, Ordering::SeqCst);
        login.join().unwrap();
    });
    assert_eq!(fake.counters().logins, 1);
}

/// A login revokes the pair it replaced; one whose access token has expired (401
/// `invalid_token`) is refreshed first, then revoked.
#[test]
fn a_login_revokes_the_pair_it_replaced_even_once_its_access_token_expired() {
    let (fake, store) = (fake(), FaultyStore::new());
    login(&client(&fake, &store, MINUTE));
    fake.advance(Duration::from_secs(LIFETIME + 1));
    login(&client(&fake, &store, MINUTE));
    let counters = fake.counters();
    assert_eq!(
        (
            counters.logins,
            counters.refreshes,
            counters.revocations,
            counters.live_sessions
        ),
        (2, 1, 1, 1),
        "{counters:?}"
    );
}

/// A replaced pair whose access token is refused before its time was revoked already (here:
/// with every session of the account, by a password change): not refreshed to be revoked, which
/// would only send a dead refresh token.
#[test]
fn a_replaced_pair_already_revoked_is_not_refreshed() {
    let (fake, store) = (fake(), FaultyStore::new());
    login(&client(&fake, &store, MINUTE));
    fake.change_password("alice", "new-pw");
    client(&fake, &store, MINUTE)
        .login(&Credentials::password("alice", "new-pw"))
        .unwrap();
    let counters = fake.counters();
    assert_eq!(
        (
            counters.revoke_requests,
            counters.refreshes,
            counters.invalid_grants,
            counters.live_sessions
        ),
        (1, 0, 0, 1),
        "{counters:?}"
    );
}

/// The same, with the refreshed pair's revocation refused as well (the server turned it away
/// once more): nothing more is tried, no second refresh.
#[test]
fn a_replaced_pair_whose_refreshed_token_is_refused_too_is_refreshed_only_once() {
    let (fake, store) = (fake(), FaultyStore::new());
    login(&client(&fake, &store, MINUTE));
    fake.advance(Duration::from_secs(LIFETIME + 1));
    let revocations = std::sync::atomic::AtomicU64::new(0);
    let server = fake.clone();
    let refusing: Transport = Box::new(move |mut request| {
        let is_revocation = request.uri().path() == "/api/v1/users/revoke-token";
        if is_revocation && revocations.fetch_add(1, Ordering::SeqCst) == 1 {
            // The fake's own 401 `invalid_token`, for a token it does not know.
            request.headers_mut().insert(
                http::header::AUTHORIZATION,
                http::HeaderValue::from_static("Bearer refused"),
            );
        }
        Ok(server.handle(&request))
    });
    login(&client_over(&fake, &store, MINUTE, refusing));
    let counters = fake.counters();
    assert_eq!(
        (counters.logins, counters.refreshes, counters.revocations),
        (2, 1, 0),
        "{counters:?}"
    );
}

/// A client whose save failed keeps the store's lease, and its next refresh is made under it
/// at once: the lease is its own, not another process's to wait for. (The store takes no
/// writes, as a read-only directory: neither a save nor giving the lease back.)
#[test]
fn the_lease_kept_from_a_refused_save_serves_the_next_refresh() {
    let (fake, store) = (fake(), FaultyStore::new());
    let refusing = store.clone();
    let client = hooked_client(&fake, &store, Duration::from_secs(2), move || {
        refusing.fail_saves.store(true, Ordering::SeqCst);
        refusing.fail_releases.store(true, Ordering::SeqCst);
    });
    login(&client);
    for refreshes in 1..=2 {
        fake.advance(Duration::from_secs(LIFETIME + 1));
        assert_eq!(client.send_authorized(me()).unwrap().status(), 200);
        assert_eq!(fake.counters().refreshes, refreshes);
    }
}

/// Another process logged out while this client waited for the lease to refresh: once it has
/// the lease, it finds the logout, and re-login does not undo it.
#[test]
fn a_logout_found_under_the_lease_is_not_undone_by_relogin() {
    let (fake, store) = (fake(), FaultyStore::new());
    let client =
        client(&fake, &store, MINUTE).with_relogin(peertube_session::blocking::Relogin::new(
            || Some(Credentials::password("alice", "alice-pw")),
        ));
    login(&client);
    fake.advance(Duration::from_secs(LIFETIME + 1));
    // Another process holds the lease, and logs out.
    store.lease_taken.store(true, Ordering::SeqCst);
    std::thread::scope(|scope| {
        let call = scope.spawn(|| client.send_authorized(me()).map(|answer| answer.status()));
        std::thread::sleep(Duration::from_millis(200));
        let mut record = store.record();
        record.ending = Some(Ending::LoggedOut);
        if let Some(session) = record.session.as_mut() {
            session.tokens = None;
        }
        store.put(record);
        std::thread::sleep(Duration::from_millis(200));
        store.lease_taken.store(false, Ordering::SeqCst);
        assert_eq!(call.join().unwrap(), Err(Error::LoggedOut));
    });
    assert_eq!(fake.counters().logins, 1);
}

/// The lease kept from a refused save serves only a refresh of the pair it was kept for: once
/// the store was wiped and another process logged in, the client waits for the store's lease
/// like everyone else (here held by a third process) before it refreshes that process's pair,
/// and the pair it held, superseded, is revoked.
#[test]
fn the_lease_kept_from_a_refused_save_does_not_serve_another_process_s_pair() {
    let (fake, store) = (fake(), FaultyStore::new());
    // The save of `a`'s first refresh fails.
    let refusing = store.clone();
    let first = std::sync::atomic::AtomicBool::new(true);
    let a = hooked_client(&fake, &store, Duration::from_secs(1), move || {
        if first.swap(false, Ordering::SeqCst) {
            refusing.fail_saves.store(true, Ordering::SeqCst);
        }
    });
    login(&a);
    fake.advance(Duration::from_secs(LIFETIME + 1));
    assert_eq!(a.send_authorized(me()).unwrap().status(), 200);
    // The store restarted empty, and another process logged in before `a` wrote back.
    store.fail_saves.store(false, Ordering::SeqCst);
    store.wipe();
    let b = client(&fake, &store, MINUTE);
    login(&b);
    assert_eq!(a.send_authorized(me()).unwrap().status(), 200);
    fake.advance(Duration::from_secs(LIFETIME + 1));
    store.lease_taken.store(true, Ordering::SeqCst);
    assert_eq!(
        a.send_authorized(me()).unwrap_err(),
        Error::Store(StoreError::LeaseBusy)
    );
    // `a`'s first refresh, and the one that let it revoke its superseded pair (whose access
    // token had expired): none of `b`'s pair while the lease is another's.
    let counters = fake.counters();
    assert_eq!(
        (counters.refreshes, counters.revocations),
        (2, 1),
        "{counters:?}"
    );
    store.lease_taken.store(false, Ordering::SeqCst);
    assert_eq!(a.send_authorized(me()).unwrap().status(), 200);
    assert_eq!(b.send_authorized(me()).unwrap().status(), 200);
    let counters = fake.counters();
    assert_eq!(
        (counters.invalid_grants, counters.live_sessions),
        (0, 1),
        "{counters:?}"
    );
}

/// An early refresh (the token still usable) that gets no answer costs the call nothing: it
/// goes on with the token it has, and the refresh is tried again later.
#[test]
fn an_early_refresh_that_gets_no_answer_costs_the_call_nothing() {
    let (fake, store) = (fake(), FaultyStore::new());
    let server = fake.clone();
    let tried = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let tries = tried.clone();
    let unanswered: Transport = Box::new(move |request| {
        if is_refresh(&request) {
            tries.fetch_add(1, Ordering::SeqCst);
            return Err(TransportError::of_kind(
                peertube_session::TransportErrorKind::Timeout,
            ));
        }
        Ok(server.handle(&request))
    });
    let client = client_over(&fake, &store, MINUTE, unanswered);
    login(&client);
    fake.advance(Duration::from_secs(LIFETIME - 60));
    assert_eq!(client.send_authorized(me()).unwrap().status(), 200);
    let counters = fake.counters();
    assert_eq!(
        (counters.refreshes, counters.me_requests),
        (0, 1),
        "{counters:?}"
    );
    assert_eq!(tried.load(Ordering::SeqCst), 1);
}

/// A written-back pair settles once the store has been up for the settling time in a row: a
/// store that fails meanwhile starts the time again (a process holding a newer pair could not
/// write it while the store was away).
#[test]
fn a_written_back_pair_settles_only_once_the_store_stayed_up() {
    let (fake, store) = (fake(), FaultyStore::new());
    let client = client(&fake, &store, MINUTE);
    login(&client);
    store.wipe();
    fake.advance(Duration::from_secs(LIFETIME + 1));
    let started = Instant::now();
    std::thread::scope(|scope| {
        let refresh = scope.spawn(|| client.ensure_fresh());
        std::thread::sleep(Duration::from_millis(1000));
        store.away.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(1500));
        store.away.store(false, Ordering::SeqCst);
        refresh.join().unwrap().unwrap();
    });
    // Away from 1 s to 2.5 s: settled no earlier than 2 s after that.
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(4400), "{waited:?}");
    assert_eq!(fake.counters().refreshes, 1);
}

/// The refresh lease outlives the refresh: the exchange's timeout and five seconds more, so
/// that no other process takes it while the refresh, or the save after it, is under way.
#[cfg(feature = "file-store")]
#[test]
fn the_refresh_lease_lives_past_the_exchange_s_timeout() {
    use peertube_session::store::FileStore;
    let fake = fake();
    let dir = support::scratch_dir("lease-life");
    let path = dir.join("session.json");
    let lease_file = path.with_file_name("session.json.lease");
    // What the lease file says is left of the lease when the refresh request goes out.
    let left_ms = Arc::new(std::sync::Mutex::new(None));
    let seen = left_ms.clone();
    let at_refresh = move || {
        let lease: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&lease_file).unwrap()).unwrap();
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let until_ms = u128::from(lease["until_ms"].as_u64().unwrap());
        *seen.lock().unwrap() = Some(until_ms.saturating_sub(now_ms));
    };
    let clock = fake.clone();
    let config = Config::builder()
        .clock(move || clock.now())
        .timeout(Duration::from_secs(10))
        .build();
    let client = BlockingClient::new(
        transport(&fake, at_refresh),
        Instance::new("http://127.0.0.1:9").unwrap(),
    )
    .with_config(config)
    .with_store(FileStore::open(&path).unwrap());
    client
        .login(&Credentials::password("alice", "alice-pw"))
        .unwrap();
    fake.advance(Duration::from_secs(LIFETIME + 1));
    assert_eq!(client.send_authorized(me()).unwrap().status(), 200);
    let left = left_ms.lock().unwrap().expect("a refresh was sent");
    assert!((14_000..=15_000).contains(&left), "{left} ms");
    let _ = std::fs::remove_dir_all(dir);
}

/// A call dropped by its caller while it holds the store's lease (its refresh request in the
/// air) does not keep the lease until it runs out: it is given back at the client's next read
/// of the store, and the next call refreshes at once.
#[cfg(feature = "async-client")]
#[test]
fn a_call_dropped_while_it_held_the_lease_does_not_keep_it() {
    use peertube_session::asynchronous::AsyncClient;
    use std::future::Future;
    use std::pin::Pin;
    type Answering = Pin<Box<dyn Future<Output = Answer> + Send>>;
    let (fake, store) = (fake(), FaultyStore::new());
    let server = fake.clone();
    let first_refresh = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let hang_once = first_refresh.clone();
    let transport = move |request: http::Request<Body>| -> Answering {
        if is_refresh(&request) && hang_once.swap(false, Ordering::SeqCst) {
            return Box::pin(std::future::pending());
        }
        Box::pin(std::future::ready(Ok(server.handle(&request))))
    };
    let clock = fake.clone();
    let config = Config::builder()
        .clock(move || clock.now())
        .call_timeout(Duration::from_secs(2))
        .build();
    let client = AsyncClient::new(transport, Instance::new("http://127.0.0.1:9").unwrap())
        .with_config(config)
        .with_store(store.clone());
    pollster::block_on(client.login(&Credentials::password("alice", "alice-pw"))).unwrap();
    fake.advance(Duration::from_secs(LIFETIME + 1));
    // Polled until its refresh is in the air, then dropped.
    let mut call = Box::pin(client.send_authorized(me()));
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(call.as_mut().poll(&mut context).is_pending());
    assert!(
        !first_refresh.load(Ordering::SeqCst),
        "the refresh was sent"
    );
    drop(call);
    let answer = pollster::block_on(client.send_authorized(me()));
    assert_eq!(
        answer.map(|answer| answer.status()),
        Ok(http::StatusCode::OK)
    );
    assert_eq!(fake.counters().refreshes, 1);
}

/// A written-back pair settles across calls: a client whose calls end sooner than the
/// settling time (two seconds) goes on where its last call stopped, and refreshes, instead of
/// failing every call.
#[test]
fn a_written_back_pair_settles_across_calls_shorter_than_the_settling_time() {
    let (fake, store) = (fake(), FaultyStore::new());
    let client = client(&fake, &store, Duration::from_secs(1));
    login(&client);
    store.wipe();
    fake.advance(Duration::from_secs(LIFETIME + 1));
    let answered = (0..5).any(|_| client.send_authorized(me()).is_ok());
    assert!(answered, "no call of five answered");
    assert_eq!(fake.counters().refreshes, 1);
}
