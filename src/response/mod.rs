//! Response parsers: one pure function per operation, from `http::Response<B>` (any body that is
//! `AsRef<[u8]>`: `Vec<u8>`, `Bytes`, `&[u8]`) to a typed value or an [`Error`].
//!
//! Every byte, header and status is untrusted: nothing here panics, bodies larger than the cap
//! ([`DEFAULT_BODY_LIMIT`], 64 KiB unless set with [`Parser::with_body_limit`]) are refused
//! before parsing, and error answers keep the status, PeerTube's `code`, `detail` and
//! `Retry-After`.
//!
//! Every parser is told the [`Secrets`] of the request it answers and removes them from any
//! server text that goes into an error (see [`Secrets`] for the rule).

mod problem;
mod redact;
mod success;

pub(crate) use success::{json as json_body, revoke as revoke_body};

pub use problem::parse_error;
pub use redact::{MIN_PARTIAL_ECHO, Secrets};
pub use success::{RevokeResponse, TokenResponse};

use crate::error::{Error, Operation};
use crate::request::OAuthClient;
use http::Response;
use std::time::SystemTime;

/// The answer's `Date` header: when the server sent it, by the server's clock. `None` without
/// one, or when it is not an HTTP-date (RFC 9110).
pub fn server_date<B>(response: &Response<B>) -> Option<SystemTime> {
    server_date_in(response.headers())
}

/// [`server_date`] from an answer's headers alone.
pub(crate) fn server_date_in(headers: &http::HeaderMap) -> Option<SystemTime> {
    problem::header_date(headers, &http::header::DATE)
}

/// The default cap on a response body: 64 KiB, far above anything PeerTube sends on these
/// endpoints.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// The parsers with a chosen body cap. The free functions of this module use the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parser {
    body_limit: usize,
}

impl Default for Parser {
    fn default() -> Self {
        Parser::new()
    }
}

impl Parser {
    /// Parsers with the default 64 KiB body cap.
    pub const fn new() -> Self {
        Parser {
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }

    /// These parsers, refusing bodies over `bytes` with [`Error::ResponseTooLarge`].
    pub const fn with_body_limit(self, bytes: usize) -> Self {
        Parser { body_limit: bytes }
    }

    /// The body cap in bytes.
    pub const fn body_limit(&self) -> usize {
        self.body_limit
    }

    /// See [`parse_oauth_client`].
    pub fn oauth_client<B: AsRef<[u8]>>(
        &self,
        response: &Response<B>,
        secrets: &Secrets<'_>,
    ) -> Result<OAuthClient, Error> {
        let body = self.success_body(response, Operation::FetchClient, secrets)?;
        success::oauth_client(response.status(), body)
    }

    /// See [`parse_login`].
    pub fn login<B: AsRef<[u8]>>(
        &self,
        response: &Response<B>,
        secrets: &Secrets<'_>,
    ) -> Result<TokenResponse, Error> {
        let body = self.success_body(response, Operation::Login, secrets)?;
        success::token(response.status(), body)
    }

    /// See [`parse_refresh`].
    pub fn refresh<B: AsRef<[u8]>>(
        &self,
        response: &Response<B>,
        secrets: &Secrets<'_>,
    ) -> Result<TokenResponse, Error> {
        let body = self.success_body(response, Operation::Refresh, secrets)?;
        success::token(response.status(), body)
    }

    /// See [`parse_revoke`].
    pub fn revoke<B: AsRef<[u8]>>(
        &self,
        response: &Response<B>,
        secrets: &Secrets<'_>,
    ) -> Result<RevokeResponse, Error> {
        let body = self.success_body(response, Operation::Logout, secrets)?;
        Ok(success::revoke(body))
    }

    /// See [`crate::api::parse`]; this parser's body cap applies.
    pub fn endpoint<E: crate::api::Endpoint, B: AsRef<[u8]>>(
        &self,
        endpoint: &E,
        response: &Response<B>,
        secrets: &Secrets<'_>,
    ) -> Result<E::Output, Error> {
        let body = self.capped(response)?;
        if response.status().is_success() {
            endpoint.parse_success(response.status(), body)
        } else {
            let blank = body.iter().all(u8::is_ascii_whitespace);
            Err(problem::classify_call(
                problem::read(response, body, secrets),
                blank,
            ))
        }
    }

    /// The error an answer to `operation` stands for, whatever its status. See
    /// [`error_for`].
    pub fn error<B: AsRef<[u8]>>(
        &self,
        operation: Operation,
        response: &Response<B>,
        secrets: &Secrets<'_>,
    ) -> Error {
        match self.capped(response) {
            Ok(body) => problem::classify(operation, problem::read(response, body, secrets)),
            Err(too_large) => too_large,
        }
    }

    /// The body of a 2xx answer, or the error a non-2xx one stands for.
    fn success_body<'r, B: AsRef<[u8]>>(
        &self,
        response: &'r Response<B>,
        operation: Operation,
        secrets: &Secrets<'_>,
    ) -> Result<&'r [u8], Error> {
        let body = self.capped(response)?;
        if response.status().is_success() {
            Ok(body)
        } else {
            Err(problem::classify(
                operation,
                problem::read(response, body, secrets),
            ))
        }
    }

    fn capped<'r, B: AsRef<[u8]>>(&self, response: &'r Response<B>) -> Result<&'r [u8], Error> {
        let body = response.body().as_ref();
        if body.len() > self.body_limit {
            Err(Error::ResponseTooLarge {
                status: response.status(),
                limit: self.body_limit,
            })
        } else {
            Ok(body)
        }
    }
}

