//! The store failing or changing while a client holds its refresh lease, seen by one process:
//! a read that fails is made again (a refresh that is due) or given up (an early one); a store
//! found behind gets this client's pair; a refused refresh of a pair the store does not hold
//! ends nobody else's session, and a newer pair that comes meanwhile is taken. (Before the
//! lease and around it: `tests/store_outages.rs`.)
#![cfg(all(feature = "blocking-client", feature = "fake"))]

mod support;

use peertube_session::Error;
use peertube_session::fake::FakePeerTube;
use peertube_session::store::Record;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};
use support::faulty_store::FaultyStore;
use support::one_process::*;

/// The call timeout of the clients that must not wait for a pair to settle (two seconds).
const SHORT_CALL: Duration = Duration::from_millis(1500);

#[test]
fn a_store_read_that_fails_under_the_lease_is_made_again_until_the_store_answers() {
    let (fake, store) = (fake(), FaultyStore::new());
    let client = client(&fake, &store, MINUTE);
    login(&client);
    fake.advance(Duration::from_secs(LIFETIME + 1));
    // The store restarts the moment the lease is granted.
    store.after_next_lease(|store| store.away_for(Duration::from_millis(300)));
    let started = Instant::now();
    assert_eq!(client.send_authorized(me()).unwrap().status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    let counters = fake.counters();
    assert_eq!(
        (
            counters.refreshes,
            counters.refused_tokens,
            counters.invalid_grants
        ),
        (1, 0, 0),
        "one refresh, made once the store answered; the dead token never sent: {counters:?}"
    );
    assert_eq!(store.record().lineage, client.with_session(|s| s.lineage()));
}

#[test]
fn an_early_refresh_whose_store_read_fails_under_the_lease_uses_the_token_as_it_is() {
    let (fake, store) = (fake(), FaultyStore::new());
    let client = client(&fake, &store, MINUTE);
    login(&client);
    fake.advance(Duration::from_secs(LIFETIME - 60));
    store.after_next_lease(|store| store.away_for(Duration::from_secs(5)));
    let started = Instant::now();
    assert_eq!(client.send_authorized(me()).unwrap().status(), 200);
    // One read of the store, then the token as it is: not a wait for the store.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(fake.counters().refreshes, 0);
}

/// The store went back to an older login's record (restored from a backup) between this
/// client's taking the lease and reading the store, and that record carries another process's
/// 429 wait: the early refresh is called off for the wait, and this client's pair, the newer,
/// is written over the older one all the same.
#[test]
fn an_older_record_found_under_the_lease_gets_our_pair_though_its_wait_calls_the_refresh_off() {
    let (fake, store) = (fake(), FaultyStore::new());
    login(&client(&fake, &store, MINUTE));
    let mut restored = store.record();
    fake.advance(Duration::from_secs(1));
    let client = client(&fake, &store, MINUTE);
    login(&client);
    fake.advance(Duration::from_secs(LIFETIME - 60));
    let server_now = fake.now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    restored.refresh_not_before = Some(server_now + 600);
    store.after_next_lease(move |store| store.put(restored));
    assert_eq!(client.send_authorized(me()).unwrap().status(), 200);
    assert_eq!(fake.counters().refreshes, 0, "the wait is kept");
    let stored = store.record();
    assert_eq!(stored.lineage, client.with_session(|s| s.lineage()));
    assert!(
        stored.refresh_not_before.is_some(),
        "and carried on to the others"
    );
}

/// A client holding the pair of its own refresh, which the store never took (the save
/// failed); the store was wiped since, and holds the pair before it, put back by another
/// process (marked `written_back`). What happens at the client's second refresh is `second`.
/// Returns the client and the store's record; nothing has expired yet.
fn own_pair_the_store_lacks(
    fake: &FakePeerTube,
    store: &Arc<FaultyStore>,
    written_back: Option<u64>,
    second: impl Fn() + Send + Sync + 'static,
) -> (Client, Record) {
    let refusing = store.clone();
    let refreshes = AtomicU64::new(0);
    let client = hooked_client(fake, store, SHORT_CALL, move || {
        if refreshes.fetch_add(1, Ordering::SeqCst) == 0 {
            refusing.fail_saves.store(true, Ordering::SeqCst);
        } else {
            second();
        }
    });
    login(&client);
    let first = store.record();
    fake.advance(Duration::from_secs(LIFETIME + 1));
    assert_eq!(client.send_authorized(me()).unwrap().status(), 200);
    store.fail_saves.store(false, Ordering::SeqCst);
    store.wipe();
    store.put(first.with_written_back(written_back));
    (client, store.record())
}

/// The server ends `client`'s pair (a logout from another device's session list).
fn revoke_on_the_server(fake: &FakePeerTube, client: &Client) {
    let token = client.with_session(|s| s.access_token().cloned()).unwrap();
    let instance = peertube_session::Instance::new("http://127.0.0.1:9").unwrap();
    let revoke = peertube_session::request::revoke_request(&instance, &token).unwrap();
    assert_eq!(fake.handle(&revoke).status(), 200);
}

/// Nobody can hold a pair newer than one this client got from the server itself: when it is
/// due, it is refreshed at once, though the store holds an older pair another process wrote
/// back (such a pair waits two seconds to settle before it is refreshed, in case a newer one
/// comes).
#[test]
fn a_pair_of_our_own_refresh_is_refreshed_at_once_over_an_older_written_back_pair() {
    let (fake, store) = (fake(), FaultyStore::new());
    let (client, _) = own_pair_the_store_lacks(&fake, &store, Some(7), || {});
    fake.advance(Duration::from_secs(LIFETIME + 1));
    assert_eq!(client.send_authorized(me()).unwrap().status(), 200);
    let counters = fake.counters();
    assert_eq!(
        (counters.refreshes, counters.live_sessions),
        (2, 1),
        "{counters:?}"
    );
    let stored = store.record();
    assert_eq!(stored.lineage, client.with_session(|s| s.lineage()));
    assert_eq!(stored.written_back, None, "saved by its maker");
}

/// Fenced: a refusal of a pair the store does not hold ends this client's session only; the
/// store keeps what it held.
#[test]
fn a_refused_refresh_of_a_pair_the_store_does_not_hold_ends_nobody_else_s_session() {
    let (fake, store) = (fake(), FaultyStore::new());
    let (client, stored) = own_pair_the_store_lacks(&fake, &store, None, || {});
    revoke_on_the_server(&fake, &client);
    fake.advance(Duration::from_secs(LIFETIME + 1));
    let refused = client.send_authorized(me()).unwrap_err();
    assert!(matches!(refused, Error::LoginRequired(_)), "{refused:?}");
    assert_eq!(fake.counters().invalid_grants, 1);
    let now = store.record();
    assert_eq!(now.ending, None, "no ending for the others");
    assert_eq!((now.version, now.lineage), (stored.version, stored.lineage));
}

/// After a refusal of a pair the store does not hold, the client waits for a newer pair in
/// the store (the one the process that refreshed it writes back), and takes it: the call is
/// answered.
#[test]
fn a_refused_refresh_of_a_pair_the_store_does_not_hold_waits_for_the_newer_pair() {
    let (fake, store) = (fake(), FaultyStore::new());
    let newer: Arc<Mutex<Option<Record>>> = Arc::default();
    let (slot, writer) = (newer.clone(), store.clone());
    let (client, _) = own_pair_the_store_lacks(&fake, &store, None, move || {
        // It comes a moment after the refusal.
        let (record, writer) = (slot.lock().unwrap().take(), writer.clone());
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            writer.put(record.expect("the newer record is ready"));
        });
    });
    revoke_on_the_server(&fake, &client);
    // Another process's login, ten minutes later: usable when the client's pair has expired.
    fake.advance(Duration::from_secs(600));
    let other = self::client(&fake, &FaultyStore::new(), MINUTE);
    login(&other);
    let lineage = other.with_session(|s| s.lineage());
    *newer.lock().unwrap() = Some(Record::new(other.save(), None).with_lineage(lineage));
    fake.advance(Duration::from_secs(LIFETIME - 599));
    assert_eq!(client.send_authorized(me()).unwrap().status(), 200);
    assert_eq!(client.with_session(|s| s.lineage()), lineage);
    assert_eq!(fake.counters().invalid_grants, 1);
}

