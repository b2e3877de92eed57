//! The one error type of this crate, and PeerTube's machine-readable error codes.

use crate::session::State;
use http::StatusCode;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Everything that can go wrong, split into "the server said no" (variants carrying a
/// [`ServerError`]), "the answer could not be read", and "the call was not possible".
///
/// Decisions are made on PeerTube's error `code` first and the HTTP status second, as the server
/// itself intends. No variant's `Display` or `Debug` contains a secret.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Password grant: the password was right but the account has two-factor authentication on
    /// (401 `missing_two_factor`, response header `x-peertube-otp: required; app`). Send the
    /// same login again with the one-time code.
    #[error(
        "two-factor authentication is on for this account: log in again with the one-time code ({0})"
    )]
    TwoFactorRequired(Box<ServerError>),
    /// Password grant: the one-time code was wrong or expired (400 `invalid_two_factor`).
    #[error("the one-time code was rejected ({0})")]
    InvalidTwoFactor(Box<ServerError>),
    /// Password grant: unknown user, wrong password, or a user owned by an auth plugin
    /// (400 `invalid_grant`).
    #[error("login rejected: unknown user or wrong password ({0})")]
    BadCredentials(Box<ServerError>),
    /// The account exists and the password matched, but it may not log in: blocked, e-mail not
    /// verified, registration pending or rejected (`access_denied`, `account_blocked`,
    /// `email_not_verified`, `account_waiting_for_approval`, `account_approval_rejected`).
    #[error("this account cannot log in now ({0})")]
    AccountUnavailable(Box<ServerError>),
    /// Refresh grant: the refresh token is unknown, used, revoked or expired (400
    /// `invalid_grant`). The session dropped its tokens: log in again.
    #[error("the refresh token is no longer valid: log in again ({0})")]
    LoginRequired(Box<ServerError>),
    /// The instance does not know the OAuth client pair (400 `invalid_client`); the session
    /// dropped it, so the next step is fetching it again.
    #[error("the instance rejected the OAuth client pair: fetch it again ({0})")]
    InvalidClient(Box<ServerError>),
    /// The access token is dead: expired, revoked, or the user was blocked or changed password
    /// (401 `invalid_token`). Refresh, then retry.
    #[error("the access token is no longer valid: refresh it ({0})")]
    InvalidToken(Box<ServerError>),
    /// Too many requests (429). PeerTube allows 15 token requests per 5 minutes per address;
    /// wait for [`ServerError::retry_after`]. Logins are never retried automatically.
    #[error("rate limited by the instance{hint}: {0}", hint = retry_hint(.0.retry_after))]
    RateLimited(Box<ServerError>),
    /// `GET /api/v1/oauth-clients/local` answered 403: the instance hands its client pair only
    /// to requests whose `Host` is its configured hostname. Use the instance's canonical address
    /// (the one in its own links) as base URL.
    #[error(
        "the instance refuses its OAuth client to this host: use the instance's canonical address as base URL ({0})"
    )]
    ClientForbiddenForHost(Box<ServerError>),
    /// The instance does not have the route called (400 with an empty body, PeerTube's answer
    /// for any API route it does not know): its PeerTube is older than the endpoint. Token
    /// sessions ([`crate::api`]) need PeerTube 7.3 or later.
    #[error("the instance does not offer this API: its PeerTube is too old for it ({0})")]
    NotSupported(Box<ServerError>),
    /// 404 from an API call ([`crate::api`]): the user, or the token session, does not exist
    /// (a token session that ended, expired, or belongs to another user is not found either).
    #[error("not found ({0})")]
    NotFound(Box<ServerError>),
    /// 403 from an API call ([`crate::api`]): the account may not do this (another user's
    /// token sessions need the right to manage users).
    #[error("not allowed for this account ({0})")]
    Forbidden(Box<ServerError>),
    /// Any other error answer from the server; match on [`ServerError::code`].
    #[error("the instance answered with an error: {0}")]
    Server(Box<ServerError>),
    /// A success status with a body that is not what PeerTube sends.
    #[error("malformed response (HTTP {status}): {reason}")]
    MalformedResponse {
        /// The HTTP status of the response.
        status: StatusCode,
        /// What was wrong with it (never contains response values that could be secrets).
        reason: String,
    },
    /// The response body was larger than the configured cap, so it was not parsed.
    #[error("response body of HTTP {status} is larger than the {limit}-byte cap")]
    ResponseTooLarge {
        /// The HTTP status of the response.
        status: StatusCode,
        /// The cap in bytes.
        limit: usize,
    },
    /// The operation is not possible in the session's current state (for example logout
    /// before login). Nothing was changed.
    #[error("{operation} is not possible while the session is {state}")]
    InvalidState {
        /// What was attempted.
        operation: Operation,
        /// The state the session was in.
        state: State,
    },
    /// A refresh is already in flight with the current refresh token; PeerTube rotates refresh
    /// tokens, so a second one would lose the login or leak a session. Wait for the first.
    #[error("a refresh is already in flight: wait for its answer")]
    RefreshInFlight,
    /// The response belongs to a request made before the session changed (an older refresh
    /// token, an earlier login); it was ignored and the session is unchanged.
    #[error("stale {0} response ignored: the session changed since the request was made")]
    StaleResponse(Operation),
    /// The access token is past its expiry (or the server said it is dead): refresh first.
    #[error("the access token has expired: refresh first")]
    AccessTokenExpired,
    /// `authorize` was asked to put the access token on a request for another origin.
    #[error("refusing to send the access token to a request that is not for this instance")]
    ForeignOrigin,
    /// The base URL of the instance is not usable.
    /// What is wrong with it is the [`source`](std::error::Error::source).
    #[error("invalid instance URL")]
    InvalidUrl(#[source] UrlError),
    /// An argument was rejected before anything was sent. Which one, and why, is the
    /// [`source`](std::error::Error::source).
    #[error("invalid input")]
    InvalidInput(#[source] InputError),
    /// The request could not be sent or its answer not received: connection refused, DNS, TLS,
    /// timeout, body over the cap, connection closed mid-answer. The
    /// [`source`](std::error::Error::source) is the [`TransportError`] (its kind), whose own
    /// source is the HTTP client's error.
    #[error("could not talk to the instance")]
    Transport(#[source] TransportError),
    /// The saved form of a session could not be restored.
    #[error("cannot restore the session: {0}")]
    InvalidSavedSession(&'static str),
    /// The session was logged out, by this client or by another process sharing its
    /// [store](crate::store): log in again.
    #[error("the session was logged out: log in again")]
    LoggedOut,
    /// The [session store](crate::store) failed or refused a step.
    #[error("the session store failed")]
    Store(#[source] crate::store::StoreError),
}

fn retry_hint(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(wait) => format!(", retry after {} s", wait.as_secs()),
        None => String::new(),
    }
}

/// Matches every variant that carries the server's answer.
macro_rules! server_error_of {
    ($error:expr, $found:ident => $some:expr) => {
        match $error {
            Error::TwoFactorRequired($found)
            | Error::InvalidTwoFactor($found)
            | Error::BadCredentials($found)
            | Error::AccountUnavailable($found)
            | Error::LoginRequired($found)
            | Error::InvalidClient($found)
            | Error::InvalidToken($found)
            | Error::RateLimited($found)
            | Error::ClientForbiddenForHost($found)
            | Error::NotSupported($found)
            | Error::NotFound($found)
            | Error::Forbidden($found)
            | Error::Server($found) => Some($some),
            _ => None,
        }
    };
}

impl Error {
    /// The server's answer behind this error, when there was one.
    pub fn server_error(&self) -> Option<&ServerError> {
        server_error_of!(self, found => &**found)
    }

    /// The HTTP status of the response behind this error, when there was one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Error::MalformedResponse { status, .. } | Error::ResponseTooLarge { status, .. } => {
                Some(*status)
            }
            _ => self.server_error().map(|e| e.status),
        }
    }

    /// PeerTube's error `code`, when the server sent one.
    pub fn code(&self) -> Option<&ErrorCode> {
        self.server_error().and_then(|e| e.code.as_ref())
    }

    /// How long the server asked to wait (`Retry-After`), when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        self.server_error().and_then(|e| e.retry_after)
    }

    pub(crate) fn malformed(status: StatusCode, reason: impl Into<String>) -> Self {
        Error::MalformedResponse {
            status,
            reason: reason.into(),
        }
    }
}

