//! The fake server's state and its routing.

use super::Counters;
use super::config::{Config, FakeUser};
use super::rate_limit::RateLimiter;
use super::reply::{self, Docs};
use http::header::HOST;
use http::{Method, Request, Response, StatusCode};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr};
use std::time::SystemTime;

/// The address a request came from; the loopback server puts it into the request's extensions.
/// In-process requests without it count as coming from 127.0.0.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// A live token pair: one row of PeerTube's `oAuthToken` table.
pub(crate) struct Session {
    /// The row's id: what the token-session routes show and take.
    pub(crate) id: u64,
    pub(crate) user: usize,
    pub(crate) refresh: String,
    pub(crate) access_expires: SystemTime,
    pub(crate) refresh_expires: SystemTime,
    /// Authorized calls made with the access token (see `FakeBuilder::access_token_uses`).
    pub(crate) uses: u64,
    /// Where the login came from; a refresh carries it over to the new row.
    pub(crate) login: Seen,
    /// Where the row was last used from: the login, or the refresh that issued it.
    pub(crate) last_activity: Seen,
    /// When the row was issued (by the login or the last refresh).
    pub(crate) created_at: SystemTime,
}

/// A request's `User-Agent` (verbatim, none without the header), address and time.
#[derive(Clone)]
pub(crate) struct Seen {
    pub(crate) device: Option<String>,
    pub(crate) ip: IpAddr,
    pub(crate) at: SystemTime,
}

pub(crate) struct ExternalToken {
    pub(crate) username: String,
    pub(crate) expires: SystemTime,
}

pub(crate) struct Model {
    pub(crate) config: Config,
    pub(crate) now: SystemTime,
    rng: u64,
    /// Live token pairs by access token.
    pub(crate) sessions: HashMap<String, Session>,
    /// Refresh token → access token of the same pair.
    pub(crate) by_refresh: HashMap<String, String>,
    pub(crate) external: HashMap<String, ExternalToken>,
    /// The activity of the call being answered, written once it is answered.
    pub(crate) activity: Option<(String, Seen)>,
    /// The id the next token row gets (PeerTube's `oAuthToken.id` sequence).
    pub(crate) next_session_id: u64,
    /// PeerTube's login limiter and API limiter: each counts on its own.
    pub(crate) limiter: RateLimiter,
    pub(crate) api_limiter: RateLimiter,
    pub(crate) counters: Counters,
    canned: VecDeque<(Option<String>, Response<Vec<u8>>)>,
}

impl Model {
    pub(crate) fn new(config: Config) -> Self {
        let mut model = Model {
            now: config.start,
            rng: config.seed,
            sessions: HashMap::new(),
            by_refresh: HashMap::new(),
            external: HashMap::new(),
            next_session_id: 1,
            activity: None,
            limiter: RateLimiter::default(),
            api_limiter: RateLimiter::default(),
            counters: Counters::default(),
            canned: VecDeque::new(),
            config,
        };
        if model.config.client_id.is_empty() {
            model.config.client_id =
                model.random_string(32, b"abcdefghijklmnopqrstuvwxyz0123456789");
        }
        if model.config.client_secret.is_empty() {
            model.config.client_secret = model.random_string(
                32,
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
            );
        }
        model
    }

    pub(crate) fn handle<B: AsRef<[u8]>>(&mut self, request: &Request<B>) -> Response<Vec<u8>> {
        let mut response = self.answer(request);
        if !response.headers().contains_key(http::header::DATE) {
            let date = httpdate::fmt_http_date(self.now);
            reply::set_header(&mut response, "date", date);
        }
        response
    }

    fn answer<B: AsRef<[u8]>>(&mut self, request: &Request<B>) -> Response<Vec<u8>> {
        let path = request.uri().path();
        if let Some(index) = self
            .canned
            .iter()
            .position(|(only, _)| only.as_deref().is_none_or(|p| p == path))
            && let Some((_, response)) = self.canned.remove(index)
        {
            return response;
        }
        let address = client_address(request);
        let response = match self.api_limited(request, path, address) {
            Some(refusal) => refusal,
            None => self.route(request, path, address),
        };
        if let Some((access, seen)) = self.activity.take()
            && let Some(session) = self.sessions.get_mut(&access)
        {
            session.last_activity = seen;
        }
        if response.status() == StatusCode::UNAUTHORIZED
            && is_invalid_token(&response)
            && path != "/api/v1/users/token"
        {
            self.counters.refused_tokens += 1;
        }
        response
    }

    /// PeerTube's API limiter, in front of the routers that use it: `None` to go on, or the
    /// 429 of a request over the limit. Every request counts; over the limit, one carrying the
    /// live access token of an administrator or a moderator passes all the same.
    fn api_limited<B: AsRef<[u8]>>(
        &mut self,
        request: &Request<B>,
        path: &str,
        address: IpAddr,
    ) -> Option<Response<Vec<u8>>> {
        let (max, window) = self.config.api_limit?;
        if !(path.starts_with("/api/v1/users/") || path.starts_with("/api/v1/oauth-clients/")) {
            return None;
        }
        let verdict = self.api_limiter.hit(address, max, window, self.now);
        let wait = verdict.retry_after_secs?;
        if self.bypasses_limits(request) {
            return None;
        }
        if path == "/api/v1/users/token" {
            self.counters.token_requests += 1;
            self.counters.rate_limited += 1;
        } else {
            self.counters.api_rate_limited += 1;
        }
        Some(reply::rate_limited(&verdict, wait))
    }