/// The record was restored from a backup (the pair before, the lease left as it was) while
/// this client's refresh was in the air: the save is refused (the version moved), the store
/// read again and found behind, and the new pair saved over it; nothing is revoked.
#[test]
fn a_record_restored_from_a_backup_during_a_refresh_gets_the_new_pair() {
    let (fake, store) = (fake(), FaultyStore::new());
    let backup: Arc<Mutex<Option<Record>>> = Arc::default();
    let (slot, restoring) = (backup.clone(), store.clone());
    let client = hooked_client(&fake, &store, MINUTE, move || {
        if let Some(record) = slot.lock().unwrap().take() {
            restoring.put(record);
        }
    });
    login(&client);
    *backup.lock().unwrap() = Some(store.record());
    fake.advance(Duration::from_secs(LIFETIME + 1));
    client.ensure_fresh().unwrap();
    let counters = fake.counters();
    assert_eq!(
        (
            counters.refreshes,
            counters.revocations,
            counters.live_sessions
        ),
        (1, 0, 1),
        "{counters:?}"
    );
    let stored = store.record();
    assert_eq!(stored.lineage, client.with_session(|s| s.lineage()));
    assert_eq!(stored.written_back, None, "saved by its maker");
}

/// A session nothing here can renew (its refresh was refused, and the client has no way to
/// log in again) answers every later call at once: it takes no lease (a round trip to the
/// store, and a wait for the other processes) only to find the same.
#[test]
fn a_session_that_cannot_be_renewed_takes_no_lease() {
    let (fake, store) = (fake(), FaultyStore::new());
    let client = client(&fake, &store, MINUTE);
    login(&client);
    fake.change_password("alice", "new-pw");
    fake.advance(Duration::from_secs(LIFETIME + 1));
    assert!(matches!(
        client.access_token(),
        Err(Error::LoginRequired(_))
    ));
    let leased = Arc::new(AtomicBool::new(false));
    let noted = leased.clone();
    store.after_next_lease(move |_| noted.store(true, Ordering::SeqCst));
    assert!(matches!(
        client.access_token(),
        Err(Error::LoginRequired(_))
    ));
    assert!(!leased.load(Ordering::SeqCst), "a lease was taken");
    assert_eq!(
        fake.counters().token_requests,
        2,
        "the login and the refused refresh"
    );
}
