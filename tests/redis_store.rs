//! The Redis stores against a real `redis-server` on loopback.
#![cfg(feature = "redis")]

#[path = "support/redis_server.rs"]
mod redis_server;

use peertube_session::store::{
    AsyncRedisStore, Record, RedisStore, SessionStore, StoreError, StoreFault, Version,
};
use peertube_session::{Instance, Session};
use redis_server::RedisServer;
use std::time::{Duration, Instant};

fn far() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

fn fault(error: &StoreError) -> Option<StoreFault> {
    match error {
        StoreError::Unavailable { fault, .. } => Some(*fault),
        _ => None,
    }
}

fn instance() -> Instance {
    Instance::new("https://video.example.org").unwrap()
}

fn record() -> Record {
    Record::new(Session::new(instance()).save(), None)
}

fn run<F: std::future::Future>(future: F) -> F::Output {
    pollster::block_on(future)
}

/// The same steps through any store: compare-and-set, the lease, fencing.
async fn exercise(store: &impl SessionStore, other: &impl SessionStore) {
    assert_eq!(store.version(far()).await, Ok(Version::EMPTY));
    assert_eq!(store.load(far()).await.unwrap(), Record::empty());
    assert_eq!(
        store.save(Version::EMPTY, record(), None, far()).await,
        Ok(Version(1))
    );
    assert_eq!(other.version(far()).await, Ok(Version(1)));
    assert_eq!(
        other.save(Version::EMPTY, record(), None, far()).await,
        Err(StoreError::Conflict)
    );
    let loaded = other.load(far()).await.unwrap();
    assert_eq!(
        (loaded.version, loaded.session),
        (Version(1), record().session)
    );

    let long = Duration::from_secs(60);
    let first = store.try_lease(long, far()).await.unwrap().unwrap();
    assert_eq!(other.try_lease(long, far()).await.unwrap(), None);
    store.release(first.clone(), far()).await.unwrap();
    let short = other
        .try_lease(Duration::from_millis(50), far())
        .await
        .unwrap()
        .unwrap();
    assert!(short.fence() > first.fence());
    std::thread::sleep(Duration::from_millis(120));
    let taken_over = store.try_lease(long, far()).await.unwrap().unwrap();
    assert!(taken_over.fence() > short.fence());
    // The late holder's save is refused, however current its version.
    assert_eq!(
        other.save(Version(1), record(), Some(&short), far()).await,
        Err(StoreError::LeaseLost)
    );
    other.release(short, far()).await.unwrap();
    assert_eq!(other.try_lease(long, far()).await.unwrap(), None);
    assert_eq!(
        store
            .save(Version(1), record(), Some(&taken_over), far())
            .await,
        Ok(Version(2))
    );
    store.release(taken_over, far()).await.unwrap();
}

#[test]
fn the_blocking_store_saves_compare_and_set_and_fences_its_lease() {
    let Some(server) = RedisServer::start(None) else {
        return;
    };
    let store = RedisStore::open(&server.url(), &instance(), "alice").unwrap();
    let other = RedisStore::open(&server.url(), &instance(), "alice").unwrap();
    run(exercise(&store, &other));
    // Another account on the same instance is another session.
    let bob = RedisStore::open(&server.url(), &instance(), "bob").unwrap();
    assert_eq!(run(bob.version(far())), Ok(Version::EMPTY));
}

#[test]
fn the_async_store_does_the_same_on_tokio() {
    let Some(server) = RedisServer::start(None) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = AsyncRedisStore::open(&server.url(), &instance(), "alice")
            .await
            .unwrap();
        let other = AsyncRedisStore::open(&server.url(), &instance(), "alice")
            .await
            .unwrap();
        exercise(&store, &other).await;
    });
}

