//! The driver's side of a shared session: reading and saving the store, the refresh lease,
//! re-login. The decisions it follows are the pure functions of [`crate::store`].
//!
//! The store helps; it never takes the process down. The session in memory is what calls use:
//! a call whose token is usable gives the store at most [`STORE_BUDGET`] and never fails
//! because of it (a failed read is tried again later). Only a call whose token is dead needs
//! the store (its lease, before a refresh), and waits for it within its deadline.

use super::{AsyncClient, AsyncTransport};
use crate::driver::{CallDeadline, at_most};
use crate::error::{Error, ServerError};
use crate::request::Credentials;
use crate::session::{Lineage, State};
use crate::store::{
    Ending, Lease, Reconcile, Record, SessionStore, StoreError, StoreFault, Version, reconcile,
};
use std::fmt;
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
/// How long a written-back pair must stand unchanged in the store, the store up, before it is
/// refreshed: the time for a process holding a newer pair (whose save the store lost) to write
/// it over.
const SETTLE_TIME: Duration = Duration::from_secs(2);

/// A refresh lease lives for the exchange's timeout plus this, to cover the reload and the save.
const LEASE_SLACK: Duration = Duration::from_secs(5);
/// The first and the longest pause between two tries to take a lease another process holds.
const LEASE_FIRST_PAUSE: Duration = Duration::from_millis(5);
const LEASE_LAST_PAUSE: Duration = Duration::from_millis(25);
/// How long the token endpoint is left alone after a 429 without `Retry-After`.
const RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);
/// The pause between two tries to reach a store that failed, while a call waits for it.
const STORE_AWAY_PAUSE: Duration = Duration::from_millis(100);

/// What a client knows of its store, next to its session.
pub(super) struct Sharing {
    /// When the store may next be read by a call whose token is usable (nanoseconds since
    /// `epoch`): the hot path is one atomic load.
    next_read: AtomicU64,
    /// A call is reading the store: the others do not wait for it.
    reading: AtomicBool,
    epoch: Instant,
    state: Mutex<Shared>,
    /// A lease whose refresh was cancelled (its future dropped) before giving it back: the next
    /// refresh of this client gives it back first instead of waiting for its time to live.
    abandoned: Mutex<Option<Lease>>,
}

#[derive(Debug, Default)]
struct Shared {
    /// The store version the session was last reconciled with; `None` when that is unknown
    /// (never read, or what this client holds must still reach the store).
    synced: Option<Version>,
    /// How the session ended, and the lineage of the pair that ended.
    ending: Option<(Ending, Option<Lineage>)>,
    /// What this client holds came from this client and never reached the store: nobody else
    /// holds it (so it is revoked if another pair supersedes it) and it may fill an empty store.
    authored: bool,
    /// The mark of the written-back record the store held last (see `Record::written_back`).
    written_back: Option<u64>,
    /// The mark of a written-back record that stood unchanged, the store up, for
    /// [`SETTLE_TIME`]: its pair may be refreshed.
    settled: Option<u64>,
    /// The lease of a save that failed, kept to write this client's pair back under it.
    retained: Option<Taken>,
    /// Store reads that failed in a row.
    failures: u32,
    /// No early refresh before this moment.
    quiet_until: Option<Instant>,
    /// The token endpoint's 429: no refresh or login before this moment.
    blocked: Option<(Instant, Box<ServerError>)>,
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
            abandoned: Mutex::new(None),
        }
    }

    fn state(&self) -> MutexGuard<'_, Shared> {
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
async fn bounded<R>(
    until: Instant,
    step: impl Future<Output = Result<R, StoreError>>,
) -> Result<R, StoreError> {
    let left = until.saturating_duration_since(Instant::now());
    at_most(left, step, || {
        Err(StoreError::unavailable(
            StoreFault::TimedOut,
            "the store did not answer in time",
        ))
    })
    .await
}

