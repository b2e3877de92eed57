//! The Redis stores: one session shared by the processes of many machines.

use crate::instance::Instance;
use crate::lease_holder::holder_name;
use crate::store::{Lease, RECORD_FORMAT, Record, SessionStore, StoreError, StoreFault, Version};
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The longest that connecting to Redis or one command may take, whatever the caller allows.
const REDIS_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest record read: a session is a few hundred bytes.
const MAX_RECORD: usize = 1 << 20;
/// Idle connections a blocking store keeps for its next commands.
const IDLE_CONNECTIONS: usize = 4;

/// Saves `ARGV[2]` as the record and `ARGV[3]` as the version if the version is still
/// `ARGV[1]` and, with a lease (`ARGV[4]` its holder, `ARGV[5]` its fence), if the lease is
/// still that holder's and no newer fence was handed out. -1: conflict, -2: lease lost. A
/// version that is not a number counts as 0; a record that is not one of ours (`ARGV[6]` is
/// the format) is copied to `KEYS[5]` before it is replaced.
const SAVE: &str = r"
if ARGV[4] ~= '' then
  if redis.call('GET', KEYS[3]) ~= ARGV[4] or redis.call('GET', KEYS[4]) ~= ARGV[5] then
    return -2
  end
end
local current = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if current ~= tonumber(ARGV[1]) then
  return -1
end
local old = redis.call('GET', KEYS[2])
if old then
  local ok, decoded = pcall(cjson.decode, old)
  if not ok or type(decoded) ~= 'table' or decoded['format'] ~= ARGV[6] then
    redis.call('SET', KEYS[5], old)
  end
end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SET', KEYS[1], ARGV[3])
return tonumber(ARGV[3])
";

/// Takes the lease (`SET NX PX`) for `ARGV[1]` for `ARGV[2]` ms and hands out the next fence;
/// 0 when another holds it. The holder's own second try (its first answer was lost) gets its
/// fence again.
const TAKE: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return tonumber(redis.call('GET', KEYS[2]) or '0') or 0
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
    corrupt: String,
}

impl Keys {
    fn new(instance: &Instance, account: &str) -> Keys {
        let tag = format!("peertube-session:{{{}|{account}}}", instance.base_url());
        Keys {
            version: format!("{tag}:version"),
            record: format!("{tag}:record"),
            lease: format!("{tag}:lease"),
            fence: format!("{tag}:fence"),
            corrupt: format!("{tag}:corrupt"),
        }
    }
}

fn client(url: &str) -> Result<redis::Client, StoreError> {
    redis::Client::open(url).map_err(|e| failure("not a Redis URL", &e))
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
/// When Redis fails:
/// - Each command gets the time its caller allows (`until`), at most 5 s; past it, the
///   command fails with [`StoreFault::TimedOut`] and its connection is dropped (its answer
///   may still come). A save that timed out may have landed: the drivers read the store
///   again before deciding anything on it.
/// - Commands run on connections of their own (a few are kept idle between commands), so one
///   command waiting for a paused Redis holds up no other.
/// - A command that meets a dropped connection (Redis restarted, a proxy closed an idle one)
///   connects again and is sent once more: reads, the lease scripts and the compare-and-set
///   save are all safe to repeat.
/// - Errors say what happened ([`StoreFault`]): refused, dropped, timed out, authentication.
/// - A record that is not one of this crate's is copied to `…:corrupt` before a save replaces it.
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
    idle: Mutex<Vec<redis::Connection>>,
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
            idle: Mutex::new(Vec::new()),
            keys: Keys::new(instance, account),
        };
        let until = Instant::now() + REDIS_TIMEOUT;
        store.with(until, |connection| {
            redis::cmd("PING").query::<String>(connection)
        })?;
        Ok(store)
    }

    /// Runs `command` on an idle connection (or a new one) by `until`. A connection that
    /// failed is dropped; one that was idle and turns out dropped is replaced once.
    fn with<R>(
        &self,
        until: Instant,
        command: impl Fn(&mut redis::Connection) -> redis::RedisResult<R>,
    ) -> Result<R, StoreError> {
        allowed(until)?;
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let reused = idle.is_some();
        let mut connection = match idle {
            Some(connection) => connection,
            None => self.connect(until)?,
        };
        let mut answer = run(&mut connection, until, &command);
        if reused && answer.as_ref().is_err_and(is_dropped) {
            connection = self.connect(until)?;
            answer = run(&mut connection, until, &command);
        }
        match answer {
            Ok(answer) => {
                self.keep(connection);
                Ok(answer)
            }
            Err(error) => {
                // A server's error answer leaves the connection usable; anything else (a
                // timeout: its answer may still come) does not.
                if !error.is_io_error() {
                    self.keep(connection);
                }
                Err(command_failure(&error))
            }
        }
    }

    fn connect(&self, until: Instant) -> Result<redis::Connection, StoreError> {
        let timeout = allowed(until)?;
        self.client
            .get_connection_with_timeout(timeout)
            .map_err(|e| failure("cannot connect to Redis", &e))
    }

    fn keep(&self, connection: redis::Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < IDLE_CONNECTIONS {
            idle.push(connection);
        }
    }
}

