//! Logging in through a shared store: under its lease, so that logins racing on one store leave
//! one session; the call a fleet makes at boot (log in only if the store holds no usable
//! session); re-login when the refresh token is dead, and the clean-up of the session a lost
//! refresh answer left behind.

use super::lease::{HeldLease, STORE_AWAY_PAUSE, Saved, Taken};
use super::sharing::{STORE_BUDGET, earliest};
use super::{AsyncClient, AsyncTransport};
use crate::api::{AllTokenSessions, Endpoint, RevokeTokenSession, UsersMe};
use crate::driver::CallDeadline;
use crate::error::{Error, Operation};
use crate::request::{Body, Credentials};
use crate::response::Parser;
use crate::session::{Event, Pending, SavedSession, Session, State};
use crate::store::{Ending, Lease, Record, SessionStore, StoreError, StoreFault, Version};
use crate::trace;
use http::{HeaderValue, Request};
use std::fmt;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// What `login_if_needed` (of either client) did.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    /// The store held no usable session: this client logged in, for every process sharing it.
    LoggedIn,
    /// The store held a usable session (or this client did): it is used, nothing was sent.
    AlreadyLoggedIn,
}

/// The product token a login through a store adds to its `User-Agent`, followed by the store's
/// tag in 16 hex digits: PeerTube shows the login's `User-Agent` as the session's device, so the
/// sessions this store made can be told from the account's others.
const STORE_TAG_PRODUCT: &str = "peertube-session-store/";

impl<T: AsyncTransport, S: SessionStore> AsyncClient<T, S> {
    /// A login: the user's deliberate act, under the store's lease so that two at once (in two
    /// processes, or two command lines on one profile) leave one session. It replaces whatever
    /// the store holds, and the live pair it replaces is revoked.
    pub(crate) async fn login_within(
        &self,
        credentials: &Credentials,
        deadline: CallDeadline,
    ) -> Result<(), Error> {
        self.note_account(credentials.username());
        trace::in_span!(
            "login",
            self,
            self.login_under_lease(credentials, false, deadline)
        )
        .map(drop)
    }

    /// A login only if the store holds no usable session: what a fleet calls at boot.
    pub(crate) async fn login_if_needed_within(
        &self,
        credentials: &Credentials,
        deadline: CallDeadline,
    ) -> Result<LoginOutcome, Error> {
        self.note_account(credentials.username());
        trace::in_span!(
            "login_if_needed",
            self,
            self.login_under_lease(credentials, true, deadline)
        )
    }

    async fn login_under_lease(
        &self,
        credentials: &Credentials,
        only_if_needed: bool,
        deadline: CallDeadline,
    ) -> Result<LoginOutcome, Error> {
        let logins_before = self.logins_done.load(Ordering::Acquire);
        let taken = self.login_lease(deadline).await?;
        let held = taken
            .as_ref()
            .map(|taken| HeldLease::new(&taken.lease, &self.sharing.owed));
        let lease = taken.as_ref().map(|taken| &taken.lease);
        let outcome = self
            .login_holding(lease, credentials, only_if_needed, logins_before, deadline)
            .await;
        if let Some(held) = held {
            held.disarm();
        }
        if let Some(taken) = taken {
            let until = earliest(deadline.at(), Instant::now() + STORE_BUDGET);
            self.give_back(taken, &Ok(()), until).await;
        }
        outcome
    }

    /// The store's lease for a login: waited for while another process holds it (its login or
    /// refresh takes moments), within the call's deadline; a store that fails for the store
    /// budget is done without (the login is written when it answers again).
    async fn login_lease(&self, deadline: CallDeadline) -> Result<Option<Taken>, Error> {
        let mut away_since = None;
        loop {
            let until = earliest(deadline.at(), Instant::now() + STORE_BUDGET);
            let now = Instant::now();
            match self.try_lease(until).await {
                Ok(Some(taken)) => return Ok(Some(taken)),
                // Held, or its lock held, by another process: a moment's wait.
                Ok(None)
                | Err(StoreError::Unavailable {
                    fault: StoreFault::Busy,
                    ..
                }) => away_since = None,
                Err(_) if now - *away_since.get_or_insert(now) >= STORE_BUDGET => return Ok(None),
                Err(_) => {}
            }
            if deadline.has_passed(Instant::now()) {
                return Err(Error::Store(StoreError::LeaseBusy));
            }
            crate::driver::sleep(STORE_AWAY_PAUSE.min(deadline.remaining(Instant::now()))).await;
        }
    }

