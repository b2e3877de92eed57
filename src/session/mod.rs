//! [`Session`]: the login session as a pure state machine.

mod clock;
mod lineage;
mod saved;
mod tokens;

pub use lineage::Lineage;
pub use saved::{SavedSession, SavedTokens};

use crate::error::{Error, ErrorCode, Operation};
use crate::instance::Instance;
use crate::request::{self, Body, Credentials, OAuthClient};
use crate::response::{self, Parser, Secrets};
use crate::secret::{AccessToken, RefreshToken};
use clock::ServerClock;
use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokens::{Tokens, unix_secs};

/// Default time before the access token's expiry at which a refresh becomes due.
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// Where a session stands.
///
/// ```text
///            fetch_client / with_client(cached)
/// NoClient ─────────────────────────────────────▶ HaveClient
///                                                  │  ▲  login (password + optional OTP,
///                                                  │  │        or external-auth token)
///                                                  ▼  │  refresh invalid_grant / forget
///                                                LoggedIn ◀──┐ refresh (rotates both tokens)
///                                                  │  └──────┘
///                                                  │ logout (200)
///                                                  ▼
///                                                Revoked ── login ──▶ LoggedIn
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// No OAuth client pair yet: [`Session::fetch_client`] is the next step.
    NoClient,
    /// A client pair, no tokens: [`Session::login`] is the next step.
    HaveClient,
    /// A token pair: authorize requests, refresh when due, log out.
    LoggedIn,
    /// Logged out; the client pair is kept, so [`Session::login`] works again.
    Revoked,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::NoClient => "without an OAuth client",
            State::HaveClient => "not logged in",
            State::LoggedIn => "logged in",
            State::Revoked => "logged out",
        })
    }
}

/// What a handled response changed.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The client pair is known: [`State::HaveClient`] (or still [`State::Revoked`]).
    ClientFetched,
    /// Logged in: [`State::LoggedIn`].
    LoggedIn,
    /// Both tokens were replaced; the old ones are dead on the server.
    Refreshed,
    /// Logged out: [`State::Revoked`].
    LoggedOut {
        /// Where an auth plugin wants the user sent after logout, if anywhere.
        redirect_url: Option<String>,
    },
}

/// A request in flight, to be handed back to [`Session::handle`] with its response (or to
/// [`Session::abandon`] if the response never came).
///
/// It remembers which operation it was for and the session's generation when it was made, so a
/// late answer cannot overwrite newer tokens.
#[must_use = "hand the response to Session::handle, or call Session::abandon"]
#[derive(Debug, PartialEq, Eq)]
pub struct Pending {
    step: Step,
    ticket: Ticket,
    /// A login's credentials, so that an error answer echoing them can be redacted.
    credentials: Option<Box<Credentials>>,
}

impl Pending {
    /// The operation the request was for.
    pub fn operation(&self) -> Operation {
        self.step.operation()
    }
}

/// The steps that have an answer to hand back: the operations of [`Operation`] that are
/// requests of the session's own (authorizing another request is not one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    FetchClient,
    Login,
    Refresh,
    Logout,
}

impl Step {
    fn operation(self) -> Operation {
        match self {
            Step::FetchClient => Operation::FetchClient,
            Step::Login => Operation::Login,
            Step::Refresh => Operation::Refresh,
            Step::Logout => Operation::Logout,
        }
    }
}

/// Proof of which access token [`Session::authorize`] put on a request; give it back to
/// [`Session::observe`] with the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authorized {
    ticket: Ticket,
}

/// A request's target, as [`Session::authorize_parts`] gets it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target<'a> {
    /// Not checked yet: refused unless it is the instance's.
    Unchecked(&'a http::Uri),
    /// Found to be the instance's by the caller, which had to look to decide whether to
    /// authorize it at all (another stack's request): not looked at twice.
    #[cfg(any(feature = "reqwest-middleware", feature = "tower"))]
    Instance,
}

