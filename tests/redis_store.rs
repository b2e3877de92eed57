//! The Redis stores against a real `redis-server` on loopback.
#![cfg(feature = "redis")]

#[path = "support/redis_server.rs"]
mod redis_server;

use peertube_session::store::{
    AsyncRedisStore, Record, RedisStore, SessionStore, StoreError, Version,
};
use peertube_session::{Instance, Session};
use redis_server::RedisServer;
use std::time::Duration;

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
    assert_eq!(store.version().await, Ok(Version::EMPTY));
    assert_eq!(store.load().await.unwrap(), Record::empty());
    assert_eq!(
        store.save(Version::EMPTY, record(), None).await,
        Ok(Version(1))
    );
    assert_eq!(other.version().await, Ok(Version(1)));
    assert_eq!(
        other.save(Version::EMPTY, record(), None).await,
        Err(StoreError::Conflict)
    );
    let loaded = other.load().await.unwrap();
    assert_eq!(
        (loaded.version, loaded.session),
        (Version(1), record().session)
    );

    let long = Duration::from_secs(60);
    let first = store.try_lease(long).await.unwrap().unwrap();
    assert_eq!(other.try_lease(long).await.unwrap(), None);
    store.release(first.clone()).await.unwrap();
    let short = other
        .try_lease(Duration::from_millis(50))
        .await
        .unwrap()
        .unwrap();
    assert!(short.fence() > first.fence());
    std::thread::sleep(Duration::from_millis(120));
    let taken_over = store.try_lease(long).await.unwrap().unwrap();
    assert!(taken_over.fence() > short.fence());
    // The late holder's save is refused, however current its version.
    assert_eq!(
        other.save(Version(1), record(), Some(&short)).await,
        Err(StoreError::LeaseLost)
    );
    other.release(short).await.unwrap();
    assert_eq!(other.try_lease(long).await.unwrap(), None);
    assert_eq!(
        store.save(Version(1), record(), Some(&taken_over)).await,
        Ok(Version(2))
    );
    store.release(taken_over).await.unwrap();
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
    assert_eq!(run(bob.version()), Ok(Version::EMPTY));
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
    assert_eq!(run(store.version()), Ok(Version::EMPTY));
    assert!(!format!("{store:?}").contains("s3cret"));

    let wrong = format!("redis://:wrong-pass@127.0.0.1:{}/", server.port());
    let error = RedisStore::open(&wrong, &instance(), "alice").unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(
        !format!("{error} {error:?}").contains("wrong-pass"),
        "{error}"
    );
    let none = RedisStore::open(&server.url(), &instance(), "alice").unwrap_err();
    assert!(matches!(none, StoreError::Unavailable(_)), "{none:?}");
}

#[test]
fn an_unreachable_redis_or_a_bad_url_is_a_typed_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}/");
    assert!(matches!(
        RedisStore::open(&url, &instance(), "alice"),
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        RedisStore::open("http://not-redis/", &instance(), "alice"),
        Err(StoreError::Unavailable(_))
    ));
}

#[test]
fn a_value_that_is_not_a_record_is_an_error() {
    let Some(server) = RedisServer::start(None) else {
        return;
    };
    let store = RedisStore::open(&server.url(), &instance(), "alice").unwrap();
    run(store.save(Version::EMPTY, record(), None)).unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let mut connection = client.get_connection().unwrap();
    let key = "peertube-session:{https://video.example.org|alice}:record";
    redis::cmd("SET")
        .arg(key)
        .arg("{\"format\":\"other\"}")
        .query::<()>(&mut connection)
        .unwrap();
    assert!(matches!(run(store.load()), Err(StoreError::Corrupt(_))));
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
