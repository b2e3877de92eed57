//! The one driver behind both [`AsyncClient`] and the blocking client: the session's steps over
//! an [`AsyncTransport`], with single-flight refresh and one deadline per call. It needs no
//! runtime: the only waiting it does is for another caller's refresh.

mod account;
#[cfg(any(feature = "reqwest-middleware", feature = "tower"))]
pub(crate) mod downstream;
mod lease;
mod logins;
mod sharing;

pub use account::{OtherSessionsEnded, SessionRevoked};
pub use logins::{LoginOutcome, Relogin};
pub use sharing::STORE_BUDGET;

use crate::Instance;
use crate::driver::flight::{Flights, Role};
use crate::driver::{CallDeadline, Config, ExchangeLimits, deadline_elapsed};
use crate::error::{Error, Operation, TransportError};
#[cfg(feature = "async-client")]
use crate::request::Credentials;
use crate::request::{self, Body};
use crate::response::{Parser, RevokeResponse, Secrets};
use crate::secret::AccessToken;
use crate::session::{Authorized, Event, Lineage, Pending, SavedSession, Session, State, Target};
use crate::store::{Ending, MemoryStore, SessionStore};
use crate::trace;
use http::{Request, Response};
use sharing::{Need, Sharing};
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::{Instant, SystemTime};

/// Sends one request and returns the whole answer, whatever its status: 4xx and 5xx are
/// answers, not errors. Must keep every header and follow no redirects, and should end by the
/// [`CallDeadline`] in the request's extensions.
///
/// Closures returning a `Send` future implement it, so any async HTTP client fits.
pub trait AsyncTransport: Send + Sync {
    /// Sends `request`, returns its answer.
    fn send(
        &self,
        request: Request<Body>,
    ) -> impl Future<Output = Result<Response<Vec<u8>>, TransportError>> + Send;
}

impl<F, Fut> AsyncTransport for F
where
    F: Fn(Request<Body>) -> Fut + Send + Sync,
    Fut: Future<Output = Result<Response<Vec<u8>>, TransportError>> + Send,
{
    fn send(
        &self,
        request: Request<Body>,
    ) -> impl Future<Output = Result<Response<Vec<u8>>, TransportError>> + Send {
        self(request)
    }
}

/// A PeerTube session driven over an [`AsyncTransport`], shareable across tasks, on any
/// executor.
///
/// Every call has one deadline ([`Config::call_timeout`]) covering all of its exchanges and its
/// wait for another caller's refresh; each exchange also has its own timeout
/// ([`Config::timeout`]).
pub struct AsyncClient<T, S = MemoryStore> {
    transport: T,
    /// Where the session is shared with other clients and processes.
    store: S,
    /// What the client knows of its store.
    sharing: Sharing,
    /// Refreshes this client has sent, so that a call can tell a token it refreshed from one
    /// another process did.
    refreshes_sent: AtomicU64,
    /// Logins this client made, so that a login that waited for the lease can tell another one
    /// of this client's finished first.
    logins_done: AtomicU64,
    /// Where new credentials come from when the refresh token is dead, if anywhere.
    relogin: Option<Relogin>,
    session: Mutex<Session>,
    /// The refresh in the air, so that callers wait for it instead of sending a second refresh
    /// with the same token.
    flights: Flights,
    config: Config,
    /// The account this client last logged in, for the spans of its calls.
    #[cfg(feature = "tracing")]
    account: Mutex<Option<std::sync::Arc<str>>>,
}

impl<T, S> fmt::Debug for AsyncClient<T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never blocks: a session in use right now is not waited for.
        let mut debug = f.debug_struct("AsyncClient");
        match self.session.try_lock() {
            Ok(session) => debug.field("session", &*session),
            Err(TryLockError::Poisoned(poisoned)) => {
                debug.field("session", &*poisoned.into_inner())
            }
            Err(TryLockError::WouldBlock) => debug.field("session", &format_args!("<in use>")),
        };
        debug.field("config", &self.config).finish_non_exhaustive()
    }
}

impl<T: AsyncTransport> AsyncClient<T> {
    /// A client for `instance` with nothing known yet.
    #[cfg(feature = "async-client")]
    pub fn new(transport: T, instance: Instance) -> Self {
        Self::from_session(transport, Session::new(instance))
    }

    /// A client continuing `session` (new, from a cached client pair, or restored from its
    /// saved form).
    pub fn from_session(transport: T, session: Session) -> Self {
        AsyncClient {
            transport,
            store: MemoryStore::new(),
            sharing: Sharing::new(),
            refreshes_sent: AtomicU64::new(0),
            logins_done: AtomicU64::new(0),
            relogin: None,
            session: Mutex::new(session),
            flights: Flights::default(),
            config: Config::default(),
            #[cfg(feature = "tracing")]
            account: Mutex::default(),
        }
    }

