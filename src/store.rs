//! Session stores: one saved session shared by many processes and machines.
//!
//! PeerTube rotates both tokens on every refresh and kills the old pair at once, so two
//! processes that refresh one saved session either log each other out or orphan a pair on the
//! server. A [`SessionStore`] prevents it: it holds the saved session as a [`Record`] with a
//! version, saves it with compare-and-set on that version, and hands out a refresh [`Lease`]
//! (bounded wait, time to live, fencing token) so that one process at a time refreshes. The
//! drivers use it through `with_store`; the decisions they make around it are the pure
//! functions of this module ([`reconcile`], [`may_save`], [`is_stale`]), tested without
//! any store.
//!
//! # The store helps; it is never a single point of failure
//!
//! Each process's in-memory session is what its calls use. The store coordinates refreshes
//! (the lease) and carries new pairs and endings between processes, and it may be slow, away,
//! restarted empty, wiped or corrupt without failing a call that holds a usable token or ending
//! a session the server still honours:
//!
//! - A record carries the [`Lineage`] of its pair (which login, how many refreshes since), so a
//!   process can tell whether the store is behind it, ahead of it, or holds a sibling pair.
//! - A refused refresh becomes everyone's ending only when the store holds the refused pair; a
//!   process that refreshed an older pair, or found the store empty, ends nobody else's session.
//! - A process holding a newer pair than the store (its save failed, the store was wiped or
//!   came back empty) writes it back, under the lease and with compare-and-set; a save refused
//!   because the store was reset is not a lost race, and the pair is never revoked for it.
//! - An unreadable record ([`StoreError::Corrupt`]) counts as an empty one: the next save
//!   replaces it (the file and Redis stores keep the unreadable bytes once beside it).
//!
//! Every method takes the moment it must be over by (`until`): the drivers give a call whose
//! token is usable a short store budget, and a call that needs the store (its token is dead)
//! the call's deadline.
//!
//! This module does no IO: the stores that do live under `transports/` (the file store,
//! feature `file-store`; Redis, feature `redis`); [`MemoryStore`] (the default) shares a
//! session between the clients of one process.

#[cfg(feature = "file-store")]
pub use crate::file_store::FileStore;
#[cfg(feature = "redis")]
pub use crate::redis_store::{AsyncRedisStore, RedisStore};
pub use crate::session::Lineage;

use crate::error::{Error, ErrorCode, ServerError};
use crate::session::SavedSession;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The mark a record carries, so that a file that is not a record is never mistaken for one.
pub const RECORD_FORMAT: &str = "peertube-session/store/1";

/// A store's version of its record. Every save makes a new one; [`Version::EMPTY`] is a store
/// that was never written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Version(pub u64);

impl Version {
    /// A store that holds nothing yet.
    pub const EMPTY: Version = Version(0);

    /// The version after this one.
    pub fn next(self) -> Version {
        Version(self.0.wrapping_add(1).max(1))
    }
}

/// Why the session in a store ended, so that every process sharing it learns the same.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Ending {
    /// Logged out: the next call of every process gets [`Error::LoggedOut`].
    LoggedOut,
    /// The refresh token was refused (expired, revoked, or burned by a refresh whose answer
    /// was lost): the next call of every process gets [`Error::LoginRequired`] with the
    /// server's reason, and none sends the dead refresh token again.
    RefreshRefused {
        /// The HTTP status of the refusal.
        status: u16,
        /// PeerTube's error `code`, as sent.
        code: Option<String>,
        /// The server's `detail` (already cleaned of secrets by the parser).
        detail: Option<String>,
    },
}

impl Ending {
    /// The ending a refused refresh leads to.
    pub fn refresh_refused(error: &ServerError) -> Ending {
        Ending::RefreshRefused {
            status: error.status.as_u16(),
            code: error.code.as_ref().map(|code| code.as_str().to_owned()),
            detail: error.detail.clone(),
        }
    }

    /// The error a call meets in a session that ended this way.
    pub fn error(&self) -> Error {
        match self {
            Ending::LoggedOut => Error::LoggedOut,
            Ending::RefreshRefused {
                status,
                code,
                detail,
            } => {
                let mut error = ServerError::of_status(
                    http::StatusCode::from_u16(*status).unwrap_or(http::StatusCode::BAD_REQUEST),
                );
                error.code = code.as_deref().map(ErrorCode::parse);
                error.detail = detail.clone();
                Error::LoginRequired(Box::new(error))
            }
        }
    }
}

