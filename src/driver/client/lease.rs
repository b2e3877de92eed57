//! The refresh lease: one process at a time refreshes, under the store's lease, and only a pair
//! still due once reloaded. A store that fails keeps the lease with the client whose new pair it
//! could not save; a pair written back after a reset settles before it is refreshed.

use super::sharing::{Need, STORE_BUDGET, bounded, earliest};
use super::{AsyncClient, AsyncTransport};
use crate::driver::CallDeadline;
use crate::error::Error;
use crate::session::State;
use crate::store::{Lease, Reconcile, Record, SessionStore, StoreError, StoreFault, Version};
use crate::trace;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How long a written-back pair must stand unchanged in the store, the store up, before it is
/// refreshed: the time for a process holding a newer pair (whose save the store lost) to write
/// it over.
pub(super) const SETTLE_TIME: Duration = Duration::from_secs(2);
/// A refresh lease lives for the exchange's timeout plus this, to cover the reload and the save.
const LEASE_SLACK: Duration = Duration::from_secs(5);
/// The first and the longest pause between two tries to take a lease another process holds.
const LEASE_FIRST_PAUSE: Duration = Duration::from_millis(5);
const LEASE_LAST_PAUSE: Duration = Duration::from_millis(25);
/// The pause between two tries to reach a store that failed, while a call waits for it.
pub(super) const STORE_AWAY_PAUSE: Duration = Duration::from_millis(100);