/// An error answer as PeerTube sent it: the status, the problem+json members, and the headers
/// that matter. Built by [`crate::response::parse_error`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    /// The HTTP status.
    pub status: StatusCode,
    /// PeerTube's machine-readable `code`, when the body had one.
    pub code: Option<ErrorCode>,
    /// The human-readable `detail` (or the legacy `error` member of PeerTube 6.x).
    pub detail: Option<String>,
    /// How long the `Retry-After` header asks to wait. Its delta-seconds form (what PeerTube
    /// sends) is read as it is; its HTTP-date form is read against the answer's own `Date`
    /// header, the server's clock, so no clock of this side is needed (without a `Date`, see
    /// [`retry_at`](Self::retry_at)). A date already past is a wait of zero.
    pub retry_after: Option<Duration>,
    /// The `Retry-After` header's HTTP-date form, as a moment (for a proxy that sends a date
    /// without a `Date` header: compare it with your clock).
    pub retry_at: Option<std::time::SystemTime>,
    /// The `X-RateLimit-*` headers, when all three were sent.
    pub rate_limit: Option<RateLimitInfo>,
    /// The response header `x-peertube-otp` said `required`: two-factor authentication is on.
    pub two_factor_required: bool,
    /// For bodies that are not problem+json (the plain-text 429, a proxy's HTML page): the start
    /// of the body, printable characters only, at most 160 characters.
    pub excerpt: Option<String>,
}