/// A session's identity and generation: every change of client or tokens starts a new
/// generation, which makes older pending handles and tickets stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ticket {
    session: u64,
    generation: u64,
}

static NEXT_SESSION_ID: AtomicU64 = AtomicU64::new(1);

/// A PeerTube login session: a pure state machine that builds requests and learns from
/// responses, and never does IO or reads the clock itself.
///
/// Each operation checks the state and returns the request to send plus a [`Pending`] handle;
/// [`Session::handle`] is the only place the state changes. See the crate docs for a complete
/// walk through a session.
///
/// A `Session` is not `Clone`: it owns its refresh token, and PeerTube accepts each refresh
/// token once, so two copies that could both refresh would lose the login or leak a server
/// session. Each `Session` has its own identity, and only accepts the [`Pending`] handles and
/// [`Authorized`] tickets it issued. To keep a copy, [`Session::save`] it; to share one, put it
/// in a `Mutex` or use a driver.
#[derive(Debug)]
pub struct Session {
    instance: Instance,
    client: Option<OAuthClient>,
    tokens: Option<Tokens>,
    logged_out: bool,
    id: u64,
    generation: u64,
    refresh_in_flight: bool,
    refresh_margin: Duration,
    parser: Parser,
    clock: ServerClock,
    /// The last `Date` header learned from, as it was written, and the second of our clock it
    /// came at: the same header again within that second has nothing new to teach, and is not
    /// parsed again (the next second, or a clock that jumped, is read as usual).
    clock_date: Option<(http::HeaderValue, u64)>,
}

