//! A fake PeerTube: a model of a real server's session endpoints, for tests (feature `fake`).
//!
//! It is written from the protocol notes, **independently of this crate's request builders and
//! response parsers**: it reads requests and writes answers on its own, so a client mistake is
//! not mirrored by the server. Its core is a plain function from `http::Request` to
//! `http::Response` ([`FakePeerTube::handle`]), with its own clock that only moves when told;
//! [`FakePeerTube::serve`] puts the same model on a loopback port for real-socket tests.
//!
//! What it answers, each as PeerTube does (status, `code`, body shape, headers):
//!
//! | route | behaviour |
//! |---|---|
//! | `GET /api/v1/oauth-clients/local` | the client pair; 403 without `code` when `Host` is not the configured host; 500 with code `Error` for an install without a client row ([`FakeBuilder::without_oauth_client`]) |
//! | `POST /api/v1/users/token` | form check, client check, grant checks, password grant (username case-insensitive, e-mail, blocked and unverified users, pending or rejected registrations, TOTP two-factor), external-auth tokens (5 minutes, single use), refresh grant with rotation, expiries on the fake clock, the login rate limit (plain-text 429 with `Retry-After` and `X-RateLimit-*`) |
//! | `POST /api/v1/users/revoke-token` | case-sensitive `Bearer` check; 200 `{"success":true}` (with `redirectUrl` for users set up with one); 401 `invalid_token` / `unauthorized_request`, 400 `invalid_request` |
//! | `/api/v1/ping` | 200 `pong`, no token needed, no limit (what a client reads the server's `Date` from) |
//! | `GET /api/v1/users/me` | `{"id","username","email","role","blocked"}` for a live token (ids are 1-based positions in the builder's users), 401 `invalid_token` otherwise |
//! | `GET /api/v1/users/{id}/token-sessions` | PeerTube 8 only: the user's live token pairs (both tokens valid), `start`/`count` (0–100, default 15)/`sort` (`createdAt`, `-createdAt`, the default) with 400 `invalid-params` for bad ones; `loginDevice` is the login's `User-Agent` (null without one), carried over by refreshes, which also give the pair a new `id`; `lastActivity*` is the last authorized call's; 401, 403 (another user, without the role to manage them: see [`FakeRole`]), 404 for an unknown user |
//! | `POST /api/v1/users/{id}/token-sessions/{sessionId}/revoke` | PeerTube 8 only: ends that pair (its tokens then get `invalid_token` / `invalid_grant`), 200 `{"success":true}`; 404 for a session that is not one of the user's live ones |
//! | any other `/api/` route | 400, `application/json`, empty body (PeerTube's API catch-all; a real instance has many more routes), the token-session routes too for [`ServerVersion::PeerTube6`] |
//! | anything else | 404 problem+json |
//!
//! A session's `lastActivity*` is the last authorized call (or the login, or the refresh that
//! issued the pair), written at once: PeerTube writes it from a cache by a scheduler (every
//! minute in production), so a real server shows the same a little later.
//!
//! Every answer carries a `Date` header from the fake clock, as PeerTube's does from its own.
//! Both of PeerTube's rate limits are there: the login limit (on by default) and the API limit
//! ([`FakeBuilder::api_rate_limit`], off by default), per client address.
//!
//! Not modelled: auth plugins beyond handing out
//! external-auth tokens (6.x accepted an external-auth token more than once within its 5
//! minutes; the fake follows 8.1.6+ and consumes it), and concurrent-refresh races (the fake
//! serialises requests, so a reused refresh token always gets `invalid_grant`).
//!
//! # A downstream test logging in against the fake
//!
//! ```
//! use peertube_session::fake::{FakePeerTube, FakeUser};
//! use peertube_session::{Credentials, Event, Instance, Session, State};
//!
//! let fake = FakePeerTube::builder()
//!     .user(FakeUser::new("alice", "alice@example.org", "correct horse"))
//!     .build();
//! let now = fake.now();
//! let mut session = Session::new(Instance::new("http://127.0.0.1:9000")?);
//!
//! let (request, pending) = session.fetch_client()?;
//! session.handle(pending, &fake.handle(&request), now)?;
//! let (request, pending) = session.login(&Credentials::password("alice", "correct horse"))?;
//! assert_eq!(session.handle(pending, &fake.handle(&request), now)?, Event::LoggedIn);
//!
//! let (request, pending) = session.logout()?;
//! session.handle(pending, &fake.handle(&request), now)?;
//! assert_eq!(session.state(), State::Revoked);
//! assert_eq!(fake.counters().logins, 1);
//! # Ok::<(), peertube_session::Error>(())
//! ```