    async fn login_holding(
        &self,
        lease: Option<&Lease>,
        credentials: &Credentials,
        only_if_needed: bool,
        logins_before: u64,
        deadline: CallDeadline,
    ) -> Result<LoginOutcome, Error> {
        let until = earliest(deadline.at(), Instant::now() + STORE_BUDGET);
        // A store that cannot be read now is written when it can: the login goes on.
        let record = self.read_record(until).await.ok();
        if self.logins_done.load(Ordering::Acquire) != logins_before {
            // Another login on this client finished while this one waited for the lease.
            return Err(Error::StaleResponse(Operation::Login));
        }
        if only_if_needed {
            if let Some(record) = &record {
                self.apply(record.clone(), deadline).await?;
            }
            if self.holds_usable_session() {
                return Ok(LoginOutcome::AlreadyLoggedIn);
            }
        }
        if let Some(record) = &record {
            let mut shared = self.sharing.state();
            if let Some(tag) = record.tag {
                shared.tag.get_or_insert(tag);
            }
            if let Some(theirs) = record.lineage {
                shared.generation = shared.generation.max(theirs.generation);
            }
        }
        let replaced = record.as_ref().and_then(live_pair_of);
        trace::event!(
            info,
            two_factor_code = credentials.has_otp(),
            under_lease = lease.is_some(),
            "logging in"
        );
        self.log_in_once(credentials, deadline).await?;
        trace::event!(info, replaces_a_live_pair = replaced.is_some(), "logged in");
        {
            let mut shared = self.sharing.state();
            shared.ending = None;
            shared.authored = true;
            shared.quiet_until = None;
        }
        match (lease, &record) {
            (Some(lease), Some(record)) => {
                self.save_under(record.version, lease, until, deadline)
                    .await;
            }
            _ => self.save_over(None, deadline).await,
        }
        if let Some(replaced) = replaced {
            self.revoke_replaced(replaced, deadline).await;
        }
        Ok(LoginOutcome::LoggedIn)
    }

    /// Whether the session holds a pair whose refresh token has not expired (the access token
    /// may have: a refresh follows at the first call).
    fn holds_usable_session(&self) -> bool {
        let now = self.now();
        let session = self.session();
        session.state() == State::LoggedIn && !session.refresh_expired(now)
    }

    /// Best effort: revokes a pair a login replaced, or one of this client's that another
    /// process's newer pair superseded. An expired access token cannot be revoked (401
    /// `invalid_token`): the pair is refreshed first, then revoked. A token refused before its
    /// time is not: its pair was revoked or rotated already, and its refresh token with it.
    pub(super) async fn revoke_replaced(&self, replaced: SavedSession, deadline: CallDeadline) {
        let Ok(mut old) = Session::restore(replaced) else {
            return;
        };
        for _ in 0..2 {
            // Read before the logout is answered: a 401 marks the token refused.
            let expired = old.access_expired(self.now());
            let Ok(step) = old.logout() else {
                return;
            };
            match self.send_detached(&mut old, step, deadline).await {
                // A refreshed pair's token has not expired: this is the loop's last turn.
                Some(Err(Error::InvalidToken(_))) if expired => {
                    let Ok(step) = old.refresh() else {
                        return;
                    };
                    if !matches!(
                        self.send_detached(&mut old, step, deadline).await,
                        Some(Ok(_))
                    ) {
                        return;
                    }
                }
                _ => return,
            }
        }
    }

    /// Sends a step of a session that is not this client's and hands it the answer (`None`
    /// when none came).
    async fn send_detached(
        &self,
        session: &mut Session,
        step: (Request<Body>, Pending),
        deadline: CallDeadline,
    ) -> Option<Result<Event, Error>> {
        let (mut request, pending) = step;
        if self.stamp(&mut request, deadline).is_err() {
            session.abandon(pending);
            return None;
        }
        match self.transport.send(request).await {
            Ok(answer) => Some(session.handle(pending, &answer, self.now())),
            Err(_) => {
                session.abandon(pending);
                None
            }
        }
    }

    /// Whether the session lost its tokens to a refused refresh (not to a logout): what a
    /// re-login may repair.
    pub(super) fn relogin_possible(&self) -> bool {
        let session = self.session();
        session.state() == State::HaveClient && !matches!(self.ending(), Some(Ending::LoggedOut))
    }

