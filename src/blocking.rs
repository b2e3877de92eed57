//! A blocking driver over any blocking HTTP client, and its ureq transport (feature `ureq`).
//!
//! [`BlockingClient`] runs the session's steps over a [`Transport`]: log in (fetching the
//! client pair when needed, asking for the one-time code when the server wants one), keep the
//! access token fresh, send authorized API calls retried after one refresh on
//! `invalid_token` (and again with the new token when another caller's refresh killed the
//! one they carried), log out. It can be shared by many threads (`Arc<BlockingClient<_>>`):
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
//! let me = http::Request::get("/api/v1/users/me").body(())?;
//! let answer = client.send_authorized(me)?;
//! println!("{}", String::from_utf8_lossy(answer.body()));
//! client.logout()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub use crate::driver::client::{LoginOutcome, OtherSessionsEnded, Relogin, SessionRevoked};
pub use crate::driver::{
    CallDeadline, Clock, Config, ConfigBuilder, DEFAULT_CALL_TIMEOUT, DEFAULT_TIMEOUT,
    DEFAULT_USER_AGENT, DeadlineElapsed, ExchangeLimits, STORE_BUDGET,
};
pub use crate::session::DEFAULT_REFRESH_MARGIN;
#[cfg(feature = "ureq")]
pub use ::ureq;

#[cfg(feature = "ureq")]
pub use crate::ureq_transport::{UreqTransport, UreqTransportBuilder};

use crate::Instance;
use crate::api::{Endpoint, Me, TokenSession};
use crate::driver::client::{AsyncClient, AsyncTransport};
use crate::driver::deadline_elapsed;
use crate::error::{Error, TransportError};
use crate::request::{Body, Credentials};
use crate::response::RevokeResponse;
use crate::secret::AccessToken;
use crate::session::{SavedSession, Session, State};
use crate::store::{MemoryStore, SessionStore};
use http::{Request, Response};
use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;
/// Sends one request and returns the whole answer, whatever its status: 4xx and 5xx are
/// answers, not errors. Must keep every header and follow no redirects, and should end by the
/// [`CallDeadline`] in the request's extensions (a blocking call cannot be interrupted from
/// outside, so the transport is what bounds an exchange).
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
///
/// It runs the same driver as the async client on the calling thread: the transport answers at
/// once, and a caller that needs the token while another thread refreshes it parks until that
/// refresh is handled, and gets its outcome.
///
/// Every call has one deadline ([`Config::call_timeout`]) covering all of its exchanges and its
/// wait for another thread's refresh. Each request carries it as a [`CallDeadline`], with the
/// exchange's timeout and body cap as [`ExchangeLimits`]; the transport keeps to both (a
/// blocking call cannot be interrupted from outside).
pub struct BlockingClient<T, S = MemoryStore> {
    driver: AsyncClient<OnThisThread<T>, S>,
}

/// A blocking transport seen as an async one whose answers are always ready.
struct OnThisThread<T>(T);

impl<T: Transport> AsyncTransport for OnThisThread<T> {
    fn send(
        &self,
        request: Request<Body>,
    ) -> impl Future<Output = Result<Response<Vec<u8>>, TransportError>> + Send {
        std::future::ready(self.0.send(request))
    }
}

impl<T, S> fmt::Debug for BlockingClient<T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingClient")
            .field("driver", &self.driver)
            .finish()
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
            driver: AsyncClient::from_session(OnThisThread(transport), session),
        }
    }

    /// Shares the session through `store` (see [`crate::store`]): the stored session, when
    /// there is one, replaces this client's at its first call; every change of tokens is saved;
    /// refreshes take the store's lease, so one process at a time refreshes.
    pub fn with_store<S: SessionStore>(self, store: S) -> BlockingClient<T, S> {
        BlockingClient {
            driver: self.driver.with_store(store),
        }
    }
}