fn earliest(a: Instant, b: Instant) -> Instant {
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
    fn quiet(&self) {
        self.quiet_until(Instant::now() + QUIET);
    }

    fn quiet_until(&self, until: Instant) {
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
    fn block_refreshes(&self, limit: &ServerError) {
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
    fn learn_block(&self, record: &Record, server_now: u64) {
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
    fn refresh_not_before(&self, server_now: u64) -> Option<u64> {
        let shared = self.sharing.state();
        let (until, _) = shared.blocked.as_ref()?;
        let left = until.checked_duration_since(Instant::now())?;
        Some(server_now + left.as_secs() + u64::from(left.subsec_nanos() > 0))
    }

    /// Brings the session up to the store, at most every [`STORE_CHECK_INTERVAL`] (unless
    /// `now_please`), within [`STORE_BUDGET`]; one caller reads, the others go on. A store that
    /// fails is read again later (after a pause that doubles, up to a second); its failure
    /// reaches the caller only when there is no session here at all to go on with.
    pub(super) async fn sync(&self, now_please: bool, deadline: CallDeadline) -> Result<(), Error> {
        let sharing = &self.sharing;
        let started = Instant::now();
        if !now_please && sharing.nanos(started) < sharing.next_read.load(Ordering::Acquire) {
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
                let shared = sharing.state();
                let nothing_here = shared.synced.is_none() && shared.ending.is_none();
                drop(shared);
                if nothing_here && self.session().state() != State::LoggedIn {
                    return Err(Error::Store(error));
                }
                Ok(())
            }
            Err(other) => Err(other),
        }
    }

    fn read_again_after(&self, from: Instant, pause: Duration) {
        let sharing = &self.sharing;
        let at = sharing.nanos(from).saturating_add(nanos_of(pause));
        sharing.next_read.store(at, Ordering::Release);
    }

    /// The store's version; an unreadable record counts as an empty store.
    async fn current_version(&self, until: Instant) -> Result<Version, StoreError> {
        match bounded(until, self.store.version(until)).await {
            Err(StoreError::Corrupt(_)) => Ok(Version::EMPTY),
            other => other,
        }
    }

    /// The store's record; an unreadable one counts as empty, at the store's version.
    async fn read_record(&self, until: Instant) -> Result<Record, StoreError> {
        match bounded(until, self.store.load(until)).await {
            Err(StoreError::Corrupt(_)) => {
                let mut empty = Record::empty();
                empty.version = self.current_version(until).await?;
                Ok(empty)
            }
            other => other,
        }
    }

    /// Reads the store if it changed since the session was last reconciled with it (or that is
    /// unknown), and reconciles. `None` when nothing was read.
    async fn follow_store(
        &self,
        until: Instant,
        deadline: CallDeadline,
    ) -> Result<Option<Reconcile>, Error> {
        let current = self.current_version(until).await.map_err(Error::Store)?;
        if self.sharing.state().synced == Some(current) {
            return Ok(None);
        }
        let record = self.read_record(until).await.map_err(Error::Store)?;
        self.apply(record, deadline).await
    }

    /// What this client holds: the lineage of its pair (or of the pair that ended) and how it
    /// ended, if it did.
    fn ours(
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
    async fn apply(
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
                    if shared.authored
                        && let Ok((request, pending)) = session.logout()
                    {
                        session.abandon(pending);
                        orphan = Some(request);
                    }
                    match record.session {
                        Some(saved) => session.adopt(saved)?,
                        None => session.forget(),
                    }
                    shared.ending = record.ending.map(|ending| (ending, record.lineage));
                    shared.synced = Some(record.version);
                    shared.authored = false;
                }
                Reconcile::WriteBack => shared.synced = None,
            }
            (decision, orphan)
        };
        if let Some(mut request) = orphan
            && self.stamp(&mut request, deadline).is_ok()
        {
            // Superseded and held by nobody else: revoked so that no server session is left
            // behind. Best effort: the answer changes nothing here.
            let _ = self.transport.send(request).await;
        }
        Ok(Some(decision))
    }

    /// The record of what this client holds: written back unless this client made it.
    fn our_record(&self) -> Record {
        let now = self.now();
        let session = self.session();
        let shared = self.sharing.state();
        let (lineage, ending) = self.ours(session.lineage(), &shared);
        let mark = (!shared.authored).then(write_back_mark);
        drop(shared);
        let mut record = Record::new(session.save(), ending)
            .with_lineage(lineage)
            .with_written_back(mark);
        record.refresh_not_before = self.refresh_not_before(session.server_time(now));
        record
    }

    /// Saved as `record`: the store is at `version` and holds what this client holds.
    fn saved_as(&self, version: Version, record: &Record) {
        let mut shared = self.sharing.state();
        shared.synced = Some(version);
        shared.authored = false;
        shared.written_back = record.written_back;
    }

    /// Writes what this client holds back into the store, if the store is still behind: under
    /// the lease this client kept from a save that failed, or a new one (not waited for: a lease
    /// held elsewhere means another process is at it).
    async fn write_back(&self, until: Instant, deadline: CallDeadline) -> Result<(), Error> {
        let retained = self.sharing.state().retained.take();
        let taken = match retained {
            Some(taken) => taken,
            None => match self.try_lease(until).await.map_err(Error::Store)? {
                Some(taken) => taken,
                None => return Ok(()),
            },
        };
        let held = HeldLease::new(&taken.lease, &self.sharing.abandoned);
        let outcome = self.write_back_holding(&taken.lease, until, deadline).await;
        held.disarm();
        self.give_back(taken, &outcome, until).await;
        outcome
    }

    async fn write_back_holding(
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
        self.saved_as(saved.map_err(Error::Store)?, &ours);
        Ok(())
    }

    /// After a step under `lease` that ended with `outcome`: a store that failed keeps the
    /// lease with this client (its pair, which nobody else holds, is written under it once the
    /// store is back; nobody refreshes the older pair meanwhile); a lease that was lost is
    /// nobody's to give back; otherwise it is given back.
    async fn give_back(&self, taken: Taken, outcome: &Result<(), Error>, until: Instant) {
        match outcome {
            Err(Error::Store(StoreError::LeaseLost)) => {}
            Err(Error::Store(StoreError::Unavailable { .. })) => {
                self.sharing.state().retained = Some(taken);
            }
            _ => {
                let _ = bounded(until, self.store.release(taken.lease, until)).await;
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

    /// Waits for the store's refresh lease: for a refresh that is `needed` now, until the
    /// call's deadline; for an early one, within the store budget. While another process holds
    /// it, watches the store: once that process has saved a pair that is not due, there is
    /// nothing left to do (`None`). An early refresh that cannot get the lease in time gives up
    /// (`None`): the token is used as it is. A lease this client kept from a save that failed
    /// is its own: it is used again.
    async fn take_lease(
        &self,
        needed: Need,
        store_until: Instant,
        deadline: CallDeadline,
    ) -> Result<Option<Taken>, Error> {
        // A kept lease serves a refresh only of a pair nobody else holds, and only while it
        // surely lives: another process may take it once its time runs out.
        let retained = {
            let mut shared = self.sharing.state();
            let retained = shared.retained.take();
            retained.filter(|taken| shared.authored && Instant::now() < taken.lives_until)
        };
        if let Some(taken) = retained {
            return Ok(Some(taken));
        }
        let mut pause = LEASE_FIRST_PAUSE;
        loop {
            let failure = match self.try_lease(store_until).await {
                Ok(Some(taken)) => return Ok(Some(taken)),
                Ok(None) => None,
                Err(error) => Some(error),
            };
            let left = store_until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                if needed == Need::Early {
                    self.quiet();
                    return Ok(None);
                }
                return Err(Error::Store(failure.unwrap_or(StoreError::LeaseBusy)));
            }
            let wait = if failure.is_some() {
                STORE_AWAY_PAUSE
            } else {
                pause
            };
            crate::driver::sleep(wait.min(left)).await;
            pause = (pause * 2).min(LEASE_LAST_PAUSE);
            // The holder may have saved its pair meanwhile.
            let _ = self.follow_store(store_until, deadline).await;
            if self.need(self.now()).is_ok_and(|need| need == Need::None) {
                return Ok(None);
            }
        }
    }

    /// One try at the store's lease; it lives for the exchange's timeout plus [`LEASE_SLACK`].
    async fn try_lease(&self, until: Instant) -> Result<Option<Taken>, StoreError> {
        let ttl = self.config.timeout() + LEASE_SLACK;
        let asked = Instant::now();
        let lease = bounded(until, self.store.try_lease(ttl, until)).await?;
        Ok(lease.map(|lease| Taken {
            lease,
            // Counted from the asking, and short of the slack: the store counts from its own
            // moment of taking.
            lives_until: asked + self.config.timeout(),
        }))
    }

    /// The refresh, as the leader of this process's callers: under the store's lease, reload,
    /// refresh only if the session is still due, save.
    pub(super) async fn refresh_under_lease(&self, deadline: CallDeadline) -> Result<(), Error> {
        let abandoned = self
            .sharing
            .abandoned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(lease) = abandoned {
            let until = earliest(deadline.at(), Instant::now() + STORE_BUDGET);
            let _ = bounded(until, self.store.release(lease, until)).await;
        }
        loop {
            let needed = match self.need(self.now()) {
                Ok(needed) => needed,
                Err(Error::RateLimited(limit)) => return Err(Error::RateLimited(limit)),
                // A dead refresh token with a way to log in again: a login, unless the token
                // endpoint asked to wait.
                Err(_) => match self.refresh_blocked() {
                    Some(limit) => return Err(Error::RateLimited(limit)),
                    None => Need::Now,
                },
            };
            let store_until = match needed {
                Need::None => return Ok(()),
                Need::Early => earliest(deadline.at(), Instant::now() + STORE_BUDGET),
                Need::Now => deadline.at(),
            };
            let Some(taken) = self.take_lease(needed, store_until, deadline).await? else {
                return Ok(());
            };
            let held = HeldLease::new(&taken.lease, &self.sharing.abandoned);
            let outcome = self
                .refresh_holding(&taken.lease, needed, store_until, deadline)
                .await;
            held.disarm();
            let release_by = earliest(deadline.at(), Instant::now() + STORE_BUDGET);
            let kept = match &outcome {
                Ok(Saved::Not(store_failure)) => Err(Error::Store(store_failure.clone())),
                _ => Ok(()),
            };
            self.give_back(taken, &kept, release_by).await;
            match outcome {
                Ok(_) => return Ok(()),
                Err(Held::AwaitSettling) => self.await_settling(deadline).await,
                Err(Held::Failed(error)) => return Err(error),
            }
        }
    }

    /// Follows the store until it has been up for [`SETTLE_TIME`] without a failure (or the
    /// deadline comes), or until `done` says so; the time starts again whenever the store
    /// fails, since a process holding a newer pair cannot write it meanwhile. What this client
    /// holds that is newer than the store is written back on the way.
    async fn watch_store(&self, deadline: CallDeadline, done: impl Fn(&Self) -> bool) -> bool {
        let mut up_since: Option<Instant> = None;
        loop {
            let now = Instant::now();
            if deadline.has_passed(now) || up_since.is_some_and(|at| now - at >= SETTLE_TIME) {
                return false;
            }
            crate::driver::sleep(STORE_AWAY_PAUSE.min(deadline.remaining(now))).await;
            let step_until = earliest(deadline.at(), Instant::now() + STORE_BUDGET);
            match self.follow_store(step_until, deadline).await {
                Err(Error::Store(_)) => up_since = None,
                Ok(Some(Reconcile::WriteBack)) => {
                    let _ = self.write_back(step_until, deadline).await;
                    up_since.get_or_insert(now);
                }
                _ => {
                    up_since.get_or_insert(now);
                }
            }
            if done(self) {
                return true;
            }
        }
    }

    /// Lets the written-back record the store holds settle (see `Record::written_back`),
    /// lease released: it is refreshed once it stood unchanged for [`SETTLE_TIME`].
    async fn await_settling(&self, deadline: CallDeadline) {
        let mark = self.sharing.state().written_back;
        let changed = self
            .watch_store(deadline, |client| {
                client.sharing.state().written_back != mark
            })
            .await;
        if !changed && !deadline.has_passed(Instant::now()) {
            self.sharing.state().settled = mark;
        }
    }

    async fn refresh_holding(
        &self,
        lease: &Lease,
        needed: Need,
        store_until: Instant,
        deadline: CallDeadline,
    ) -> Result<Saved, Held> {
        let record = match self.read_under_lease(needed, store_until).await {
            Ok(record) => record,
            Err(Some(error)) => return Err(Held::Failed(Error::Store(error))),
            Err(None) => return Ok(Saved::Yes),
        };
        let loaded = record.as_ref().map(|record| record.version);
        let decision = match &record {
            Some(record) => self.apply(record.clone(), deadline).await?,
            None => None,
        };
        let stored_lineage = record.as_ref().and_then(|record| record.lineage);
        let needed = match self.need(self.now()) {
            Ok(Need::None) => {
                return Ok(match (decision, loaded) {
                    (Some(Reconcile::WriteBack), Some(loaded)) => {
                        self.save_under(loaded, lease, store_until, deadline).await
                    }
                    _ => Saved::Yes,
                });
            }
            Ok(needed) => {
                // A pair that may not be the newest (written back, by another process or by
                // this one now) waits until it settled: a newer one would replace it first.
                let written_back = match decision {
                    Some(Reconcile::WriteBack) if !self.sharing.state().authored => {
                        if let Some(loaded) = loaded
                            && let Saved::Not(error) =
                                self.save_under(loaded, lease, store_until, deadline).await
                        {
                            return Ok(Saved::Not(error));
                        }
                        true
                    }
                    Some(Reconcile::WriteBack) => false,
                    _ => record.as_ref().is_some_and(|r| r.written_back.is_some()),
                };
                let settled = {
                    let shared = self.sharing.state();
                    shared.written_back.is_some() && shared.settled == shared.written_back
                };
                if written_back && !settled {
                    if needed == Need::Early {
                        self.quiet();
                        return Ok(Saved::Yes);
                    }
                    return Err(Held::AwaitSettling);
                }
                needed
            }
            Err(_) if self.relogin.is_some() && self.relogin_possible() => {
                return Ok(self
                    .relogin_holding(loaded, lease, store_until, deadline)
                    .await?);
            }
            Err(error) => return Err(Held::Failed(self.ending().map_or(error, |e| e.error()))),
        };
        let refreshed_from = self.session().lineage();
        let step = self.session().refresh().map_err(Held::Failed)?;
        self.refreshes_sent.fetch_add(1, Ordering::AcqRel);
        match self.exchange(step, deadline).await {
            Ok(_) => {
                self.sharing.state().authored = true;
                Ok(self
                    .save_under_if(loaded, lease, store_until, deadline)
                    .await)
            }
            Err(Error::LoginRequired(refusal)) => {
                if self.relogin.is_some() {
                    return Ok(self
                        .relogin_holding(loaded, lease, store_until, deadline)
                        .await?);
                }
                // Fenced: the refusal ends the others' session only if the store holds the
                // very pair that was refused.
                if stored_lineage.is_some() && stored_lineage == refreshed_from {
                    self.sharing.state().authored = true;
                    // A store that fails learns it at a later read (the ending is newer).
                    self.save_under_if(loaded, lease, store_until, deadline)
                        .await;
                    return Err(Held::Failed(Error::LoginRequired(refusal)));
                }
                // The store does not hold the refused pair: another process refreshed it and
                // holds the newer one, which it writes back once it can. Wait for it.
                if self.awaits_newer_pair(deadline).await {
                    return Ok(Saved::Yes);
                }
                Err(Held::Failed(Error::LoginRequired(refusal)))
            }
            Err(Error::RateLimited(limit)) => {
                // The token endpoint's limit counts refreshes too: nothing more before its
                // `Retry-After`, here and (through the store) in the other processes.
                self.block_refreshes(&limit);
                let saved = self
                    .save_under_if(loaded, lease, store_until, deadline)
                    .await;
                match needed {
                    // The token still works: the call goes on with it.
                    Need::Early => Ok(saved),
                    _ => Err(Held::Failed(Error::RateLimited(limit))),
                }
            }
            Err(error) if needed == Need::Early && !matches!(error, Error::StaleResponse(_)) => {
                // The token still works: the call goes on with it, and the refresh is tried
                // again later.
                self.quiet();
                Ok(Saved::Yes)
            }
            Err(error) => Err(Held::Failed(error)),
        }
    }

    /// The record, under the lease. A store that fails: an early refresh gives up (`Err(None)`:
    /// the token is used as it is); a client whose pair nobody else holds goes on without it
    /// (`Ok(None)`: it holds the lease, nobody else can refresh that pair); otherwise it is
    /// read again until `until`.
    async fn read_under_lease(
        &self,
        needed: Need,
        until: Instant,
    ) -> Result<Option<Record>, Option<StoreError>> {
        loop {
            let step_until = earliest(until, Instant::now() + STORE_BUDGET);
            let error = match self.read_record(step_until).await {
                Ok(record) => return Ok(Some(record)),
                Err(error) => error,
            };
            if needed == Need::Early {
                self.quiet();
                return Err(None);
            }
            if self.sharing.state().authored {
                return Ok(None);
            }
            if Instant::now() >= until {
                return Err(Some(error));
            }
            crate::driver::sleep(STORE_AWAY_PAUSE).await;
        }
    }

    /// After a refusal of a pair the store does not hold: waits (while the store is up, for
    /// [`SETTLE_TIME`]) for a newer pair to appear in it, and takes it.
    async fn awaits_newer_pair(&self, deadline: CallDeadline) -> bool {
        self.watch_store(deadline, |client| {
            client.session().state() == State::LoggedIn
        })
        .await
    }

    /// [`save_under`](Self::save_under) at `loaded`, or, when the store could not be read, kept
    /// for later (the lease stays with this client).
    async fn save_under_if(
        &self,
        loaded: Option<Version>,
        lease: &Lease,
        until: Instant,
        deadline: CallDeadline,
    ) -> Saved {
        match loaded {
            Some(loaded) => self.save_under(loaded, lease, until, deadline).await,
            None => {
                self.sharing.state().synced = None;
                Saved::Not(StoreError::unavailable(
                    StoreFault::Other,
                    "the store could not be read",
                ))
            }
        }
    }

    /// Saves what this client holds at `loaded` under `lease`. Refused because the store moved
    /// on: reads it and reconciles (a newer pair is taken and ours, which nobody else holds,
    /// revoked; an older, reset or empty store is written again, under this lease or, if the
    /// store forgot it, a new one). A store that fails is written later (`Saved::Not`: the
    /// lease stays with this client): what this client holds stays as it is.
    async fn save_under(
        &self,
        loaded: Version,
        lease: &Lease,
        until: Instant,
        deadline: CallDeadline,
    ) -> Saved {
        let mut expected = loaded;
        for _ in 0..2 {
            let ours = self.our_record();
            let outcome = bounded(
                until,
                self.store.save(expected, ours.clone(), Some(lease), until),
            )
            .await;
            match outcome {
                Ok(version) => {
                    self.saved_as(version, &ours);
                    return Saved::Yes;
                }
                Err(StoreError::Conflict) => {
                    self.sharing.state().synced = None;
                    let Ok(record) = self.read_record(until).await else {
                        return Saved::Yes;
                    };
                    expected = record.version;
                    let decision = self.apply(record, deadline).await;
                    if decision.ok().flatten() != Some(Reconcile::WriteBack) {
                        return Saved::Yes;
                    }
                }
                Err(StoreError::LeaseLost) => {
                    self.sharing.state().synced = None;
                    if let Ok(Some(Reconcile::WriteBack)) = self.follow_store(until, deadline).await
                    {
                        let _ = self.write_back(until, deadline).await;
                    }
                    return Saved::Yes;
                }
                Err(error) => {
                    self.sharing.state().synced = None;
                    return Saved::Not(error);
                }
            }
        }
        Saved::Yes
    }

    /// Whether the session lost its tokens to a refused refresh (not to a logout): what a
    /// re-login may repair.
    pub(super) fn relogin_possible(&self) -> bool {
        let session = self.session();
        session.state() == State::HaveClient && !matches!(self.ending(), Some(Ending::LoggedOut))
    }

    /// Logs in again under the refresh lease, saving the new pair for every process.
    async fn relogin_holding(
        &self,
        loaded: Option<Version>,
        lease: &Lease,
        until: Instant,
        deadline: CallDeadline,
    ) -> Result<Saved, Error> {
        let Some(relogin) = &self.relogin else {
            return Err(Error::LoggedOut);
        };
        let Some(credentials) = (relogin.credentials)() else {
            return Err(self.ending().map_or(Error::LoggedOut, |e| e.error()));
        };
        let mut outcome = self.log_in_once(&credentials, deadline).await;
        if let (Err(Error::TwoFactorRequired(_)), Some(otp)) = (&outcome, &relogin.otp)
            && let Some(code) = otp()
        {
            outcome = self
                .log_in_once(&credentials.clone().with_otp(code), deadline)
                .await;
        }
        if let Err(Error::RateLimited(limit)) = &outcome {
            self.block_refreshes(limit);
        }
        outcome?;
        {
            let mut shared = self.sharing.state();
            shared.ending = None;
            shared.authored = true;
        }
        Ok(self.save_under_if(loaded, lease, until, deadline).await)
    }

    /// One login (fetching the client pair if the session has none), without saving.
    async fn log_in_once(
        &self,
        credentials: &Credentials,
        deadline: CallDeadline,
    ) -> Result<(), Error> {
        if self.state() == State::NoClient {
            self.fetch_client_within(deadline).await?;
        }
        let step = self.session().login(credentials)?;
        self.exchange(step, deadline).await.map(drop)
    }
}

/// A lease, and until when it surely still lives.
#[derive(Debug)]
struct Taken {
    lease: Lease,
    lives_until: Instant,
}

/// Whether what this client holds reached the store.
enum Saved {
    /// Saved, or nothing to save, or settled otherwise (taken from the store).
    Yes,
    /// The store failed: written back later, under the lease this client keeps.
    Not(StoreError),
}

/// How a refresh under the lease ended.
enum Held {
    /// The pair to refresh was written back and has not settled: give the lease back and let
    /// it settle (a process holding a newer pair writes it over meanwhile).
    AwaitSettling,
    Failed(Error),
}

impl From<Error> for Held {
    fn from(error: Error) -> Self {
        Held::Failed(error)
    }
}

/// A number no other write-back draws: the process, the moment, a counter, mixed.
fn write_back_mark() -> u64 {
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

/// Where a client gets credentials to log in again by itself (see `with_relogin`).
#[derive(Clone)]
pub struct Relogin {
    credentials: std::sync::Arc<dyn Fn() -> Option<Credentials> + Send + Sync>,
    otp: Option<std::sync::Arc<dyn Fn() -> Option<String> + Send + Sync>>,
}

impl fmt::Debug for Relogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Relogin")
            .field("otp", &self.otp.is_some())
            .finish_non_exhaustive()
    }
}

impl Relogin {
    /// Logs in again with what `credentials` gives (`None`: not now, the call fails with
    /// [`Error::LoginRequired`]). It runs while no lock of the client is held.
    pub fn new(credentials: impl Fn() -> Option<Credentials> + Send + Sync + 'static) -> Self {
        Relogin {
            credentials: std::sync::Arc::new(credentials),
            otp: None,
        }
    }

    /// For a two-factor account: asks `otp` for the current code when the server wants one.
    pub fn with_otp(mut self, otp: impl Fn() -> Option<String> + Send + Sync + 'static) -> Self {
        self.otp = Some(std::sync::Arc::new(otp));
        self
    }
}

/// A refresh lease held by a refresh that may be cancelled: if it is, the lease is kept for the
/// next refresh to give back.
struct HeldLease<'a> {
    lease: Option<Lease>,
    abandoned: &'a Mutex<Option<Lease>>,
}

impl<'a> HeldLease<'a> {
    fn new(lease: &Lease, abandoned: &'a Mutex<Option<Lease>>) -> Self {
        HeldLease {
            lease: Some(lease.clone()),
            abandoned,
        }
    }

    /// The refresh ended without being cancelled: its caller gives the lease back itself.
    fn disarm(mut self) {
        self.lease = None;
    }
}

impl Drop for HeldLease<'_> {
    fn drop(&mut self) {
        if let Some(lease) = self.lease.take() {
            *self.abandoned.lock().unwrap_or_else(|p| p.into_inner()) = Some(lease);
        }
    }
}
