//! What went wrong, in one line, and the exit code that says it to scripts.

use peertube_session::store::StoreError;
use peertube_session::{Error, TransportError, TransportErrorKind};
use std::fmt;
use std::process::ExitCode;

/// The exit codes, documented in `--help`'s epilogue and the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 1: anything else (the profile's files).
    Other = 1,
    /// 2: the command line itself (clap uses 2 too).
    Usage = 2,
    /// 3: no live session: log in (again).
    NotLoggedIn = 3,
    /// 4: the instance refused the login or the action (password, two-factor code, rights).
    Refused = 4,
    /// 5: rate limited; the message says when to retry.
    RateLimited = 5,
    /// 6: the instance could not be reached.
    Unreachable = 6,
    /// 7: the instance answered with an error of its own.
    Server = 7,
    /// 8: the instance is too old for the command.
    NotSupported = 8,
}

/// A failure: a message for people, a code for scripts. Never holds a secret: messages are
/// built from this crate's errors, which carry none.
#[derive(Debug)]
pub struct Failure {
    kind: Kind,
    message: String,
}

impl Failure {
    fn new(kind: Kind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
        }
    }

    pub fn usage(message: &str) -> Failure {
        Failure::new(Kind::Usage, message)
    }

    pub fn local(message: &str) -> Failure {
        Failure::new(Kind::Other, message)
    }

    pub fn refused(message: &str) -> Failure {
        Failure::new(Kind::Refused, message)
    }

    pub fn not_logged_in(profile: &str) -> Failure {
        Failure::new(
            Kind::NotLoggedIn,
            format!("not logged in (profile {profile}): run `peertube-session login`"),
        )
    }

    pub fn store(error: &StoreError) -> Failure {
        Failure::new(Kind::Other, format!("the saved session: {}", chain(error)))
    }

    pub fn is_not_logged_in(&self) -> bool {
        self.kind == Kind::NotLoggedIn
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.kind as u8)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// An error and its causes on one line: `a: b: c`.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}

/// A TLS handshake that met something other than TLS: the first bytes back were not a TLS
/// record (rustls' "received corrupt message of type InvalidContentType"), what a plain HTTP
/// server answers to a `ClientHello`.
fn speaks_no_tls(error: &TransportError) -> bool {
    error.kind() == TransportErrorKind::Tls && chain(error).contains("InvalidContentType")
}

/// The server's own words, when it gave any.
fn reason(error: &Error) -> String {
    error
        .server_error()
        .and_then(|e| e.detail.clone().or_else(|| e.excerpt.clone()))
        .map(|text| format!(": {text}"))
        .unwrap_or_default()
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        let (kind, message) = match &error {
            Error::BadCredentials(_) => (Kind::Refused, "wrong username or password".to_owned()),
            Error::InvalidTwoFactor(_) => (
                Kind::Refused,
                "the two-factor code was wrong or has expired".to_owned(),
            ),
            Error::TwoFactorRequired(_) => (
                Kind::Refused,
                "this account needs a two-factor code (PEERTUBE_OTP, or the line after the password)"
                    .to_owned(),
            ),
            Error::AccountUnavailable(_) => (
                Kind::Refused,
                format!("this account cannot log in{}", reason(&error)),
            ),
            Error::Forbidden(_) => (
                Kind::Refused,
                format!("not allowed for this account{}", reason(&error)),
            ),
            Error::LoginRequired(_) | Error::LoggedOut | Error::InvalidState { .. } => (
                Kind::NotLoggedIn,
                "not logged in any more: run `peertube-session login`".to_owned(),
            ),
            Error::RateLimited(limited) => (
                Kind::RateLimited,
                match limited.retry_after {
                    Some(wait) => format!(
                        "rate limited by the instance: retry in {} s",
                        wait.as_secs()
                    ),
                    None => "rate limited by the instance: retry later".to_owned(),
                },
            ),
            Error::Transport(transport) if speaks_no_tls(transport) => (
                Kind::Unreachable,
                "the instance does not speak TLS there (did you mean http:// ?)".to_owned(),
            ),
            Error::Transport(_) => (
                Kind::Unreachable,
                format!("the instance is unreachable: {}", chain(&error)),
            ),
            Error::NotSupported(_) => (
                Kind::NotSupported,
                "this instance has no login sessions to show (they need PeerTube 7.3 or later)"
                    .to_owned(),
            ),
            Error::NotFound(_) => (
                Kind::Server,
                format!("not found on the instance{}", reason(&error)),
            ),
            Error::InvalidUrl(_) | Error::InvalidInput(_) => (Kind::Usage, chain(&error)),
            Error::Store(store) => return Failure::store(store),
            _ => match error.status() {
                Some(status) => (
                    Kind::Server,
                    format!(
                        "the instance answered HTTP {}{}",
                        status.as_u16(),
                        reason(&error)
                    ),
                ),
                None => (Kind::Other, chain(&error)),
            },
        };
        Failure::new(kind, message)
    }
}
