//! A blocking driver over any blocking HTTP client, and its ureq transport (feature `ureq`).
//!
//! [`BlockingClient`] runs the session's steps over a [`Transport`]: log in (fetching the
//! client pair when needed, asking for the one-time code when the server wants one), keep the
//! access token fresh, send authorized API calls with one refresh-and-retry on
//! `invalid_token`, log out. It can be shared by many threads (`Arc<BlockingClient<_>>`):
//! refreshes are single-flight, so no two requests ever carry the same refresh token.
//!
//! ```no_run
//! use peertube_session::blocking::{BlockingClient, UreqTransport};
//! use peertube_session::{Credentials, Instance};
//!
//! let client = BlockingClient::new(UreqTransport::new(), Instance::new("https://video.example.org")?);
//! client.login_with_otp_prompt(&Credentials::password("alice", "correct horse"), || {
//!     Some("123456".to_owned()) // ask the user
//! })?;
//! let me = http::Request::get(client.instance().uri("/api/v1/users/me")?).body(().into())?;
//! let answer = client.send_authorized(me)?;
//! println!("{}", String::from_utf8_lossy(answer.body()));
//! client.logout()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub use crate::driver::{Clock, DEFAULT_TIMEOUT};
pub use crate::ureq_transport::UreqTransport;

use crate::Instance;
use crate::driver::{MAX_SENDS, copy_request, lock, logout_redirect, refresh_needed, system_clock};
use crate::error::{Error, TransportError};
use crate::request::{Body, Credentials};
use crate::secret::AccessToken;
use crate::session::{Authorized, Event, Pending, SavedSession, Session, State};
use http::{Request, Response};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

/// Sends one request and returns the whole answer, whatever its status: 4xx and 5xx are
/// answers, not errors. Must keep every header and follow no redirects.
///
/// Closures implement it, so any blocking HTTP client fits:
///
/// ```
/// use peertube_session::blocking::{BlockingClient, Transport};
/// use peertube_session::{Body, Instance, TransportError};
///
/// let transport = |request: http::Request<Body>| -> Result<http::Response<Vec<u8>>, TransportError> {
///     // hand `request` to your HTTP client here
///     # let _ = request;
///     Ok(http::Response::builder().status(503).body(Vec::new()).unwrap())
/// };
/// let client = BlockingClient::new(transport, Instance::new("https://video.example.org")?);
/// # Ok::<(), peertube_session::Error>(())
/// ```
pub trait Transport: Send + Sync {
    /// Sends `request`, returns its answer.
    fn send(&self, request: Request<Body>) -> Result<Response<Vec<u8>>, TransportError>;
}

impl<F> Transport for F
where
    F: Fn(Request<Body>) -> Result<Response<Vec<u8>>, TransportError> + Send + Sync,
{
    fn send(&self, request: Request<Body>) -> Result<Response<Vec<u8>>, TransportError> {
        self(request)
    }
}

/// A PeerTube session driven over a blocking [`Transport`], shareable across threads.
pub struct BlockingClient<T> {
    transport: T,
    session: Mutex<Session>,
    /// Held while a refresh is out, so other callers wait for its result instead of sending
    /// a second refresh with the same token.
    refresh_flight: Mutex<()>,
    clock: Clock,
}

impl<T> fmt::Debug for BlockingClient<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingClient")
            .field("session", &*lock(&self.session))
            .finish_non_exhaustive()
    }
}

impl<T: Transport> BlockingClient<T> {
    /// A client for `instance` with nothing known yet.
    pub fn new(transport: T, instance: Instance) -> Self {
        Self::from_session(transport, Session::new(instance))
    }

    /// A client continuing `session` (new, from a cached client pair, or restored from its
    /// saved form).
    pub fn from_session(transport: T, session: Session) -> Self {
        BlockingClient {
            transport,
            session: Mutex::new(session),
            refresh_flight: Mutex::new(()),
            clock: system_clock(),
        }
    }

    /// Reads the time from `clock` instead of the system clock (for tests).
    pub fn with_clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

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

    /// Sends one step's request and hands its answer to the session.
    fn exchange(&self, step: (Request<Body>, Pending)) -> Result<Event, Error> {
        let (request, pending) = step;
        match self.transport.send(request) {
            Ok(response) => self.session().handle(pending, &response, self.now()),
            Err(error) => {
                self.session().abandon(pending);
                Err(Error::Transport(error))
            }
        }
    }

