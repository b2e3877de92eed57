//! `POST /api/v1/users/{userId}/token-sessions/{id}/revoke`: ends one login session.
//!
//! From PeerTube's `server/core/controllers/api/users/token.ts` (`revokeTokenSession`): the
//! session is looked up among the user's live ones (`revokeTokenSessionValidator` in
//! `server/core/middlewares/validators/token.ts`: 404 "The token session does not exist or does
//! not belong to the user." otherwise), then revoked like a logout (`revokeToken` in
//! `server/core/lib/auth/oauth-model.ts`), which answers 200 `{"success":true}`, with a
//! `redirectUrl` when an auth plugin wants one.

use super::Endpoint;
use crate::error::Error;
use crate::instance::Instance;
use crate::request::{Body, api_request};
use crate::response::{RevokeResponse, revoke_body};
use http::{Method, Request, StatusCode};

/// `POST /api/v1/users/{user_id}/token-sessions/{session_id}/revoke`, no body.
///
/// Both tokens of that session die at once (its access token then gets 401 `invalid_token`,
/// its refresh token 400 `invalid_grant`). Revoking the session whose token makes the request
/// is allowed: that is a logout, and a [`Session`](crate::Session) holding that token should be
/// told with [`Session::current_session_revoked`](crate::Session::current_session_revoked).
///
/// ```
/// use peertube_session::api::{Endpoint, RevokeTokenSession};
/// use peertube_session::Instance;
///
/// let request = RevokeTokenSession::new(1, 495).request(&Instance::new("https://video.example.org")?)?;
/// assert_eq!(request.method(), http::Method::POST);
/// assert_eq!(request.uri(), "https://video.example.org/api/v1/users/1/token-sessions/495/revoke");
/// # Ok::<(), peertube_session::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevokeTokenSession {
    user_id: u64,
    session_id: u64,
}

impl RevokeTokenSession {
    /// Session `session_id` of user `user_id`.
    pub fn new(user_id: u64, session_id: u64) -> Self {
        RevokeTokenSession {
            user_id,
            session_id,
        }
    }

    /// The session to end.
    pub fn session_id(&self) -> u64 {
        self.session_id
    }
}

impl Endpoint for RevokeTokenSession {
    type Output = RevokeResponse;

    fn request(&self, instance: &Instance) -> Result<Request<Body>, Error> {
        let path = format!(
            "/api/v1/users/{}/token-sessions/{}/revoke",
            self.user_id, self.session_id
        );
        api_request(Method::POST, instance, &path)
    }

    /// The status decides, as for a logout: the body only adds `redirectUrl`.
    fn parse_success(&self, _status: StatusCode, body: &[u8]) -> Result<RevokeResponse, Error> {
        Ok(revoke_body(body))
    }
}
