//! Session stores: one saved session shared by many processes and machines.
//!
//! PeerTube rotates both tokens on every refresh and kills the old pair at once, so two
//! processes that refresh one saved session either log each other out or orphan a pair on the
//! server. A [`SessionStore`] prevents it: it holds the saved session as a [`Record`] with a
//! version, saves it with compare-and-set on that version, and hands out a refresh [`Lease`]
//! (bounded wait, time to live, fencing token) so that one process at a time refreshes. The
//! drivers use it through `with_store`; the decisions they make around it are the pure
//! functions of this module ([`must_refresh`], [`may_save`], [`is_stale`]), tested without
//! any store.
//!
//! This module does no IO: the stores that do live under `transports/` (the file store,
//! feature `file-store`); [`MemoryStore`] (the default) shares a session between the clients
//! of one process.

#[cfg(feature = "file-store")]
pub use crate::file_store::FileStore;
#[cfg(feature = "redis")]
pub use crate::redis_store::{AsyncRedisStore, RedisStore};

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
/// note), or how it ended.
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
}

impl Record {
    /// The record of a store that holds nothing.
    pub fn empty() -> Record {
        Record {
            format: RECORD_FORMAT.to_owned(),
            version: Version::EMPTY,
            session: None,
            ending: None,
        }
    }