impl<T: Transport, S: SessionStore> BlockingClient<T, S> {
    /// The store the session is shared through.
    pub fn store(&self) -> &S {
        self.driver.store()
    }

    /// Logs in again by itself when the refresh token is dead (expired, revoked, burned by a
    /// refresh whose answer was lost), with the credentials `relogin` gives, and retries the
    /// call once. With a store, one process logs in for all of them, under the refresh lease.
    /// It never loops: a refused login (wrong password, 429 with its `Retry-After`) is the
    /// call's answer. A logout is never undone.
    pub fn with_relogin(self, relogin: Relogin) -> Self {
        BlockingClient {
            driver: self.driver.with_relogin(relogin),
        }
    }

    /// Configures the client (see [`Config`]): its session takes the body cap and the refresh
    /// margin, every request the timeout, the body cap and the `User-Agent`.
    pub fn with_config(self, config: Config) -> Self {
        BlockingClient {
            driver: self.driver.with_config(config),
        }
    }

    /// The client's configuration.
    pub fn config(&self) -> &Config {
        self.driver.config()
    }

    /// The instance.
    pub fn instance(&self) -> Instance {
        self.driver.instance()
    }

    /// The session's state.
    pub fn state(&self) -> State {
        self.driver.state()
    }

    /// The session's saved form, to persist (see [`SavedSession`] for the security note).
    pub fn save(&self) -> SavedSession {
        self.driver.save()
    }

    /// Reads a copy of the session, taken now. `read` runs without any lock held, so it may use
    /// the client; the copy is detached (the client accepts none of its handles).
    pub fn with_session<R>(&self, read: impl FnOnce(&Session) -> R) -> R {
        self.driver.with_session(read)
    }

    /// Fetches the instance's OAuth client pair.
    pub fn fetch_client(&self) -> Result<(), Error> {
        let deadline = self.driver.deadline();
        block_on(deadline, self.driver.fetch_client_within(deadline))
    }

    /// Logs in, fetching the client pair first when the session has none. If a cached pair is
    /// rejected (`invalid_client`), fetches it again and retries once.
    ///
    /// A login is a deliberate act: it replaces the session the store holds (every process
    /// sharing it takes the new one) and revokes the pair it replaced. It is made under the
    /// store's lease, so that logins racing on one store (processes starting together, two
    /// command lines on one profile) end with one session alive: each one that comes after
    /// supersedes the one before. To log in only when the store holds no usable session, use
    /// [`login_if_needed`](Self::login_if_needed).
    ///
    /// [`Error::TwoFactorRequired`] means: call again with
    /// [`Credentials::with_otp`], or use [`BlockingClient::login_with_otp_prompt`].
    /// [`Error::StaleResponse`] means another login on this client finished first: that one's
    /// session is kept (and the tokens this one got, if any, were revoked).
    pub fn login(&self, credentials: &Credentials) -> Result<(), Error> {
        let deadline = self.driver.deadline();
        block_on(deadline, self.driver.login_within(credentials, deadline))
    }

    /// Logs in only if the store holds no usable session (the first process of a fleet starting
    /// together logs in, the others use its session: one login, not one per process). Under
    /// the store's lease, like [`login`](Self::login); [`LoginOutcome`] says which happened.
    ///
    /// ```no_run
    /// # use peertube_session::blocking::{BlockingClient, LoginOutcome, UreqTransport};
    /// # use peertube_session::{Credentials, Instance};
    /// # use peertube_session::store::FileStore;
    /// let client = BlockingClient::new(UreqTransport::new(), Instance::new("https://video.example.org")?)
    ///     .with_store(FileStore::open("/var/lib/uploader/peertube-session.json")?);
    /// // At every worker's start: only one of them sends a login.
    /// match client.login_if_needed(&Credentials::password("alice", "correct horse"))? {
    ///     LoginOutcome::LoggedIn => println!("logged in for the fleet"),
    ///     _ => println!("using the fleet's session"),
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn login_if_needed(&self, credentials: &Credentials) -> Result<LoginOutcome, Error> {
        let deadline = self.driver.deadline();
        block_on(
            deadline,
            self.driver.login_if_needed_within(credentials, deadline),
        )
    }