    /// Shares the session through `store` (see [`crate::store`]): the stored session, when
    /// there is one, replaces this client's at its first call; every change of tokens is saved;
    /// refreshes take the store's lease, so one process at a time refreshes.
    pub fn with_store<S2: SessionStore>(self, store: S2) -> AsyncClient<T, S2> {
        AsyncClient {
            transport: self.transport,
            store,
            sharing: Sharing::new(),
            refreshes_sent: AtomicU64::new(0),
            logins_done: AtomicU64::new(0),
            relogin: self.relogin,
            session: self.session,
            flights: self.flights,
            config: self.config,
            #[cfg(feature = "tracing")]
            account: self.account,
        }
    }
}

impl<T: AsyncTransport, S: SessionStore> AsyncClient<T, S> {
    /// Configures the client (see [`Config`]): its session takes the body cap and the refresh
    /// margin, every request the timeout, the body cap and the `User-Agent`.
    pub fn with_config(mut self, config: Config) -> Self {
        self.session
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .set_limits(config.body_limit(), config.refresh_margin());
        self.config = config;
        self
    }

    /// The store the session is shared through.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Logs in again by itself when the refresh token is dead (expired, revoked, burned by a
    /// refresh whose answer was lost), with the credentials `relogin` gives, and retries the
    /// call once. With a store, one process logs in for all of them, under the refresh lease.
    /// It never loops: a refused login (wrong password, 429 with its `Retry-After`) is the
    /// call's answer. A logout is never undone.
    pub fn with_relogin(mut self, relogin: Relogin) -> Self {
        self.relogin = Some(relogin);
        self
    }