impl ServerError {
    /// An error of `status` with nothing else known (for what a store remembers of a refusal).
    pub(crate) fn of_status(status: StatusCode) -> ServerError {
        ServerError {
            status,
            code: None,
            detail: None,
            retry_after: None,
            retry_at: None,
            rate_limit: None,
            two_factor_required: false,
            excerpt: None,
        }
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}", self.status.as_u16())?;
        if let Some(code) = &self.code {
            write!(f, " {code}")?;
        }
        match (&self.detail, &self.excerpt) {
            (Some(text), _) | (None, Some(text)) => write!(f, ": {text}"),
            (None, None) => match self.status.canonical_reason() {
                Some(reason) => write!(f, " {reason}"),
                None => Ok(()),
            },
        }
    }
}

/// The `X-RateLimit-*` headers of a 429 (or of any limited answer).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitInfo {
    /// `X-RateLimit-Limit`: requests allowed in the window.
    pub limit: u64,
    /// `X-RateLimit-Remaining`: requests left in the window.
    pub remaining: u64,
    /// `X-RateLimit-Reset`: when the window ends, in seconds since the Unix epoch.
    pub reset_epoch_secs: u64,
}

macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $text:literal,)*) => {
        /// PeerTube's error `code` member. Unknown codes are kept verbatim in
        /// [`ErrorCode::Other`]: servers add codes over time.
        #[non_exhaustive]
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
            /// A code this crate does not know, as the server sent it.
            Other(String),
        }

        impl ErrorCode {
            /// Reads a code as the server spells it.
            pub fn parse(code: &str) -> Self {
                match code {
                    $($text => ErrorCode::$variant,)*
                    other => ErrorCode::Other(other.to_owned()),
                }
            }

            /// The code as the server spells it.
            pub fn as_str(&self) -> &str {
                match self {
                    $(ErrorCode::$variant => $text,)*
                    ErrorCode::Other(other) => other,
                }
            }
        }
    };
}