#[test]
fn a_password_in_the_url_is_used_and_never_printed() {
    let Some(server) = RedisServer::start(Some("s3cret-pass")) else {
        return;
    };
    let url = format!("redis://:s3cret-pass@127.0.0.1:{}/", server.port());
    let store = RedisStore::open(&url, &instance(), "alice").unwrap();
    assert_eq!(run(store.version(far())), Ok(Version::EMPTY));
    assert!(!format!("{store:?}").contains("s3cret"));

    let wrong = format!("redis://:wrong-pass@127.0.0.1:{}/", server.port());
    let error = RedisStore::open(&wrong, &instance(), "alice").unwrap_err();
    assert_eq!(fault(&error), Some(StoreFault::Authentication), "{error:?}");
    assert!(
        !format!("{error} {error:?}").contains("wrong-pass"),
        "{error}"
    );
    let none = RedisStore::open(&server.url(), &instance(), "alice").unwrap_err();
    assert_eq!(fault(&none), Some(StoreFault::Authentication), "{none:?}");
    assert!(none.to_string().contains("authentication failed"), "{none}");
}

#[test]
fn an_unreachable_redis_or_a_bad_url_is_a_typed_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}/");
    let refused = RedisStore::open(&url, &instance(), "alice").unwrap_err();
    assert_eq!(fault(&refused), Some(StoreFault::Refused), "{refused:?}");
    assert!(
        refused.to_string().contains("connection refused"),
        "{refused}"
    );
    let bad = RedisStore::open("http://not-redis/", &instance(), "alice").unwrap_err();
    assert_eq!(fault(&bad), Some(StoreFault::Other), "{bad:?}");
}

#[cfg(all(feature = "hyper", feature = "fake"))]
#[test]
fn two_async_clients_share_one_session_through_redis() {
    use peertube_session::asynchronous::{AsyncClient, Config, HyperTransport};
    use peertube_session::fake::{FakePeerTube, FakeUser};
    use peertube_session::{Credentials, Error};

    let Some(server) = RedisServer::start(None) else {
        return;
    };
    let fake = FakePeerTube::builder()
        .user(FakeUser::new("alice", "alice@example.org", "alice-pw"))
        .no_rate_limit()
        .build();
    let peertube = fake.serve().unwrap();
    let instance = Instance::new(&peertube.base_url()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = || async {
            let clock = fake.clone();
            let store = AsyncRedisStore::open(&server.url(), &instance, "alice")
                .await
                .unwrap();
            AsyncClient::new(HyperTransport::new(), instance.clone())
                .with_config(Config::builder().clock(move || clock.now()).build())
                .with_store(store)
        };
        let (a, b) = (client().await, client().await);
        a.login(&Credentials::password("alice", "alice-pw"))
            .await
            .unwrap();
        let me = || http::Request::get("/api/v1/users/me").body(()).unwrap();
        assert_eq!(b.send_authorized(me()).await.unwrap().status(), 200);
        fake.advance(Duration::from_secs(86_400));
        assert_eq!(b.send_authorized(me()).await.unwrap().status(), 200);
        assert_eq!(a.send_authorized(me()).await.unwrap().status(), 200);
        a.logout().await.unwrap();
        assert_eq!(b.send_authorized(me()).await.unwrap_err(), Error::LoggedOut);
    });
    let counters = fake.counters();
    assert_eq!(
        (counters.logins, counters.refreshes),
        (1, 1),
        "{counters:?}"
    );
    assert_eq!(counters.live_sessions, 0);
}

#[test]
fn a_paused_redis_costs_a_command_no_more_than_its_caller_allows() {
    let Some(server) = RedisServer::start(None) else {
        return;
    };
    let store = RedisStore::open(&server.url(), &instance(), "alice").unwrap();
    server.pause();
    let started = Instant::now();
    let error = run(store.version(Instant::now() + Duration::from_millis(200))).unwrap_err();
    let waited = started.elapsed();
    server.resume();
    assert_eq!(fault(&error), Some(StoreFault::TimedOut), "{error:?}");
    assert!(error.to_string().contains("timed out"), "{error}");
    assert!(waited < Duration::from_millis(700), "{waited:?}");
    // The connection that timed out is not reused (its late answer would be read as the next
    // one's): the next command gets the right answer.
    assert_eq!(run(store.version(far())), Ok(Version::EMPTY));
}