    /// The client's configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    // The session lock is only ever taken between awaits, never across one, and never while
    // user code (the clock, a closure) runs.
    fn session(&self) -> MutexGuard<'_, Session> {
        lock(&self.session)
    }

    /// The account this client last logged in, for its spans.
    #[cfg(feature = "tracing")]
    fn account(&self) -> Option<std::sync::Arc<str>> {
        self.account
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Notes the account a login is for, for the spans of this client's calls.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    fn note_account(&self, username: &str) {
        #[cfg(feature = "tracing")]
        {
            *self.account.lock().unwrap_or_else(|p| p.into_inner()) = Some(username.into());
        }
    }

    fn now(&self) -> SystemTime {
        (self.config.clock())()
    }

    pub(crate) fn deadline(&self) -> CallDeadline {
        CallDeadline::after(Instant::now(), self.config.call_timeout())
    }

    /// The instance.
    pub fn instance(&self) -> Instance {
        self.session().instance().clone()
    }

    /// The session's state.
    pub fn state(&self) -> State {
        self.session().state()
    }

    /// The session's saved form, to persist (see [`SavedSession`] for the security note).
    pub fn save(&self) -> SavedSession {
        self.session().save()
    }

    /// Reads a copy of the session, taken now. `read` runs without any lock held, so it may use
    /// the client; the copy is detached (the client accepts none of its handles).
    pub fn with_session<R>(&self, read: impl FnOnce(&Session) -> R) -> R {
        let copy = self.session().detached_copy();
        read(&copy)
    }

    /// Puts on a request what the transport must keep to (the call's deadline, the exchange's
    /// timeout and body cap) and the configured `User-Agent` unless it has its own, or refuses
    /// to send a request whose call is already out of time.
    fn stamp<B>(&self, request: &mut Request<B>, deadline: CallDeadline) -> Result<(), Error> {
        self.stamp_capped(request, deadline, self.config.body_limit())
    }

    /// [`stamp`](Self::stamp) with a body cap of its own, for an answer that may be larger
    /// than the session endpoints' (see [`crate::api::Endpoint::BODY_LIMIT`]).
    fn stamp_capped<B>(
        &self,
        request: &mut Request<B>,
        deadline: CallDeadline,
        body_limit: usize,
    ) -> Result<(), Error> {
        if deadline.has_passed(Instant::now()) {
            return Err(deadline_elapsed());
        }
        request
            .headers_mut()
            .entry(http::header::USER_AGENT)
            .or_insert_with(|| self.config.user_agent().clone());
        let extensions = request.extensions_mut();
        extensions.insert(deadline);
        extensions.insert(ExchangeLimits::new(self.config.timeout(), body_limit));
        Ok(())
    }

    /// Sends one step's request and hands its answer to the session.
    async fn exchange(
        &self,
        step: (Request<Body>, Pending),
        deadline: CallDeadline,
    ) -> Result<Event, Error> {
        let (mut request, pending) = step;
        if let Err(late) = self.stamp(&mut request, deadline) {
            self.session().abandon(pending);
            return Err(late);
        }
        let operation = pending.operation();
        let mut in_flight = InFlight {
            session: &self.session,
            pending: Some(pending),
        };
        #[cfg(feature = "tracing")]
        let sent_at = Instant::now();
        let answer = self.transport.send(request).await;
        let Some(pending) = in_flight.pending.take() else {
            return Err(Error::StaleResponse(operation));
        };
        let response = match answer {
            Ok(response) => response,
            Err(error) => {
                self.session().abandon(pending);
                trace::event!(
                    warn,
                    operation = %operation,
                    kind = %error.kind(),
                    took_ms = trace::millis_since(sent_at),
                    "the exchange failed on the way"
                );
                return Err(Error::Transport(error));
            }
        };
        let now = self.now();
        let handled = {
            let mut session = self.session();
            let lineage = session.lineage();
            let handled = session.handle(pending, &response, now);
            // Known to every caller the moment the session dropped its tokens: none of them
            // sees a session emptied for no reason.
            if let (Operation::Refresh, Err(Error::LoginRequired(refusal))) = (operation, &handled)
            {
                self.sharing.refused(refusal, lineage);
            }
            handled
        };
        #[cfg(feature = "tracing")]
        self.trace_answer(operation, &handled, sent_at);
        if let Err(Error::StaleResponse(Operation::Login)) = handled {
            self.revoke_orphan(&response, deadline).await;
        }
        handled
    }

    /// One event for the answer to a session exchange: `debug` when it went through, `warn`
    /// for what loses a session or points at a fault (a refused refresh, a 429, a server error).
    #[cfg(feature = "tracing")]
    fn trace_answer(&self, operation: Operation, handled: &Result<Event, Error>, sent_at: Instant) {
        let took_ms = trace::millis_since(sent_at);
        let error = match handled {
            Ok(_) => {
                trace::event!(debug, operation = %operation, took_ms, "answered");
                return;
            }
            Err(error) => error,
        };
        let (name, status, code) = (
            trace::error_name(error),
            trace::status_of(error),
            trace::code_name(error),
        );
        match error {
            Error::RateLimited(limit) => trace::event!(
                warn,
                operation = %operation,
                status,
                retry_after_s = limit.retry_after.map(|wait| wait.as_secs()),
                took_ms,
                "rate limited: nothing is sent to the token endpoint before Retry-After"
            ),
            // Only a refresh's answer is `LoginRequired` (a refused refresh token).
            Error::LoginRequired(_) => trace::event!(
                warn,
                status,
                code,
                took_ms,
                "the refresh was refused: this pair's session is over"
            ),
            Error::TwoFactorRequired(_) => {
                trace::event!(info, took_ms, "the server asks for a two-factor code")
            }
            Error::StaleResponse(_) => trace::event!(
                debug,
                operation = %operation,
                error = name,
                took_ms,
                "answered"
            ),
            Error::Server(_) | Error::MalformedResponse { .. } | Error::ResponseTooLarge { .. } => {
                trace::event!(
                    warn,
                    operation = %operation,
                    error = name,
                    status,
                    code,
                    took_ms,
                    "refused"
                )
            }
            _ => trace::event!(
                info,
                operation = %operation,
                error = name,
                status,
                code,
                took_ms,
                "refused"
            ),
        }
    }

    /// A login answer that arrived after the session changed (another login on this client won
    /// the race) may carry a live token pair nobody will use: revoke it, so no server session is
    /// left behind for its whole lifetime. Best effort: its outcome changes nothing here.
    async fn revoke_orphan(&self, response: &Response<Vec<u8>>, deadline: CallDeadline) {
        let Ok(tokens) = Parser::new()
            .with_body_limit(self.config.body_limit())
            .login(response, &Secrets::none())
        else {
            return;
        };
        let instance = self.instance();
        let Ok(mut revoke) = request::revoke_request(&instance, &tokens.access_token) else {
            return;
        };
        if self.stamp(&mut revoke, deadline).is_ok() {
            let _ = self.transport.send(revoke).await;
        }
    }

    pub(crate) async fn fetch_client_within(&self, deadline: CallDeadline) -> Result<(), Error> {
        let step = self.session().fetch_client()?;
        self.exchange(step, deadline).await.map(drop)
    }

    pub(crate) async fn ensure_fresh_within(&self, deadline: CallDeadline) -> Result<(), Error> {
        // The store's interval applies only while the local token looks good: a 401 for it
        // then tells of a change. A session that cannot be used here reads the store at once.
        let usable = self.need(self.now()).is_ok_and(|need| need == Need::None);
        if usable && !self.store_read_due(Instant::now()) && !self.flights.in_air() {
            // Nearly every call: nothing to do. The work below is boxed so that every call's
            // future does not carry the refresh's and the store's (over 20 KiB, copied on
            // each spawn and on each `block_on` of tokio's).
            return Ok(());
        }
        Box::pin(self.make_fresh(usable, deadline)).await
    }

    /// The rest of [`ensure_fresh_within`](Self::ensure_fresh_within), when the token is not
    /// usable, the store is due for a read or a refresh is in the air.
    async fn make_fresh(&self, usable: bool, deadline: CallDeadline) -> Result<(), Error> {
        self.sync(!usable, deadline).await?;
        self.learn_clock_if_needed(deadline).await;
        // Each turn either ends, or follows a flight that ended without an outcome (its leader
        // was cancelled, or its answer was made stale by a login or logout); the deadline
        // bounds the turns.
        loop {
            let now = self.now();
            let needed = self.flights.join_or_lead(|| match self.need(now) {
                Ok(need) => Ok(need != Need::None),
                // A dead refresh token and a way to log in again: the leader logs in.
                Err(Error::InvalidState { .. })
                    if self.relogin.is_some() && self.relogin_possible() =>
                {
                    Ok(true)
                }
                Err(error @ Error::InvalidState { .. }) => {
                    Err(self.ending().map_or(error, |ending| ending.error()))
                }
                Err(other) => Err(other),
            });
            match needed? {
                Role::Done => return Ok(()),
                Role::Wait(flight) => {
                    #[cfg(feature = "tracing")]
                    let waited = Instant::now();
                    let outcome = flight.wait().await;
                    trace::event!(
                        debug,
                        waited_ms = trace::millis_since(waited),
                        outcome = match &outcome {
                            Some(Ok(())) => "ok",
                            Some(Err(error)) => trace::error_name(error),
                            None => "none: the leader was cancelled, going again",
                        },
                        "waited for another caller's refresh"
                    );
                    match outcome {
                        Some(outcome) => return outcome,
                        None => continue,
                    }
                }
                Role::Lead(leader) => {
                    #[cfg(feature = "tracing")]
                    let started = Instant::now();
                    let outcome = self.refresh_under_lease(deadline).await;
                    trace::event!(
                        debug,
                        took_ms = trace::millis_since(started),
                        outcome = match &outcome {
                            Ok(()) => "ok",
                            Err(error) => trace::error_name(error),
                        },
                        "refresh done, as this process's leader"
                    );
                    if let Err(Error::StaleResponse(_)) = outcome {
                        leader.finish(None);
                        continue;
                    }
                    leader.finish(Some(outcome.clone()));
                    // After a re-login, once the waiters have their answer.
                    self.clean_orphans(deadline).await;
                    return outcome;
                }
            }
        }
    }

    pub(crate) async fn access_token_within(
        &self,
        deadline: CallDeadline,
    ) -> Result<AccessToken, Error> {
        trace::in_span!("access_token", self, async {
            // A token handed out is used where no 401 comes back here: read the store first.
            self.sync(true, deadline).await?;
            self.ensure_fresh_within(deadline).await?;
            self.session()
                .access_token()
                .cloned()
                .ok_or(Error::AccessTokenExpired)
        })
    }

    /// What `ensure_fresh` does (the calls that need a fresh token use
    /// [`ensure_fresh_within`](Self::ensure_fresh_within), inside their own span).
    pub(crate) async fn refresh_within(&self, deadline: CallDeadline) -> Result<(), Error> {
        trace::in_span!("refresh", self, self.ensure_fresh_within(deadline))
    }

    pub(crate) async fn send_authorized_within(
        &self,
        request: Request<Body>,
        deadline: CallDeadline,
    ) -> Result<Response<Vec<u8>>, Error> {
        let body_limit = self.config.body_limit();
        let sent = self.send_authorized_capped(request, deadline, body_limit);
        trace::in_span!("send_authorized", self, sent).map(|sent| sent.response)
    }

    /// Sends an authorized request, refreshing and retrying as `send_authorized` does, with
    /// `body_limit` as the cap on its answer; says which token the answer is for.
    pub(crate) async fn send_authorized_capped(
        &self,
        request: Request<Body>,
        deadline: CallDeadline,
        body_limit: usize,
    ) -> Result<Sent, Error> {
        let request = self.resolved(request)?;
        let mut sends = Sends::default();
        loop {
            let sent = self
                .send_with_token(request.clone(), deadline, body_limit)
                .await?;
            let dead = self
                .observed_with_store(
                    &sent.ticket,
                    &sent.response,
                    &sends,
                    sent.refreshes_before,
                    deadline,
                )
                .await;
            if !sends.again(dead, sent.refreshes_before) {
                return Ok(sent);
            }
        }
    }

    /// Learns from the answer to an authorized request: how the token on it was dead (401
    /// `invalid_token`), if it was.
    fn observed<B: AsRef<[u8]>>(
        &self,
        ticket: &Authorized,
        response: &Response<B>,
    ) -> Option<Dead> {
        let now = self.now();
        let mut session = self.session();
        session.learn_clock(response, now);
        session.observe(ticket, response).then(|| {
            if session.is_current(ticket) {
                Dead::Ours {
                    proven: session.access_proven(),
                }
            } else {
                Dead::Replaced
            }
        })
    }

    /// [`observed`](Self::observed), and for a token from this client's own refresh that died
    /// before any request here was answered with it (which would end the call: the server may
    /// be refusing every new token), a read of the store first: another process may have taken
    /// that pair, used it and refreshed it, and a newer pair there makes it replaced, not
    /// refused. Where other processes share the pairs (this client has taken one of theirs),
    /// one may have used it up before the store shows its refresh: the death counts as churn,
    /// and the call's bound on refreshes of its own stops a server that refuses every token.
    pub(crate) async fn observed_with_store<B: AsRef<[u8]>>(
        &self,
        ticket: &Authorized,
        response: &Response<B>,
        sends: &Sends,
        refreshes_before: u64,
        deadline: CallDeadline,
    ) -> Option<Dead> {
        let dead = self.observed(ticket, response);
        if !sends.gives_back(dead, refreshes_before) {
            return dead;
        }
        // A store that fails leaves the answer as it was.
        if self.sync(true, deadline).await.is_ok() && !self.session().is_current(ticket) {
            trace::event!(
                debug,
                "a token of our own refresh died unused here, and the store holds a newer pair: \
                 another process took it and refreshed it"
            );
            return Some(Dead::Replaced);
        }
        if self.sharing.state().pairs_from_elsewhere {
            trace::event!(
                debug,
                "a token of our own refresh died unused here; other processes share the pairs, \
                 so it may have served them: refreshed again"
            );
            return Some(Dead::Ours { proven: true });
        }
        dead
    }

    /// Before any answer told this process the server's time, a pair that looks due or
    /// expired may only look so because this machine's clock is off: one `GET /api/v1/ping`
    /// (no token, not rate limited on PeerTube) tells the server's time first. It costs
    /// nothing once an answer was seen, and nothing while the pair looks good.
    async fn learn_clock_if_needed(&self, deadline: CallDeadline) {
        let doubtful = {
            let now = self.now();
            let session = self.session();
            !session.knows_server_clock()
                && session.state() == State::LoggedIn
                && session.refresh_due(now)
        };
        if !doubtful {
            return;
        }
        let Ok(uri) = self.instance().uri("/api/v1/ping") else {
            return;
        };
        let mut ping = Request::new(Body::default());
        *ping.uri_mut() = uri;
        if self.stamp(&mut ping, deadline).is_err() {
            return;
        }
        if let Ok(answer) = self.transport.send(ping).await {
            let now = self.now();
            self.session().learn_clock(&answer, now);
        }
    }

    /// A request for a path only (`/api/v1/users/me`) is for this instance.
    fn resolved(&self, mut request: Request<Body>) -> Result<Request<Body>, Error> {
        let uri = request.uri();
        if uri.scheme().is_none() && uri.authority().is_none() {
            let path = uri.path_and_query().map_or("/", |p| p.as_str());
            let full = self.session().instance().uri(path)?;
            *request.uri_mut() = full;
        }
        Ok(request)
    }

    /// Puts a fresh token on `request` and sends it. If the token is found dead between the
    /// freshness check and `authorize` (another caller saw a 401 for it), waits for that
    /// refresh and tries again.
    async fn send_with_token(
        &self,
        mut request: Request<Body>,
        deadline: CallDeadline,
        body_limit: usize,
    ) -> Result<Sent, Error> {
        let target = request.uri().clone();
        let (ticket, refreshes_before) = self
            .authorize_within(Target::Unchecked(&target), request.headers_mut(), deadline)
            .await?;
        // A reference count, not a copy of the token: every call pays for it.
        let bearer = request.headers().get(http::header::AUTHORIZATION).cloned();
        self.stamp_capped(&mut request, deadline, body_limit)?;
        let response = self.transport.send(request).await.map_err(|error| {
            trace::event!(
                warn,
                kind = %error.kind(),
                "the authorized request failed on the way"
            );
            Error::Transport(error)
        })?;
        Ok(Sent {
            ticket,
            bearer,
            response,
            refreshes_before,
        })
    }

    /// Puts a fresh token in `headers` of a request for `target`, refreshing first when due.
    /// Returns the token's ticket and how many refreshes this client had sent by then.
    pub(crate) async fn authorize_within(
        &self,
        target: Target<'_>,
        headers: &mut http::HeaderMap,
        deadline: CallDeadline,
    ) -> Result<(Authorized, u64), Error> {
        let mut expired_on_arrival = 0;
        let ticket = loop {
            self.ensure_fresh_within(deadline).await?;
            let now = self.now();
            let (authorized, refused) = {
                let session = self.session();
                let authorized = session.authorize_parts(target, headers, now);
                (authorized, session.access_rejected())
            };
            match authorized {
                // Another caller saw a 401 for the token, or a refusal of its refresh token
                // emptied the session, between the freshness check and here: wait for what that
                // caller does, within the deadline (each turn waits for a refresh or ends).
                Err(Error::AccessTokenExpired) if refused => continue,
                Err(Error::InvalidState { .. }) => continue,
                // Expired by the clock the moment it arrived: a server handing out such tokens
                // must not keep a caller refreshing.
                Err(Error::AccessTokenExpired) if expired_on_arrival + 1 < MAX_AUTHORIZE_TRIES => {
                    expired_on_arrival += 1;
                    continue;
                }
                other => break other?,
            }
        };
        Ok((ticket, self.refreshes_sent.load(Ordering::Acquire)))
    }

    pub(crate) async fn logout_within(
        &self,
        deadline: CallDeadline,
    ) -> Result<RevokeResponse, Error> {
        trace::in_span!("logout", self, async {
            self.ensure_fresh_within(deadline).await?;
            let (step, mut lineage) = self.logout_step()?;
            let event = match self.exchange(step, deadline).await {
                Err(Error::InvalidToken(_)) => {
                    self.ensure_fresh_within(deadline).await?;
                    let step;
                    (step, lineage) = self.logout_step()?;
                    self.exchange(step, deadline).await?
                }
                other => other?,
            };
            self.save_over(Some((Ending::LoggedOut, lineage)), deadline)
                .await;
            trace::event!(
                info,
                "logged out: the pair is revoked and the store says so"
            );
            Ok(revoked(event))
        })
    }

    /// The logout request, and the lineage of the pair it ends.
    fn logout_step(&self) -> Result<(Step, Option<Lineage>), Error> {
        let session = self.session();
        Ok((session.logout()?, session.lineage()))
    }
}

