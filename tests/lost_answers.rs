//! A refresh whose answer is lost after the server rotated the pair: the client cannot know,
//! sends the old refresh token again, is refused, and (with `with_relogin`) logs in again. On a
//! server that lists token sessions (PeerTube 7.3 and later), the pair the lost answer left
//! alive is then found by the store's tag in its login device and revoked: one session left.
//! An older server cannot list them: that pair lives on until its refresh token expires.
#![cfg(all(feature = "ureq", feature = "fake", feature = "file-store"))]

mod support;

use peertube_session::blocking::{BlockingClient, Config, Relogin, UreqTransport};
use peertube_session::fake::{FakePeerTube, FakeUser, Fault, ServerVersion};
use peertube_session::store::FileStore;
use peertube_session::{Credentials, Error, Instance, TransportErrorKind};
use std::time::Duration;

/// What the fake holds after a lost refresh answer and the re-login that follows, on `version`.
fn after_a_lost_answer(version: ServerVersion) -> peertube_session::fake::Counters {
    let fake = FakePeerTube::builder()
        .user(FakeUser::new("alice", "alice@example.org", "alice-pw"))
        .user(FakeUser::new("bob", "bob@example.org", "bob-pw"))
        .version(version)
        .no_rate_limit()
        .build();
    let server = fake.serve().unwrap();
    let dir = support::scratch_dir("lost");
    let clock = fake.clone();
    let client = BlockingClient::new(
        UreqTransport::new(),
        Instance::new(&server.base_url()).unwrap(),
    )
    .with_config(Config::builder().clock(move || clock.now()).build())
    .with_store(FileStore::open(dir.join("session.json")).unwrap())
    .with_relogin(Relogin::new(|| {
        Some(Credentials::password("alice", "alice-pw"))
    }));
    client
        .login(&Credentials::password("alice", "alice-pw"))
        .unwrap();
    // Another session of the account that this store did not make: never touched.
    BlockingClient::new(
        UreqTransport::new(),
        Instance::new(&server.base_url()).unwrap(),
    )
    .login(&Credentials::password("alice", "alice-pw"))
    .unwrap();
    fake.advance(Duration::from_secs(86_400 + 1));
    server.inject(Some("/api/v1/users/token"), Fault::LoseAnswer);
    let me = || http::Request::get("/api/v1/users/me").body(()).unwrap();
    match client.send_authorized(me()) {
        Err(Error::Transport(error)) => {
            assert_ne!(error.kind(), TransportErrorKind::Timeout, "{error:?}")
        }
        other => panic!("the lost answer is the call's error: {other:?}"),
    }
    // The next call refreshes with the rotated token, is refused, logs in again.
    assert_eq!(client.send_authorized(me()).unwrap().status(), 200);
    let counters = fake.counters();
    assert_eq!(
        (counters.logins, counters.invalid_grants),
        (3, 1),
        "{counters:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    counters
}

#[test]
fn the_pair_a_lost_answer_left_is_revoked_after_the_relogin_where_sessions_are_listed() {
    let counters = after_a_lost_answer(ServerVersion::PeerTube8);
    // The client's new session and the other program's: the orphan is gone.
    assert_eq!(counters.token_sessions_revoked, 1, "{counters:?}");
    assert_eq!(counters.live_sessions, 2, "{counters:?}");
}

#[test]
fn an_older_server_cannot_list_sessions_so_the_pair_a_lost_answer_left_lives_on() {
    let counters = after_a_lost_answer(ServerVersion::PeerTube6);
    assert_eq!(counters.token_sessions_revoked, 0, "{counters:?}");
    assert_eq!(counters.live_sessions, 3, "documented: {counters:?}");
}
