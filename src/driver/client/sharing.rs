//! The driver's side of a shared session: reading and saving the store, the refresh lease,
//! re-login. The decisions it follows are the pure functions of [`crate::store`].
//!
//! The store helps; it never takes the process down. The session in memory is what calls use:
//! a call whose token is usable gives the store at most [`STORE_BUDGET`] and never fails
//! because of it (a failed read is tried again later). Only a call whose token is dead needs
//! the store (its lease, before a refresh), and waits for it within its deadline.

use super::lease::{HeldLease, Taken};
use super::{AsyncClient, AsyncTransport};
use crate::driver::{CallDeadline, at_most};
use crate::error::{Error, ServerError};
use crate::session::{Lineage, State};
use crate::store::{
    Ending, Lease, Reconcile, Record, SessionStore, StoreError, StoreFault, Version, reconcile,
};
use crate::trace;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// How often a client reads its store at most while its token is usable, to see whether
/// another process changed the session. Between two reads, a change shows as a 401 for the old
/// token, and the refresh that follows reloads under the lease, so this bounds a cost, never
/// correctness.
pub(super) const STORE_CHECK_INTERVAL: Duration = Duration::from_millis(250);
/// The most a call whose token is usable waits for the store, all its store steps together
/// (reading it, or trying an early refresh): a slow or away store costs such a call no more.
pub const STORE_BUDGET: Duration = Duration::from_millis(250);
/// After failed reads, the pause before the next one doubles up to this.
const STORE_LAST_PAUSE: Duration = Duration::from_secs(1);
/// After an early refresh could not be made (the store away or its lease held elsewhere, the
/// server busy), the token is used this long before the next try.
const QUIET: Duration = Duration::from_secs(1);

/// How long the token endpoint is left alone after a 429 without `Retry-After`.
const RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// What a client knows of its store, next to its session.
pub(super) struct Sharing {
    /// When the store may next be read by a call whose token is usable (nanoseconds since
    /// `epoch`): the hot path is one atomic load.
    next_read: AtomicU64,
    /// A call is reading the store: the others do not wait for it.
    reading: AtomicBool,
    epoch: Instant,
    state: Mutex<Shared>,
    /// A lease this client still has to give back: its refresh was cancelled (its future
    /// dropped), or the store failed when it was given back. The next store read or refresh
    /// of this client gives it back, so that the other processes do not wait for its time to
    /// run out.
    pub(super) owed: Mutex<Option<Lease>>,
}

#[derive(Debug, Default)]
pub(super) struct Shared {
    /// The store version the session was last reconciled with; `None` when that is unknown
    /// (never read, or what this client holds must still reach the store).
    pub(super) synced: Option<Version>,
    /// How the session ended, and the lineage of the pair that ended.
    pub(super) ending: Option<(Ending, Option<Lineage>)>,
    /// What this client holds came from this client and never reached the store: nobody else
    /// holds it (so it is revoked if another pair supersedes it) and it may fill an empty store.
    pub(super) authored: bool,
    /// The mark of the written-back record the store held last (see `Record::written_back`).
    pub(super) written_back: Option<u64>,
    /// The mark of a written-back record that stood unchanged, the store up, for
    /// [`SETTLE_TIME`]: its pair may be refreshed.
    pub(super) settled: Option<u64>,
    /// A written-back record's mark and since when the store has been seen up with it, kept
    /// across calls: a call whose deadline is shorter than [`SETTLE_TIME`] goes on where the
    /// last one stopped, so that the pair settles at all.
    ///
    /// [`SETTLE_TIME`]: super::lease::SETTLE_TIME
    pub(super) settling: Option<(Option<u64>, Instant)>,
    /// The lease of a save that failed, kept to write this client's pair back under it.
    pub(super) retained: Option<Taken>,
    /// This client has taken a pair another process made: its pairs serve other processes
    /// too, so a token that died before any answer here may have worked there.
    pub(super) pairs_from_elsewhere: bool,
    /// Store reads that failed in a row.
    pub(super) failures: u32,
    /// No early refresh before this moment.
    pub(super) quiet_until: Option<Instant>,
    /// The token endpoint's 429: no refresh or login before this moment.
    pub(super) blocked: Option<(Instant, Box<ServerError>)>,
    /// The number the logins through this store put in their `User-Agent` (see
    /// `Record::tag`), once known.
    pub(super) tag: Option<u64>,
    /// A re-login happened: the sessions a lost refresh answer left are to be looked for.
    pub(super) orphans_to_clean: bool,
    /// The latest place in the store's history of logins this client knows of.
    pub(super) generation: u64,
}