/// What a store holds: the saved session (tokens in clear: see [`SavedSession`]'s security
/// note), or how it ended, with the lineage of the pair it is about.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Always [`RECORD_FORMAT`].
    pub format: String,
    /// The version this record was saved as.
    pub version: Version,
    /// The session, when one was saved.
    pub session: Option<SavedSession>,
    /// How the session ended, when it did.
    #[serde(default)]
    pub ending: Option<Ending>,
    /// The lineage of the pair this record holds, or of the pair whose end it records. Absent
    /// in records of earlier versions of this crate, which then always win (as they did).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineage: Option<Lineage>,
    /// Set when a process that held the pair wrote it back (into a store that was wiped,
    /// restarted empty, or behind), not the one that got it from the server: another process
    /// may hold a newer one and write it over this. The drivers refresh such a pair only once
    /// it has stood unchanged for a while with the store up, so that a newer pair's holder can
    /// put it in first. The value is a number the writer drew, so that two write-backs of the
    /// same pair (after two resets) are told apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written_back: Option<u64>,
    /// The token endpoint answered 429: no process sends a refresh or a login before this
    /// moment (Unix seconds, the server's clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_not_before: Option<u64>,
    /// A number the logins through this store add to their `User-Agent`
    /// (`peertube-session-store/<16 hex digits>`) when their clients log in again by
    /// themselves: PeerTube shows a session's login `User-Agent` as its device, which tells the
    /// sessions this store made from the account's others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<u64>,
}

impl Record {
    /// The record of a store that holds nothing.
    pub fn empty() -> Record {
        Record {
            format: RECORD_FORMAT.to_owned(),
            version: Version::EMPTY,
            session: None,
            ending: None,
            lineage: None,
            written_back: None,
            refresh_not_before: None,
            tag: None,
        }
    }

    /// A record of `session`, which ended as `ending` if it did; its lineage is that of the
    /// session's pair (set another with [`Record::with_lineage`] for an ended session, which
    /// holds no pair any more).
    pub fn new(session: SavedSession, ending: Option<Ending>) -> Record {
        let lineage = session.tokens.as_ref().and_then(|tokens| tokens.lineage);
        Record {
            format: RECORD_FORMAT.to_owned(),
            version: Version::EMPTY,
            session: Some(session),
            ending,
            lineage,
            written_back: None,
            refresh_not_before: None,
            tag: None,
        }
    }

    /// The same record about the pair of lineage `lineage`.
    pub fn with_lineage(mut self, lineage: Option<Lineage>) -> Record {
        self.lineage = lineage;
        self
    }

    /// The same record, marked as written back with the number `mark` (see
    /// [`Record::written_back`]), or not.
    pub fn with_written_back(mut self, mark: Option<u64>) -> Record {
        self.written_back = mark;
        self
    }

    /// Whether it holds neither a token pair nor an ending: a store that was never written,
    /// was wiped, or held something unreadable.
    pub fn is_empty(&self) -> bool {
        self.ending.is_none()
            && self
                .session
                .as_ref()
                .is_none_or(|session| session.tokens.is_none())
    }

    /// Reads a record from its JSON form, refusing anything that is not one.
    pub fn from_json(bytes: &[u8]) -> Result<Record, StoreError> {
        let record: Record = serde_json::from_slice(bytes)
            .map_err(|_| StoreError::Corrupt("not a session record (unreadable JSON)"))?;
        if record.format != RECORD_FORMAT {
            return Err(StoreError::Corrupt(
                "not a session record of this format (another program's file?)",
            ));
        }
        Ok(record)
    }

    /// The JSON form of the record.
    pub fn to_json(&self) -> Vec<u8> {
        // A record holds strings, numbers and options only: serialising it cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }
}

/// A refresh lease: while a process holds it, no other process refreshes. Its fencing token
/// grows with every lease taken, and a store refuses a save under a lease that was taken over
/// (its holder was too slow: the time to live ran out and another took it).
#[derive(Clone, PartialEq, Eq)]
pub struct Lease {
    fence: u64,
    holder: String,
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("fence", &self.fence)
            .finish_non_exhaustive()
    }
}