    fn route<B: AsRef<[u8]>>(
        &mut self,
        request: &Request<B>,
        path: &str,
        address: IpAddr,
    ) -> Response<Vec<u8>> {
        match (request.method(), path) {
            (&Method::GET, "/api/v1/oauth-clients/local") => self.oauth_client(request),
            (&Method::POST, "/api/v1/users/token") => self.token(request, address),
            (&Method::POST, "/api/v1/users/revoke-token") => self.revoke(request),
            (&Method::GET, "/api/v1/users/me") => self.me(request),
            // `apiRouter.use('/ping', pong)`: any method, no token, no limiter.
            (_, "/api/v1/ping") => {
                reply::with_type(StatusCode::OK, "text/html; charset=utf-8", b"pong".to_vec())
            }
            (method, path) if self.has_token_sessions() && is_token_session_route(method, path) => {
                self.token_sessions(request)
            }
            _ => {
                self.counters.other_requests += 1;
                if path.starts_with("/api/") {
                    // PeerTube's API router ends with a catch-all answering 400 with a JSON
                    // content type and no body.
                    reply::with_type(
                        StatusCode::BAD_REQUEST,
                        "application/json; charset=utf-8",
                        Vec::new(),
                    )
                } else {
                    self.fail(StatusCode::NOT_FOUND, None, "Not found", Docs::None)
                }
            }
        }
    }

    fn oauth_client<B>(&mut self, request: &Request<B>) -> Response<Vec<u8>> {
        self.counters.client_requests += 1;
        if let Some(expected) = &self.config.host {
            // PeerTube compares the raw Host header; an HTTP/1.1 client always sends one, and
            // an in-process request may carry the authority in its URI instead.
            let host = request
                .headers()
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
                .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()))
                .unwrap_or_default();
            if &host != expected {
                let detail = format!("Getting client tokens for host {host} is forbidden");
                return self.fail(StatusCode::FORBIDDEN, None, &detail, Docs::GetOAuthClient);
            }
        }
        if !self.config.has_client {
            // `loadFirstClient()` found nothing; the thrown `Error` reaches the error handler.
            return self.fail(
                StatusCode::INTERNAL_SERVER_ERROR,
                Some("Error"),
                "No client available.",
                Docs::GetOAuthClient,
            );
        }
        reply::json(
            StatusCode::OK,
            &serde_json::json!({
                "client_id": self.config.client_id,
                "client_secret": self.config.client_secret,
            }),
        )
    }

    pub(crate) fn fail(
        &self,
        status: StatusCode,
        code: Option<&str>,
        detail: &str,
        docs: Docs,
    ) -> Response<Vec<u8>> {
        reply::problem(self.config.version, status, code, detail, docs)
    }

    pub(crate) fn respond_once(&mut self, path: Option<String>, response: Response<Vec<u8>>) {
        self.canned.push_back((path, response));
    }

    /// 40 hex characters, like PeerTube's `sha1(randomBytes(256))`.
    pub(crate) fn new_token(&mut self) -> String {
        self.random_string(40, b"0123456789abcdef")
    }

    pub(crate) fn random_string(&mut self, len: usize, alphabet: &[u8]) -> String {
        (0..len)
            .map(|_| {
                let index =
                    usize::try_from(self.next_random() % alphabet.len() as u64).unwrap_or(0);
                char::from(alphabet[index])
            })
            .collect()
    }

    /// splitmix64: deterministic per seed, which keeps tests reproducible.
    fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(crate) fn user_index(&self, username: &str) -> Option<usize> {
        self.config
            .users
            .iter()
            .position(|u| u.username.eq_ignore_ascii_case(username))
    }

    pub(crate) fn user(&self, index: usize) -> Option<&FakeUser> {
        self.config.users.get(index)
    }

    /// Deletes every token pair of a user, as PeerTube does when an admin blocks the user or the
    /// password changes.
    pub(crate) fn drop_sessions_of(&mut self, user: usize) {
        let doomed: Vec<String> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.user == user)
            .map(|(access, _)| access.clone())
            .collect();
        for access in doomed {
            if let Some(session) = self.sessions.remove(&access) {
                self.by_refresh.remove(&session.refresh);
            }
        }
    }

    /// What PeerTube notes of a request: its `User-Agent` as sent (lossily decoded, as
    /// express reads header bytes), its client address, the fake's time.
    pub(crate) fn seen<B>(&self, request: &Request<B>) -> Seen {
        Seen {
            device: request
                .headers()
                .get(http::header::USER_AGENT)
                .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned()),
            ip: client_address(request),
            at: self.now,
        }
    }

    pub(crate) fn live_sessions(&self) -> usize {
        self.sessions
            .values()
            .filter(|s| s.refresh_expires > self.now)
            .count()
    }
}

fn is_invalid_token(response: &Response<Vec<u8>>) -> bool {
    serde_json::from_slice::<serde_json::Value>(response.body())
        .ok()
        .is_some_and(|body| body["code"] == "invalid_token")
}

/// The address a request came from (see [`ClientAddr`]).
fn client_address<B>(request: &Request<B>) -> IpAddr {
    request
        .extensions()
        .get::<ClientAddr>()
        .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |a| a.0)
}

/// `GET /api/v1/users/{id}/token-sessions` and `POST …/token-sessions/{id}/revoke`, whatever
/// the ids say (their validators answer for bad ones).
fn is_token_session_route(method: &Method, path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/api/v1/users/") else {
        return false;
    };
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [_, "token-sessions"] => method == Method::GET,
        [_, "token-sessions", _, "revoke"] => method == Method::POST,
        _ => false,
    }
}