/// One command on `connection`, with the time `until` leaves it.
fn run<R>(
    connection: &mut redis::Connection,
    until: Instant,
    command: &impl Fn(&mut redis::Connection) -> redis::RedisResult<R>,
) -> redis::RedisResult<R> {
    let timeout = allowed(until).map_err(|_| timed_out())?;
    connection.set_read_timeout(Some(timeout))?;
    connection.set_write_timeout(Some(timeout))?;
    command(connection)
}

/// The time left until `until`, at most [`REDIS_TIMEOUT`]; none left is a timeout. (A socket
/// timeout of zero would mean none at all.)
fn allowed(until: Instant) -> Result<Duration, StoreError> {
    let left = until.saturating_duration_since(Instant::now());
    if left < Duration::from_millis(1) {
        return Err(StoreError::unavailable(
            StoreFault::TimedOut,
            "no time left for Redis",
        ));
    }
    Ok(left.min(REDIS_TIMEOUT))
}

fn timed_out() -> redis::RedisError {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "no time left for Redis").into()
}

/// Whether a command failed because its connection was gone before it could answer.
fn is_dropped(error: &redis::RedisError) -> bool {
    error.is_connection_dropped() && !error.is_timeout()
}

impl SessionStore for RedisStore {
    async fn version(&self, until: Instant) -> Result<Version, StoreError> {
        let key = &self.keys.version;
        let text = self.with(until, |c| {
            redis::cmd("GET").arg(key).query::<Option<String>>(c)
        })?;
        Ok(read_version(text.as_deref()))
    }

    async fn load(&self, until: Instant) -> Result<Record, StoreError> {
        let key = &self.keys.record;
        let bytes = self.with(until, |c| {
            redis::cmd("GET").arg(key).query::<Option<Vec<u8>>>(c)
        })?;
        read_record(bytes)
    }

    async fn save(
        &self,
        expected: Version,
        record: Record,
        lease: Option<&Lease>,
        until: Instant,
    ) -> Result<Version, StoreError> {
        let script = redis::Script::new(SAVE);
        let (invocation, next) = save_invocation(&script, &self.keys, expected, record, lease);
        let answer = self.with(until, |c| invocation.invoke::<i64>(c))?;
        saved(answer, next)
    }

    async fn try_lease(&self, ttl: Duration, until: Instant) -> Result<Option<Lease>, StoreError> {
        let script = redis::Script::new(TAKE);
        let holder = holder_name();
        let fence = self.with(until, |c| {
            script
                .key(&self.keys.lease)
                .key(&self.keys.fence)
                .arg(&holder)
                .arg(ttl_ms(ttl))
                .invoke::<u64>(c)
        })?;
        Ok((fence > 0).then(|| Lease::new(fence, holder)))
    }

    async fn release(&self, lease: Lease, until: Instant) -> Result<(), StoreError> {
        let script = redis::Script::new(RELEASE);
        self.with(until, |c| {
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
/// Same keys, scripts and guarantees as [`RedisStore`]: each command bounded by its `until`
/// (at most 5 s), a dropped connection replaced and the command sent once more, errors that
/// say what happened.
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
        let until = Instant::now() + REDIS_TIMEOUT;
        store
            .with(until, |mut c| async move {
                redis::cmd("PING").query_async::<String>(&mut c).await
            })
            .await?;
        Ok(store)
    }

    /// The shared multiplexed connection (a cheap clone), made at the first use.
    async fn connection(
        &self,
        until: Instant,
    ) -> Result<redis::aio::MultiplexedConnection, StoreError> {
        let existing = self
            .connection
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(connection) = existing {
            return Ok(connection);
        }
        let timeout = allowed(until)?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(REDIS_TIMEOUT));
        let connection = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| failure("cannot connect to Redis", &e))?;
        *self.connection.lock().unwrap_or_else(|p| p.into_inner()) = Some(connection.clone());
        Ok(connection)
    }

