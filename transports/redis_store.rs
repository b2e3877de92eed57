//! The Redis stores: one session shared by the processes of many machines.

use crate::instance::Instance;
use crate::lease_holder::holder_name;
use crate::store::{Lease, Record, SessionStore, StoreError, Version};
use std::sync::Mutex;
use std::time::Duration;

/// How long connecting to Redis and each command may take.
const REDIS_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest record read: a session is a few hundred bytes.
const MAX_RECORD: usize = 1 << 20;

/// Saves `ARGV[2]` as the record and `ARGV[3]` as the version if the version is still
/// `ARGV[1]` and, with a lease (`ARGV[4]` its holder, `ARGV[5]` its fence), if the lease is
/// still that holder's and no newer fence was handed out. -1: conflict, -2: lease lost.
const SAVE: &str = r"
if ARGV[4] ~= '' then
  if redis.call('GET', KEYS[3]) ~= ARGV[4] or redis.call('GET', KEYS[4]) ~= ARGV[5] then
    return -2
  end
end
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current ~= tonumber(ARGV[1]) then
  return -1
end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SET', KEYS[1], ARGV[3])
return tonumber(ARGV[3])
";

/// Takes the lease (`SET NX PX`) for `ARGV[1]` for `ARGV[2]` ms and hands out the next fence;
/// 0 when another holds it.
const TAKE: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return 0
";

/// Gives the lease back if it is still `ARGV[1]`'s.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// The keys of one session: one hash slot (the `{…}` tag), so that the scripts also run on a
/// Redis Cluster.
#[derive(Debug, Clone)]
struct Keys {
    version: String,
    record: String,
    lease: String,
    fence: String,
}

impl Keys {
    fn new(instance: &Instance, account: &str) -> Keys {
        let tag = format!("peertube-session:{{{}|{account}}}", instance.base_url());
        Keys {
            version: format!("{tag}:version"),
            record: format!("{tag}:record"),
            lease: format!("{tag}:lease"),
            fence: format!("{tag}:fence"),
        }
    }
}

fn client(url: &str) -> Result<redis::Client, StoreError> {
    redis::Client::open(url).map_err(|e| unavailable("not a Redis URL", &e))
}

/// A session store in Redis (feature `redis`), with the `redis` crate's blocking connection:
/// for [`BlockingClient`](crate::blocking::BlockingClient). (With the async client, use
/// [`AsyncRedisStore`]: this one blocks the task while Redis answers.)
///
/// One session per instance and account, under keys `peertube-session:{<instance>|<account>}:…`
/// (one Redis Cluster hash slot): the record (JSON), its version, the refresh lease (`SET NX
/// PX` with a random holder) and its fencing counter. Saves and lease releases are Lua
/// scripts, so compare-and-set and fencing are atomic. The URL is anything the `redis` crate
/// takes: `redis://[user][:password@]host[:port][/db]`, `rediss://` for TLS, `redis+unix://`.
///
/// The record holds the tokens in clear: protect the Redis with an ACL user (and TLS when it
/// is not on loopback).
///
/// ```no_run
/// use peertube_session::blocking::{BlockingClient, UreqTransport};
/// use peertube_session::store::RedisStore;
/// use peertube_session::Instance;
///
/// let instance = Instance::new("https://video.example.org")?;
/// let store = RedisStore::open("redis://:secret@10.0.0.5:6379/0", &instance, "uploader")?;
/// let client = BlockingClient::new(UreqTransport::new(), instance).with_store(store);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RedisStore {
    client: redis::Client,
    connection: Mutex<Option<redis::Connection>>,
    keys: Keys,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the URL: it may carry a password.
        f.debug_struct("RedisStore")
            .field("key", &self.keys.record)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store for `account` on `instance` in the Redis at `url`. Connects at once, so that a
    /// wrong URL or password is known now.
    pub fn open(url: &str, instance: &Instance, account: &str) -> Result<RedisStore, StoreError> {
        let store = RedisStore {
            client: client(url)?,
            connection: Mutex::new(None),
            keys: Keys::new(instance, account),
        };
        store.with(|connection| redis::cmd("PING").query::<String>(connection))?;
        Ok(store)
    }

    /// Runs `command` on the connection, connecting first if needed; a failed connection is
    /// dropped, so the next command connects again.
    fn with<R>(
        &self,
        command: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<R>,
    ) -> Result<R, StoreError> {
        let mut slot = self.connection.lock().unwrap_or_else(|p| p.into_inner());
        let connection = match slot.as_mut() {
            Some(connection) => connection,
            None => {
                let connection = self
                    .client
                    .get_connection_with_timeout(REDIS_TIMEOUT)
                    .map_err(|e| unavailable("cannot connect to Redis", &e))?;
                connection
                    .set_read_timeout(Some(REDIS_TIMEOUT))
                    .and_then(|()| connection.set_write_timeout(Some(REDIS_TIMEOUT)))
                    .map_err(|e| unavailable("cannot set up the Redis connection", &e))?;
                slot.insert(connection)
            }
        };
        command(connection).map_err(|e| {
            if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
                *slot = None;
            }
            unavailable("Redis refused the command", &e)
        })
    }
}

