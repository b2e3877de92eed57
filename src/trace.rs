//! What the drivers did, as [`tracing`](https://docs.rs/tracing) spans and events (feature
//! `tracing`, target `peertube_session`). Without the feature the macros here expand to
//! nothing: no dependency, no cost.
//!
//! Fields hold names, numbers and kinds, never server text: a server may echo a secret
//! anywhere in its answer, so an error is told by [`error_name`], its status and its code (a
//! code PeerTube does not define is told as `other`).

#[cfg(feature = "tracing")]
macro_rules! event {
    ($level:ident, $($rest:tt)+) => {
        ::tracing::$level!(target: "peertube_session", $($rest)+)
    };
}

#[cfg(not(feature = "tracing"))]
macro_rules! event {
    ($level:ident, $($rest:tt)+) => {
        ()
    };
}

/// `future`, awaited inside a span named `name` with the instance's host and the account (when
/// this client logged in: a session taken from a store does not say whose it is).
#[cfg(feature = "tracing")]
macro_rules! in_span {
    ($name:literal, $client:expr, $future:expr) => {{
        use ::tracing::Instrument as _;
        let client = $client;
        let span = ::tracing::info_span!(
            target: "peertube_session",
            $name,
            host = client.instance().authority(),
            account = client.account().as_deref(),
        );
        $future.instrument(span).await
    }};
}

#[cfg(not(feature = "tracing"))]
macro_rules! in_span {
    ($name:literal, $client:expr, $future:expr) => {
        $future.await
    };
}

pub(crate) use {event, in_span};

#[cfg(feature = "tracing")]
use crate::error::{Error, ErrorCode};

/// The name of `error`'s kind, for an event (no server text).
#[cfg(feature = "tracing")]
pub(crate) fn error_name(error: &Error) -> &'static str {
    match error {
        Error::TwoFactorRequired(_) => "two_factor_required",
        Error::InvalidTwoFactor(_) => "invalid_two_factor",
        Error::BadCredentials(_) => "bad_credentials",
        Error::AccountUnavailable(_) => "account_unavailable",
        Error::LoginRequired(_) => "login_required",
        Error::InvalidClient(_) => "invalid_client",
        Error::InvalidToken(_) => "invalid_token",
        Error::RateLimited(_) => "rate_limited",
        Error::ClientForbiddenForHost(_) => "client_forbidden_for_host",
        Error::NotSupported(_) => "not_supported",
        Error::NotFound(_) => "not_found",
        Error::Forbidden(_) => "forbidden",
        Error::Server(_) => "server",
        Error::MalformedResponse { .. } => "malformed_response",
        Error::ResponseTooLarge { .. } => "response_too_large",
        Error::InvalidState { .. } => "invalid_state",
        Error::RefreshInFlight => "refresh_in_flight",
        Error::StaleResponse(_) => "stale_response",
        Error::AccessTokenExpired => "access_token_expired",
        Error::ForeignOrigin => "foreign_origin",
        Error::InvalidUrl(_) => "invalid_url",
        Error::InvalidInput(_) => "invalid_input",
        Error::Transport(_) => "transport",
        Error::InvalidSavedSession(_) => "invalid_saved_session",
        Error::LoggedOut => "logged_out",
        Error::Store(_) => "store",
    }
}

/// PeerTube's code behind `error`, if it is one PeerTube defines; `""` when there is none.
#[cfg(feature = "tracing")]
pub(crate) fn code_name(error: &Error) -> &str {
    match error.code() {
        None => "",
        // Text the server chose: it may hold anything.
        Some(ErrorCode::Other(_)) => "other",
        Some(code) => code.as_str(),
    }
}

/// The HTTP status behind `error`, 0 when there was no answer.
#[cfg(feature = "tracing")]
pub(crate) fn status_of(error: &Error) -> u16 {
    error.status().map_or(0, |status| status.as_u16())
}

/// Milliseconds since `since`, for an event.
#[cfg(feature = "tracing")]
pub(crate) fn millis_since(since: std::time::Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}