    /// Logs in, and if the server asks for a two-factor code, calls `ask_otp` once and logs in
    /// again with it (no second password prompt). `None` from `ask_otp` gives up with
    /// [`Error::TwoFactorRequired`]. Each login has its own deadline; the time `ask_otp` takes
    /// is not counted.
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
    /// their own, and get its outcome: [`Error::LoginRequired`] for all of them when the
    /// refresh token is no longer valid, the same transport error when it failed on the way.
    pub fn ensure_fresh(&self) -> Result<(), Error> {
        let deadline = self.driver.deadline();
        block_on(deadline, self.driver.refresh_within(deadline))
    }

    /// A valid access token, refreshed first if due.
    pub fn access_token(&self) -> Result<AccessToken, Error> {
        let deadline = self.driver.deadline();
        block_on(deadline, self.driver.access_token_within(deadline))
    }

    /// Sends any other PeerTube API request with the access token; a request for a path only
    /// (`/api/v1/users/me`) goes to this instance. If the answer is 401 `invalid_token`,
    /// refreshes once and retries; if the token on it had meanwhile been replaced by another
    /// caller's refresh (or another process's, through the store), retries with the new token.
    /// At most eight sends within the call's deadline (tokens rotating across a fleet faster
    /// than this process is answered), resting on at most two refreshes of this client's own;
    /// the last answer is returned whatever its status. Any body that converts into [`Body`]
    /// will do: `()`, a `String`, a `Vec<u8>`. A JSON call:
    ///
    /// ```no_run
    /// # use peertube_session::blocking::{BlockingClient, UreqTransport};
    /// # use peertube_session::Instance;
    /// # let client = BlockingClient::new(UreqTransport::new(), Instance::new("https://video.example.org")?);
    /// let rename = serde_json::json!({ "displayName": "Alice" });
    /// let request = http::Request::put("/api/v1/users/me")
    ///     .header("content-type", "application/json")
    ///     .body(serde_json::to_vec(&rename)?)?;
    /// let answer = client.send_authorized(request)?;
    /// assert!(answer.status().is_success());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_authorized<B: Into<Body>>(
        &self,
        request: Request<B>,
    ) -> Result<Response<Vec<u8>>, Error> {
        let request = request.map(Into::into);
        let deadline = self.driver.deadline();
        block_on(
            deadline,
            self.driver.send_authorized_within(request, deadline),
        )
    }

    /// Logs out (refreshing first if the access token is expired, since an expired token cannot
    /// be revoked). Returns the answer, with the `redirectUrl` an auth plugin may send.
    pub fn logout(&self) -> Result<RevokeResponse, Error> {
        let deadline = self.driver.deadline();
        block_on(deadline, self.driver.logout_within(deadline))
    }

    /// Calls any [`Endpoint`] as an authorized request (refreshing and retrying like
    /// [`send_authorized`](Self::send_authorized)) and reads its answer, errors typed as
    /// [`crate::api`] describes. The answer's body cap is the larger of the configured one and
    /// the endpoint's [`BODY_LIMIT`](Endpoint::BODY_LIMIT).
    pub fn call<E: Endpoint>(&self, endpoint: &E) -> Result<E::Output, Error> {
        let deadline = self.driver.deadline();
        block_on(deadline, self.driver.call_within(endpoint, deadline))
    }

    /// `GET /api/v1/users/me`: the logged-in user's id, username and role.
    pub fn me(&self) -> Result<Me, Error> {
        let deadline = self.driver.deadline();
        block_on(deadline, self.driver.me_within(deadline))
    }

    /// Every login session of the logged-in account (PeerTube 7.3 and later; an older server
    /// is [`Error::NotSupported`]), oldest first; the one marked
    /// [`current_session`](TokenSession::current_session) is this client's. One call: its
    /// deadline covers the lookup of the user and every page.
    ///
    /// ```no_run
    /// # use peertube_session::blocking::{BlockingClient, UreqTransport};
    /// # use peertube_session::Instance;
    /// # let client = BlockingClient::new(UreqTransport::new(), Instance::new("https://video.example.org")?);
    /// for session in client.sessions()? {
    ///     let here = if session.current_session { " (this program)" } else { "" };
    ///     let device = session.login_device.as_deref().unwrap_or("unknown device");
    ///     println!("{} {device} since {:?}{here}", session.id, session.login_date);
    /// }
    /// # Ok::<(), peertube_session::Error>(())
    /// ```
    pub fn sessions(&self) -> Result<Vec<TokenSession>, Error> {
        let deadline = self.driver.deadline();
        block_on(deadline, self.driver.sessions_within(deadline))
    }

    /// Ends one login session of the logged-in account. Ending this client's own session is a
    /// logout: the client (and every process sharing its store) ends up as after
    /// [`logout`](Self::logout). An unknown or already ended session is [`Error::NotFound`].
    pub fn revoke_session(&self, session_id: u64) -> Result<SessionRevoked, Error> {
        let deadline = self.driver.deadline();
        block_on(
            deadline,
            self.driver.revoke_session_within(session_id, deadline),
        )
    }

    /// Ends every login session of the account but this client's own, and says which it ended.
    /// Sessions that refresh meanwhile (and so change id) are caught by listing again, up to
    /// three rounds.
    ///
    /// PeerTube lists (and lets one revoke) only sessions whose access token is still valid
    /// (`listSessionsOf` and `loadSessionOf` in its `oauth-token.ts`): a session left unused
    /// for longer than the access token's lifetime (1 day by default) is out of reach until its
    /// holder refreshes it, though its refresh token lives on (2 weeks by default). This call
    /// cannot end those; run it again later, or have an administrator reset the password.
    pub fn log_out_other_sessions(&self) -> Result<OtherSessionsEnded, Error> {
        let deadline = self.driver.deadline();
        block_on(
            deadline,
            self.driver.log_out_other_sessions_within(deadline),
        )
    }
}

