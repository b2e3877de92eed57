//! The one driver behind both [`AsyncClient`] and the blocking client: the session's steps over
//! an [`AsyncTransport`], with single-flight refresh.

use crate::Instance;
use crate::driver::Clock;
use crate::error::{Error, Operation, TransportError};
use crate::request::{Body, Credentials};
use crate::secret::AccessToken;
use crate::session::{Authorized, Event, Pending, SavedSession, Session, State};
use http::{Request, Response};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

/// Sends one request and returns the whole answer, whatever its status: 4xx and 5xx are
/// answers, not errors. Must keep every header and follow no redirects.
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

/// A PeerTube session driven over an [`AsyncTransport`], shareable across tasks.
pub struct AsyncClient<T> {
    transport: T,
    session: Mutex<Session>,
    /// Held while a refresh is out, so other tasks wait for its result instead of sending a
    /// second refresh with the same token.
    refresh_flight: tokio::sync::Mutex<()>,
    clock: Clock,
}

impl<T> fmt::Debug for AsyncClient<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncClient")
            .field("session", &*lock(&self.session))
            .finish_non_exhaustive()
    }
}

impl<T: AsyncTransport> AsyncClient<T> {
    /// A client for `instance` with nothing known yet.
    // Public through `asynchronous` (feature `hyper`); the blocking client starts from a session.
    #[cfg_attr(not(feature = "hyper"), allow(dead_code))]
    pub fn new(transport: T, instance: Instance) -> Self {
        Self::from_session(transport, Session::new(instance))
    }

    /// A client continuing `session` (new, from a cached client pair, or restored from its
    /// saved form).
    pub fn from_session(transport: T, session: Session) -> Self {
        AsyncClient {
            transport,
            session: Mutex::new(session),
            refresh_flight: tokio::sync::Mutex::new(()),
            clock: system_clock(),
        }
    }