error_codes! {
    /// `invalid_request`: malformed request (missing field, wrong content type, bad header).
    InvalidRequest = "invalid_request",
    /// `invalid_client`: unknown or missing OAuth client pair.
    InvalidClient = "invalid_client",
    /// `unsupported_grant_type`: `grant_type` is neither `password` nor `refresh_token`.
    UnsupportedGrantType = "unsupported_grant_type",
    /// `unauthorized_client`: the client may not use that grant.
    UnauthorizedClient = "unauthorized_client",
    /// `invalid_grant`: wrong credentials, or a dead refresh token.
    InvalidGrant = "invalid_grant",
    /// `account_waiting_for_approval`: the registration is not approved yet.
    AccountWaitingForApproval = "account_waiting_for_approval",
    /// `account_approval_rejected`: the registration was rejected.
    AccountApprovalRejected = "account_approval_rejected",
    /// `access_denied`: blocked user or unverified e-mail (PeerTube ≤ 8.0).
    AccessDenied = "access_denied",
    /// `account_blocked`: blocked user (PeerTube 8.1+).
    AccountBlocked = "account_blocked",
    /// `email_not_verified`: e-mail not verified (PeerTube 8.1+).
    EmailNotVerified = "email_not_verified",
    /// `too_long_password`: the password is longer than the server accepts (PeerTube 8.1+).
    TooLongPassword = "too_long_password",
    /// `missing_two_factor`: two-factor is on and no one-time code was sent (401).
    MissingTwoFactor = "missing_two_factor",
    /// `invalid_two_factor`: the one-time code was wrong.
    InvalidTwoFactor = "invalid_two_factor",
    /// `invalid_token`: the access token is unknown, revoked or expired (401).
    InvalidToken = "invalid_token",
    /// `unauthorized_request`: no access token was sent (401).
    UnauthorizedRequest = "unauthorized_request",
    /// `server_error`: the server failed (503 on revoke).
    ServerError = "server_error",
    /// `Error`: a plain JavaScript error name, sent for a bad `externalAuthToken` and for an
    /// instance without an OAuth client row.
    PlainError = "Error",
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The session operations, as named in errors.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `GET /api/v1/oauth-clients/local`.
    FetchClient,
    /// Password grant (or external-auth token exchange).
    Login,
    /// Refresh grant.
    Refresh,
    /// `POST /api/v1/users/revoke-token`.
    Logout,
    /// Putting the access token on another API request.
    Authorize,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::FetchClient => "fetching the OAuth client",
            Operation::Login => "login",
            Operation::Refresh => "refresh",
            Operation::Logout => "logout",
            Operation::Authorize => "authorizing a request",
        })
    }
}

/// Why an instance URL was rejected. The URL itself is not repeated: it may carry a password.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not a URL at all.
    #[error("not an absolute URL like https://video.example.org")]
    Malformed,
    /// A scheme other than https or http.
    #[error("the scheme must be https (or http for a loopback host)")]
    UnsupportedScheme,
    /// Plain http to a host that is not loopback, without the explicit opt-in.
    #[error("plain http is only allowed for loopback hosts unless explicitly allowed")]
    PlainHttpNotAllowed,
    /// No host.
    #[error("the URL has no host")]
    MissingHost,
    /// A port that is empty, 0, or above 65535.
    #[error("the port must be a number from 1 to 65535")]
    BadPort,
    /// A `user:password@` part.
    #[error("the URL must not contain a user name or password")]
    HasUserinfo,
    /// A `?query`.
    #[error("the URL must not contain a query")]
    HasQuery,
    /// A `#fragment`.
    #[error("the URL must not contain a fragment")]
    HasFragment,
    /// A path that is not a plain prefix (`..`, `.`, also percent-encoded, empty segments, or
    /// characters a URI path cannot hold); for [`Instance::uri`](crate::Instance::uri), a
    /// dot segment or a fragment.
    #[error("the URL path must be a plain prefix like /peertube")]
    BadPath,
}