#[cfg(feature = "async-client")]
impl<T: AsyncTransport, S: SessionStore> AsyncClient<T, S> {
    /// Fetches the instance's OAuth client pair.
    pub async fn fetch_client(&self) -> Result<(), Error> {
        let deadline = self.deadline();
        within(deadline, || self.fetch_client_within(deadline)).await
    }

    /// Logs in, fetching the client pair first when the session has none. If a cached pair is
    /// rejected (`invalid_client`), fetches it again and retries once.
    ///
    /// A login is a deliberate act: it replaces the session the store holds (every process
    /// sharing it takes the new one) and revokes the pair it replaced. It is made under the
    /// store's lease, so that logins racing on one store end with one session alive. To log
    /// in only when the store holds no usable session, use
    /// [`login_if_needed`](Self::login_if_needed).
    ///
    /// [`Error::TwoFactorRequired`] means: call again with
    /// [`Credentials::with_otp`], or use [`AsyncClient::login_with_otp_prompt`].
    /// [`Error::StaleResponse`] means another login on this client finished first: that one's
    /// session is kept (and the tokens this one got, if any, were revoked).
    pub async fn login(&self, credentials: &Credentials) -> Result<(), Error> {
        let deadline = self.deadline();
        within(deadline, || self.login_within(credentials, deadline)).await
    }

