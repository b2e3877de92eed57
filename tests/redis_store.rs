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

/// The keys of alice's session on the test instance (`<KEYS>:record`, `:version`, …).
const KEYS: &str = "peertube-session:{https://video.example.org|alice}";

/// A plain connection to `server`, to look at or tamper with what the stores keep.
fn connection(server: &RedisServer) -> redis::Connection {
    redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap()
}

/// A current-thread tokio runtime, for the async store.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A blocking and an async store of alice's session in `server`, and the async one's runtime.
fn both_stores(server: &RedisServer) -> (RedisStore, tokio::runtime::Runtime, AsyncRedisStore) {
    let blocking = RedisStore::open(&server.url(), &instance(), "alice").unwrap();
    let runtime = runtime();
    let asynchronous = runtime
        .block_on(AsyncRedisStore::open(&server.url(), &instance(), "alice"))
        .unwrap();
    (blocking, runtime, asynchronous)
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
    // Held for its whole time to live, not a moment.
    std::thread::sleep(Duration::from_millis(30));
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
    let runtime = runtime();
    runtime.block_on(async {
        let store = AsyncRedisStore::open(&server.url(), &instance(), "alice")
            .await
            .unwrap();
        let other = AsyncRedisStore::open(&server.url(), &instance(), "alice")
            .await
            .unwrap();
        exercise(&store, &other).await;
        let printed = format!("{store:?}");
        assert!(
            printed.starts_with("AsyncRedisStore") && printed.contains("|alice}:record"),
            "{printed}"
        );
    });
}

#[test]
fn a_command_whose_deadline_has_passed_is_not_sent() {
    let Some(server) = RedisServer::start(None) else {
        return;
    };
    let passed = Instant::now();
    let blocking = RedisStore::open(&server.url(), &instance(), "alice").unwrap();
    let error = run(blocking.save(Version::EMPTY, record(), None, passed)).unwrap_err();
    assert_eq!(fault(&error), Some(StoreFault::TimedOut), "{error:?}");
    assert!(error.to_string().contains("no time left"), "{error}");

    let runtime = runtime();
    runtime.block_on(async {
        let store = AsyncRedisStore::open(&server.url(), &instance(), "alice")
            .await
            .unwrap();
        let error = store
            .save(Version::EMPTY, record(), None, passed)
            .await
            .unwrap_err();
        assert_eq!(fault(&error), Some(StoreFault::TimedOut), "{error:?}");
        assert!(error.to_string().contains("no time left"), "{error}");
    });
    assert_eq!(run(blocking.version(far())), Ok(Version::EMPTY));
}

/// A command that timed out is not sent again (its outcome is unknown: the caller reads the
/// store to learn it), so a paused Redis costs a call one command timeout, not two.
#[test]
fn a_command_that_timed_out_is_not_sent_again() {
    let Some(server) = RedisServer::start(None) else {
        return;
    };
    let (blocking, runtime, asynchronous) = both_stores(&server);
    // A deadline past the stores' five-second command timeout: a second try would fit in it.
    server.pause();
    let started = Instant::now();
    let until = Instant::now() + Duration::from_secs(8);
    let (blocking_error, async_error) = std::thread::scope(|scope| {
        let blocking = scope.spawn(|| run(blocking.version(until)));
        let asynchronous = runtime.block_on(asynchronous.version(until));
        (blocking.join().unwrap(), asynchronous)
    });
    let waited = started.elapsed();
    server.resume();
    for error in [blocking_error, async_error] {
        assert_eq!(
            error.as_ref().err().and_then(fault),
            Some(StoreFault::TimedOut),
            "{error:?}"
        );
    }
    assert!(waited < Duration::from_millis(6500), "{waited:?}");
}

#[test]
fn a_password_in_the_url_is_used_and_never_printed() {
    let Some(server) = RedisServer::start(Some("s3cret-pass")) else {
        return;
    };
    let url = format!("redis://:s3cret-pass@127.0.0.1:{}/", server.port());
    let store = RedisStore::open(&url, &instance(), "alice").unwrap();
    assert_eq!(run(store.version(far())), Ok(Version::EMPTY));
    let printed = format!("{store:?}");
    assert!(!printed.contains("s3cret"), "{printed}");
    // What it does print names the store and the session it holds.
    assert!(
        printed.starts_with("RedisStore") && printed.contains("|alice}:record"),
        "{printed}"
    );

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
    // Redis's own code and words are kept.
    assert!(none.to_string().contains("NOAUTH Authentication"), "{none}");
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
    let runtime = runtime();
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
    run(store.save(Version::EMPTY, record(), None, far())).unwrap();
    server.pause();
    let started = Instant::now();
    let error = run(store.load(Instant::now() + Duration::from_millis(200))).unwrap_err();
    let waited = started.elapsed();
    server.resume();
    assert_eq!(fault(&error), Some(StoreFault::TimedOut), "{error:?}");
    let text = error.to_string();
    assert!(
        text.contains("timed out") && text.contains("no answer"),
        "{text}"
    );
    assert!(!text.contains("refused"), "{text}");
    assert!(waited < Duration::from_millis(700), "{waited:?}");
    // The connection that timed out is not reused (its late answer, the record, would be read
    // as the next command's): the next commands get their own answers.
    assert_eq!(run(store.version(far())), Ok(Version(1)));
    assert_eq!(run(store.load(far())).unwrap().session, record().session);
}