    /// Logs in again under the refresh lease, saving the new pair for every process. The
    /// sessions a lost refresh answer may have left alive are looked for once the refresh's
    /// callers are answered ([`clean_orphans`](Self::clean_orphans)).
    pub(super) async fn relogin_holding(
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
        trace::event!(info, "logging in again (the refresh token is dead)");
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
            shared.orphans_to_clean = true;
        }
        Ok(self.save_under_if(loaded, lease, until, deadline).await)
    }

    /// One login (fetching the client pair if the session has none; again if a cached pair is
    /// refused), without saving. With `with_relogin`, the request's `User-Agent` carries the
    /// store's tag (see [`STORE_TAG_PRODUCT`]).
    pub(super) async fn log_in_once(
        &self,
        credentials: &Credentials,
        deadline: CallDeadline,
    ) -> Result<(), Error> {
        let fetched = self.state() == State::NoClient;
        if fetched {
            self.fetch_client_within(deadline).await?;
        }
        let step = self.tagged(self.session().login(credentials)?);
        let outcome = match self.exchange(step, deadline).await {
            Err(Error::InvalidClient(_)) if !fetched => {
                self.fetch_client_within(deadline).await?;
                let step = self.tagged(self.session().login(credentials)?);
                self.exchange(step, deadline).await
            }
            other => other,
        };
        if let Ok(Event::LoggedIn) = outcome {
            self.logins_done.fetch_add(1, Ordering::AcqRel);
            // The next place in the store's history of logins: later than every login this
            // client has seen there, whatever the clocks say.
            let mut session = self.session();
            let mut shared = self.sharing.state();
            shared.generation += 1;
            session.set_login_generation(shared.generation);
        }
        outcome.map(drop)
    }

    /// A login request that says, in its `User-Agent`, which store it is made through (only
    /// for clients that log in again by themselves: they look for what a lost answer left).
    fn tagged(&self, step: (Request<Body>, Pending)) -> (Request<Body>, Pending) {
        let (mut request, pending) = step;
        if self.relogin.is_none() {
            return (request, pending);
        }
        let tag = *self
            .sharing
            .state()
            .tag
            .get_or_insert_with(super::sharing::write_back_mark);
        let agent = format!(
            "{} {STORE_TAG_PRODUCT}{tag:016x}",
            self.config.user_agent().to_str().unwrap_or_default()
        );
        if let Ok(agent) = HeaderValue::from_str(agent.trim_start()) {
            request
                .headers_mut()
                .insert(http::header::USER_AGENT, agent);
        }
        (request, pending)
    }

    /// After a re-login, where the server lists token sessions (PeerTube 7.3 and later): revokes
    /// the sessions this store made (its tag in their login device) other than the current
    /// one. A refresh whose answer was lost leaves the pair it got alive on the server for its
    /// whole life; this ends it. Sessions the store did not make are never touched. Best effort,
    /// within the call's deadline: an older server, or any failure, leaves things as they are.
    pub(super) async fn clean_orphans(&self, deadline: CallDeadline) {
        let tag = {
            let mut shared = self.sharing.state();
            if !std::mem::take(&mut shared.orphans_to_clean) {
                return;
            }
            shared.tag
        };
        let Some(tag) = tag else {
            return;
        };
        let marker = format!("{STORE_TAG_PRODUCT}{tag:016x}");
        let Ok(me) = self.call_once(&UsersMe, deadline).await else {
            return;
        };
        let mut all = AllTokenSessions::new(me.id);
        while let Some(page) = all.next_page() {
            let Ok(answer) = self.call_once(&page, deadline).await else {
                return;
            };
            all.add(&page, answer);
        }
        for session in all.into_sessions() {
            let ours = session
                .login_device
                .as_deref()
                .is_some_and(|device| device.contains(&marker));
            if ours && !session.current_session {
                let revoke = RevokeTokenSession::new(me.id, session.id);
                let _ = self.call_once(&revoke, deadline).await;
            }
        }
    }

    /// One authorized call with the token as it is: no refresh, no retry (the clean-up runs
    /// right after a login, inside the call that made it).
    async fn call_once<E: Endpoint>(
        &self,
        endpoint: &E,
        deadline: CallDeadline,
    ) -> Result<E::Output, Error> {
        let mut request = endpoint.request(&self.instance())?;
        let now = self.now();
        self.session().authorize(&mut request, now)?;
        let body_limit = self.config.body_limit().max(E::BODY_LIMIT);
        self.stamp_capped(&mut request, deadline, body_limit)?;
        let response = self.transport.send(request).await?;
        let session = self.session();
        Parser::new().with_body_limit(body_limit).endpoint(
            endpoint,
            &response,
            &session.secrets(None),
        )
    }
}

/// A record's session, if it holds a live pair.
fn live_pair_of(record: &Record) -> Option<SavedSession> {
    let session = record.session.as_ref()?;
    (record.ending.is_none() && session.tokens.is_some()).then(|| session.clone())
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