    /// Logs in only if the store holds no usable session (the first task or process of a fleet
    /// starting together logs in, the others use its session). Under the store's lease, like
    /// [`login`](Self::login); [`LoginOutcome`] says which happened.
    pub async fn login_if_needed(&self, credentials: &Credentials) -> Result<LoginOutcome, Error> {
        let deadline = self.deadline();
        within(deadline, || {
            self.login_if_needed_within(credentials, deadline)
        })
        .await
    }

    /// Logs in, and if the server asks for a two-factor code, calls `ask_otp` once, awaits its
    /// answer and logs in again with it (no second password prompt); `ask_otp` is not called
    /// when no code is needed. `None` gives up with [`Error::TwoFactorRequired`]. Each login
    /// has its own deadline; the time `ask_otp` takes is not counted.
    pub async fn login_with_otp_prompt<F, A>(
        &self,
        credentials: &Credentials,
        ask_otp: A,
    ) -> Result<(), Error>
    where
        A: FnOnce() -> F,
        F: Future<Output = Option<String>>,
    {
        match self.login(credentials).await {
            Err(Error::TwoFactorRequired(challenge)) => match ask_otp().await {
                Some(code) => self.login(&credentials.clone().with_otp(code)).await,
                None => Err(Error::TwoFactorRequired(challenge)),
            },
            other => other,
        }
    }