impl SessionStore for RedisStore {
    async fn version(&self) -> Result<Version, StoreError> {
        let key = &self.keys.version;
        let version = self.with(|c| redis::cmd("GET").arg(key).query::<Option<u64>>(c))?;
        Ok(Version(version.unwrap_or(0)))
    }

    async fn load(&self) -> Result<Record, StoreError> {
        let key = &self.keys.record;
        let bytes = self.with(|c| redis::cmd("GET").arg(key).query::<Option<Vec<u8>>>(c))?;
        read_record(bytes)
    }

    async fn save(
        &self,
        expected: Version,
        record: Record,
        lease: Option<&Lease>,
    ) -> Result<Version, StoreError> {
        let script = redis::Script::new(SAVE);
        let (invocation, next) = save_invocation(&script, &self.keys, expected, record, lease);
        let answer = self.with(|c| invocation.invoke::<i64>(c))?;
        saved(answer, next)
    }

    async fn try_lease(&self, ttl: Duration) -> Result<Option<Lease>, StoreError> {
        let script = redis::Script::new(TAKE);
        let holder = holder_name();
        let fence = self.with(|c| {
            script
                .key(&self.keys.lease)
                .key(&self.keys.fence)
                .arg(&holder)
                .arg(ttl_ms(ttl))
                .invoke::<u64>(c)
        })?;
        Ok((fence > 0).then(|| Lease::new(fence, holder)))
    }

    async fn release(&self, lease: Lease) -> Result<(), StoreError> {
        let script = redis::Script::new(RELEASE);
        self.with(|c| {
            script
                .key(&self.keys.lease)
                .arg(lease.holder())
                .invoke::<i64>(c)
        })
        .map(drop)
    }
}

/// A session store in Redis (feature `redis`), with the `redis` crate's tokio connection
/// (multiplexed): for [`AsyncClient`](crate::asynchronous::AsyncClient) on a tokio runtime.
/// Same keys, scripts and guarantees as [`RedisStore`].
pub struct AsyncRedisStore {
    client: redis::Client,
    connection: Mutex<Option<redis::aio::MultiplexedConnection>>,
    keys: Keys,
}

impl std::fmt::Debug for AsyncRedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncRedisStore")
            .field("key", &self.keys.record)
            .finish_non_exhaustive()
    }
}

impl AsyncRedisStore {
    /// A store for `account` on `instance` in the Redis at `url`. Connects at once (on the
    /// current tokio runtime), so that a wrong URL or password is known now.
    pub async fn open(
        url: &str,
        instance: &Instance,
        account: &str,
    ) -> Result<AsyncRedisStore, StoreError> {
        let store = AsyncRedisStore {
            client: client(url)?,
            connection: Mutex::new(None),
            keys: Keys::new(instance, account),
        };
        let mut connection = store.connection().await?;
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .map_err(|e| unavailable("Redis refused the command", &e))?;
        Ok(store)
    }