    /// Fetches the instance's OAuth client pair.
    pub fn fetch_client(&self) -> Result<(), Error> {
        let step = self.session().fetch_client()?;
        self.exchange(step).map(drop)
    }

    /// Logs in, fetching the client pair first when the session has none. If a cached pair is
    /// rejected (`invalid_client`), fetches it again and retries once.
    ///
    /// [`Error::TwoFactorRequired`] means: call again with
    /// [`Credentials::with_otp`], or use [`BlockingClient::login_with_otp_prompt`].
    pub fn login(&self, credentials: &Credentials) -> Result<(), Error> {
        let fetched = self.state() == State::NoClient;
        if fetched {
            self.fetch_client()?;
        }
        let step = self.session().login(credentials)?;
        match self.exchange(step) {
            Err(Error::InvalidClient(_)) if !fetched => {
                self.fetch_client()?;
                let step = self.session().login(credentials)?;
                self.exchange(step).map(drop)
            }
            other => other.map(drop),
        }
    }

    /// Logs in, and if the server asks for a two-factor code, calls `ask_otp` once and logs in
    /// again with it (no second password prompt). `None` from `ask_otp` gives up with
    /// [`Error::TwoFactorRequired`].
    pub fn login_with_otp_prompt(
        &self,
        credentials: &Credentials,
        ask_otp: impl FnOnce() -> Option<String>,
    ) -> Result<(), Error> {
        match self.login(credentials) {
            Err(Error::TwoFactorRequired(challenge)) => match ask_otp() {
                Some(code) => self.login(&credentials.clone().with_otp(code)),
                None => Err(Error::TwoFactorRequired(challenge)),
            },
            other => other,
        }
    }

    /// Refreshes the token pair if it is due (near expiry, expired, or reported dead). Callers
    /// on other threads that need it meanwhile wait for this one refresh instead of sending
    /// their own. [`Error::LoginRequired`] when the refresh token is no longer valid.
    pub fn ensure_fresh(&self) -> Result<(), Error> {
        if !self.refresh_needed()? {
            return Ok(());
        }
        let _flight = self
            .refresh_flight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Another caller may have refreshed while this one waited.
        if !self.refresh_needed()? {
            return Ok(());
        }
        let step = self.session().refresh()?;
        self.exchange(step).map(drop)
    }

    fn refresh_needed(&self) -> Result<bool, Error> {
        refresh_needed(&self.session(), self.now())
    }

    /// A valid access token, refreshed first if due.
    pub fn access_token(&self) -> Result<AccessToken, Error> {
        self.ensure_fresh()?;
        self.session()
            .access_token()
            .cloned()
            .ok_or(Error::AccessTokenExpired)
    }

    /// Sends any other PeerTube API request with the access token. If the answer is 401
    /// `invalid_token`, refreshes once and retries; if the token on it had meanwhile been
    /// replaced by another caller's refresh, retries with the new token. At most three sends;
    /// the last answer is returned whatever its status.
    pub fn send_authorized(&self, request: Request<Body>) -> Result<Response<Vec<u8>>, Error> {
        self.ensure_fresh()?;
        let mut refreshed = false;
        let mut sends = 0;
        loop {
            sends += 1;
            let (ticket, response) = self.send_with_token(copy_request(&request))?;
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
            self.ensure_fresh()?;
        }
    }

    fn send_with_token(
        &self,
        mut request: Request<Body>,
    ) -> Result<(Authorized, Response<Vec<u8>>), Error> {
        let ticket = self.session().authorize(&mut request, self.now())?;
        let response = self.transport.send(request).map_err(Error::Transport)?;
        Ok((ticket, response))
    }

    /// Logs out (refreshing first if the access token is expired, since an expired token cannot
    /// be revoked). Returns the `redirectUrl` an auth plugin may send.
    pub fn logout(&self) -> Result<Option<String>, Error> {
        self.ensure_fresh()?;
        let step = self.session().logout()?;
        let event = match self.exchange(step) {
            Err(Error::InvalidToken(_)) => {
                self.ensure_fresh()?;
                let step = self.session().logout()?;
                self.exchange(step)?
            }
            other => other?,
        };
        Ok(logout_redirect(event))
    }
}