impl Sharing {
    pub(super) fn new() -> Self {
        Sharing {
            next_read: AtomicU64::new(0),
            reading: AtomicBool::new(false),
            epoch: Instant::now(),
            state: Mutex::new(Shared {
                // A client made with a session in hand holds a pair the store has not seen.
                authored: true,
                ..Shared::default()
            }),
            owed: Mutex::new(None),
        }
    }

    pub(super) fn state(&self) -> MutexGuard<'_, Shared> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The refresh of the pair of lineage `lineage` was refused: how the session ended here.
    pub(super) fn refused(&self, refusal: &ServerError, lineage: Option<Lineage>) {
        self.state().ending = Some((Ending::refresh_refused(refusal), lineage));
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }
}

/// Clears the `reading` flag however the read ends (its future may be dropped).
struct Reading<'a>(&'a AtomicBool);

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// How much a refresh is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Need {
    /// The token is good for a while.
    None,
    /// The token is within the refresh margin of its expiry but still usable: a refresh that
    /// cannot be made now (store away, lease held elsewhere, server busy) costs the call nothing.
    Early,
    /// The token is expired or was refused: the call cannot go on without a refresh.
    Now,
}

/// Runs a store step until `until`, past it answering [`StoreFault::TimedOut`] (a blocking
/// store keeps to `until` itself; an async one is dropped here).
pub(super) async fn bounded<R>(
    until: Instant,
    step: impl Future<Output = Result<R, StoreError>>,
) -> Result<R, StoreError> {
    let left = until.saturating_duration_since(Instant::now());
    at_most(
        left,
        || step,
        || {
            Err(StoreError::unavailable(
                StoreFault::TimedOut,
                "the store did not answer in time",
            ))
        },
    )
    .await
}

pub(super) fn earliest(a: Instant, b: Instant) -> Instant {
    a.min(b)
}

impl<T: AsyncTransport, S: SessionStore> AsyncClient<T, S> {
    pub(super) fn ending(&self) -> Option<Ending> {
        self.sharing
            .state()
            .ending
            .as_ref()
            .map(|(ending, _)| ending.clone())
    }

    /// How much a refresh is needed at `now`; only a logged-in session has a token to refresh.
    pub(super) fn need(&self, now: SystemTime) -> Result<Need, Error> {
        let session = self.session();
        if session.state() != State::LoggedIn {
            return Err(Error::InvalidState {
                operation: crate::error::Operation::Authorize,
                state: session.state(),
            });
        }
        if session.access_expired(now) {
            if let Some(limit) = self.refresh_blocked() {
                return Err(Error::RateLimited(limit));
            }
            return Ok(Need::Now);
        }
        if !session.refresh_due(now) {
            return Ok(Need::None);
        }
        let quiet = self.sharing.state().quiet_until;
        Ok(match quiet {
            Some(until) if Instant::now() < until => Need::None,
            _ => Need::Early,
        })
    }

    /// No early refresh for a while: the token is used as it is.
    pub(super) fn quiet(&self) {
        self.quiet_until(Instant::now() + QUIET);
    }

    pub(super) fn quiet_until(&self, until: Instant) {
        let mut shared = self.sharing.state();
        shared.quiet_until = shared.quiet_until.max(Some(until));
    }