mod auth;
mod config;
mod model;
mod rate_limit;
mod reply;
mod token;
mod token_sessions;
mod totp;

pub use config::{
    API_LIMIT, FakeBuilder, FakeRole, FakeUser, LOGIN_LIMIT, RegistrationState, ServerVersion,
};
pub use model::ClientAddr;
pub use totp::totp;

pub use crate::fake_server::{Fault, LoopbackServer};

use http::{Request, Response, StatusCode};
use model::Model;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

/// What the fake has seen, for tests to assert on. Its `Debug` prints the numbers only: the
/// refresh tokens keying [`Counters::refreshes_per_token`] are secrets like any other.
#[non_exhaustive]
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests to `GET /api/v1/oauth-clients/local`.
    pub client_requests: u64,
    /// Requests to `POST /api/v1/users/token`, rate-limited ones included.
    pub token_requests: u64,
    /// Requests to `POST /api/v1/users/revoke-token`.
    pub revoke_requests: u64,
    /// Requests to `GET /api/v1/users/me`.
    pub me_requests: u64,
    /// Requests to the token-session routes (list and revoke).
    pub token_session_requests: u64,
    /// Requests to any other route (answered 404).
    pub other_requests: u64,
    /// Successful password grants.
    pub logins: u64,
    /// Successful refresh grants.
    pub refreshes: u64,
    /// `invalid_grant` answers (wrong credentials, dead refresh tokens).
    pub invalid_grants: u64,
    /// Successful logouts.
    pub revocations: u64,
    /// Token sessions ended through `POST /api/v1/users/{id}/token-sessions/{id}/revoke`.
    pub token_sessions_revoked: u64,
    /// Token requests answered 429 (by either limit).
    pub rate_limited: u64,
    /// Requests to other routes answered 429 by the API limit.
    pub api_rate_limited: u64,
    /// Authorized calls (`users/me`, token sessions, logout) refused with 401 `invalid_token`.
    pub refused_tokens: u64,
    /// Refresh-grant requests per refresh token sent, successful or not.
    pub refreshes_per_token: HashMap<String, u64>,
    /// Token pairs whose refresh token has not expired and that were not revoked or rotated.
    pub live_sessions: usize,
    /// Access tokens that served all the calls `FakeBuilder::access_token_uses` allows and
    /// were then refused.
    pub worn_out_tokens: u64,
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counters")
            .field("client_requests", &self.client_requests)
            .field("token_requests", &self.token_requests)
            .field("revoke_requests", &self.revoke_requests)
            .field("me_requests", &self.me_requests)
            .field("token_session_requests", &self.token_session_requests)
            .field("other_requests", &self.other_requests)
            .field("logins", &self.logins)
            .field("refreshes", &self.refreshes)
            .field("invalid_grants", &self.invalid_grants)
            .field("revocations", &self.revocations)
            .field("token_sessions_revoked", &self.token_sessions_revoked)
            .field("rate_limited", &self.rate_limited)
            .field("api_rate_limited", &self.api_rate_limited)
            .field("refused_tokens", &self.refused_tokens)
            .field(
                "refreshes_per_token",
                &format_args!(
                    "{} refresh token(s) (redacted), at most {} refresh(es) each",
                    self.refreshes_per_token.len(),
                    self.max_refreshes_per_token()
                ),
            )
            .field("live_sessions", &self.live_sessions)
            .field("worn_out_tokens", &self.worn_out_tokens)
            .finish()
    }
}

