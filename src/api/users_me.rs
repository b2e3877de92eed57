//! `GET /api/v1/users/me`: who the access token belongs to.
//!
//! The answer is the whole user object (about 50 members on PeerTube 8, 45 on 6.3, with the
//! account, its channels and notification settings); only what the token-session routes need
//! is read, and the rest is skipped without being built.

use super::{Endpoint, json_body};
use crate::error::Error;
use crate::instance::Instance;
use crate::request::{Body, api_request};
use http::{Method, Request, StatusCode};
use serde::{Deserialize, Serialize};

/// The largest answer read: 1 MiB. The user object carries the user's channels, each with its
/// avatars and banners, so it outgrows the 64 KiB kept for the session endpoints.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// `GET /api/v1/users/me`.
///
/// ```
/// use peertube_session::api::{self, Endpoint, UserRole, UsersMe};
/// use peertube_session::Instance;
/// use peertube_session::response::Secrets;
///
/// let instance = Instance::new("https://video.example.org")?;
/// let request = UsersMe.request(&instance)?;
/// assert_eq!(request.uri(), "https://video.example.org/api/v1/users/me");
///
/// let answer = http::Response::builder()
///     .status(200)
///     .body(br#"{"id":1,"username":"root","role":{"id":0,"label":"Administrator"},"email":"a@b.c"}"#.to_vec())?;
/// let me = api::parse(&UsersMe, &answer, &Secrets::none())?;
/// assert_eq!((me.id, me.username.as_str(), me.role), (1, "root", Some(UserRole::Administrator)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsersMe;

/// The logged-in user, as far as this crate needs it.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Me {
    /// `id`: the user's id, which the token-session routes take.
    pub id: u64,
    /// `username`.
    pub username: String,
    /// `role`, when sent in a form this crate knows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<UserRole>,
}

/// A user's role (`UserRole` in PeerTube's models).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UserRole {
    /// 0: may manage every user, their sessions included.
    Administrator,
    /// 1: may manage users whose role is [`UserRole::User`].
    Moderator,
    /// 2: may manage only itself.
    User,
    /// A role number this crate does not know.
    #[serde(untagged)]
    Other(u64),
}

impl UserRole {
    /// The role of PeerTube's number for it.
    pub fn from_id(id: u64) -> Self {
        match id {
            0 => UserRole::Administrator,
            1 => UserRole::Moderator,
            2 => UserRole::User,
            other => UserRole::Other(other),
        }
    }
}

#[derive(Deserialize)]
struct RawMe {
    id: Option<u64>,
    username: Option<String>,
    #[serde(default)]
    role: Option<RawRole>,
}

/// `{"id": 0, "label": "Administrator"}` since PeerTube 4.3; a bare number before.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawRole {
    Object { id: u64 },
    Number(u64),
    Unknown(serde::de::IgnoredAny),
}

impl Endpoint for UsersMe {
    type Output = Me;
    const BODY_LIMIT: usize = BODY_LIMIT;

    fn request(&self, instance: &Instance) -> Result<Request<Body>, Error> {
        api_request(Method::GET, instance, "/api/v1/users/me")
    }

    fn parse_success(&self, status: StatusCode, body: &[u8]) -> Result<Me, Error> {
        let raw: RawMe = json_body(status, body)?;
        let (Some(id), Some(username)) = (raw.id, raw.username) else {
            return Err(Error::malformed(
                status,
                "the user has no numeric id or no username",
            ));
        };
        let role = match raw.role {
            Some(RawRole::Object { id } | RawRole::Number(id)) => Some(UserRole::from_id(id)),
            Some(RawRole::Unknown(_)) | None => None,
        };
        Ok(Me { id, username, role })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<Me, Error> {
        UsersMe.parse_success(StatusCode::OK, body.as_bytes())
    }

    #[test]
    fn roles_in_both_forms_and_unknown_ones() {
        let me = parse(r#"{"id":7,"username":"bob","role":2}"#).unwrap();
        assert_eq!(me.role, Some(UserRole::User));
        let me = parse(r#"{"id":7,"username":"bob","role":{"id":1,"label":"Moderator"}}"#).unwrap();
        assert_eq!(me.role, Some(UserRole::Moderator));
        let me = parse(r#"{"id":7,"username":"bob","role":{"id":9}}"#).unwrap();
        assert_eq!(me.role, Some(UserRole::Other(9)));
        let me = parse(r#"{"id":7,"username":"bob","role":"admin"}"#).unwrap();
        assert_eq!(me.role, None);
        let me = parse(r#"{"id":7,"username":"bob"}"#).unwrap();
        assert_eq!(me.role, None);
    }

    #[test]
    fn an_id_and_a_username_are_required() {
        for body in [
            r#"{"username":"bob"}"#,
            r#"{"id":7}"#,
            r#"{"id":-7,"username":"bob"}"#,
            r#"{"id":7.5,"username":"bob"}"#,
            r#"{"id":"7","username":"bob"}"#,
            r#"[]"#,
            "",
        ] {
            assert!(
                matches!(parse(body), Err(Error::MalformedResponse { .. })),
                "{body}"
            );
        }
    }

    #[test]
    fn role_numbers_map_to_peertube_roles() {
        assert_eq!(UserRole::from_id(0), UserRole::Administrator);
        assert_eq!(UserRole::from_id(1), UserRole::Moderator);
        assert_eq!(UserRole::from_id(2), UserRole::User);
        assert_eq!(UserRole::from_id(3), UserRole::Other(3));
        assert_eq!(
            serde_json::to_string(&[UserRole::Administrator, UserRole::Other(3)]).unwrap(),
            r#"["administrator",3]"#
        );
    }
}