    /// Refreshes the token pair if it is due (near expiry, expired, or reported dead). Tasks
    /// that need it meanwhile wait for this one refresh instead of sending their own, and get
    /// its outcome: [`Error::LoginRequired`] for all of them when the refresh token is no
    /// longer valid, the same transport error when it failed on the way.
    pub async fn ensure_fresh(&self) -> Result<(), Error> {
        let deadline = self.deadline();
        within(deadline, || self.refresh_within(deadline)).await
    }

    /// A valid access token, refreshed first if due.
    pub async fn access_token(&self) -> Result<AccessToken, Error> {
        let deadline = self.deadline();
        within(deadline, || self.access_token_within(deadline)).await
    }

    /// Sends any other PeerTube API request with the access token; a request for a path only
    /// (`/api/v1/users/me`) goes to this instance. If the answer is 401 `invalid_token`,
    /// refreshes once and retries; if the token on it had meanwhile been replaced by another
    /// caller's refresh (or another process's, through the store), retries with the new token.
    /// At most eight sends within the call's deadline (tokens rotating across a fleet faster
    /// than this process is answered), resting on at most two refreshes of this client's own;
    /// the last answer is returned whatever its status. Any body that converts into [`Body`]
    /// will do: `()`, a `String`, a `Vec<u8>` (for JSON, with its `Content-Type` header).
    pub async fn send_authorized<B: Into<Body>>(
        &self,
        request: Request<B>,
    ) -> Result<Response<Vec<u8>>, Error> {
        let deadline = self.deadline();
        let request = request.map(Into::into);
        within(deadline, || self.send_authorized_within(request, deadline)).await
    }

