//! The token-session routes of PeerTube 7.3 and later, checked in PeerTube's order
//! (`server/core/controllers/api/users/token.ts`, `server/core/middlewares/validators/token.ts`):
//! `authenticate`; `manageTokenSessionsValidator` (a numeric `userId`, the user exists, the
//! caller may manage that user); then `paginationValidator` and `tokenSessionsSortValidator`
//! for the list, `revokeTokenSessionValidator` (one of the user's live sessions) for the revoke.

use super::config::{FakeRole, ServerVersion};
use super::model::{Model, Session};
use super::reply::{self, Docs, Invalid};
use http::{Request, Response, StatusCode};

type Reply = Response<Vec<u8>>;

/// `PAGINATION.GLOBAL.COUNT`: the default page and the largest.
const DEFAULT_COUNT: u64 = 15;
const MAX_COUNT: u64 = 100;

impl Model {
    /// Token sessions came with PeerTube 7.3; a 6.x server has no such routes.
    pub(crate) fn has_token_sessions(&self) -> bool {
        self.config.version != ServerVersion::PeerTube6
    }

    pub(crate) fn token_sessions<B: AsRef<[u8]>>(&mut self, request: &Request<B>) -> Reply {
        self.counters.token_session_requests += 1;
        let access = match self.authenticate_call(request) {
            Ok(access) => access,
            Err(refusal) => return *refusal,
        };
        let here = request
            .uri()
            .path_and_query()
            .map_or_else(String::new, |p| p.as_str().to_owned());
        let path = request.uri().path();
        let parts: Vec<&str> = path
            .trim_start_matches("/api/v1/users/")
            .split('/')
            .collect();
        let Some(user_id) = parts.first().and_then(|id| is_int(id).then_some(*id)) else {
            let raw = parts.first().copied().unwrap_or("");
            return reply::invalid_params(&here, &[Invalid::new("userId", raw, "params")]);
        };
        let Some(target) = self.user_of_id(user_id) else {
            return self.fail(StatusCode::NOT_FOUND, None, "User not found", Docs::None);
        };
        let caller = self.sessions.get(&access).map_or(usize::MAX, |s| s.user);
        let role = |index: usize| self.user(index).map_or(FakeRole::User, |u| u.role);
        if caller != target && !role(caller).can_manage(role(target)) {
            return self.fail(
                StatusCode::FORBIDDEN,
                None,
                "Only a user with sufficient right can manage this account resource.",
                Docs::None,
            );
        }
        match parts.as_slice() {
            [_, "token-sessions", session, "revoke"] => self.revoke_session(&here, target, session),
            _ => self.list_sessions(request, &here, target, &access),
        }
    }

    /// `forceNumber(userId)` and `loadByIdWithChannels`: ids are 1-based positions here.
    fn user_of_id(&self, id: &str) -> Option<usize> {
        let index = id.parse::<usize>().ok()?.checked_sub(1)?;
        (index < self.config.users.len()).then_some(index)
    }