impl Lease {
    /// A lease with fencing token `fence`, held by `holder` (a random value unique to the
    /// taker, so that one holder cannot release another's lease).
    pub fn new(fence: u64, holder: String) -> Lease {
        Lease { fence, holder }
    }

    /// The fencing token.
    pub fn fence(&self) -> u64 {
        self.fence
    }

    /// Who holds it.
    pub fn holder(&self) -> &str {
        &self.holder
    }
}

/// What kept a store from answering, for [`StoreError::Unavailable`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreFault {
    /// Nothing listens where the store should be (connection refused).
    Refused,
    /// The connection was reset or closed in the middle of a command.
    Dropped,
    /// No answer in time. For a save, the outcome is unknown: it may have landed, and the
    /// drivers read the store again before deciding anything on it.
    TimedOut,
    /// The store refused the credentials (Redis `NOAUTH`, `WRONGPASS`).
    Authentication,
    /// The file system refused (a read-only directory or file).
    PermissionDenied,
    /// The store's directory is gone.
    Missing,
    /// No space left.
    Full,
    /// Another process held the store's lock for the whole time allowed (a process paused
    /// or stuck while holding it).
    Busy,
    /// Anything else; the detail says what.
    Other,
}

impl fmt::Display for StoreFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StoreFault::Refused => "connection refused",
            StoreFault::Dropped => "connection dropped",
            StoreFault::TimedOut => "timed out",
            StoreFault::Authentication => "authentication failed",
            StoreFault::PermissionDenied => "permission denied",
            StoreFault::Missing => "directory missing",
            StoreFault::Full => "no space left",
            StoreFault::Busy => "locked by another process",
            StoreFault::Other => "failed",
        })
    }
}

/// A store's failure.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The record changed since it was loaded (compare-and-set refused the save).
    #[error("the stored session changed since it was loaded")]
    Conflict,
    /// The lease this save was made under was taken over by another process (or the store
    /// was reset and forgot it).
    #[error("the refresh lease was taken over by another process")]
    LeaseLost,
    /// Another process held the refresh lease for the whole wait.
    #[error("another process held the refresh lease for the whole wait")]
    LeaseBusy,
    /// What the store holds is not a session record (corrupt, or another program's).
    #[error("the store holds something that is not a session record: {0}")]
    Corrupt(&'static str),
    /// The store could not be reached, read or written.
    #[error("the session store is unavailable ({fault}): {detail}")]
    Unavailable {
        /// What happened.
        fault: StoreFault,
        /// The store's own words (never a password or a token).
        detail: String,
    },
}

impl StoreError {
    /// An [`StoreError::Unavailable`] of kind `fault`.
    pub fn unavailable(fault: StoreFault, detail: impl Into<String>) -> StoreError {
        StoreError::Unavailable {
            fault,
            detail: detail.into(),
        }
    }
}

/// Where a shared session lives. Every method is one short step; the drivers do the waiting
/// (for a lease, with their call's deadline).
///
/// Each method should be over by `until`, answering [`StoreFault::TimedOut`] past it: the
/// drivers give a call whose token is still usable only a short store budget, so a slow store
/// never holds up such a call. (A blocking store cannot be interrupted from outside; an async
/// one is also dropped at `until` by the async driver.)
///
/// Implementations: [`MemoryStore`] (one process), the file store (feature `file-store`), the
/// Redis stores (feature `redis`).
pub trait SessionStore: Send + Sync {
    /// The version of the record: cheap, read every 250 ms by a busy client.
    fn version(&self, until: Instant) -> impl Future<Output = Result<Version, StoreError>> + Send;

    /// The record (of [`Version::EMPTY`] when nothing was saved).
    fn load(&self, until: Instant) -> impl Future<Output = Result<Record, StoreError>> + Send;

    /// Saves `record` if the store is still at `expected` (else [`StoreError::Conflict`]) and,
    /// with a lease, if that lease was not taken over (else [`StoreError::LeaseLost`]).
    /// Returns the new version. A record that cannot be read counts as an empty one of the
    /// store's current version: a save replaces it.
    fn save(
        &self,
        expected: Version,
        record: Record,
        lease: Option<&Lease>,
        until: Instant,
    ) -> impl Future<Output = Result<Version, StoreError>> + Send;