    /// Reads the time from `clock` instead of the system clock (for tests).
    pub fn with_clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    // The session lock is only ever taken between awaits, never across one.
    fn session(&self) -> MutexGuard<'_, Session> {
        lock(&self.session)
    }

    fn now(&self) -> SystemTime {
        (self.clock)()
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

    /// Reads the session.
    pub fn with_session<R>(&self, read: impl FnOnce(&Session) -> R) -> R {
        read(&self.session())
    }

    async fn exchange(&self, step: (Request<Body>, Pending)) -> Result<Event, Error> {
        let (request, pending) = step;
        let operation = pending.operation();
        let mut in_flight = InFlight {
            session: &self.session,
            pending: Some(pending),
        };
        let answer = self.transport.send(request).await;
        let Some(pending) = in_flight.pending.take() else {
            return Err(Error::StaleResponse(operation));
        };
        match answer {
            Ok(response) => self.session().handle(pending, &response, self.now()),
            Err(error) => {
                self.session().abandon(pending);
                Err(Error::Transport(error))
            }
        }
    }

    /// Fetches the instance's OAuth client pair.
    pub async fn fetch_client(&self) -> Result<(), Error> {
        let step = self.session().fetch_client()?;
        self.exchange(step).await.map(drop)
    }

    /// Logs in, fetching the client pair first when the session has none. If a cached pair is
    /// rejected (`invalid_client`), fetches it again and retries once.
    ///
    /// [`Error::TwoFactorRequired`] means: call again with
    /// [`Credentials::with_otp`], or use [`AsyncClient::login_with_otp_prompt`].
    pub async fn login(&self, credentials: &Credentials) -> Result<(), Error> {
        let fetched = self.state() == State::NoClient;
        if fetched {
            self.fetch_client().await?;
        }
        let step = self.session().login(credentials)?;
        match self.exchange(step).await {
            Err(Error::InvalidClient(_)) if !fetched => {
                self.fetch_client().await?;
                let step = self.session().login(credentials)?;
                self.exchange(step).await.map(drop)
            }
            other => other.map(drop),
        }
    }

    /// Logs in, and if the server asks for a two-factor code, awaits `ask_otp` once and logs
    /// in again with it (no second password prompt). `None` gives up with
    /// [`Error::TwoFactorRequired`].
    pub async fn login_with_otp_prompt<F>(
        &self,
        credentials: &Credentials,
        ask_otp: F,
    ) -> Result<(), Error>
    where
        F: Future<Output = Option<String>>,
    {
        match self.login(credentials).await {
            Err(Error::TwoFactorRequired(challenge)) => match ask_otp.await {
                Some(code) => self.login(&credentials.clone().with_otp(code)).await,
                None => Err(Error::TwoFactorRequired(challenge)),
            },
            other => other,
        }
    }

    /// Refreshes the token pair if it is due (near expiry, expired, or reported dead). Tasks
    /// that need it meanwhile wait for this one refresh instead of sending their own.
    /// [`Error::LoginRequired`] when the refresh token is no longer valid.
    pub async fn ensure_fresh(&self) -> Result<(), Error> {
        if !refresh_needed(&self.session(), self.now())? {
            return Ok(());
        }
        let _flight = self.refresh_flight.lock().await;
        // Another task may have refreshed while this one waited.
        if !refresh_needed(&self.session(), self.now())? {
            return Ok(());
        }
        let step = self.session().refresh()?;
        self.exchange(step).await.map(drop)
    }

    /// A valid access token, refreshed first if due.
    pub async fn access_token(&self) -> Result<AccessToken, Error> {
        self.ensure_fresh().await?;
        self.session()
            .access_token()
            .cloned()
            .ok_or(Error::AccessTokenExpired)
    }

    /// Sends any other PeerTube API request with the access token. If the answer is 401
    /// `invalid_token`, refreshes once and retries; if the token on it had meanwhile been
    /// replaced by another caller's refresh, retries with the new token. At most three sends;
    /// the last answer is returned whatever its status.
    pub async fn send_authorized(
        &self,
        request: Request<Body>,
    ) -> Result<Response<Vec<u8>>, Error> {
        self.ensure_fresh().await?;
        let mut refreshed = false;
        let mut sends = 0;
        loop {
            sends += 1;
            let (ticket, response) = self.send_with_token(copy_request(&request)).await?;
            // `Some(whether the dead token was still ours)` when the token on it was dead.
            let dead = {
                let mut session = self.session();
                session
                    .observe(&ticket, &response)
                    .then(|| session.is_current(&ticket))
            };
            match dead {
                None => return Ok(response),
                Some(_) if sends == MAX_SENDS => return Ok(response),
                // Our own token died again after the one refresh: give the answer back.
                Some(true) if refreshed => return Ok(response),
                Some(ours) => refreshed |= ours,
            }
            self.ensure_fresh().await?;
        }
    }

    async fn send_with_token(
        &self,
        mut request: Request<Body>,
    ) -> Result<(Authorized, Response<Vec<u8>>), Error> {
        let ticket = self.session().authorize(&mut request, self.now())?;
        let response = self
            .transport
            .send(request)
            .await
            .map_err(Error::Transport)?;
        Ok((ticket, response))
    }

    /// Logs out (refreshing first if the access token is expired, since an expired token cannot
    /// be revoked). Returns the `redirectUrl` an auth plugin may send.
    pub async fn logout(&self) -> Result<Option<String>, Error> {
        self.ensure_fresh().await?;
        let step = self.session().logout()?;
        let event = match self.exchange(step).await {
            Err(Error::InvalidToken(_)) => {
                self.ensure_fresh().await?;
                let step = self.session().logout()?;
                self.exchange(step).await?
            }
            other => other?,
        };
        Ok(logout_redirect(event))
    }
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

/// How many times `send_authorized` sends one request at most. A 401 `invalid_token` for the
/// session's current token leads to one refresh and a retry; a 401 for a token another caller
/// has already replaced (PeerTube kills the old access token when a refresh rotates the pair,
/// so requests in flight during a refresh fail) leads to a retry with the new token, no
/// refresh.
const MAX_SENDS: usize = 3;

fn system_clock() -> Clock {
    Arc::new(SystemTime::now)
}

/// A panic elsewhere while holding the lock leaves a session that is still consistent (every
/// change happens in one `handle` call), so keep using it.
fn lock(session: &Mutex<Session>) -> MutexGuard<'_, Session> {
    session
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A copy of a request for the one retry after a refresh; extensions are not copied (they are
/// not `Clone`), and the `Authorization` header is replaced by `authorize` anyway.
fn copy_request(request: &Request<Body>) -> Request<Body> {
    let mut copy = Request::new(request.body().clone());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    copy
}

/// Whether the session needs a refresh before its token is used; only a logged-in session has
/// a token to use.
fn refresh_needed(session: &Session, now: SystemTime) -> Result<bool, Error> {
    match session.state() {
        State::LoggedIn => Ok(session.refresh_due(now)),
        state => Err(Error::InvalidState {
            operation: Operation::Authorize,
            state,
        }),
    }
}

/// The `redirectUrl` of a logout answer.
fn logout_redirect(event: Event) -> Option<String> {
    match event {
        Event::LoggedOut { redirect_url } => redirect_url,
        _ => None,
    }
}