impl<T: AsyncTransport, S: SessionStore> AsyncClient<T, S> {
    /// Waits for the store's refresh lease: for a refresh that is `needed` now, until the
    /// call's deadline; for an early one, within the store budget. While another process holds
    /// it, watches the store: once that process has saved a pair that is not due, there is
    /// nothing left to do (`None`). An early refresh that cannot get the lease in time gives up
    /// (`None`): the token is used as it is. A lease this client kept from a save that failed
    /// is its own: it is used again.
    pub(super) async fn take_lease(
        &self,
        needed: Need,
        store_until: Instant,
        deadline: CallDeadline,
    ) -> Result<Option<Taken>, Error> {
        let mut pause = LEASE_FIRST_PAUSE;
        #[cfg(feature = "tracing")]
        let asked = Instant::now();
        let mut failure = None;
        let mut tried = false;
        loop {
            // Checked at every turn: a write-back of this process may have it for a moment.
            if let Some(taken) = self.retained_lease(store_until).await {
                return Ok(Some(taken));
            }
            // The lease that stands in the way may be one this client owes.
            self.give_back_owed(store_until).await;
            // A try once the time is up is no try (a networked store refuses it for want of
            // time, which says nothing of the lease): the last try's outcome stands.
            if !tried || Instant::now() < store_until {
                tried = true;
                failure = match self.try_lease(store_until).await {
                    Ok(Some(taken)) => {
                        #[cfg(feature = "tracing")]
                        if asked.elapsed() > self.config.timeout() {
                            // A live holder gives it back within its exchange's timeout.
                            trace::event!(
                                warn,
                                fence = taken.lease.fence(),
                                waited_ms = trace::millis_since(asked),
                                "refresh lease taken once its time ran out: its holder died or hung"
                            );
                        } else {
                            trace::event!(
                                debug,
                                fence = taken.lease.fence(),
                                waited_ms = trace::millis_since(asked),
                                "refresh lease taken"
                            );
                        }
                        return Ok(Some(taken));
                    }
                    Ok(None) => None,
                    Err(error) => Some(error),
                };
            }
            let left = store_until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                if needed == Need::Early {
                    trace::event!(
                        debug,
                        "no lease within the store budget: the token is used as it is, and refreshed later"
                    );
                    self.quiet();
                    return Ok(None);
                }
                trace::event!(
                    warn,
                    waited_ms = trace::millis_since(asked),
                    store_failed = failure.is_some(),
                    "no refresh lease before the call's deadline"
                );
                return Err(Error::Store(failure.unwrap_or(StoreError::LeaseBusy)));
            }
            let wait = if failure.is_some() {
                STORE_AWAY_PAUSE
            } else {
                pause
            };
            crate::driver::sleep(wait.min(left)).await;
            pause = (pause * 2).min(LEASE_LAST_PAUSE);
            // The holder may have saved its pair meanwhile; a pair of ours the store lacks is
            // written back (this may be the only caller of this process still running). Each
            // step within the store budget, so that a store that hangs does not hold the wait.
            let step_until = earliest(store_until, Instant::now() + STORE_BUDGET);
            if let Ok(Some(Reconcile::WriteBack)) = self.follow_store(step_until, deadline).await {
                let _ = self.write_back(step_until, deadline).await;
            }
            if self.need(self.now()).is_ok_and(|need| need == Need::None) {
                trace::event!(
                    debug,
                    waited_ms = trace::millis_since(asked),
                    "while waiting for the lease, another process saved a fresh pair: taken"
                );
                return Ok(None);
            }
        }
    }

    /// The lease this client kept from a save that failed, if it may serve a refresh: only of
    /// a pair nobody else holds, and only while it surely lives (another process may take it
    /// once its time runs out). One that may not is given back.
    async fn retained_lease(&self, until: Instant) -> Option<Taken> {
        let (retained, usable) = {
            let mut shared = self.sharing.state();
            let retained = shared.retained.take()?;
            let usable = shared.authored && Instant::now() < retained.lives_until;
            (retained, usable)
        };
        if usable {
            return Some(retained);
        }
        self.release(retained.lease, until).await;
        None
    }

    /// One try at the store's lease; it lives for the exchange's timeout plus [`LEASE_SLACK`].
    pub(super) async fn try_lease(&self, until: Instant) -> Result<Option<Taken>, StoreError> {
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
        // A lease this client owes is given back at the lease wait's every turn.
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
            let held = HeldLease::new(&taken.lease, &self.sharing.owed);
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

    /// Follows the store until it has been up for [`SETTLE_TIME`] without a failure (counted
    /// from `up_since`, where an earlier call stopped), until `done` says so, or until the
    /// deadline; the time starts again whenever the store fails, since a process holding a
    /// newer pair cannot write it meanwhile.
    pub(super) async fn watch_store(
        &self,
        deadline: CallDeadline,
        mut up_since: Option<Instant>,
        done: impl Fn(&Self) -> bool,
    ) -> Watched {
        loop {
            let now = Instant::now();
            if up_since.is_some_and(|at| now - at >= SETTLE_TIME) {
                return Watched::Settled;
            }
            // No pause once the deadline has passed: the check below ends the watch at once.
            crate::driver::sleep(STORE_AWAY_PAUSE.min(deadline.remaining(now))).await;
            // A read with no time left is refused for want of time: it says nothing of the store.
            if deadline.has_passed(Instant::now()) {
                return Watched::OutOfTime { up_since };
            }
            let step_until = earliest(deadline.at(), Instant::now() + STORE_BUDGET);
            // A store found behind is not written back here: watching for a written-back pair
            // to settle, that ends the watch (the store's mark changed) and the refresh loop
            // writes ours under its lease; waiting for a newer pair, this client holds the
            // lease, which a write-back could not take.
            match self.follow_store(step_until, deadline).await {
                Err(Error::Store(_)) => up_since = None,
                _ => {
                    up_since.get_or_insert(now);
                }
            }
            if done(self) {
                return Watched::Done;
            }
        }
    }

    /// Lets the written-back record the store holds settle (see `Record::written_back`),
    /// lease released: it is refreshed once it stood unchanged for [`SETTLE_TIME`].
    pub(super) async fn await_settling(&self, deadline: CallDeadline) {
        let (mark, since) = {
            let shared = self.sharing.state();
            let mark = shared.written_back;
            let since = match shared.settling {
                Some((settling, since)) if settling == mark => Some(since),
                _ => None,
            };
            (mark, since)
        };
        let watched = self
            .watch_store(deadline, since, |client| {
                client.sharing.state().written_back != mark
            })
            .await;
        let mut shared = self.sharing.state();
        shared.settling = None;
        match watched {
            Watched::Settled => shared.settled = mark,
            Watched::OutOfTime { up_since } => {
                shared.settling = up_since.map(|since| (mark, since));
            }
            Watched::Done => {}
        }
    }

    pub(super) async fn refresh_holding(
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
        trace::event!(
            debug,
            why = match needed {
                Need::Early => "due by the clock (still usable)",
                _ if self.session().access_rejected() => "refused by the server (401)",
                _ => "expired by the clock",
            },
            refreshes = refreshed_from.map(|l| l.refreshes),
            "refresh sent, under the lease"
        );
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
                    trace::event!(info, "the refresh token is dead: logging in again");
                    return Ok(self
                        .relogin_holding(loaded, lease, store_until, deadline)
                        .await?);
                }
                trace::event!(
                    warn,
                    ends_the_others = stored_lineage.is_some() && stored_lineage == refreshed_from,
                    "refresh refused (invalid_grant): the session ends here; for the others only if the store holds this very pair"
                );
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
    pub(super) async fn read_under_lease(
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
    pub(super) async fn awaits_newer_pair(&self, deadline: CallDeadline) -> bool {
        self.watch_store(deadline, None, |client| {
            client.session().state() == State::LoggedIn
        })
        .await
            == Watched::Done
    }

    /// [`save_under`](Self::save_under) at `loaded`, or, when the store could not be read, kept
    /// for later (the lease stays with this client).
    pub(super) async fn save_under_if(
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
    pub(super) async fn save_under(
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
            super::sharing::trace_save("the new pair", &outcome);
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
}

/// How [`watch_store`](AsyncClient::watch_store) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Watched {
    /// What it watched for happened.
    Done,
    /// The store stood up for [`SETTLE_TIME`] without it.
    Settled,
    /// The deadline came first; the store was up since `up_since`, if it was.
    OutOfTime { up_since: Option<Instant> },
}

/// A lease, and until when it surely still lives.
#[derive(Debug)]
pub(super) struct Taken {
    pub(super) lease: Lease,
    pub(super) lives_until: Instant,
}

/// Whether what this client holds reached the store.
pub(super) enum Saved {
    /// Saved, or nothing to save, or settled otherwise (taken from the store).
    Yes,
    /// The store failed: written back later, under the lease this client keeps.
    Not(StoreError),
}

/// How a refresh under the lease ended.
pub(super) enum Held {
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

/// A refresh lease held by a refresh that may be cancelled: if it is, the lease is owed (given
/// back at the client's next store read or refresh).
pub(super) struct HeldLease<'a> {
    lease: Option<Lease>,
    owed: &'a Mutex<Option<Lease>>,
}

impl<'a> HeldLease<'a> {
    pub(super) fn new(lease: &Lease, owed: &'a Mutex<Option<Lease>>) -> Self {
        HeldLease {
            lease: Some(lease.clone()),
            owed,
        }
    }

    /// The refresh ended without being cancelled: its caller gives the lease back itself.
    pub(super) fn disarm(mut self) {
        self.lease = None;
    }
}

impl Drop for HeldLease<'_> {
    fn drop(&mut self) {
        if let Some(lease) = self.lease.take() {
            *self.owed.lock().unwrap_or_else(|p| p.into_inner()) = Some(lease);
        }
    }
}