    /// Takes the refresh lease for `ttl` if nobody holds it (or its holder's time ran out).
    fn try_lease(
        &self,
        ttl: Duration,
        until: Instant,
    ) -> impl Future<Output = Result<Option<Lease>, StoreError>> + Send;

    /// Gives the lease back (nothing happens if it was taken over).
    fn release(
        &self,
        lease: Lease,
        until: Instant,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// A store in memory: the clients given the same `Arc<MemoryStore>` (or a reference) share
/// one session. Each client without a store of its own has one, which costs an atomic read per
/// call.
#[derive(Debug, Default)]
pub struct MemoryStore {
    version: AtomicU64,
    state: Mutex<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    record: Option<Record>,
    fence: u64,
    /// The holder and when its time runs out.
    lease: Option<(String, Instant)>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Memory answers at once: `until` is never reached.
impl SessionStore for MemoryStore {
    async fn version(&self, _until: Instant) -> Result<Version, StoreError> {
        Ok(Version(self.version.load(Ordering::Acquire)))
    }

    async fn load(&self, _until: Instant) -> Result<Record, StoreError> {
        Ok(self.state().record.clone().unwrap_or_else(Record::empty))
    }

    async fn save(
        &self,
        expected: Version,
        mut record: Record,
        lease: Option<&Lease>,
        _until: Instant,
    ) -> Result<Version, StoreError> {
        let mut state = self.state();
        let current = state.record.as_ref().map_or(Version::EMPTY, |r| r.version);
        let holder = state.lease.as_ref().map(|(holder, _)| holder.as_str());
        may_save(current, expected, lease, state.fence, holder)?;
        record.version = current.next();
        let version = record.version;
        state.record = Some(record);
        self.version.store(version.0, Ordering::Release);
        Ok(version)
    }

    async fn try_lease(&self, ttl: Duration, _until: Instant) -> Result<Option<Lease>, StoreError> {
        let now = Instant::now();
        let mut state = self.state();
        if state.lease.as_ref().is_some_and(|(_, until)| now < *until) {
            return Ok(None);
        }
        state.fence += 1;
        let holder = format!("memory-{}", state.fence);
        let until = now
            .checked_add(ttl)
            .unwrap_or(now + Duration::from_secs(3600));
        state.lease = Some((holder.clone(), until));
        Ok(Some(Lease::new(state.fence, holder)))
    }

    async fn release(&self, lease: Lease, _until: Instant) -> Result<(), StoreError> {
        let mut state = self.state();
        if state.lease.as_ref().map(|(holder, _)| holder.as_str()) == Some(lease.holder()) {
            state.lease = None;
        }
        Ok(())
    }
}

impl<S: SessionStore> SessionStore for std::sync::Arc<S> {
    fn version(&self, until: Instant) -> impl Future<Output = Result<Version, StoreError>> + Send {
        (**self).version(until)
    }
    fn load(&self, until: Instant) -> impl Future<Output = Result<Record, StoreError>> + Send {
        (**self).load(until)
    }
    fn save(
        &self,
        expected: Version,
        record: Record,
        lease: Option<&Lease>,
        until: Instant,
    ) -> impl Future<Output = Result<Version, StoreError>> + Send {
        (**self).save(expected, record, lease, until)
    }
    fn try_lease(
        &self,
        ttl: Duration,
        until: Instant,
    ) -> impl Future<Output = Result<Option<Lease>, StoreError>> + Send {
        (**self).try_lease(ttl, until)
    }
    fn release(
        &self,
        lease: Lease,
        until: Instant,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).release(lease, until)
    }
}

// ----- the decisions, pure -----

/// Whether a store at `current` may take a save made against `expected`, under `lease` (if
/// any), when the store's last lease had fencing token `fence` and is held by `holder` (if
/// anyone). Every store applies this rule inside its own atomic step.
pub fn may_save(
    current: Version,
    expected: Version,
    lease: Option<&Lease>,
    fence: u64,
    holder: Option<&str>,
) -> Result<(), StoreError> {
    if let Some(lease) = lease
        && (lease.fence() != fence || holder != Some(lease.holder()))
    {
        return Err(StoreError::LeaseLost);
    }
    if current != expected {
        return Err(StoreError::Conflict);
    }
    Ok(())
}

/// Whether the local copy (last synced at `seen`) is behind a store at `current`.
pub fn is_stale(seen: Option<Version>, current: Version) -> bool {
    seen != Some(current)
}

/// What a process does about the record it read, next to what it holds (see [`reconcile`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconcile {
    /// The store holds what this process holds (or both hold nothing): nothing to do.
    InStep,
    /// The store holds something newer: a later pair or login, a sibling pair saved first, or
    /// an ending that binds this process. Take it.
    Take,
    /// This process holds something newer than the store: a pair descending from the stored
    /// one, a later login, an ending the store has not learnt, or the store holds nothing.
    /// Write it back (under the lease, compare-and-set).
    WriteBack,
}

/// What a process holding the pair of lineage `ours` (the one that ended as `ours_ending`, if it
/// did; `None` for a process that never held a pair) does about `record`.
///
/// - A record of an earlier version of this crate (no lineage) wins, as it always did.
/// - The same pair: whichever side knows it ended is newer.
/// - A later pair of the same login, or a later login, wins; so does a sibling pair (the same
///   pair refreshed twice at once) that reached the store first.
/// - When ours is newer, the store's pair is dead on the server (ours descends from it) or
///   older than a deliberate login: ours is written back. Except: a logout in the store ends
///   its whole login, newer pairs of it included (a logout is never undone); and a refusal of
///   a pair the store does not hold is ours alone (fenced: it ends nobody else's session).
pub fn reconcile(
    ours: Option<Lineage>,
    ours_ending: Option<&Ending>,
    record: &Record,
) -> Reconcile {
    let refused = matches!(ours_ending, Some(Ending::RefreshRefused { .. }));
    let (ours, theirs) = match (ours, record.lineage) {
        (_, None) if !record.is_empty() => return Reconcile::Take,
        (None, None) => return Reconcile::InStep,
        (Some(_), None) if refused => return Reconcile::InStep,
        (Some(_), None) => return Reconcile::WriteBack,
        (None, Some(_)) => return Reconcile::Take,
        (Some(ours), Some(theirs)) => (ours, theirs),
    };
    if ours == theirs {
        return match (record.ending.is_some(), ours_ending.is_some()) {
            (true, false) => Reconcile::Take,
            (false, true) => Reconcile::WriteBack,
            _ => Reconcile::InStep,
        };
    }
    if theirs.supersedes(&ours) || theirs.is_sibling_of(&ours) {
        return Reconcile::Take;
    }
    let logged_out = matches!(record.ending, Some(Ending::LoggedOut));
    match ours_ending {
        _ if logged_out && theirs.login == ours.login => Reconcile::Take,
        Some(Ending::RefreshRefused { .. }) => Reconcile::InStep,
        _ => Reconcile::WriteBack,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::Instance;
    use crate::session::Session;

    fn lease(fence: u64, holder: &str) -> Lease {
        Lease::new(fence, holder.to_owned())
    }

    fn saved() -> SavedSession {
        Session::new(Instance::new("https://video.example.org").unwrap()).save()
    }

    #[test]
    fn a_save_needs_the_version_it_was_made_against_and_a_lease_not_taken_over() {
        let v = Version;
        let mine = lease(3, "me");
        type Case<'a> = (
            Version,
            Version,
            Option<&'a Lease>,
            u64,
            Option<&'a str>,
            Result<(), StoreError>,
        );
        let cases: &[Case<'_>] = &[
            (v(4), v(4), None, 0, None, Ok(())),
            (v(5), v(4), None, 0, None, Err(StoreError::Conflict)),
            (v(4), v(5), None, 0, None, Err(StoreError::Conflict)),
            (v(4), v(4), Some(&mine), 3, Some("me"), Ok(())),
            // Its time ran out but nobody took it: still good.
            (v(4), v(4), Some(&mine), 3, Some("me"), Ok(())),
            // Taken over: a newer fence, or another holder, or given back.
            (
                v(4),
                v(4),
                Some(&mine),
                4,
                Some("other"),
                Err(StoreError::LeaseLost),
            ),
            (
                v(4),
                v(4),
                Some(&mine),
                3,
                Some("other"),
                Err(StoreError::LeaseLost),
            ),
            (v(4), v(4), Some(&mine), 3, None, Err(StoreError::LeaseLost)),
            // A lost lease is reported before a conflict: the holder must not retry.
            (
                v(5),
                v(4),
                Some(&mine),
                4,
                Some("other"),
                Err(StoreError::LeaseLost),
            ),
        ];
        for (current, expected, lease, fence, holder, outcome) in cases {
            assert_eq!(
                &may_save(*current, *expected, *lease, *fence, *holder),
                outcome,
                "{current:?} {expected:?} {lease:?} {fence} {holder:?}"
            );
        }
    }

    /// A record holding the pair of lineage `lineage` (ended as `ending`, if given).
    fn holding(lineage: Option<Lineage>, ending: Option<Ending>) -> Record {
        let mut record = Record::new(saved(), ending).with_lineage(lineage);
        if lineage.is_some() && record.ending.is_none() {
            record = with_tokens(record);
        }
        record
    }

    fn with_tokens(mut record: Record) -> Record {
        let session = record.session.get_or_insert_with(saved);
        session.client = Some(crate::OAuthClient::new("id", "secret"));
        session.tokens = Some(
            serde_json::from_value(serde_json::json!({
                "access_token": "a", "refresh_token": "r", "issued_at": 1
            }))
            .unwrap(),
        );
        record
    }

    #[test]
    fn the_newer_side_wins_and_a_refusal_ends_only_the_pair_the_store_holds() {
        use Reconcile::{InStep, Take, WriteBack};
        let login = Lineage::of_login("r0", 100);
        let older = login.refreshed("r1");
        let ours = older.refreshed("r2");
        let newer = ours.refreshed("r3");
        let sibling = older.refreshed("r2-bis");
        let other_earlier = Lineage::of_login("x0", 50);
        let other_later = Lineage::of_login("y0", 200);
        let refused = Ending::RefreshRefused {
            status: 400,
            code: Some("invalid_grant".to_owned()),
            detail: None,
        };
        let out = Some(&Ending::LoggedOut);
        let no = None;
        let gone = Some(Ending::LoggedOut);
        let bad = Some(refused.clone());
        let refusal = Some(&refused);
        let legacy = with_tokens(Record::new(saved(), None));
        let cases: Vec<(Option<Lineage>, Option<&Ending>, Record, Reconcile)> = vec![
            // An empty store: ours goes back, unless ours was refused (fenced).
            (None, no, Record::empty(), InStep),
            (Some(ours), no, Record::empty(), WriteBack),
            (Some(ours), out, Record::empty(), WriteBack),
            (Some(ours), refusal, Record::empty(), InStep),
            // A record without lineage (an earlier version of this crate) always wins.
            (Some(ours), no, legacy.clone(), Take),
            (None, no, legacy, Take),
            (Some(ours), no, Record::new(saved(), gone.clone()), Take),
            // A process that never held a pair takes whatever there is.
            (None, no, holding(Some(older), None), Take),
            (None, no, holding(Some(older), bad.clone()), Take),
            // The same pair: the side that knows it ended is newer.
            (Some(ours), no, holding(Some(ours), None), InStep),
            (Some(ours), no, holding(Some(ours), bad.clone()), Take),
            (Some(ours), no, holding(Some(ours), gone.clone()), Take),
            (Some(ours), refusal, holding(Some(ours), None), WriteBack),
            (Some(ours), out, holding(Some(ours), None), WriteBack),
            (
                Some(ours),
                refusal,
                holding(Some(ours), bad.clone()),
                InStep,
            ),
            // The store is ahead: a later pair, a later login, a sibling saved first.
            (Some(ours), no, holding(Some(newer), None), Take),
            (Some(ours), no, holding(Some(newer), bad.clone()), Take),
            (Some(ours), refusal, holding(Some(newer), None), Take),
            (Some(ours), no, holding(Some(other_later), None), Take),
            (Some(ours), no, holding(Some(sibling), None), Take),
            // The store is behind: ours descends from its pair, or is a later login.
            (Some(ours), no, holding(Some(older), None), WriteBack),
            (Some(ours), no, holding(Some(login), None), WriteBack),
            (
                Some(ours),
                no,
                holding(Some(other_earlier), None),
                WriteBack,
            ),
            (Some(other_later), no, holding(Some(ours), None), WriteBack),
            // …a refusal the store learnt of an older pair ends nothing of ours…
            (Some(ours), no, holding(Some(older), bad.clone()), WriteBack),
            (Some(ours), out, holding(Some(older), None), WriteBack),
            // …but a logout ends its whole login, and our own refusal stays ours.
            (Some(ours), no, holding(Some(older), gone.clone()), Take),
            (Some(other_later), no, holding(Some(ours), gone), WriteBack),
            (Some(ours), refusal, holding(Some(older), None), InStep),
            (Some(ours), refusal, holding(Some(older), bad), InStep),
        ];
        for (held, ending, record, expected) in cases {
            assert_eq!(
                reconcile(held, ending, &record),
                expected,
                "ours {held:?} ({ending:?}), theirs {:?} ({:?}, empty: {})",
                record.lineage,
                record.ending,
                record.is_empty()
            );
        }
    }

    #[test]
    fn a_store_error_says_what_happened_in_words() {
        let words = [
            (StoreFault::Refused, "connection refused"),
            (StoreFault::Dropped, "connection dropped"),
            (StoreFault::TimedOut, "timed out"),
            (StoreFault::Authentication, "authentication failed"),
            (StoreFault::PermissionDenied, "permission denied"),
            (StoreFault::Missing, "directory missing"),
            (StoreFault::Full, "no space left"),
            (StoreFault::Busy, "locked by another process"),
            (StoreFault::Other, "failed"),
        ];
        for (fault, said) in words {
            assert_eq!(
                StoreError::unavailable(fault, "detail").to_string(),
                format!("the session store is unavailable ({said}): detail")
            );
        }
    }

    #[test]
    fn a_lease_prints_its_fence_but_not_its_holder() {
        let printed = format!("{:?}", lease(42, "holder-name"));
        assert!(printed.starts_with("Lease { fence: 42"), "{printed}");
        assert!(!printed.contains("holder-name"), "{printed}");
    }

    #[test]
    fn a_copy_is_stale_until_synced_with_the_current_version() {
        assert!(is_stale(None, Version::EMPTY));
        assert!(is_stale(Some(Version(1)), Version(2)));
        assert!(!is_stale(Some(Version(2)), Version(2)));
        assert_eq!(Version::EMPTY.next(), Version(1));
        assert_eq!(Version(7).next(), Version(8));
        assert_eq!(Version(u64::MAX).next(), Version(1));
    }

    #[test]
    fn an_ending_gives_every_process_the_same_typed_error() {
        assert_eq!(Ending::LoggedOut.error(), Error::LoggedOut);
        let mut refusal = ServerError::of_status(http::StatusCode::BAD_REQUEST);
        refusal.code = Some(ErrorCode::InvalidGrant);
        refusal.detail = Some("Invalid grant: refresh token is invalid".to_owned());
        let ending = Ending::refresh_refused(&refusal);
        match ending.error() {
            Error::LoginRequired(error) => {
                assert_eq!(error.status, 400);
                assert_eq!(error.code, Some(ErrorCode::InvalidGrant));
                assert_eq!(error.detail, refusal.detail);
            }
            other => panic!("{other:?}"),
        }
        let record = Record::new(saved(), Some(ending.clone()));
        let again = Record::from_json(&record.to_json()).unwrap();
        assert_eq!(again.ending, Some(ending));
    }

    #[test]
    fn only_a_record_of_this_format_is_read() {
        assert_eq!(
            Record::from_json(b"{\"tokens\": 1"),
            Err(StoreError::Corrupt(
                "not a session record (unreadable JSON)"
            ))
        );
        let foreign = br#"{"format":"something-else","version":3,"session":null}"#;
        assert!(matches!(
            Record::from_json(foreign),
            Err(StoreError::Corrupt(_))
        ));
        let record = Record::new(saved(), None);
        assert_eq!(Record::from_json(&record.to_json()).unwrap(), record);
    }

    fn run<F: Future>(future: F) -> F::Output {
        pollster::block_on(future)
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    #[test]
    fn the_memory_store_lease_is_exclusive_until_given_back_or_timed_out() {
        let store = MemoryStore::new();
        let ttl = Duration::from_secs(60);
        let first = run(store.try_lease(ttl, far())).unwrap().unwrap();
        assert_eq!(run(store.try_lease(ttl, far())).unwrap(), None);
        run(store.release(first.clone(), far())).unwrap();
        let second = run(store.try_lease(Duration::ZERO, far()))
            .unwrap()
            .unwrap();
        assert!(second.fence() > first.fence());
        // Its time ran out: the next taker gets it, and the old holder can no longer save.
        let third = run(store.try_lease(ttl, far())).unwrap().unwrap();
        let record = Record::new(saved(), None);
        assert_eq!(
            run(store.save(Version::EMPTY, record.clone(), Some(&second), far())),
            Err(StoreError::LeaseLost)
        );
        // Giving back a lease that was taken over changes nothing.
        run(store.release(second, far())).unwrap();
        assert_eq!(run(store.try_lease(ttl, far())).unwrap(), None);
        assert_eq!(
            run(store.save(Version::EMPTY, record, Some(&third), far())),
            Ok(Version(1))
        );
        assert_eq!(run(store.version(far())), Ok(Version(1)));
        assert_eq!(run(store.load(far())).unwrap().version, Version(1));
    }

    #[test]
    fn a_memory_lease_of_unbounded_length_is_held_not_already_over() {
        let store = MemoryStore::new();
        assert!(
            run(store.try_lease(Duration::MAX, far()))
                .unwrap()
                .is_some()
        );
        assert_eq!(
            run(store.try_lease(Duration::from_secs(1), far())).unwrap(),
            None
        );
    }

    /// Two processes, each: take the lease, reload, refresh if due, save, give the lease back
    /// (or crash after any step). Whatever the interleaving, the pair is refreshed once, no
    /// save overwrites a newer record, and the process that comes second uses the stored pair.
    #[test]
    fn every_interleaving_of_two_processes_refreshes_once() {
        #[derive(Clone, Copy, PartialEq, Debug)]
        enum Step {
            Lease,
            Reload,
            Save,
            Release,
        }
        const STEPS: [Step; 4] = [Step::Lease, Step::Reload, Step::Save, Step::Release];
        // Every way to interleave two runs of STEPS, and every crash point of the first.
        let mut orders = Vec::new();
        for mask in 0u32..256 {
            if mask.count_ones() == 4 {
                orders.push((0..8).map(|i| (mask >> i) & 1).collect::<Vec<_>>());
            }
        }
        for order in &orders {
            for crash_after in 0..=STEPS.len() {
                let store = MemoryStore::new();
                let first =
                    run(store.save(Version::EMPTY, Record::new(saved(), None), None, far()))
                        .unwrap();
                // Per process: next step, lease held, version loaded, whether it still sees the
                // old pair as due, refreshes sent.
                let mut next = [0usize; 2];
                let mut held: [Option<Lease>; 2] = [None, None];
                let mut loaded = [first; 2];
                let mut refreshed = [false; 2];
                let mut waiting = [false; 2];
                for &who in order {
                    let who = who as usize;
                    if who == 0 && next[0] >= crash_after {
                        continue; // crashed: its lease stays until its time runs out
                    }
                    let Some(&step) = STEPS.get(next[who]) else {
                        continue;
                    };
                    match step {
                        Step::Lease => {
                            match run(store.try_lease(Duration::from_secs(60), far())).unwrap() {
                                Some(lease) => held[who] = Some(lease),
                                None => {
                                    waiting[who] = true;
                                    continue; // retry later; a blocked process stays blocked here
                                }
                            }
                        }
                        Step::Reload => {
                            let record = run(store.load(far())).unwrap();
                            // Due only if nobody saved a new pair since the first.
                            if record.version == first {
                                refreshed[who] = true;
                            }
                            loaded[who] = record.version;
                        }
                        Step::Save => {
                            if refreshed[who] {
                                let record = Record::new(saved(), None);
                                let lease = held[who].as_ref();
                                run(store.save(loaded[who], record, lease, far())).unwrap();
                            }
                        }
                        Step::Release => {
                            if let Some(lease) = held[who].take() {
                                run(store.release(lease, far())).unwrap();
                            }
                        }
                    }
                    next[who] += 1;
                }
                let refreshes = refreshed.iter().filter(|r| **r).count();
                assert!(refreshes <= 1, "{order:?} crash {crash_after}: {refreshes}");
                // The second process either refreshed (the first crashed before saving), used
                // the stored pair, or is still waiting for the crashed holder's lease.
                let second_done = next[1] == STEPS.len();
                assert!(
                    second_done || waiting[1],
                    "{order:?} crash {crash_after}: second stuck at {}",
                    next[1]
                );
            }
        }
    }
}
