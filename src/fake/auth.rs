//! Routes behind `authenticate`: logout and `GET /api/v1/users/me`. Errors as oauth2-server
//! raises them and PeerTube words them (always "Token is invalid").

use super::config::FakeRole;
use super::model::Model;
use super::reply::{self, Docs};
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{Request, Response, StatusCode};

type Reply = Response<Vec<u8>>;

/// The status and `code` of an oauth2-server authentication error.
type AuthFailure = (StatusCode, &'static str);

const INVALID_REQUEST: AuthFailure = (StatusCode::BAD_REQUEST, "invalid_request");
const UNAUTHORIZED_REQUEST: AuthFailure = (StatusCode::UNAUTHORIZED, "unauthorized_request");
const INVALID_TOKEN: AuthFailure = (StatusCode::UNAUTHORIZED, "invalid_token");

impl Model {
    pub(crate) fn revoke<B: AsRef<[u8]>>(&mut self, request: &Request<B>) -> Reply {
        self.counters.revoke_requests += 1;
        let access = match self.authenticate(request) {
            Ok(access) => access,
            Err(failure) => return self.token_invalid(failure, Docs::RevokeOAuthToken),
        };
        let Some(session) = self.sessions.remove(&access) else {
            return reply::json(StatusCode::OK, &serde_json::json!({ "success": false }));
        };
        self.by_refresh.remove(&session.refresh);
        self.counters.revocations += 1;
        self.revoked(session.user)
    }

    /// `revokeToken`'s answer: `{"success":true}`, with the `redirectUrl` of a user whose auth
    /// plugin sends one after logout.
    pub(crate) fn revoked(&self, user: usize) -> Reply {
        let body = match self.user(user).and_then(|u| u.logout_redirect.clone()) {
            Some(url) => {
                reply::ordered_object(&[("success", true.into()), ("redirectUrl", url.into())])
            }
            None => reply::ordered_object(&[("success", true.into())]),
        };
        reply::with_type(
            StatusCode::OK,
            "application/json; charset=utf-8",
            body.into_bytes(),
        )
    }

    pub(crate) fn me<B: AsRef<[u8]>>(&mut self, request: &Request<B>) -> Reply {
        self.counters.me_requests += 1;
        let access = match self.authenticate_call(request) {
            Ok(access) => access,
            Err(refusal) => return *refusal,
        };
        let user = self.sessions.get(&access).map(|s| s.user);
        match user.and_then(|index| Some((index, self.user(index)?))) {
            Some((index, user)) => reply::json(
                StatusCode::OK,
                &serde_json::json!({
                    "id": index + 1,
                    "username": user.username,
                    "email": user.email,
                    "role": { "id": user.role.id(), "label": user.role.label() },
                    "blocked": false,
                }),
            ),
            None => self.token_invalid(INVALID_TOKEN, Docs::None),
        }
    }

    /// `authenticate` for an API call, noting it as the session's last activity and counting it
    /// against the token's allowance (`FakeBuilder::access_token_uses`): the access token, or
    /// the answer refusing it.
    pub(crate) fn authenticate_call<B: AsRef<[u8]>>(
        &mut self,
        request: &Request<B>,
    ) -> Result<String, Box<Reply>> {
        let access = self
            .authenticate(request)
            .map_err(|failure| Box::new(self.token_invalid(failure, Docs::None)))?;
        // PeerTube writes activity after the fact (a scheduler flushes its cache), so the
        // answer to this very call does not show it yet.
        self.activity = Some((access.clone(), self.seen(request)));
        if let Some(limit) = self.config.access_token_uses
            && let Some(session) = self.sessions.get_mut(&access)
        {
            if session.uses >= limit {
                if session.uses == limit {
                    session.uses += 1;
                    self.counters.worn_out_tokens += 1;
                }
                return Err(Box::new(self.token_invalid(INVALID_TOKEN, Docs::None)));
            }
            session.uses += 1;
        }
        Ok(access)
    }

    /// The access token of a request, or the error oauth2-server's `authenticate` raises.
    fn authenticate<B: AsRef<[u8]>>(&self, request: &Request<B>) -> Result<String, AuthFailure> {
        let header = request.headers().get(AUTHORIZATION);
        let in_query = request
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|pair| pair.starts_with("access_token=")));
        let in_body = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
            && serde_urlencoded::from_bytes::<Vec<(String, String)>>(request.body().as_ref())
                .unwrap_or_default()
                .iter()
                .any(|(k, _)| k == "access_token");
        let places = usize::from(header.is_some()) + usize::from(in_query) + usize::from(in_body);
        if places > 1 {
            return Err(INVALID_REQUEST);
        }
        let Some(header) = header else {
            return Err(if in_query || in_body {
                // Bearer tokens in the query string or body are not allowed by PeerTube's setup.
                INVALID_REQUEST
            } else {
                UNAUTHORIZED_REQUEST
            });
        };
        let Some(token) = header.to_str().ok().and_then(bearer_token) else {
            return Err(INVALID_REQUEST);
        };
        match self.sessions.get(token) {
            Some(session) if session.access_expires >= self.now => Ok(token.to_owned()),
            _ => Err(INVALID_TOKEN),
        }
    }

    /// Whether the request carries the live access token of an administrator or a moderator:
    /// PeerTube's limiters let those through (`buildRateLimiter`'s handler).
    pub(crate) fn bypasses_limits<B: AsRef<[u8]>>(&self, request: &Request<B>) -> bool {
        let Ok(access) = self.authenticate(request) else {
            return false;
        };
        self.sessions
            .get(&access)
            .and_then(|session| self.user(session.user))
            .is_some_and(|user| matches!(user.role, FakeRole::Administrator | FakeRole::Moderator))
    }

    /// PeerTube words every authentication failure the same way.
    fn token_invalid(&self, (status, code): AuthFailure, docs: Docs) -> Reply {
        self.fail(status, Some(code), "Token is invalid", docs)
    }
}

/// `^Bearer ([0-9a-zA-Z-._~+/]+=*)$`, case-sensitive, as oauth2-server matches it.
fn bearer_token(value: &str) -> Option<&str> {
    let token = value.strip_prefix("Bearer ")?;
    let body = token.trim_end_matches('=');
    let valid = !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
    valid.then_some(token)
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn bearer_matching_follows_oauth2_server() {
        assert_eq!(bearer_token("Bearer abc123"), Some("abc123"));
        assert_eq!(
            bearer_token("Bearer a.b-c_d~e+f/g=="),
            Some("a.b-c_d~e+f/g==")
        );
        assert_eq!(bearer_token("bearer abc123"), None);
        assert_eq!(bearer_token("Bearer  abc"), None);
        assert_eq!(bearer_token("Bearer ab c"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer =="), None);
    }
}