impl Counters {
    /// The largest number of refresh requests sent with one refresh token (1 for a client
    /// that never reuses one).
    pub fn max_refreshes_per_token(&self) -> u64 {
        self.refreshes_per_token
            .values()
            .copied()
            .max()
            .unwrap_or(0)
    }
}

/// A fake PeerTube instance. Cloning it gives another handle on the same server state.
#[derive(Clone)]
pub struct FakePeerTube {
    model: Arc<Mutex<Model>>,
}

impl std::fmt::Debug for FakePeerTube {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakePeerTube").finish_non_exhaustive()
    }
}

impl Default for FakePeerTube {
    fn default() -> Self {
        FakeBuilder::default().build()
    }
}

impl FakePeerTube {
    /// Starts setting up a fake instance.
    pub fn builder() -> FakeBuilder {
        FakeBuilder::default()
    }

    fn from_config(config: config::Config) -> Self {
        FakePeerTube {
            model: Arc::new(Mutex::new(Model::new(config))),
        }
    }

    fn model(&self) -> MutexGuard<'_, Model> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.model
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Answers one request, as the server would. The request's client address is taken from a
    /// [`ClientAddr`] extension (127.0.0.1 without one); the body may be any bytes container.
    pub fn handle<B: AsRef<[u8]>>(&self, request: &Request<B>) -> Response<Vec<u8>> {
        self.model().handle(request)
    }

    /// The instance's OAuth client pair: `(client_id, client_secret)`.
    pub fn client_pair(&self) -> (String, String) {
        let model = self.model();
        (
            model.config.client_id.clone(),
            model.config.client_secret.clone(),
        )
    }

    /// The fake clock.
    pub fn now(&self) -> SystemTime {
        self.model().now
    }

    /// Moves the fake clock forward.
    pub fn advance(&self, by: Duration) {
        let mut model = self.model();
        model.now = model.now.checked_add(by).unwrap_or(model.now);
    }

    /// Sets the fake clock.
    pub fn set_now(&self, now: SystemTime) {
        self.model().now = now;
    }

    /// What the fake has seen so far.
    pub fn counters(&self) -> Counters {
        let model = self.model();
        Counters {
            live_sessions: model.live_sessions(),
            ..model.counters.clone()
        }
    }

    /// Answers the next request (to `path` only, if given) with `status`, `headers` and `body`
    /// instead of the model, once. For client tests: a proxy's 502 page, a redirect, a huge body.
    pub fn respond_once(
        &self,
        path: Option<&str>,
        status: StatusCode,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) {
        let mut response = Response::new(body);
        *response.status_mut() = status;
        for (name, value) in headers {
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::try_from(*name),
                http::HeaderValue::try_from(*value),
            ) {
                response.headers_mut().append(name, value);
            }
        }
        self.model().respond_once(path.map(str::to_owned), response);
    }

    /// What an external-auth plugin hands the browser after its own login flow: a 32-character
    /// token for `username`, valid 5 minutes on the fake clock, exchanged once.
    pub fn issue_external_auth_token(&self, username: &str) -> String {
        self.model().add_external_token(username)
    }

    /// Blocks a user as an admin would: every token pair of the user dies (401 `invalid_token`),
    /// and a later login with the right password answers `access_denied`.
    pub fn block_user(&self, username: &str) {
        let mut model = self.model();
        if let Some(index) = model.user_index(username) {
            model.config.users[index].blocked = true;
            model.drop_sessions_of(index);
        }
    }

    /// Changes a user's password: every token pair of the user dies, as on PeerTube.
    pub fn change_password(&self, username: &str, password: &str) {
        let mut model = self.model();
        if let Some(index) = model.user_index(username) {
            model.config.users[index].password = password.to_owned();
            model.drop_sessions_of(index);
        }
    }
}