#[test]
fn a_save_that_timed_out_may_have_landed_and_reading_again_tells() {
    let Some(server) = RedisServer::start(None) else {
        return;
    };
    let store = RedisStore::open(&server.url(), &instance(), "alice").unwrap();
    // Redis knows the script from an earlier save, so the one it is sent is all it needs.
    run(store.save(Version::EMPTY, record(), None, far())).unwrap();
    server.pause();
    let late = Instant::now() + Duration::from_millis(150);
    let saved = run(store.save(Version(1), record(), None, late));
    assert_eq!(
        saved.as_ref().err().and_then(fault),
        Some(StoreFault::TimedOut),
        "{saved:?}"
    );
    server.resume();
    // Redis ran the script it had received: the outcome the caller did not see is there.
    let landed = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        run(store.version(far())) == Ok(Version(2))
    });
    assert!(landed);
}

#[test]
fn after_a_restart_the_first_command_connects_again_and_succeeds() {
    let Some(mut server) = RedisServer::start(None) else {
        return;
    };
    let store = RedisStore::open(&server.url(), &instance(), "alice").unwrap();
    run(store.save(Version::EMPTY, record(), None, far())).unwrap();
    server.restart();
    // The idle connection died with the old server; the command is sent again on a new one.
    assert_eq!(run(store.version(far())), Ok(Version::EMPTY));
    assert_eq!(
        run(store.save(Version::EMPTY, record(), None, far())),
        Ok(Version(1))
    );
    server.kill();
    let error = run(store.version(far())).unwrap_err();
    assert_eq!(fault(&error), Some(StoreFault::Refused), "{error:?}");
}

#[test]
fn the_async_store_connects_again_after_a_restart() {
    let Some(mut server) = RedisServer::start(None) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = runtime
        .block_on(AsyncRedisStore::open(&server.url(), &instance(), "alice"))
        .unwrap();
    server.restart();
    runtime.block_on(async {
        assert_eq!(store.version(far()).await, Ok(Version::EMPTY));
    });
    server.pause();
    let started = Instant::now();
    let error = runtime
        .block_on(store.version(Instant::now() + Duration::from_millis(200)))
        .unwrap_err();
    server.resume();
    assert_eq!(fault(&error), Some(StoreFault::TimedOut), "{error:?}");
    assert!(started.elapsed() < Duration::from_millis(700));
}

#[test]
fn a_connection_closed_by_the_other_end_is_dropped_not_refused() {
    // Something that accepts connections and closes them at once, as a proxy in front of a
    // dead Redis does.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(4) {
            drop(stream);
        }
    });
    let url = format!("redis://127.0.0.1:{port}/");
    let error = RedisStore::open(&url, &instance(), "alice").unwrap_err();
    assert_eq!(fault(&error), Some(StoreFault::Dropped), "{error:?}");
    assert!(error.to_string().contains("connection dropped"), "{error}");
}

#[test]
fn a_value_that_is_not_a_record_is_replaced_by_a_save_and_kept_aside() {
    let Some(server) = RedisServer::start(None) else {
        return;
    };
    let store = RedisStore::open(&server.url(), &instance(), "alice").unwrap();
    run(store.save(Version::EMPTY, record(), None, far())).unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let mut connection = client.get_connection().unwrap();
    let key = "peertube-session:{https://video.example.org|alice}";
    redis::cmd("SET")
        .arg(format!("{key}:record"))
        .arg("garbage {")
        .query::<()>(&mut connection)
        .unwrap();
    redis::cmd("SET")
        .arg(format!("{key}:version"))
        .arg("not a number")
        .query::<()>(&mut connection)
        .unwrap();
    assert!(matches!(
        run(store.load(far())),
        Err(StoreError::Corrupt(_))
    ));
    // A version that is not a number reads as 0, as the save script takes it.
    assert_eq!(run(store.version(far())), Ok(Version::EMPTY));
    assert_eq!(
        run(store.save(Version::EMPTY, record(), None, far())),
        Ok(Version(1))
    );
    assert_eq!(run(store.load(far())).unwrap().session, record().session);
    let kept: String = redis::cmd("GET")
        .arg(format!("{key}:corrupt"))
        .query(&mut connection)
        .unwrap();
    assert_eq!(kept, "garbage {");
}