    /// While the token endpoint asked to wait (`429`, in this process or another sharing the
    /// store), the 429 to answer at once, its `Retry-After` counting what is left: nothing is
    /// sent before then.
    pub(super) fn refresh_blocked(&self) -> Option<Box<ServerError>> {
        let shared = self.sharing.state();
        let (until, limit) = shared.blocked.as_ref()?;
        let left = until.checked_duration_since(Instant::now())?;
        let mut limit = limit.clone();
        limit.retry_after = Some(left);
        Some(limit)
    }

    /// The token endpoint answered `limit` (429): no refresh or login is sent before its
    /// `Retry-After` (a minute when it gives none), and none early either.
    pub(super) fn block_refreshes(&self, limit: &ServerError) {
        let wait = limit.retry_after.unwrap_or(RATE_LIMIT_WAIT);
        let until = Instant::now() + wait;
        self.quiet_until(until);
        let mut shared = self.sharing.state();
        if shared
            .blocked
            .as_ref()
            .is_none_or(|(known, _)| *known < until)
        {
            shared.blocked = Some((until, Box::new(limit.clone())));
        }
    }

    /// What a record says of the token endpoint's limit, taken over when it asks to wait longer.
    pub(super) fn learn_block(&self, record: &Record, server_now: u64) {
        let Some(not_before) = record.refresh_not_before else {
            return;
        };
        let Some(wait) = not_before.checked_sub(server_now).filter(|w| *w > 0) else {
            return;
        };
        let mut limit = ServerError::of_status(http::StatusCode::TOO_MANY_REQUESTS);
        limit.retry_after = Some(Duration::from_secs(wait));
        self.block_refreshes(&limit);
    }

    /// When refreshes may be sent again, in Unix seconds of the server's clock, if not now.
    pub(super) fn refresh_not_before(&self, server_now: u64) -> Option<u64> {
        let shared = self.sharing.state();
        let (until, _) = shared.blocked.as_ref()?;
        let left = until.checked_duration_since(Instant::now())?;
        Some(server_now + left.as_secs() + u64::from(left.subsec_nanos() > 0))
    }

    /// Whether [`sync`](Self::sync) reads the store at `at` (when not asked to at once).
    pub(super) fn store_read_due(&self, at: Instant) -> bool {
        let sharing = &self.sharing;
        sharing.nanos(at) >= sharing.next_read.load(Ordering::Acquire)
    }