    /// The shared multiplexed connection (a cheap clone), made at the first use.
    async fn connection(&self) -> Result<redis::aio::MultiplexedConnection, StoreError> {
        let existing = self
            .connection
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(connection) = existing {
            return Ok(connection);
        }
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT));
        let connection = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| unavailable("cannot connect to Redis", &e))?;
        *self.connection.lock().unwrap_or_else(|p| p.into_inner()) = Some(connection.clone());
        Ok(connection)
    }

    fn failed(&self, error: &redis::RedisError) -> StoreError {
        if error.is_io_error() || error.is_connection_dropped() || error.is_timeout() {
            *self.connection.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        unavailable("Redis refused the command", error)
    }
}

impl SessionStore for AsyncRedisStore {
    async fn version(&self) -> Result<Version, StoreError> {
        let mut connection = self.connection().await?;
        let version = redis::cmd("GET")
            .arg(&self.keys.version)
            .query_async::<Option<u64>>(&mut connection)
            .await
            .map_err(|e| self.failed(&e))?;
        Ok(Version(version.unwrap_or(0)))
    }

    async fn load(&self) -> Result<Record, StoreError> {
        let mut connection = self.connection().await?;
        let bytes = redis::cmd("GET")
            .arg(&self.keys.record)
            .query_async::<Option<Vec<u8>>>(&mut connection)
            .await
            .map_err(|e| self.failed(&e))?;
        read_record(bytes)
    }

    async fn save(
        &self,
        expected: Version,
        record: Record,
        lease: Option<&Lease>,
    ) -> Result<Version, StoreError> {
        let mut connection = self.connection().await?;
        let script = redis::Script::new(SAVE);
        let (invocation, next) = save_invocation(&script, &self.keys, expected, record, lease);
        let answer = invocation
            .invoke_async::<i64>(&mut connection)
            .await
            .map_err(|e| self.failed(&e))?;
        saved(answer, next)
    }

    async fn try_lease(&self, ttl: Duration) -> Result<Option<Lease>, StoreError> {
        let mut connection = self.connection().await?;
        let script = redis::Script::new(TAKE);
        let holder = holder_name();
        let fence = script
            .key(&self.keys.lease)
            .key(&self.keys.fence)
            .arg(&holder)
            .arg(ttl_ms(ttl))
            .invoke_async::<u64>(&mut connection)
            .await
            .map_err(|e| self.failed(&e))?;
        Ok((fence > 0).then(|| Lease::new(fence, holder)))
    }

    async fn release(&self, lease: Lease) -> Result<(), StoreError> {
        let mut connection = self.connection().await?;
        let script = redis::Script::new(RELEASE);
        script
            .key(&self.keys.lease)
            .arg(lease.holder())
            .invoke_async::<i64>(&mut connection)
            .await
            .map(drop)
            .map_err(|e| self.failed(&e))
    }
}

/// The invocation of [`SAVE`] and the version it saves as.
fn save_invocation<'a>(
    script: &'a redis::Script,
    keys: &Keys,
    expected: Version,
    mut record: Record,
    lease: Option<&Lease>,
) -> (redis::ScriptInvocation<'a>, Version) {
    let next = expected.next();
    record.version = next;
    let mut invocation = script.prepare_invoke();
    invocation
        .key(&keys.version)
        .key(&keys.record)
        .key(&keys.lease)
        .key(&keys.fence)
        .arg(expected.0)
        .arg(record.to_json())
        .arg(next.0)
        .arg(lease.map_or("", Lease::holder))
        .arg(lease.map_or(String::new(), |l| l.fence().to_string()));
    (invocation, next)
}

fn saved(answer: i64, next: Version) -> Result<Version, StoreError> {
    match answer {
        -1 => Err(StoreError::Conflict),
        -2 => Err(StoreError::LeaseLost),
        _ => Ok(next),
    }
}

fn read_record(bytes: Option<Vec<u8>>) -> Result<Record, StoreError> {
    match bytes {
        None => Ok(Record::empty()),
        Some(bytes) if bytes.len() > MAX_RECORD => Err(StoreError::Corrupt(
            "the value is too large to be a session record",
        )),
        Some(bytes) => Record::from_json(&bytes),
    }
}

fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn unavailable(what: &str, error: &redis::RedisError) -> StoreError {
    // The kind and the server's own words; never the URL, which may carry a password.
    let detail = match (error.code(), error.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        (Some(code), None) => code.to_owned(),
        _ => format!("{:?}", error.kind()),
    };
    StoreError::Unavailable(format!("{what}: {detail}"))
}