    fn list_sessions<B>(
        &self,
        request: &Request<B>,
        here: &str,
        user: usize,
        access: &str,
    ) -> Reply {
        let query: Vec<(String, String)> = request
            .uri()
            .query()
            .and_then(|q| serde_urlencoded::from_str(q).ok())
            .unwrap_or_default();
        let param = |name: &str| {
            query
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        let start = param("start").map(|v| (v, int_within(v, u64::MAX)));
        let count = param("count").map(|v| (v, int_within(v, MAX_COUNT)));
        let mut invalid = Vec::new();
        if let Some((value, None)) = start {
            invalid
                .push(Invalid::new("start", value, "query").because("Should have a number start"));
        }
        if let Some((value, None)) = count {
            invalid.push(
                Invalid::new("count", value, "query")
                    .because("Should have a number count (max: 100)"),
            );
        }
        if !invalid.is_empty() {
            return reply::invalid_params(here, &invalid);
        }
        let newest_first = match param("sort") {
            None | Some("-createdAt") => true,
            Some("createdAt") => false,
            Some(other) => {
                return reply::invalid_params(here, &[Invalid::new("sort", other, "query")]);
            }
        };
        let start = start.and_then(|(_, v)| v).unwrap_or(0);
        let count = count.and_then(|(_, v)| v).unwrap_or(DEFAULT_COUNT);

        // `listSessionsOf`: rows of the user whose access and refresh tokens both live, by
        // `createdAt` then `id`.
        let mut live: Vec<(&String, &Session)> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.user == user && self.is_live(s))
            .collect();
        live.sort_by(|(_, a), (_, b)| {
            let by_date = if newest_first {
                b.created_at.cmp(&a.created_at)
            } else {
                a.created_at.cmp(&b.created_at)
            };
            by_date.then(a.id.cmp(&b.id))
        });
        let total = live.len();
        let page: Vec<String> = live
            .into_iter()
            .skip(usize::try_from(start).unwrap_or(usize::MAX))
            .take(usize::try_from(count).unwrap_or(usize::MAX))
            .map(|(token, session)| {
                // `toSessionFormattedJSON`, members in its order.
                reply::ordered_object(&[
                    ("id", session.id.into()),
                    ("loginIP", session.login.ip.to_string().into()),
                    ("loginDevice", session.login.device.clone().into()),
                    ("loginDate", reply::iso_date(session.login.at).into()),
                    (
                        "lastActivityIP",
                        session.last_activity.ip.to_string().into(),
                    ),
                    (
                        "lastActivityDevice",
                        session.last_activity.device.clone().into(),
                    ),
                    (
                        "lastActivityDate",
                        reply::iso_date(session.last_activity.at).into(),
                    ),
                    ("currentSession", (token == access).into()),
                    ("createdAt", reply::iso_date(session.created_at).into()),
                ])
            })
            .collect();
        let body = format!("{{\"total\":{total},\"data\":[{}]}}", page.join(","));
        reply::with_type(
            StatusCode::OK,
            "application/json; charset=utf-8",
            body.into_bytes(),
        )
    }

    fn revoke_session(&mut self, here: &str, user: usize, id: &str) -> Reply {
        if !is_int(id) {
            return reply::invalid_params(here, &[Invalid::new("tokenSessionId", id, "params")]);
        }
        // `loadSessionOf`: one of the user's rows whose access and refresh tokens both live.
        let found = self
            .sessions
            .iter()
            .find(|(_, s)| s.user == user && id.parse() == Ok(s.id) && self.is_live(s))
            .map(|(access, _)| access.clone());
        let Some(access) = found else {
            return self.fail(
                StatusCode::NOT_FOUND,
                None,
                "The token session does not exist or does not belong to the user.",
                Docs::None,
            );
        };
        if let Some(session) = self.sessions.remove(&access) {
            self.by_refresh.remove(&session.refresh);
        }
        self.counters.token_sessions_revoked += 1;
        self.revoked(user)
    }

    fn is_live(&self, session: &Session) -> bool {
        session.access_expires > self.now && session.refresh_expires > self.now
    }
}

/// validator.js's `isInt`: an optional sign and digits.
fn is_int(text: &str) -> bool {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// `isInt({ min: 0, max })`.
fn int_within(text: &str, max: u64) -> Option<u64> {
    if !is_int(text) {
        return None;
    }
    let value: i128 = text.parse().ok()?;
    u64::try_from(value).ok().filter(|v| *v <= max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_as_validator_js_reads_them() {
        assert!(is_int("12") && is_int("-1") && is_int("+3") && is_int("007"));
        assert!(!is_int("") && !is_int("-") && !is_int("1.5") && !is_int("1e3") && !is_int(" 1"));
        assert_eq!(int_within("100", 100), Some(100));
        assert_eq!(int_within("101", 100), None);
        assert_eq!(int_within("-1", 100), None);
        assert_eq!(int_within("0", 100), Some(0));
        assert_eq!(int_within("99999999999999999999999", u64::MAX), None);
    }
}