    /// Brings the session up to the store, at most every [`STORE_CHECK_INTERVAL`] (unless
    /// `now_please`), within [`STORE_BUDGET`]; one caller reads, the others go on. A store that
    /// fails is read again later (after a pause that doubles, up to a second); its failure
    /// reaches the caller only when there is no session here to go on with and no ending known
    /// (a logout or a refused refresh, which is the answer then).
    pub(super) async fn sync(&self, now_please: bool, deadline: CallDeadline) -> Result<(), Error> {
        let sharing = &self.sharing;
        let started = Instant::now();
        if !now_please && !self.store_read_due(started) {
            return Ok(());
        }
        // A call that can go on without the store does not wait for another's read of it; one
        // that cannot (no usable token here) reads it too.
        let reading = sharing.reading.swap(true, Ordering::AcqRel);
        if reading && !now_please {
            return Ok(());
        }
        let _reading = (!reading).then(|| Reading(&sharing.reading));
        // Others skip the read while this one is under way.
        self.read_again_after(started, STORE_CHECK_INTERVAL);
        let until = earliest(deadline.at(), started + STORE_BUDGET);
        self.give_back_owed(until).await;
        let outcome = self.follow_store(until, deadline).await;
        let failures = {
            let mut shared = sharing.state();
            shared.failures = match &outcome {
                Err(Error::Store(_)) => shared.failures.saturating_add(1),
                _ => 0,
            };
            shared.failures
        };
        let pause = STORE_CHECK_INTERVAL.saturating_mul(1 << failures.min(4));
        self.read_again_after(Instant::now(), pause.min(STORE_LAST_PAUSE));
        match outcome {
            Ok(Some(Reconcile::WriteBack)) => {
                // Best effort: a failure is tried again at the next read.
                let _ = self.write_back(until, deadline).await;
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(Error::Store(error)) => {
                // With no session here and no ending known, only the store can tell whether
                // there is one (an empty store read earlier may have been filled since).
                let ending_known = sharing.state().ending.is_some();
                if !ending_known && self.session().state() != State::LoggedIn {
                    trace::event!(
                        warn,
                        error = %error,
                        "the store could not be read, and this process holds no session: the \
                         call fails"
                    );
                    return Err(Error::Store(error));
                }
                trace::event!(
                    warn,
                    error = %error,
                    "the store could not be read: calls go on with the tokens in memory"
                );
                Ok(())
            }
            Err(other) => Err(other),
        }
    }

    pub(super) fn read_again_after(&self, from: Instant, pause: Duration) {
        let sharing = &self.sharing;
        let at = sharing.nanos(from).saturating_add(nanos_of(pause));
        sharing.next_read.store(at, Ordering::Release);
    }

    /// The store's version; an unreadable record counts as an empty store.
    pub(super) async fn current_version(&self, until: Instant) -> Result<Version, StoreError> {
        match bounded(until, self.store.version(until)).await {
            Err(StoreError::Corrupt(_)) => Ok(Version::EMPTY),
            other => other,
        }
    }

    /// The store's record; an unreadable one counts as empty, at the store's version.
    pub(super) async fn read_record(&self, until: Instant) -> Result<Record, StoreError> {
        match bounded(until, self.store.load(until)).await {
            Err(StoreError::Corrupt(_reason)) => {
                trace::event!(
                    warn,
                    reason = _reason,
                    "the store's record is unreadable: it counts as empty, the next save replaces it"
                );
                let mut empty = Record::empty();
                empty.version = self.current_version(until).await?;
                Ok(empty)
            }
            other => other,
        }
    }

    /// Reads the store if it changed since the session was last reconciled with it (or that is
    /// unknown), and reconciles. `None` when nothing was read.
    pub(super) async fn follow_store(
        &self,
        until: Instant,
        deadline: CallDeadline,
    ) -> Result<Option<Reconcile>, Error> {
        let current = self.current_version(until).await.map_err(Error::Store)?;
        if self.sharing.state().synced == Some(current) {
            trace::event!(trace, version = current.0, "the store was read: unchanged");
            return Ok(None);
        }
        let record = self.read_record(until).await.map_err(Error::Store)?;
        trace::event!(
            debug,
            version = record.version.0,
            "the store changed: reloaded"
        );
        self.apply(record, deadline).await
    }

    /// What this client holds: the lineage of its pair (or of the pair that ended) and how it
    /// ended, if it did.
    pub(super) fn ours(
        &self,
        session_lineage: Option<Lineage>,
        shared: &Shared,
    ) -> (Option<Lineage>, Option<Ending>) {
        match (session_lineage, &shared.ending) {
            (Some(lineage), _) => (Some(lineage), None),
            (None, Some((ending, lineage))) => (*lineage, Some(ending.clone())),
            (None, None) => (None, None),
        }
    }

    /// Reconciles the session with `record` (see [`reconcile`]): takes what is newer in the
    /// store (revoking a pair of ours that nobody else holds and that it supersedes), marks what
    /// is newer here to be written back. `None` while a refresh of this client is in the air
    /// (its leader reconciles under the lease).
    pub(super) async fn apply(
        &self,
        record: Record,
        deadline: CallDeadline,
    ) -> Result<Option<Reconcile>, Error> {
        let now = self.now();
        let (decision, orphan) = {
            let mut session = self.session();
            if session.refresh_in_flight() {
                return Ok(None);
            }
            let mut shared = self.sharing.state();
            let (lineage, ending) = self.ours(session.lineage(), &shared);
            let decision = reconcile(lineage, ending.as_ref(), &record);
            shared.written_back = record.written_back;
            if record.tag.is_some() {
                shared.tag = record.tag;
            }
            if let Some(theirs) = record.lineage {
                shared.generation = shared.generation.max(theirs.generation);
            }
            let server_now = session.server_time(now);
            drop(shared);
            self.learn_block(&record, server_now);
            let mut shared = self.sharing.state();
            let mut orphan = None;
            match decision {
                Reconcile::InStep => {
                    shared.synced = Some(record.version);
                    shared.authored = false;
                }
                Reconcile::Take => {
                    if shared.authored && session.state() == State::LoggedIn {
                        orphan = Some(session.save());
                    }
                    match (&record.session, &record.ending) {
                        (_, Some(Ending::LoggedOut)) => trace::event!(
                            info,
                            version = record.version.0,
                            "logged out by another process sharing the store"
                        ),
                        (_, Some(_)) => trace::event!(
                            warn,
                            version = record.version.0,
                            "the session ended in another process (its refresh was refused)"
                        ),
                        (Some(_), None) => trace::event!(
                            debug,
                            version = record.version.0,
                            refreshes = record.lineage.map(|l| l.refreshes),
                            "took the pair another process saved"
                        ),
                        (None, None) => {}
                    }
                    match record.session {
                        Some(saved) => {
                            session.adopt(saved)?;
                            shared.pairs_from_elsewhere = true;
                        }
                        None => session.forget(),
                    }
                    shared.ending = record.ending.map(|ending| (ending, record.lineage));
                    shared.synced = Some(record.version);
                    shared.authored = false;
                }
                Reconcile::WriteBack => {
                    trace::event!(
                        debug,
                        version = record.version.0,
                        "the store is behind this process (empty, reset or older): ours is written back"
                    );
                    shared.synced = None;
                }
            }
            (decision, orphan)
        };
        if let Some(orphan) = orphan {
            // Superseded and held by nobody else: revoked so that no server session is left
            // behind (refreshed first if its access token expired while this client was idle).
            self.revoke_replaced(orphan, deadline).await;
        }
        Ok(Some(decision))
    }

    /// The record of what this client holds. Marked written back (see `Record::written_back`)
    /// when it goes into a store that was behind and this client did not make it; saved again
    /// in step with the store (to carry a 429's wait), it keeps the store's mark.
    pub(super) fn our_record(&self) -> Record {
        let now = self.now();
        let session = self.session();
        let shared = self.sharing.state();
        let (lineage, ending) = self.ours(session.lineage(), &shared);
        let mark = match (shared.authored, shared.synced) {
            (true, _) => None,
            (false, Some(_)) => shared.written_back,
            (false, None) => Some(write_back_mark()),
        };
        drop(shared);
        let mut record = Record::new(session.save(), ending)
            .with_lineage(lineage)
            .with_written_back(mark);
        record.refresh_not_before = self.refresh_not_before(session.server_time(now));
        record.tag = self.sharing.state().tag;
        record
    }

    /// Saved as `record`: the store is at `version` and holds what this client holds.
    pub(super) fn saved_as(&self, version: Version, record: &Record) {
        let mut shared = self.sharing.state();
        shared.synced = Some(version);
        shared.authored = false;
        shared.written_back = record.written_back;
    }

    /// Writes what this client holds back into the store, if the store is still behind: under
    /// the lease this client kept from a save that failed, or a new one (not waited for: a lease
    /// held elsewhere means another process is at it).
    pub(super) async fn write_back(
        &self,
        until: Instant,
        deadline: CallDeadline,
    ) -> Result<(), Error> {
        let retained = self.sharing.state().retained.take();
        let taken = match retained {
            Some(taken) => taken,
            None => match self.try_lease(until).await.map_err(Error::Store)? {
                Some(taken) => taken,
                None => return Ok(()),
            },
        };
        let held = HeldLease::new(&taken.lease, &self.sharing.owed);
        let outcome = self.write_back_holding(&taken.lease, until, deadline).await;
        held.disarm();
        self.give_back(taken, &outcome, until).await;
        outcome
    }

    pub(super) async fn write_back_holding(
        &self,
        lease: &Lease,
        until: Instant,
        deadline: CallDeadline,
    ) -> Result<(), Error> {
        let record = self.read_record(until).await.map_err(Error::Store)?;
        let version = record.version;
        if self.apply(record, deadline).await? != Some(Reconcile::WriteBack) {
            return Ok(());
        }
        let ours = self.our_record();
        let saved = bounded(
            until,
            self.store.save(version, ours.clone(), Some(lease), until),
        )
        .await;
        trace_save("written back", &saved);
        self.saved_as(saved.map_err(Error::Store)?, &ours);
        Ok(())
    }

    /// After a step under `lease` that ended with `outcome`: a store that failed keeps the
    /// lease with this client (its pair, which nobody else holds, is written under it once the
    /// store is back; nobody refreshes the older pair meanwhile); a lease that was lost is
    /// nobody's to give back; otherwise it is given back.
    pub(super) async fn give_back(
        &self,
        taken: Taken,
        outcome: &Result<(), Error>,
        until: Instant,
    ) {
        match outcome {
            Err(Error::Store(StoreError::LeaseLost)) => {}
            Err(Error::Store(StoreError::Unavailable { .. })) => {
                self.sharing.state().retained = Some(taken);
            }
            _ => self.release(taken.lease, until).await,
        }
    }

    /// Gives `lease` back; if the store fails, it is owed (given back at the next store read).
    pub(super) async fn release(&self, lease: Lease, until: Instant) {
        let failed = bounded(until, self.store.release(lease.clone(), until)).await;
        if let Err(StoreError::Unavailable { .. }) = failed {
            trace::event!(
                warn,
                fence = lease.fence(),
                "the store would not take the lease back: given back at the next read"
            );
            self.owe(lease);
        } else {
            trace::event!(debug, fence = lease.fence(), "lease given back");
        }
    }

    /// `lease` is to be given back later (a newer lease owed replaces an older one: taking the
    /// newer one took the older over).
    pub(super) fn owe(&self, lease: Lease) {
        *self.sharing.owed.lock().unwrap_or_else(|p| p.into_inner()) = Some(lease);
    }

    /// Gives back the lease this client owes, if any.
    pub(super) async fn give_back_owed(&self, until: Instant) {
        let owed = self
            .sharing
            .owed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(lease) = owed {
            let failed = bounded(until, self.store.release(lease.clone(), until)).await;
            if let Err(StoreError::Unavailable { .. }) = failed {
                // Unless a newer one came meanwhile.
                self.sharing
                    .owed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert(lease);
            }
        }
    }

    /// Saves the session over whatever the store holds (a login, a logout: deliberate acts).
    /// A store that fails or keeps changing is written later (what this client holds is newer
    /// than anything it held before): the act itself is done.
    pub(super) async fn save_over(
        &self,
        ending: Option<(Ending, Option<Lineage>)>,
        deadline: CallDeadline,
    ) {
        {
            let mut shared = self.sharing.state();
            shared.ending = ending;
            shared.synced = None;
            shared.authored = true;
            shared.quiet_until = None;
        }
        let until = earliest(deadline.at(), Instant::now() + STORE_BUDGET);
        for _ in 0..2 {
            let Ok(expected) = self.current_version(until).await else {
                return;
            };
            let ours = self.our_record();
            match bounded(until, self.store.save(expected, ours.clone(), None, until)).await {
                Ok(version) => return self.saved_as(version, &ours),
                Err(StoreError::Conflict) => continue,
                Err(_) => return,
            }
        }
    }
}

/// One event for a save's outcome.
#[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
pub(super) fn trace_save(what: &'static str, saved: &Result<Version, StoreError>) {
    match saved {
        Ok(_version) => trace::event!(debug, version = _version.0, "{what}: saved"),
        Err(StoreError::Conflict) => trace::event!(
            debug,
            "{what}: the store changed meanwhile (compare-and-set conflict)"
        ),
        Err(StoreError::LeaseLost) => trace::event!(
            warn,
            "{what}: refused by its fencing token: the lease was taken over"
        ),
        Err(_error) => trace::event!(
            warn,
            error = %_error,
            "{what}: not saved, the store failed: written later"
        ),
    }
}

/// A number no other write-back draws: the process, the moment, a counter, mixed.
pub(super) fn write_back_mark() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static DRAWN: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u64(DRAWN.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
}

fn nanos_of(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