impl Session {
    /// A session with nothing yet: [`State::NoClient`].
    pub fn new(instance: Instance) -> Self {
        Session {
            instance,
            client: None,
            tokens: None,
            logged_out: false,
            id: NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed),
            generation: 0,
            refresh_in_flight: false,
            refresh_margin: DEFAULT_REFRESH_MARGIN,
            parser: Parser::new(),
            clock: ServerClock::Unknown,
            clock_date: None,
        }
    }

    /// A session starting from a client pair you cached: [`State::HaveClient`]. The pair is
    /// stable for an instance, so this skips one request per login.
    pub fn with_client(instance: Instance, client: OAuthClient) -> Self {
        let mut session = Session::new(instance);
        session.client = Some(client);
        session
    }

    /// Sets how long before the access token's expiry a refresh becomes due (default
    /// [`DEFAULT_REFRESH_MARGIN`]). The margin never exceeds half the token's lifetime, so a
    /// short-lived token is not refreshed in a loop.
    pub fn with_refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    /// Sets the cap on response bodies read by [`Session::handle`] (default 64 KiB).
    pub fn with_body_limit(mut self, bytes: usize) -> Self {
        self.parser = self.parser.with_body_limit(bytes);
        self
    }

    /// Both settings at once, in place (for a driver's configuration).
    #[cfg(any(feature = "async-client", feature = "blocking-client"))]
    pub(crate) fn set_limits(&mut self, body_limit: usize, refresh_margin: Duration) {
        self.parser = self.parser.with_body_limit(body_limit);
        self.refresh_margin = refresh_margin;
    }

    // ----- getters -----

    /// The current state.
    pub fn state(&self) -> State {
        match (&self.client, &self.tokens) {
            (_, Some(_)) => State::LoggedIn,
            (None, None) => State::NoClient,
            (Some(_), None) if self.logged_out => State::Revoked,
            (Some(_), None) => State::HaveClient,
        }
    }

    /// The instance this session talks to.
    pub fn instance(&self) -> &Instance {
        &self.instance
    }

    /// The OAuth client pair, once known.
    pub fn client(&self) -> Option<&OAuthClient> {
        self.client.as_ref()
    }

    /// The access token, while logged in. Prefer [`Session::authorize`], which also checks the
    /// expiry and the request's origin.
    pub fn access_token(&self) -> Option<&AccessToken> {
        self.tokens.as_ref().map(|t| &t.access)
    }

    /// When the access token expires, if the server said, on your clock (see
    /// [`Session::clock_offset`]).
    pub fn access_expires_at(&self) -> Option<SystemTime> {
        self.clock.local(self.tokens.as_ref()?.access_expires_at?)
    }

    /// Where the token pair comes from (which login, how many refreshes since), while logged
    /// in: what session stores compare to tell a newer pair from an older one.
    pub fn lineage(&self) -> Option<Lineage> {
        self.tokens.as_ref().map(|t| t.lineage)
    }

    /// When the refresh token expires, if the server said, on your clock; after that only a
    /// new login helps.
    pub fn refresh_expires_at(&self) -> Option<SystemTime> {
        self.clock.local(self.tokens.as_ref()?.refresh_expires_at?)
    }

    /// Whether a refresh request is out and not yet handled or abandoned.
    pub fn refresh_in_flight(&self) -> bool {
        self.refresh_in_flight
    }

    /// Whether the access token should be refreshed now: it is within the refresh margin of its
    /// expiry, past it, or the server said it is dead (see [`Session::observe`]).
    pub fn refresh_due(&self, now: SystemTime) -> bool {
        let now = self.clock.server_secs(now);
        self.tokens
            .as_ref()
            .is_some_and(|t| t.refresh_due(now, self.refresh_margin))
    }

    /// Whether the access token is past its expiry or known dead; it cannot be used, not even to
    /// log out.
    pub fn access_expired(&self, now: SystemTime) -> bool {
        let now = self.clock.server_secs(now);
        self.tokens.as_ref().is_some_and(|t| t.access_expired(now))
    }

    /// Whether the refresh token is past its expiry: a refresh would fail, log in again.
    pub fn refresh_expired(&self, now: SystemTime) -> bool {
        let now = self.clock.server_secs(now);
        self.tokens.as_ref().is_some_and(|t| t.refresh_expired(now))
    }

    /// When the driver must act next, on your clock: the moment a refresh becomes due. `None`
    /// when not logged in or when the server gave no lifetime. A time in the past means "now".
    pub fn next_deadline(&self) -> Option<SystemTime> {
        let due = self.tokens.as_ref()?.refresh_due_at(self.refresh_margin)?;
        Some(self.clock.local(due).unwrap_or(UNIX_EPOCH))
    }

    /// How many seconds the server's clock runs ahead of yours (negative: behind), as the
    /// `Date` headers of its answers tell (to the second). `None` until an answer with a `Date`
    /// was handled ([`Session::handle`], [`Session::learn_clock`]); until then, and for servers
    /// that send no `Date`, your clock is taken as the server's.
    ///
    /// Token deadlines are kept in the server's time (a login's or refresh's expiries count from
    /// the answer's `Date`), and every method that takes `now` moves it onto the server's clock
    /// first: a machine whose clock is a day off neither refreshes for nothing nor saves
    /// deadlines that mislead others.
    pub fn clock_offset(&self) -> Option<i64> {
        match self.clock {
            ServerClock::Offset(offset) => Some(offset),
            ServerClock::Unknown | ServerClock::NoDate => None,
        }
    }

    /// Places the pair's login in a store's history of logins (see [`Lineage::generation`]).
    #[cfg(any(feature = "async-client", feature = "blocking-client"))]
    pub(crate) fn set_login_generation(&mut self, generation: u64) {
        if let Some(tokens) = &mut self.tokens {
            tokens.lineage.generation = generation;
        }
    }

    /// Local time `now` on the server's clock, in Unix seconds (see [`Session::clock_offset`]).
    #[cfg(any(feature = "async-client", feature = "blocking-client"))]
    pub(crate) fn server_time(&self, now: SystemTime) -> u64 {
        self.clock.server_secs(now)
    }

    /// Whether the server refused the access token (401 `invalid_token`).
    #[cfg(any(feature = "async-client", feature = "blocking-client"))]
    pub(crate) fn access_rejected(&self) -> bool {
        self.tokens.as_ref().is_some_and(|t| t.access_rejected)
    }

    /// Whether an answer was handled since this session was made or restored, so that its idea
    /// of the server's clock rests on something (a `Date` header, or its absence).
    #[cfg(any(feature = "async-client", feature = "blocking-client"))]
    pub(crate) fn knows_server_clock(&self) -> bool {
        self.clock != ServerClock::Unknown
    }

    /// Learns the server's clock from any answer of the instance (an API call's too), received
    /// at your time `now`: see [`Session::clock_offset`]. [`Session::handle`] does it for the
    /// session's own answers.
    pub fn learn_clock<B>(&mut self, response: &Response<B>, now: SystemTime) {
        self.learn_date_header(response.headers(), now);
    }

    /// [`learn_clock`](Self::learn_clock) from an answer's headers alone.
    pub(crate) fn learn_date_header(&mut self, headers: &http::HeaderMap, now: SystemTime) {
        let written = headers.get(http::header::DATE);
        let second = unix_secs(now);
        if let (Some(written), Some((known, at))) = (written, &self.clock_date)
            && written == known
            && second == *at
        {
            return;
        }
        self.clock.learn(response::server_date_in(headers), now);
        self.clock_date = written.map(|written| (written.clone(), second));
    }

    // ----- commands -----

    /// `GET /api/v1/oauth-clients/local`. Possible in every state but [`State::LoggedIn`] (the
    /// tokens belong to the current pair).
    pub fn fetch_client(&self) -> Result<(Request<Body>, Pending), Error> {
        self.expect(Operation::FetchClient, |s| s != State::LoggedIn)?;
        Ok((
            request::oauth_client_request(&self.instance),
            self.pending(Step::FetchClient),
        ))
    }

    /// The password grant (or external-auth token exchange), from [`State::HaveClient`] or
    /// [`State::Revoked`]. On [`Error::TwoFactorRequired`], call again with
    /// [`Credentials::with_otp`].
    pub fn login(&self, credentials: &Credentials) -> Result<(Request<Body>, Pending), Error> {
        self.expect(Operation::Login, |s| {
            matches!(s, State::HaveClient | State::Revoked)
        })?;
        let client = self.client_or(Operation::Login)?;
        let request = request::password_grant_request(&self.instance, client, credentials)?;
        let mut pending = self.pending(Step::Login);
        pending.credentials = Some(Box::new(credentials.clone()));
        Ok((request, pending))
    }

    /// The refresh grant, from [`State::LoggedIn`]. Only one refresh may be in flight: PeerTube
    /// rotates the refresh token, and two refreshes with the same one either lose the login or
    /// leak a second session. A second call before the first is handled is
    /// [`Error::RefreshInFlight`].
    pub fn refresh(&mut self) -> Result<(Request<Body>, Pending), Error> {
        self.expect(Operation::Refresh, |s| s == State::LoggedIn)?;
        if self.refresh_in_flight {
            return Err(Error::RefreshInFlight);
        }
        let client = self.client_or(Operation::Refresh)?;
        let refresh_token = self.refresh_token_or(Operation::Refresh)?;
        let request = request::refresh_grant_request(&self.instance, client, refresh_token)?;
        self.refresh_in_flight = true;
        Ok((request, self.pending(Step::Refresh)))
    }

    /// `POST /api/v1/users/revoke-token`, from [`State::LoggedIn`]. An expired access token
    /// cannot be revoked: refresh first (see [`Session::access_expired`]), or [`Session::forget`].
    pub fn logout(&self) -> Result<(Request<Body>, Pending), Error> {
        self.expect(Operation::Logout, |s| s == State::LoggedIn)?;
        let access = self
            .access_token()
            .ok_or_else(|| self.invalid_state(Operation::Logout))?;
        let request = request::revoke_request(&self.instance, access)?;
        Ok((request, self.pending(Step::Logout)))
    }

    /// Drops the tokens locally without telling the server (their server session lives on
    /// until it expires; prefer [`Session::logout`]). Goes to [`State::HaveClient`], or stays in
    /// [`State::NoClient`].
    pub fn forget(&mut self) {
        self.tokens = None;
        self.logged_out = false;
        self.new_generation();
    }

    /// Tells the session that a request from [`Pending`] will get no answer (it failed to send,
    /// or timed out). For a refresh this allows the next one; note that a refresh that reached
    /// the server may have rotated the tokens already, in which case the next refresh answers
    /// [`Error::LoginRequired`].
    pub fn abandon(&mut self, pending: Pending) {
        if pending.step == Step::Refresh && pending.ticket == self.ticket() {
            self.refresh_in_flight = false;
        }
    }

    /// Puts `Authorization: Bearer <access token>` (marked sensitive) on any other PeerTube API
    /// request. Refuses a request that is not the instance's (another origin, or a path outside
    /// its path prefix: [`Error::ForeignOrigin`], see [`Instance::contains`]) and an access
    /// token past its expiry ([`Error::AccessTokenExpired`]: refresh first).
    pub fn authorize<B>(
        &self,
        request: &mut Request<B>,
        now: SystemTime,
    ) -> Result<Authorized, Error> {
        // A few reference counts: the target is checked while the headers change.
        let target = request.uri().clone();
        self.authorize_parts(Target::Unchecked(&target), request.headers_mut(), now)
    }

    /// [`authorize`](Self::authorize) for a request of any HTTP stack: its target and its
    /// headers.
    pub(crate) fn authorize_parts(
        &self,
        target: Target<'_>,
        headers: &mut http::HeaderMap,
        now: SystemTime,
    ) -> Result<Authorized, Error> {
        self.expect(Operation::Authorize, |s| s == State::LoggedIn)?;
        if let Target::Unchecked(target) = target
            && !self.instance.contains(target)
        {
            return Err(Error::ForeignOrigin);
        }
        if self.access_expired(now) {
            return Err(Error::AccessTokenExpired);
        }
        let access = self
            .access_token()
            .ok_or_else(|| self.invalid_state(Operation::Authorize))?;
        let value = request::bearer_header_value(access)?;
        headers.insert(AUTHORIZATION, value);
        Ok(Authorized {
            ticket: self.ticket(),
        })
    }

    /// Learns from the response to an authorized request. Returns `true` when it is 401 with
    /// code `invalid_token`: the token it carried is dead (expired, revoked, user blocked or
    /// password changed). If that is still the session's token, the session marks it so and
    /// [`Session::refresh_due`] becomes true: refresh once, then retry once.
    pub fn observe<B: AsRef<[u8]>>(
        &mut self,
        authorized: &Authorized,
        response: &Response<B>,
    ) -> bool {
        if response.status() != StatusCode::UNAUTHORIZED {
            self.note_worked(authorized);
            return false;
        }
        let current = authorized.ticket == self.ticket();
        let dead = self
            .parser
            .error(Operation::Authorize, response, &self.secrets(None))
            .code()
            == Some(&ErrorCode::InvalidToken);
        if dead
            && current
            && let Some(tokens) = &mut self.tokens
        {
            tokens.access_rejected = true;
        }
        dead
    }

    /// Notes that a request carrying the token `authorized` stands for was answered with
    /// something other than a 401: the token worked (see [`access_proven`](Self::access_proven)).
    pub(crate) fn note_worked(&mut self, authorized: &Authorized) {
        if authorized.ticket == self.ticket()
            && let Some(tokens) = &mut self.tokens
        {
            tokens.access_proven = true;
        }
    }

    /// Whether the session's access token was ever answered with something other than a 401
    /// (as [`observe`](Self::observe) saw): a token that worked and then died was used up or
    /// revoked, one that never worked may be refused by a server that refuses them all.
    #[cfg(any(feature = "async-client", feature = "blocking-client"))]
    pub(crate) fn access_proven(&self) -> bool {
        self.tokens.as_ref().is_some_and(|t| t.access_proven)
    }

    /// Tells the session that the server ended its token session by another route than
    /// [`Session::logout`]: a [`RevokeTokenSession`](crate::api::RevokeTokenSession) of the
    /// session listed as `currentSession`, sent with the token `authorized` stands for. If that
    /// token is still this session's, the session drops its tokens exactly as a logout does
    /// ([`State::Revoked`]) and this returns `true`; otherwise (a refresh or login replaced the
    /// token meanwhile) nothing changes.
    pub fn current_session_revoked(&mut self, authorized: &Authorized) -> bool {
        if authorized.ticket != self.ticket() || self.tokens.is_none() {
            return false;
        }
        self.tokens = None;
        self.logged_out = true;
        self.new_generation();
        true
    }

    /// Whether the token `authorize` put on a request is still this session's token (no
    /// refresh, login or logout happened since).
    pub fn is_current(&self, authorized: &Authorized) -> bool {
        authorized.ticket == self.ticket()
    }

    // ----- input -----

    /// Hands the response to a request back: the only place the state changes. `now` is when
    /// the response arrived; token lifetimes count from it.
    ///
    /// A response made stale by a newer change (another refresh, a login, a logout) is
    /// [`Error::StaleResponse`] and changes nothing. Error answers change the state where the
    /// server's answer means it: `invalid_grant` on refresh drops the tokens
    /// ([`Error::LoginRequired`]), `invalid_client` drops the client pair, 401 `invalid_token`
    /// on logout marks the access token dead.
    pub fn handle<B: AsRef<[u8]>>(
        &mut self,
        pending: Pending,
        response: &Response<B>,
        now: SystemTime,
    ) -> Result<Event, Error> {
        if pending.ticket != self.ticket() {
            return Err(Error::StaleResponse(pending.operation()));
        }
        self.learn_clock(response, now);
        match pending.step {
            Step::FetchClient => self.handle_client(response),
            Step::Login => self.handle_login(response, pending.credentials.as_deref(), now),
            Step::Refresh => self.handle_refresh(response, now),
            Step::Logout => self.handle_logout(response),
        }
    }

    fn handle_client<B: AsRef<[u8]>>(&mut self, response: &Response<B>) -> Result<Event, Error> {
        let client = self.parser.oauth_client(response, &self.secrets(None))?;
        self.client = Some(client);
        self.new_generation();
        Ok(Event::ClientFetched)
    }

    fn handle_login<B: AsRef<[u8]>>(
        &mut self,
        response: &Response<B>,
        credentials: Option<&Credentials>,
        now: SystemTime,
    ) -> Result<Event, Error> {
        match self.parser.login(response, &self.secrets(credentials)) {
            Ok(answer) => {
                let issued = self.issued_at(response, now);
                self.tokens = Some(Tokens::issued(answer, issued, None));
                self.logged_out = false;
                self.new_generation();
                Ok(Event::LoggedIn)
            }
            Err(error) => Err(self.after_error(error)),
        }
    }

    fn handle_refresh<B: AsRef<[u8]>>(
        &mut self,
        response: &Response<B>,
        now: SystemTime,
    ) -> Result<Event, Error> {
        self.refresh_in_flight = false;
        match self.parser.refresh(response, &self.secrets(None)) {
            Ok(answer) => {
                // Both tokens are replaced at once: the old pair is dead on the server.
                let previous = self.tokens.as_ref().map(|t| t.lineage);
                let issued = self.issued_at(response, now);
                self.tokens = Some(Tokens::issued(answer, issued, previous));
                self.new_generation();
                Ok(Event::Refreshed)
            }
            Err(error) => Err(self.after_error(error)),
        }
    }

    fn handle_logout<B: AsRef<[u8]>>(&mut self, response: &Response<B>) -> Result<Event, Error> {
        match self.parser.revoke(response, &self.secrets(None)) {
            Ok(answer) => {
                self.tokens = None;
                self.logged_out = true;
                self.new_generation();
                Ok(Event::LoggedOut {
                    redirect_url: answer.redirect_url,
                })
            }
            Err(error) => Err(self.after_error(error)),
        }
    }

    /// The state changes an error answer calls for (already redacted by the parser).
    fn after_error(&mut self, error: Error) -> Error {
        match &error {
            Error::LoginRequired(_) => {
                self.tokens = None;
                self.new_generation();
            }
            Error::InvalidClient(_) => {
                self.client = None;
                self.tokens = None;
                self.new_generation();
            }
            Error::InvalidToken(_) => {
                if let Some(tokens) = &mut self.tokens {
                    tokens.access_rejected = true;
                }
            }
            _ => {}
        }
        error
    }

    /// Every secret this session knows, plus a login's credentials: in case a server or proxy
    /// echoes what it was sent, none of them leaves the session inside an error.
    pub(crate) fn secrets<'a>(&'a self, credentials: Option<&'a Credentials>) -> Secrets<'a> {
        let mut secrets = Secrets::none();
        if let Some(client) = &self.client {
            secrets = secrets.client(client);
        }
        if let Some(tokens) = &self.tokens {
            secrets = secrets
                .access_token(&tokens.access)
                .refresh_token(&tokens.refresh);
        }
        if let Some(credentials) = credentials {
            secrets = secrets.credentials(credentials);
        }
        secrets
    }

    // ----- helpers -----

    /// When a token answer was issued, in Unix seconds of the server's clock: its `Date`, or
    /// `now` moved onto the server's clock.
    fn issued_at<B>(&self, response: &Response<B>, now: SystemTime) -> u64 {
        response::server_date(response).map_or_else(|| self.clock.server_secs(now), unix_secs)
    }

    fn ticket(&self) -> Ticket {
        Ticket {
            session: self.id,
            generation: self.generation,
        }
    }

    fn pending(&self, step: Step) -> Pending {
        Pending {
            step,
            ticket: self.ticket(),
            credentials: None,
        }
    }

    /// A copy to read, with an identity of its own, so that it accepts none of this session's
    /// handles and this session none of its handles.
    #[cfg_attr(
        not(any(feature = "async-client", feature = "blocking-client")),
        allow(dead_code)
    )]
    pub(crate) fn detached_copy(&self) -> Session {
        Session {
            instance: self.instance.clone(),
            client: self.client.clone(),
            tokens: self.tokens.clone(),
            logged_out: self.logged_out,
            id: NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed),
            generation: 0,
            refresh_in_flight: self.refresh_in_flight,
            refresh_margin: self.refresh_margin,
            parser: self.parser,
            clock: self.clock,
            clock_date: self.clock_date.clone(),
        }
    }

    pub(super) fn new_generation(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        self.refresh_in_flight = false;
    }

    fn invalid_state(&self, operation: Operation) -> Error {
        Error::InvalidState {
            operation,
            state: self.state(),
        }
    }

    fn expect(&self, operation: Operation, allowed: impl Fn(State) -> bool) -> Result<(), Error> {
        if allowed(self.state()) {
            Ok(())
        } else {
            Err(self.invalid_state(operation))
        }
    }

    fn client_or(&self, operation: Operation) -> Result<&OAuthClient, Error> {
        self.client
            .as_ref()
            .ok_or_else(|| self.invalid_state(operation))
    }

    fn refresh_token_or(&self, operation: Operation) -> Result<&RefreshToken, Error> {
        self.tokens
            .as_ref()
            .map(|t| &t.refresh)
            .ok_or_else(|| self.invalid_state(operation))
    }
}