/// Why an argument was rejected before anything was sent.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// The username is empty (the server would answer `invalid_request`).
    #[error("the username is empty")]
    EmptyUsername,
    /// The password is empty (the server would answer `invalid_request`).
    #[error("the password is empty")]
    EmptyPassword,
    /// The external-auth token is empty.
    #[error("the external-auth token is empty")]
    EmptyExternalAuthToken,
    /// The one-time code is not 6 digits (spaces are allowed and removed).
    #[error("the one-time code must be 6 digits")]
    InvalidOtp,
    /// A value cannot be sent in an HTTP header (control characters or non-ASCII).
    #[error("a value cannot be sent in an HTTP header")]
    InvalidHeaderValue,
}

/// What kind of transport failure happened.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportErrorKind {
    /// The host name could not be resolved.
    Dns,
    /// No connection could be made (refused, unreachable).
    Connect,
    /// The TLS handshake or certificate check failed.
    Tls,
    /// The configured timeout passed before the whole answer arrived.
    Timeout,
    /// The answer's body was larger than the configured cap.
    BodyTooLarge,
    /// The connection closed before the whole answer arrived.
    ConnectionClosed,
    /// The answer was not valid HTTP/1.1 (garbage, HTTP/0.9, conflicting `Content-Length`).
    Protocol,
    /// Anything else the HTTP client reported.
    Other,
}

impl fmt::Display for TransportErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportErrorKind::Dns => "the host name could not be resolved",
            TransportErrorKind::Connect => "no connection could be made",
            TransportErrorKind::Tls => "TLS failed",
            TransportErrorKind::Timeout => "timed out",
            TransportErrorKind::BodyTooLarge => "the answer's body is larger than the cap",
            TransportErrorKind::ConnectionClosed => {
                "the connection closed before the whole answer arrived"
            }
            TransportErrorKind::Protocol => "the answer is not valid HTTP",
            TransportErrorKind::Other => "the HTTP client failed",
        })
    }
}

/// A failure of the HTTP client, whichever one it is: a kind to match on, and the client's own
/// error as [`source`](std::error::Error::source). Equality compares the kind only.
///
/// Like every error of this crate, its `Display` says this level only (the kind) and
/// `source()` gives the next, so a reporter that walks the chain prints each cause once:
///
/// ```
/// use peertube_session::{Error, TransportError, TransportErrorKind};
/// use std::error::Error as _;
///
/// let cause = std::io::Error::new(std::io::ErrorKind::TimedOut, "read timed out");
/// let error = Error::from(TransportError::new(TransportErrorKind::Timeout, cause));
/// let mut chain = vec![error.to_string()];
/// let mut next = error.source();
/// while let Some(cause) = next {
///     chain.push(cause.to_string());
///     next = cause.source();
/// }
/// assert_eq!(chain, ["could not talk to the instance", "timed out", "read timed out"]);
/// ```
#[derive(Debug, Clone)]
pub struct TransportError {
    kind: TransportErrorKind,
    cause: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl TransportError {
    /// A failure of `kind` caused by `cause`.
    pub fn new(
        kind: TransportErrorKind,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        TransportError {
            kind,
            cause: Some(Arc::from(cause.into())),
        }
    }

    /// A failure of `kind` with no further cause.
    pub fn of_kind(kind: TransportErrorKind) -> Self {
        TransportError { kind, cause: None }
    }

    /// What kind of failure it was.
    pub fn kind(&self) -> TransportErrorKind {
        self.kind
    }
}

impl PartialEq for TransportError {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
    }
}

impl Eq for TransportError {}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.kind, f)
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|cause| cause as &(dyn std::error::Error + 'static))
    }
}

impl From<TransportError> for Error {
    fn from(error: TransportError) -> Self {
        Error::Transport(error)
    }
}