/// Runs one of the driver's futures to completion on this thread, or until `deadline`. They
/// never wait for IO (the transport answers synchronously), only for another thread's refresh,
/// whose end wakes them; past the deadline that wait is given up (dropping the future is safe at
/// any point) and the call ends with a timeout.
fn block_on<R, F>(deadline: CallDeadline, future: F) -> Result<R, Error>
where
    F: Future<Output = Result<R, Error>>,
{
    struct Unpark(std::thread::Thread);

    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }

        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }

    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        let now = Instant::now();
        if deadline.has_passed(now) {
            return Err(deadline_elapsed());
        }
        // A spurious unpark only costs one more poll.
        std::thread::park_timeout(deadline.remaining(now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Pending until another thread wakes it, by reference or by value.
    fn woken_from_another_thread(by_ref: bool) -> impl Future<Output = Result<(), Error>> {
        let mut started = false;
        std::future::poll_fn(move |cx| {
            if started {
                return Poll::Ready(Ok(()));
            }
            started = true;
            let waker = cx.waker().clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                if by_ref {
                    waker.wake_by_ref();
                } else {
                    waker.wake();
                }
            });
            Poll::Pending
        })
    }

    #[test]
    fn a_wake_from_another_thread_ends_the_wait_either_way() {
        for by_ref in [true, false] {
            let started = Instant::now();
            let deadline = CallDeadline::after(started, Duration::from_secs(10));
            block_on(deadline, woken_from_another_thread(by_ref)).unwrap();
            // Woken, not timed out: far sooner than the deadline.
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "by_ref={by_ref}"
            );
        }
    }
}