/// `GET /api/v1/oauth-clients/local`: 200 `{"client_id": "…", "client_secret": "…"}`.
/// A 403 is [`Error::ClientForbiddenForHost`]. The request carries no secret, but a session
/// that already knows some (an earlier client pair) passes them in `secrets`.
pub fn parse_oauth_client<B: AsRef<[u8]>>(
    response: &Response<B>,
    secrets: &Secrets<'_>,
) -> Result<OAuthClient, Error> {
    Parser::new().oauth_client(response, secrets)
}

/// The answer to a password grant: the token pair, or [`Error::TwoFactorRequired`],
/// [`Error::InvalidTwoFactor`], [`Error::BadCredentials`], [`Error::AccountUnavailable`],
/// [`Error::InvalidClient`], [`Error::RateLimited`]… Pass [`Secrets::for_login`].
pub fn parse_login<B: AsRef<[u8]>>(
    response: &Response<B>,
    secrets: &Secrets<'_>,
) -> Result<TokenResponse, Error> {
    Parser::new().login(response, secrets)
}

/// The answer to a refresh grant: the new token pair (the old one is dead), or
/// [`Error::LoginRequired`] when the refresh token is no longer valid. Pass
/// [`Secrets::for_refresh`].
pub fn parse_refresh<B: AsRef<[u8]>>(
    response: &Response<B>,
    secrets: &Secrets<'_>,
) -> Result<TokenResponse, Error> {
    Parser::new().refresh(response, secrets)
}

/// The answer to `POST /api/v1/users/revoke-token`: any 2xx means the token pair is revoked
/// (PeerTube sends 200 `{"success":true}`, with `redirectUrl` when an auth plugin wants the user
/// sent somewhere; an empty body is accepted too). 401 `invalid_token` is
/// [`Error::InvalidToken`]: an expired token cannot be revoked. Pass [`Secrets::for_bearer`].
pub fn parse_revoke<B: AsRef<[u8]>>(
    response: &Response<B>,
    secrets: &Secrets<'_>,
) -> Result<RevokeResponse, Error> {
    Parser::new().revoke(response, secrets)
}

/// The typed error any answer to `operation` stands for, read as an error whatever its status.
/// Use it for answers to other API calls too (with [`Operation::Authorize`] and
/// [`Secrets::for_bearer`]): a 401 `invalid_token` there is [`Error::InvalidToken`].
pub fn error_for<B: AsRef<[u8]>>(
    operation: Operation,
    response: &Response<B>,
    secrets: &Secrets<'_>,
) -> Error {
    Parser::new().error(operation, response, secrets)
}
