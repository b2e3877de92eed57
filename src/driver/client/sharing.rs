//! The driver's side of a shared session: reading and saving the store, the refresh lease,
//! re-login. The decisions it follows are the pure functions of [`crate::store`].

use super::{AsyncClient, AsyncTransport, NEVER_SYNCED, refresh_needed};
use crate::driver::CallDeadline;
use crate::error::Error;
use crate::request::Credentials;
use crate::session::State;
use crate::store::{
    Ending, Lease, Record, RefreshPlan, SessionStore, StoreError, Version, is_stale, must_refresh,
};
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// How often a client reads its store at most to see whether another process changed the
/// session. Between two reads, a change shows as a 401 for the old token, and the refresh
/// that follows reloads under the lease, so this bounds a cost, never correctness.
const STORE_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// A refresh lease lives for the exchange's timeout plus this, to cover the reload and the save.
const LEASE_SLACK: std::time::Duration = std::time::Duration::from_secs(5);
/// The first and the longest pause between two tries to take a lease another process holds.
const LEASE_FIRST_PAUSE: std::time::Duration = std::time::Duration::from_millis(5);
const LEASE_LAST_PAUSE: std::time::Duration = std::time::Duration::from_millis(25);

impl<T: AsyncTransport, S: SessionStore> AsyncClient<T, S> {
    fn set_synced(&self, version: Version) {
        self.synced.store(version.0, Ordering::Release);
    }

    fn synced(&self) -> Option<Version> {
        match self.synced.load(Ordering::Acquire) {
            NEVER_SYNCED => None,
            seen => Some(Version(seen)),
        }
    }