#[test]
fn at_most_four_idle_connections_are_kept_open() {
    let Some(server) = RedisServer::start(None) else {
        return;
    };
    let store = std::sync::Arc::new(RedisStore::open(&server.url(), &instance(), "alice").unwrap());
    // Eight commands in the air at once, each on a connection of its own: Redis, paused, answers
    // none of them until all have been sent.
    server.pause();
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || run(store.version(far())))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    server.resume();
    for caller in callers {
        assert_eq!(caller.join().unwrap(), Ok(Version::EMPTY));
    }
    let mut probe = connection(&server);
    let mut clients = Vec::new();
    // Four kept, four closed (Redis notices a close in its own time), and this probe.
    let settled = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut probe).unwrap();
        clients.push(list.lines().count());
        clients.last() == Some(&5)
    });
    assert!(settled, "clients seen: {clients:?}");
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
    let runtime = runtime();
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

/// An error answer (here: the record's key holds a list) is the caller's at once: sent again
/// it would only be refused again.
#[test]
fn an_error_answer_is_given_back_not_sent_again() {
    let Some(server) = RedisServer::start(None) else {
        return;
    };
    let (blocking, runtime, asynchronous) = both_stores(&server);
    let mut probe = connection(&server);
    redis::cmd("LPUSH")
        .arg(format!("{KEYS}:record"))
        .arg("not a record")
        .query::<()>(&mut probe)
        .unwrap();
    redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query::<()>(&mut probe)
        .unwrap();
    let errors = [
        run(blocking.load(far())).unwrap_err(),
        runtime.block_on(asynchronous.load(far())).unwrap_err(),
    ];
    for error in &errors {
        assert_eq!(fault(error), Some(StoreFault::Other), "{error:?}");
        assert!(
            error.to_string().contains("refused the command: WRONGTYPE"),
            "{error}"
        );
    }
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut probe)
        .unwrap();
    assert!(stats.contains("cmdstat_get:calls=2,"), "{stats}");
}

/// A value over a megabyte is not a session record (one is a few hundred bytes): refused before
/// it is parsed, however well-formed.
#[test]
fn a_value_over_a_megabyte_is_not_read_as_a_record() {
    let Some(server) = RedisServer::start(None) else {
        return;
    };
    let store = RedisStore::open(&server.url(), &instance(), "alice").unwrap();
    let mut connection = connection(&server);
    let key = format!("{KEYS}:record");
    for (length, readable) in [(1 << 20, true), ((1 << 20) + 1, false)] {
        // The record's JSON, padded with white space up to `length` bytes.
        let mut value = record().to_json();
        value.resize(length, b' ');
        redis::cmd("SET")
            .arg(&key)
            .arg(value)
            .query::<()>(&mut connection)
            .unwrap();
        let loaded = run(store.load(far()));
        if readable {
            assert_eq!(loaded.unwrap().session, record().session);
        } else {
            assert_eq!(
                loaded,
                Err(StoreError::Corrupt(
                    "the value is too large to be a session record"
                ))
            );
        }
    }
}

#[test]
fn a_value_that_is_not_a_record_is_replaced_by_a_save_and_kept_aside() {
    let Some(server) = RedisServer::start(None) else {
        return;
    };
    let store = RedisStore::open(&server.url(), &instance(), "alice").unwrap();
    run(store.save(Version::EMPTY, record(), None, far())).unwrap();
    let mut connection = connection(&server);
    redis::cmd("SET")
        .arg(format!("{KEYS}:record"))
        .arg("garbage {")
        .query::<()>(&mut connection)
        .unwrap();
    redis::cmd("SET")
        .arg(format!("{KEYS}:version"))
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
        .arg(format!("{KEYS}:corrupt"))
        .query(&mut connection)
        .unwrap();
    assert_eq!(kept, "garbage {");
}