    /// Logs out (refreshing first if the access token is expired, since an expired token cannot
    /// be revoked). Returns the answer, with the `redirectUrl` an auth plugin may send.
    pub async fn logout(&self) -> Result<RevokeResponse, Error> {
        let deadline = self.deadline();
        within(deadline, || self.logout_within(deadline)).await
    }
}

/// Runs `call` until `deadline`, then drops it (every step is safe to drop: see [`InFlight`])
/// and ends with a timeout.
#[cfg(feature = "async-client")]
async fn within<R, F: Future<Output = Result<R, Error>>>(
    deadline: CallDeadline,
    call: impl FnOnce() -> F,
) -> Result<R, Error> {
    let remaining = deadline.remaining(Instant::now());
    crate::driver::at_most(remaining, call, || Err(deadline_elapsed())).await
}

/// A step whose answer has not been handled yet. If its future is dropped first (the caller's
/// timeout or `select!` cancelled it), the step is abandoned, so a cancelled refresh does not
/// block every later one with [`Error::RefreshInFlight`].
struct InFlight<'a> {
    session: &'a Mutex<Session>,
    pending: Option<Pending>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            lock(self.session).abandon(pending);
        }
    }
}

/// An authorized request's answer, and the token it carried.
pub(crate) struct Sent {
    pub(crate) ticket: Authorized,
    /// The request's `Authorization` header, to clean its token out of the answer's text.
    pub(crate) bearer: Option<http::HeaderValue>,
    pub(crate) response: Response<Vec<u8>>,
    /// How many refreshes this client had sent when the request was authorized.
    refreshes_before: u64,
}

impl Sent {
    /// The access token the request carried.
    pub(crate) fn token(&self) -> Option<&str> {
        let value = self.bearer.as_ref()?.to_str().ok()?;
        value.strip_prefix("Bearer ")
    }
}

/// How the token on a request was dead (401 `invalid_token`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dead {
    /// Another caller's refresh had already replaced it.
    Replaced,
    /// It was still the session's; `proven`: other requests had been answered with it.
    Ours { proven: bool },
}

/// How one call's sends go on after each answer (see [`MAX_SENDS`] and [`MAX_REFRESHES`]).
#[derive(Default)]
pub(crate) struct Sends {
    sent: usize,
    /// Sends whose token came from a refresh of this client made after the last death.
    refreshed: usize,
    /// How many refreshes this client had sent when the token that last died (ours) was put
    /// on the request.
    died_at: Option<u64>,
}

impl Sends {
    /// Whether the request goes once more after an answer: `dead` as
    /// [`AsyncClient::observed`] says, `refreshes_before` as [`Sent`] has it.
    pub(crate) fn again(&mut self, dead: Option<Dead>, refreshes_before: u64) -> bool {
        self.sent += 1;
        if dead.is_some() {
            trace::event!(
                debug,
                sends = self.sent,
                still_current = dead != Some(Dead::Replaced),
                "401 invalid_token: the token on the request was dead"
            );
        }
        let Some(dead) = dead else {
            return false;
        };
        if self.after_our_refresh(refreshes_before) {
            self.refreshed += 1;
        }
        match dead {
            _ if self.sent == MAX_SENDS => false,
            // Our own token died again, it was put on after a refresh of ours that followed
            // the last death, and no request was ever answered with it: the server may be
            // refusing every new token, so give the answer back. A token that served other
            // requests first was used up or revoked like any other (churn), one another
            // process refreshed and this one took from the store does not count, nor does a
            // refresh of ours sent while this request was already out with such a token, nor
            // one whose pair the store shows replaced (another process took it and refreshed
            // it: `observed_with_store` makes that `Replaced`).
            _ if self.gives_back(Some(dead), refreshes_before) => false,
            // Another death of the current token would cost one more refresh of ours.
            Dead::Ours { .. } if self.refreshed == MAX_REFRESHES => false,
            Dead::Ours { .. } => {
                self.died_at = Some(refreshes_before);
                true
            }
            Dead::Replaced => true,
        }
    }

