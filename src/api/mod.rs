//! The account's API beyond the session itself: who is logged in, and the account's login
//! sessions ("token sessions") on recent PeerTube.
//!
//! Each endpoint is one module holding its request, its answer's type and its parser, tied
//! together by the [`Endpoint`] trait. They are ordinary authorized calls: they do not touch the
//! [`Session`](crate::Session)'s state machine, so put the token on with
//! [`Session::authorize`](crate::Session::authorize) (or [`crate::request::put_bearer`]), send,
//! and read the answer with [`parse`]. The drivers do all of it in `call`, `me`, `sessions`,
//! `revoke_session` and `log_out_other_sessions`.
//!
//! | endpoint | request | answer |
//! |---|---|---|
//! | [`UsersMe`] | `GET /api/v1/users/me` | [`Me`] |
//! | [`ListTokenSessions`] | `GET /api/v1/users/{userId}/token-sessions?start=&count=&sort=` | [`TokenSessionPage`] |
//! | [`RevokeTokenSession`] | `POST /api/v1/users/{userId}/token-sessions/{id}/revoke` | [`RevokeResponse`](crate::response::RevokeResponse) |
//!
//! **Token sessions came with PeerTube 7.3.0** (its database migration 920 added the columns
//! they are read from). An older server answers their routes like any route it does not have:
//! 400 with an empty body, which reads as [`Error::NotSupported`], never mistaken for the 400 a
//! bad parameter gets (that one has a problem+json body).
//!
//! Errors keep the status and PeerTube's `code`: 401 `invalid_token` is
//! [`Error::InvalidToken`], 403 [`Error::Forbidden`] (another user's sessions, without the right
//! to manage users), 404 [`Error::NotFound`] (an unknown user, or a session that is unknown,
//! ended, or another user's), 429 [`Error::RateLimited`], anything else [`Error::Server`].
//!
//! A whole exchange, sans-IO:
//!
//! ```
//! use peertube_session::api::{self, Endpoint, ListTokenSessions};
//! use peertube_session::response::Secrets;
//! use peertube_session::{AccessToken, Instance};
//!
//! let instance = Instance::new("https://video.example.org")?;
//! let token = AccessToken::new("a1".to_owned());
//! let list = ListTokenSessions::new(1);
//! let mut request = list.request(&instance)?;
//! peertube_session::request::put_bearer(&mut request, &token)?;
//! assert_eq!(
//!     request.uri(),
//!     "https://video.example.org/api/v1/users/1/token-sessions?start=0&count=50&sort=createdAt"
//! );
//!
//! // An instance older than 7.3:
//! let answer = http::Response::builder()
//!     .status(400)
//!     .header("content-type", "application/json; charset=utf-8")
//!     .body(Vec::new())?;
//! let error = api::parse(&list, &answer, &Secrets::for_bearer(&token)).unwrap_err();
//! assert!(matches!(error, peertube_session::Error::NotSupported(_)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod revoke_token_session;
mod timestamp;
mod token_sessions;
mod users_me;

pub use revoke_token_session::RevokeTokenSession;
pub use timestamp::Timestamp;
pub use token_sessions::{
    AllTokenSessions, ListTokenSessions, MAX_PAGE_SIZE, SessionSort, TokenSession, TokenSessionPage,
};
pub use users_me::{Me, UserRole, UsersMe};

use crate::error::Error;
use crate::instance::Instance;
use crate::request::Body;
use crate::response::{Parser, Secrets};
use http::{Request, Response, StatusCode};

/// One API endpoint: how to ask, and how to read a success answer. Error answers are read the
/// same way for every endpoint (see the [module docs](self)).
///
/// Implement it for a route of your own to call it through a driver's `call`, with the
/// refresh-and-retry and deadlines of every authorized call.
pub trait Endpoint {
    /// What a success answer holds.
    type Output;

    /// The largest answer body read; a larger one is [`Error::ResponseTooLarge`]. A driver uses
    /// the larger of this and its configured body cap.
    const BODY_LIMIT: usize = crate::response::DEFAULT_BODY_LIMIT;

    /// The request, without a token.
    fn request(&self, instance: &Instance) -> Result<Request<Body>, Error>;

    /// Reads the body of a 2xx answer.
    fn parse_success(&self, status: StatusCode, body: &[u8]) -> Result<Self::Output, Error>;
}

/// Reads the answer to `endpoint`'s request: its output, or the typed error it stands for,
/// with every secret in `secrets` removed from the server's text (pass
/// [`Secrets::for_bearer`] with the token the request carried).
pub fn parse<E: Endpoint, B: AsRef<[u8]>>(
    endpoint: &E,
    response: &Response<B>,
    secrets: &Secrets<'_>,
) -> Result<E::Output, Error> {
    Parser::new()
        .with_body_limit(E::BODY_LIMIT)
        .endpoint(endpoint, response, secrets)
}

pub(crate) use crate::response::json_body;