    fn forget_connection(&self) {
        *self.connection.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Runs `command` by `until` on the shared connection; a dropped one is replaced once.
    async fn with<R, F>(
        &self,
        until: Instant,
        command: impl Fn(redis::aio::MultiplexedConnection) -> F,
    ) -> Result<R, StoreError>
    where
        F: Future<Output = redis::RedisResult<R>>,
    {
        let mut retried = false;
        loop {
            let mut connection = self.connection(until).await?;
            connection.set_response_timeout(allowed(until)?);
            match command(connection).await {
                Ok(answer) => return Ok(answer),
                Err(error) => {
                    if error.is_io_error() {
                        self.forget_connection();
                    }
                    if is_dropped(&error) && !retried {
                        retried = true;
                        continue;
                    }
                    return Err(command_failure(&error));
                }
            }
        }
    }
}

impl SessionStore for AsyncRedisStore {
    async fn version(&self, until: Instant) -> Result<Version, StoreError> {
        let key = &self.keys.version;
        let text = self
            .with(until, |mut c| async move {
                redis::cmd("GET")
                    .arg(key)
                    .query_async::<Option<String>>(&mut c)
                    .await
            })
            .await?;
        Ok(read_version(text.as_deref()))
    }

    async fn load(&self, until: Instant) -> Result<Record, StoreError> {
        let key = &self.keys.record;
        let bytes = self
            .with(until, |mut c| async move {
                redis::cmd("GET")
                    .arg(key)
                    .query_async::<Option<Vec<u8>>>(&mut c)
                    .await
            })
            .await?;
        read_record(bytes)
    }

    async fn save(
        &self,
        expected: Version,
        record: Record,
        lease: Option<&Lease>,
        until: Instant,
    ) -> Result<Version, StoreError> {
        let script = redis::Script::new(SAVE);
        let (invocation, next) = save_invocation(&script, &self.keys, expected, record, lease);
        let invocation = &invocation;
        let answer = self
            .with(until, |mut c| async move {
                invocation.invoke_async::<i64>(&mut c).await
            })
            .await?;
        saved(answer, next)
    }

    async fn try_lease(&self, ttl: Duration, until: Instant) -> Result<Option<Lease>, StoreError> {
        let script = &redis::Script::new(TAKE);
        let holder = &holder_name();
        let keys = &self.keys;
        let fence = self
            .with(until, |mut c| async move {
                script
                    .key(&keys.lease)
                    .key(&keys.fence)
                    .arg(holder)
                    .arg(ttl_ms(ttl))
                    .invoke_async::<u64>(&mut c)
                    .await
            })
            .await?;
        Ok((fence > 0).then(|| Lease::new(fence, holder.clone())))
    }

    async fn release(&self, lease: Lease, until: Instant) -> Result<(), StoreError> {
        let script = &redis::Script::new(RELEASE);
        let (key, holder) = (&self.keys.lease, lease.holder());
        self.with(until, |mut c| async move {
            script
                .key(key)
                .arg(holder)
                .invoke_async::<i64>(&mut c)
                .await
        })
        .await
        .map(drop)
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
        .key(&keys.corrupt)
        .arg(expected.0)
        .arg(record.to_json())
        .arg(next.0)
        .arg(lease.map_or("", Lease::holder))
        .arg(lease.map_or(String::new(), |l| l.fence().to_string()))
        .arg(RECORD_FORMAT);
    (invocation, next)
}

fn saved(answer: i64, next: Version) -> Result<Version, StoreError> {
    match answer {
        -1 => Err(StoreError::Conflict),
        -2 => Err(StoreError::LeaseLost),
        _ => Ok(next),
    }
}

/// The version key's value; one that is not a number counts as 0, as the save script reads it.
fn read_version(text: Option<&str>) -> Version {
    Version(text.and_then(|t| t.trim().parse().ok()).unwrap_or(0))
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

/// A command's failure: refused by Redis (an error answer), or no answer at all.
fn command_failure(error: &redis::RedisError) -> StoreError {
    if error.is_io_error() {
        failure("the Redis command got no answer", error)
    } else {
        failure("Redis refused the command", error)
    }
}

/// What a Redis error says happened, in words that never hold the URL (it may carry a
/// password).
fn failure(what: &str, error: &redis::RedisError) -> StoreError {
    let code = error.code();
    let fault = if error.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(code, Some("NOAUTH" | "WRONGPASS"))
    {
        StoreFault::Authentication
    } else if error.is_timeout() {
        StoreFault::TimedOut
    } else if error.is_connection_refusal() {
        StoreFault::Refused
    } else if error.is_connection_dropped() {
        StoreFault::Dropped
    } else {
        StoreFault::Other
    };
    let detail = match (code, error.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        (Some(code), None) => code.to_owned(),
        // The OS's words for what the socket met (a timeout, a reset): never a secret.
        _ if error.is_io_error() => error.to_string(),
        _ => format!("{:?}", error.kind()),
    };
    StoreError::unavailable(fault, format!("{what}: {detail}"))
}