    /// Whether this death ends the call by the rule for tokens of our own refresh: our token
    /// died again, it was put on after a refresh of ours that followed the last death, and no
    /// request here was ever answered with it.
    pub(crate) fn gives_back(&self, dead: Option<Dead>, refreshes_before: u64) -> bool {
        dead == Some(Dead::Ours { proven: false }) && self.after_our_refresh(refreshes_before)
    }

    /// Whether the token on this send came after a refresh of this client that followed the
    /// last death.
    fn after_our_refresh(&self, refreshes_before: u64) -> bool {
        self.died_at.is_some_and(|before| refreshes_before > before)
    }

    /// Whether one more send could follow the next one (so a copy of the request is worth
    /// keeping).
    #[cfg(any(feature = "reqwest-middleware", feature = "tower"))]
    pub(crate) fn may_follow(&self) -> bool {
        self.sent + 1 < MAX_SENDS
    }
}

/// How many times `send_authorized` sends one request at most. A 401 `invalid_token` for the
/// session's current token leads to a refresh (or to the pair another process saved) and a
/// retry; a 401 for a token another caller has already replaced (PeerTube kills the old access
/// token when a refresh rotates the pair, so requests in flight during a refresh fail) leads to
/// a retry with the new token, no refresh. Tokens rotating across a fleet faster than this
/// process gets an answer can kill several in a row; the call's deadline bounds the sends too.
const MAX_SENDS: usize = 8;

/// How many refreshes of this client one call's retries may rest on: pairs another process
/// made (taken from the store) and tokens another caller replaced cost none. The token
/// endpoint's rate limit counts every refresh.
const MAX_REFRESHES: usize = 2;

/// How many times one send takes a token that expired by the clock the moment it arrived: a
/// server handing out tokens that are dead on arrival must not keep a caller refreshing. (A
/// token another caller found dead is waited for within the call's deadline, not counted.)
const MAX_AUTHORIZE_TRIES: usize = 3;

/// A panic elsewhere while holding the lock leaves a session that is still consistent (every
/// change happens in one `handle` call), so keep using it.
fn lock(session: &Mutex<Session>) -> MutexGuard<'_, Session> {
    session
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A session step's request and the handle its answer goes back with.
type Step = (Request<Body>, Pending);

/// What a logout answer said (its `redirectUrl`).
fn revoked(event: Event) -> RevokeResponse {
    match event {
        Event::LoggedOut { redirect_url } => RevokeResponse { redirect_url },
        _ => RevokeResponse::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::{Dead, MAX_SENDS, Sends};

    const PROVEN: Option<Dead> = Some(Dead::Ours { proven: true });
    const UNPROVEN: Option<Dead> = Some(Dead::Ours { proven: false });

    #[test]
    fn a_call_rests_on_two_refreshes_of_its_own_at_most() {
        let mut sends = Sends::default();
        assert!(sends.again(PROVEN, 0));
        assert!(sends.again(PROVEN, 1));
        assert!(!sends.again(PROVEN, 2));
    }

    #[test]
    fn a_token_from_our_own_refresh_that_never_worked_ends_the_call_at_once() {
        let mut sends = Sends::default();
        assert!(sends.again(PROVEN, 0));
        assert!(!sends.again(UNPROVEN, 1));
    }

    #[test]
    fn pairs_others_made_go_on_to_the_bound_on_sends() {
        // Pairs taken from the store (no refresh of ours since the first death), worked here
        // or not, and tokens another caller had already replaced, each found dead by the time
        // of the answer.
        let kinds = [PROVEN, UNPROVEN, Some(Dead::Replaced)];
        let mut sends = Sends::default();
        assert!(sends.again(PROVEN, 4));
        let mut answers = 1;
        while sends.again(kinds[answers % 3], 4) {
            answers += 1;
            assert!(answers < 100, "no bound");
        }
        assert_eq!(answers + 1, MAX_SENDS);
    }

    #[test]
    fn a_replaced_token_needs_no_refresh_of_ours_after_the_last_one() {
        let mut sends = Sends::default();
        assert!(sends.again(PROVEN, 0));
        assert!(sends.again(PROVEN, 1));
        assert!(sends.again(Some(Dead::Replaced), 2));
    }

    #[test]
    fn an_answer_that_is_not_a_dead_token_ends_the_call() {
        let mut sends = Sends::default();
        assert!(!sends.again(None, 0));
        let mut sends = Sends::default();
        assert!(sends.again(Some(Dead::Replaced), 0));
        assert!(!sends.again(None, 0));
    }
}