    pub(super) fn ending(&self) -> Option<Ending> {
        self.ending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_ending(&self, ending: Option<Ending>) {
        *self.ending.lock().unwrap_or_else(|p| p.into_inner()) = ending;
    }

    /// Brings the session up to the store's version: a cheap version read when nothing
    /// changed. Unless `always`, the store is read at most once per [`STORE_CHECK_INTERVAL`]:
    /// a change it misses meanwhile (another process refreshed or logged out) shows as a 401
    /// for the old token, and the refresh that follows reloads under the lease.
    pub(super) async fn sync(&self, always: bool) -> Result<(), Error> {
        let now = self
            .epoch
            .elapsed()
            .as_nanos()
            .try_into()
            .unwrap_or(u64::MAX);
        let checked = self.store_checked.load(Ordering::Relaxed);
        let interval = u64::try_from(STORE_CHECK_INTERVAL.as_nanos()).unwrap_or(u64::MAX);
        if !always && self.synced().is_some() && now.saturating_sub(checked) < interval {
            return Ok(());
        }
        self.store_checked.store(now, Ordering::Relaxed);
        let current = self.store.version().await.map_err(Error::Store)?;
        if !is_stale(self.synced(), current) {
            return Ok(());
        }
        let record = self.store.load().await.map_err(Error::Store)?;
        self.adopt(record)
    }

    /// Takes the stored session in place of this client's, unless it is the version this client
    /// already has (whose local knowledge, such as a token found dead, is newer) or a refresh
    /// of this client is in the air (its leader syncs under the lease).
    fn adopt(&self, record: Record) -> Result<(), Error> {
        if self.synced() == Some(record.version) {
            return Ok(());
        }
        let mut session = self.session();
        if session.refresh_in_flight() {
            return Ok(());
        }
        if let Some(saved) = record.session {
            session.adopt(saved)?;
        }
        self.set_ending(record.ending);
        self.set_synced(record.version);
        Ok(())
    }

    /// Saves the session over whatever the store holds (a login, a logout: deliberate acts),
    /// retrying once if another process saved in between.
    pub(super) async fn save_over(&self, ending: Option<Ending>) -> Result<(), Error> {
        let mut tries = 0;
        loop {
            tries += 1;
            let expected = self.store.version().await.map_err(Error::Store)?;
            let record = Record::new(self.session().save(), ending.clone());
            match self.store.save(expected, record, None).await {
                Ok(version) => {
                    self.set_ending(ending);
                    self.set_synced(version);
                    return Ok(());
                }
                Err(StoreError::Conflict) if tries < 2 => continue,
                Err(error) => return Err(Error::Store(error)),
            }
        }
    }

    /// Waits for the store's refresh lease, up to the call's deadline. While another process
    /// holds it, watches the store: once that process has saved a pair that is not due, there
    /// is nothing left to do (`None`) and no lease is needed.
    async fn take_lease(&self, deadline: CallDeadline) -> Result<Option<Lease>, Error> {
        let ttl = self.config.timeout() + LEASE_SLACK;
        let mut pause = LEASE_FIRST_PAUSE;
        loop {
            if let Some(lease) = self.store.try_lease(ttl).await.map_err(Error::Store)? {
                return Ok(Some(lease));
            }
            let left = deadline.remaining(Instant::now());
            if left.is_zero() {
                return Err(Error::Store(StoreError::LeaseBusy));
            }
            crate::driver::sleep(pause.min(left)).await;
            pause = (pause * 2).min(LEASE_LAST_PAUSE);
            self.sync(true).await?;
            let now = self.now();
            if refresh_needed(&self.session(), now) == Ok(false) {
                return Ok(None);
            }
        }
    }

    /// The refresh, as the leader of this process's callers: under the store's lease, reload,
    /// refresh only if the reloaded pair is still due, save.
    pub(super) async fn refresh_under_lease(&self, deadline: CallDeadline) -> Result<(), Error> {
        let abandoned = self
            .abandoned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(lease) = abandoned {
            let _ = self.store.release(lease).await;
        }
        let Some(lease) = self.take_lease(deadline).await? else {
            return Ok(());
        };
        let held = HeldLease {
            lease: Some(lease.clone()),
            abandoned: &self.abandoned,
        };
        let outcome = self.refresh_holding(&lease, deadline).await;
        held.disarm();
        // A lease not given back (the store failed) expires after its time to live.
        let _ = self.store.release(lease).await;
        outcome
    }

    async fn refresh_holding(&self, lease: &Lease, deadline: CallDeadline) -> Result<(), Error> {
        let record = self.store.load().await.map_err(Error::Store)?;
        let loaded = record.version;
        self.adopt(record.clone())?;
        let now = self.now();
        let due = refresh_needed(&self.session(), now);
        let plan = match due {
            Ok(due) => must_refresh(&record, due),
            Err(_) if self.relogin.is_some() && self.relogin_possible() => {
                return self.relogin_holding(loaded, lease, deadline).await;
            }
            Err(error) => return Err(self.ending().map_or(error, |e| e.error())),
        };
        match plan {
            RefreshPlan::Ended(Ending::RefreshRefused { .. }) if self.relogin.is_some() => {
                self.relogin_holding(loaded, lease, deadline).await
            }
            RefreshPlan::Ended(ending) => Err(ending.error()),
            RefreshPlan::UseStored => Ok(()),
            RefreshPlan::Refresh | RefreshPlan::RefreshLocal => {
                let step = self.session().refresh()?;
                self.refreshes_sent.fetch_add(1, Ordering::AcqRel);
                let outcome = self.exchange(step, deadline).await.map(drop);
                let ending = match &outcome {
                    Ok(()) => None,
                    Err(Error::LoginRequired(refusal)) => Some(Ending::refresh_refused(refusal)),
                    // Nothing learnt: the pair may or may not have been rotated.
                    Err(_) => return outcome,
                };
                if ending.is_some() && self.relogin.is_some() {
                    return self.relogin_holding(loaded, lease, deadline).await;
                }
                let record = Record::new(self.session().save(), ending.clone());
                match self.store.save(loaded, record, Some(lease)).await {
                    Ok(version) => {
                        self.set_ending(ending);
                        self.set_synced(version);
                    }
                    // The lease ran out and another process took it (or a login or logout
                    // was saved meanwhile): the store's session wins, ours is revoked so that
                    // no server session is left behind.
                    Err(StoreError::LeaseLost | StoreError::Conflict) if outcome.is_ok() => {
                        self.revoke_current(deadline).await;
                        self.synced.store(NEVER_SYNCED, Ordering::Release);
                        self.sync(true).await?;
                    }
                    // The store failed: keep the new pair here (the store's copy, at `loaded`,
                    // is not taken back over it) and say so; the others meet the dead old pair.
                    Err(error) => return Err(Error::Store(error)),
                }
                outcome
            }
        }
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
        loaded: Version,
        lease: &Lease,
        deadline: CallDeadline,
    ) -> Result<(), Error> {
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
        outcome?;
        let record = Record::new(self.session().save(), None);
        let version = self
            .store
            .save(loaded, record, Some(lease))
            .await
            .map_err(Error::Store)?;
        self.set_ending(None);
        self.set_synced(version);
        Ok(())
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

    /// Best effort: revokes the session's current access token (and its refresh token).
    async fn revoke_current(&self, deadline: CallDeadline) {
        let Ok(step) = self.session().logout() else {
            return;
        };
        let (mut request, pending) = step;
        self.session().abandon(pending);
        if self.stamp(&mut request, deadline).is_ok() {
            let _ = self.transport.send(request).await;
        }
    }
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

impl HeldLease<'_> {
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