    /// A record of `session`, which ended as `ending` if it did.
    pub fn new(session: SavedSession, ending: Option<Ending>) -> Record {
        Record {
            format: RECORD_FORMAT.to_owned(),
            version: Version::EMPTY,
            session: Some(session),
            ending,
        }
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

/// A store's failure.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The record changed since it was loaded (compare-and-set refused the save).
    #[error("the stored session changed since it was loaded")]
    Conflict,
    /// The lease this save was made under was taken over by another process.
    #[error("the refresh lease was taken over by another process")]
    LeaseLost,
    /// Another process held the refresh lease for the whole wait.
    #[error("another process held the refresh lease for the whole wait")]
    LeaseBusy,
    /// What the store holds is not a session record (corrupt, or another program's).
    #[error("the store holds something that is not a session record: {0}")]
    Corrupt(&'static str),
    /// The store could not be reached or written (file system, network).
    #[error("the session store failed: {0}")]
    Unavailable(String),
}

/// Where a shared session lives. Every method is one short step; the drivers do the waiting
/// (for a lease, with their call's deadline).
///
/// Implementations: [`MemoryStore`] (one process), the file store (feature `file-store`).
pub trait SessionStore: Send + Sync {
    /// The version of the record: cheap, called before every call that uses a token.
    fn version(&self) -> impl Future<Output = Result<Version, StoreError>> + Send;

    /// The record (of [`Version::EMPTY`] when nothing was saved).
    fn load(&self) -> impl Future<Output = Result<Record, StoreError>> + Send;

    /// Saves `record` if the store is still at `expected` (else [`StoreError::Conflict`]) and,
    /// with a lease, if that lease was not taken over (else [`StoreError::LeaseLost`]).
    /// Returns the new version.
    fn save(
        &self,
        expected: Version,
        record: Record,
        lease: Option<&Lease>,
    ) -> impl Future<Output = Result<Version, StoreError>> + Send;

    /// Takes the refresh lease for `ttl` if nobody holds it (or its holder's time ran out).
    fn try_lease(
        &self,
        ttl: Duration,
    ) -> impl Future<Output = Result<Option<Lease>, StoreError>> + Send;

    /// Gives the lease back (nothing happens if it was taken over).
    fn release(&self, lease: Lease) -> impl Future<Output = Result<(), StoreError>> + Send;
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

impl SessionStore for MemoryStore {
    async fn version(&self) -> Result<Version, StoreError> {
        Ok(Version(self.version.load(Ordering::Acquire)))
    }

    async fn load(&self) -> Result<Record, StoreError> {
        Ok(self.state().record.clone().unwrap_or_else(Record::empty))
    }

    async fn save(
        &self,
        expected: Version,
        mut record: Record,
        lease: Option<&Lease>,
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

    async fn try_lease(&self, ttl: Duration) -> Result<Option<Lease>, StoreError> {
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

    async fn release(&self, lease: Lease) -> Result<(), StoreError> {
        let mut state = self.state();
        if state.lease.as_ref().map(|(holder, _)| holder.as_str()) == Some(lease.holder()) {
            state.lease = None;
        }
        Ok(())
    }
}

impl<S: SessionStore> SessionStore for std::sync::Arc<S> {
    fn version(&self) -> impl Future<Output = Result<Version, StoreError>> + Send {
        (**self).version()
    }
    fn load(&self) -> impl Future<Output = Result<Record, StoreError>> + Send {
        (**self).load()
    }
    fn save(
        &self,
        expected: Version,
        record: Record,
        lease: Option<&Lease>,
    ) -> impl Future<Output = Result<Version, StoreError>> + Send {
        (**self).save(expected, record, lease)
    }
    fn try_lease(
        &self,
        ttl: Duration,
    ) -> impl Future<Output = Result<Option<Lease>, StoreError>> + Send {
        (**self).try_lease(ttl)
    }
    fn release(&self, lease: Lease) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).release(lease)
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

/// What the holder of the refresh lease does once it has reloaded the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshPlan {
    /// The reloaded pair is still due (or was rejected): refresh it.
    Refresh,
    /// Another process refreshed already: use the stored pair, send nothing.
    UseStored,
    /// The session ended in the store: answer with this error, send nothing.
    Ended(Ending),
    /// The store holds no session: refresh the local one (and save it).
    RefreshLocal,
}

/// The refresh lease holder's decision on the reloaded `record`: `due` says whether its
/// session still needs a refresh (the session answers it, with its clock and margin).
pub fn must_refresh(record: &Record, due: bool) -> RefreshPlan {
    if let Some(ending) = &record.ending {
        return RefreshPlan::Ended(ending.clone());
    }
    match (&record.session, due) {
        (None, _) => RefreshPlan::RefreshLocal,
        (Some(_), true) => RefreshPlan::Refresh,
        (Some(_), false) => RefreshPlan::UseStored,
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

    #[test]
    fn the_lease_holder_refreshes_only_a_pair_still_due() {
        let live = Record::new(saved(), None);
        let ended = Record::new(saved(), Some(Ending::LoggedOut));
        assert_eq!(must_refresh(&live, true), RefreshPlan::Refresh);
        assert_eq!(must_refresh(&live, false), RefreshPlan::UseStored);
        assert_eq!(
            must_refresh(&Record::empty(), true),
            RefreshPlan::RefreshLocal
        );
        assert_eq!(
            must_refresh(&Record::empty(), false),
            RefreshPlan::RefreshLocal
        );
        for due in [true, false] {
            assert_eq!(
                must_refresh(&ended, due),
                RefreshPlan::Ended(Ending::LoggedOut)
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

    #[test]
    fn the_memory_store_lease_is_exclusive_until_given_back_or_timed_out() {
        let store = MemoryStore::new();
        let ttl = Duration::from_secs(60);
        let first = run(store.try_lease(ttl)).unwrap().unwrap();
        assert_eq!(run(store.try_lease(ttl)).unwrap(), None);
        run(store.release(first.clone())).unwrap();
        let second = run(store.try_lease(Duration::ZERO)).unwrap().unwrap();
        assert!(second.fence() > first.fence());
        // Its time ran out: the next taker gets it, and the old holder can no longer save.
        let third = run(store.try_lease(ttl)).unwrap().unwrap();
        let record = Record::new(saved(), None);
        assert_eq!(
            run(store.save(Version::EMPTY, record.clone(), Some(&second))),
            Err(StoreError::LeaseLost)
        );
        // Giving back a lease that was taken over changes nothing.
        run(store.release(second)).unwrap();
        assert_eq!(run(store.try_lease(ttl)).unwrap(), None);
        assert_eq!(
            run(store.save(Version::EMPTY, record, Some(&third))),
            Ok(Version(1))
        );
        assert_eq!(run(store.version()), Ok(Version(1)));
        assert_eq!(run(store.load()).unwrap().version, Version(1));
    }

    #[test]
    fn a_memory_lease_of_unbounded_length_is_held_not_already_over() {
        let store = MemoryStore::new();
        assert!(run(store.try_lease(Duration::MAX)).unwrap().is_some());
        assert_eq!(run(store.try_lease(Duration::from_secs(1))).unwrap(), None);
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
                    run(store.save(Version::EMPTY, Record::new(saved(), None), None)).unwrap();
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
                        Step::Lease => match run(store.try_lease(Duration::from_secs(60))).unwrap()
                        {
                            Some(lease) => held[who] = Some(lease),
                            None => {
                                waiting[who] = true;
                                continue; // retry later; a blocked process stays blocked here
                            }
                        },
                        Step::Reload => {
                            let record = run(store.load()).unwrap();
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
                                run(store.save(loaded[who], record, lease)).unwrap();
                            }
                        }
                        Step::Release => {
                            if let Some(lease) = held[who].take() {
                                run(store.release(lease)).unwrap();
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
