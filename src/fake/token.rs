//! `POST /api/v1/users/token`: the checks in PeerTube's order (`handleToken`, then
//! `handleOAuthToken`, then the grant), first failure wins.

use super::config::ServerVersion;
use super::model::{ExternalToken, Model, Seen, Session};
use super::reply::{self, Docs};
use super::totp;
use http::header::CONTENT_TYPE;
use http::{HeaderName, Request, Response, StatusCode};
use std::net::IpAddr;
use std::time::Duration;

/// PeerTube's request body limit for forms is far larger than any login; this only keeps the
/// fake bounded.
const MAX_FORM_BYTES: usize = 100 * 1024;

/// An external-auth token lives 5 minutes.
pub(crate) const EXTERNAL_AUTH_LIFETIME: Duration = Duration::from_secs(5 * 60);

const OTP_HEADER: HeaderName = HeaderName::from_static("x-peertube-otp");

type Reply = Response<Vec<u8>>;

struct Form(Vec<(String, String)>);

impl Form {
    /// The first value of a field, if present and non-empty (PeerTube tests `!body.field`).
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .filter(|value| !value.is_empty())
    }
}

/// What identifies the user once the early checks passed.
enum Login<'a> {
    Password {
        username: &'a str,
        password: &'a str,
    },
    External {
        username: String,
    },
}

impl Model {
    pub(crate) fn token<B: AsRef<[u8]>>(&mut self, request: &Request<B>, address: IpAddr) -> Reply {
        self.counters.token_requests += 1;
        let limit = match self.config.login_limit {
            Some((max, window)) => {
                let verdict = self.limiter.hit(address, max, window, self.now);
                if let Some(wait) = verdict.retry_after_secs {
                    self.counters.rate_limited += 1;
                    return reply::rate_limited(&verdict, wait);
                }
                Some(verdict)
            }
            None => None,
        };
        let mut response = self.grant(request);
        if let Some(verdict) = &limit {
            reply::add_limit_headers(&mut response, verdict);
        }
        response
    }

    fn grant<B: AsRef<[u8]>>(&mut self, request: &Request<B>) -> Reply {
        let body = request.body().as_ref();
        if body.len() > MAX_FORM_BYTES {
            return self.fail(
                StatusCode::PAYLOAD_TOO_LARGE,
                None,
                "request entity too large",
                Docs::GetOAuthToken,
            );
        }
        let is_form = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        let form = Form(if is_form {
            serde_urlencoded::from_bytes(body).unwrap_or_default()
        } else {
            Vec::new()
        });
        let grant_type = form.get("grant_type");

        // `buildByPassLogin` runs before any OAuth check.
        let mut external = None;
        if grant_type == Some("password")
            && let Some(token) = form.get("externalAuthToken")
        {
            match self.take_external_token(token, form.get("username").unwrap_or("")) {
                Ok(username) => external = Some(username),
                Err(message) => {
                    return self.fail(
                        StatusCode::BAD_REQUEST,
                        Some("Error"),
                        &message,
                        Docs::GetOAuthToken,
                    );
                }
            }
        }

        if !is_form || body.is_empty() {
            return self.invalid_request(
                "Invalid request: content must be application/x-www-form-urlencoded",
            );
        }
        let (Some(client_id), Some(client_secret)) =
            (form.get("client_id"), form.get("client_secret"))
        else {
            return self.invalid_client("Invalid client: cannot retrieve client credentials");
        };
        if !self.config.has_client
            || client_id != self.config.client_id
            || client_secret != self.config.client_secret
        {
            return self.invalid_client("Invalid client: client is invalid");
        }
        let Some(grant_type) = grant_type else {
            return self.invalid_request("Missing parameter: `grant_type`");
        };
        match grant_type {
            "password" => {
                let Some(username) = form.get("username") else {
                    return self.invalid_request("Missing parameter: `username`");
                };
                let login = match external {
                    Some(username) => Login::External { username },
                    None => match form.get("password") {
                        Some(password) => Login::Password { username, password },
                        None => return self.invalid_request("Missing parameter: `password`"),
                    },
                };
                let otp = request
                    .headers()
                    .get(OTP_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .filter(|v| !v.is_empty());
                let seen = self.seen(request);
                self.password_grant(login, otp, seen)
            }
            "refresh_token" => match form.get("refresh_token") {
                Some(token) => {
                    let token = token.to_owned();
                    let seen = self.seen(request);
                    self.refresh_grant(&token, seen)
                }
                None => self.invalid_request("Missing parameter: `refresh_token`"),
            },
            _ => self.fail(
                StatusCode::BAD_REQUEST,
                Some("unsupported_grant_type"),
                "Unsupported grant type: `grant_type` is invalid",
                Docs::GetOAuthToken,
            ),
        }
    }

    fn password_grant(&mut self, login: Login<'_>, otp: Option<&str>, seen: Seen) -> Reply {
        let found = match &login {
            Login::External { username } => self.user_index(username),
            Login::Password { username, password } => self
                .find_login_user(username)
                .filter(|&i| self.user(i).is_some_and(|u| u.password == *password)),
        };
        let Some(index) = found else {
            let name = match &login {
                Login::External { username } => username.as_str(),
                Login::Password { username, .. } => username,
            };
            return self.unknown_user(name);
        };
        let Some(user) = self.user(index).cloned() else {
            return self.invalid_grant("Invalid grant: user credentials are invalid");
        };
        if user.blocked {
            return self.fail(
                StatusCode::BAD_REQUEST,
                Some("access_denied"),
                "User is blocked.",
                Docs::GetOAuthToken,
            );
        }
        if !user.email_verified {
            return self.fail(
                StatusCode::BAD_REQUEST,
                Some("access_denied"),
                "User email is not verified.",
                Docs::GetOAuthToken,
            );
        }
        if let Some(key) = &user.totp_secret {
            let Some(code) = otp else {
                let mut response = self.fail(
                    StatusCode::UNAUTHORIZED,
                    Some("missing_two_factor"),
                    "Missing two factor header",
                    Docs::GetOAuthToken,
                );
                reply::set_header(&mut response, "x-peertube-otp", "required; app");
                return response;
            };
            if !totp::verify(key, code, self.now) {
                return self.fail(
                    StatusCode::BAD_REQUEST,
                    Some("invalid_two_factor"),
                    "Invalid two factor header",
                    Docs::GetOAuthToken,
                );
            }
        }
        self.counters.logins += 1;
        self.issue(index, seen.clone(), seen)
    }

    /// A name with `@` is an e-mail (matched case-sensitively by 6.x, case-insensitively by
    /// later versions); anything else is a username, matched case-insensitively.
    fn find_login_user(&self, name: &str) -> Option<usize> {
        if name.contains('@') {
            let case_sensitive = self.config.version == ServerVersion::PeerTube6;
            self.config.users.iter().position(|u| {
                if case_sensitive {
                    u.email == name
                } else {
                    u.email.eq_ignore_ascii_case(name)
                }
            })
        } else {
            self.user_index(name)
        }
    }

    /// No account matched: a pending or rejected registration says so, anything else is
    /// `invalid_grant`.
    fn unknown_user(&mut self, name: &str) -> Reply {
        let registrations: Vec<_> = self
            .config
            .registrations
            .iter()
            .filter(|r| r.username.eq_ignore_ascii_case(name) || r.email.eq_ignore_ascii_case(name))
            .collect();
        if let [registration] = registrations.as_slice() {
            let (code, detail) = match registration.state {
                super::RegistrationState::Rejected => (
                    "account_approval_rejected",
                    "Registration approval for this account has been rejected",
                ),
                super::RegistrationState::Pending => (
                    "account_waiting_for_approval",
                    "Registration for this account is awaiting approval",
                ),
            };
            return self.fail(
                StatusCode::BAD_REQUEST,
                Some(code),
                detail,
                Docs::GetOAuthToken,
            );
        }
        self.invalid_grant("Invalid grant: user credentials are invalid")
    }

    fn refresh_grant(&mut self, refresh_token: &str, seen: Seen) -> Reply {
        *self
            .counters
            .refreshes_per_token
            .entry(refresh_token.to_owned())
            .or_insert(0) += 1;
        let Some(access) = self.by_refresh.get(refresh_token).cloned() else {
            return self.invalid_grant("Invalid grant: refresh token is invalid");
        };
        let Some(session) = self.sessions.get(&access) else {
            return self.invalid_grant("Invalid grant: refresh token is invalid");
        };
        if session.refresh_expires < self.now {
            return self.invalid_grant("Invalid grant: refresh token has expired");
        }
        let (user, login) = (session.user, session.login.clone());
        // Rotation: the old pair dies at once, access and refresh token alike. The new row
        // keeps the login's device, address and date; the refresh is its last activity.
        self.sessions.remove(&access);
        self.by_refresh.remove(refresh_token);
        self.counters.refreshes += 1;
        self.issue(user, login, seen)
    }

    fn issue(&mut self, user: usize, login: Seen, last_activity: Seen) -> Reply {
        let access = self.new_token();
        let refresh = self.new_token();
        let (access_lifetime, refresh_lifetime) =
            (self.config.access_lifetime, self.config.refresh_lifetime);
        let id = self.next_session_id;
        self.next_session_id += 1;
        let session = Session {
            id,
            login,
            last_activity,
            created_at: self.now,
            user,
            refresh: refresh.clone(),
            access_expires: self.now.checked_add(access_lifetime).unwrap_or(self.now),
            refresh_expires: self.now.checked_add(refresh_lifetime).unwrap_or(self.now),
            uses: 0,
        };
        self.sessions.insert(access.clone(), session);
        self.by_refresh.insert(refresh.clone(), access.clone());
        // PeerTube computes `floor((expiresAt - now) / 1000)` a few milliseconds after creating
        // the token, so a 1-day lifetime is announced as 86399.
        let announce = |lifetime: Duration| lifetime.as_secs().saturating_sub(1);
        let mut response = reply::json(
            StatusCode::OK,
            &serde_json::json!({
                "token_type": "Bearer",
                "access_token": access,
                "refresh_token": refresh,
                "expires_in": announce(access_lifetime),
                "refresh_token_expires_in": announce(refresh_lifetime),
            }),
        );
        reply::set_header(&mut response, "cache-control", "no-store");
        reply::set_header(&mut response, "pragma", "no-cache");
        response
    }

    /// Checks an external-auth token against what the plugin handed out. Single use: it is
    /// consumed by the first exchange, right or wrong.
    fn take_external_token(&mut self, token: &str, username: &str) -> Result<String, String> {
        let Some(entry) = self.external.remove(token) else {
            return Err("Cannot authenticate user with unknown bypass token".to_owned());
        };
        if self.now > entry.expires {
            return Err("Cannot authenticate user with an expired external auth token".to_owned());
        }
        if entry.username != username {
            return Err(format!(
                "Cannot authenticate user {} with invalid username {username}",
                entry.username
            ));
        }
        Ok(entry.username)
    }

    pub(crate) fn add_external_token(&mut self, username: &str) -> String {
        let token = self.random_string(
            32,
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        );
        let expires = self
            .now
            .checked_add(EXTERNAL_AUTH_LIFETIME)
            .unwrap_or(self.now);
        self.external.insert(
            token.clone(),
            ExternalToken {
                username: username.to_owned(),
                expires,
            },
        );
        token
    }

    fn invalid_request(&self, detail: &str) -> Reply {
        self.fail(
            StatusCode::BAD_REQUEST,
            Some("invalid_request"),
            detail,
            Docs::GetOAuthToken,
        )
    }

    fn invalid_client(&self, detail: &str) -> Reply {
        self.fail(
            StatusCode::BAD_REQUEST,
            Some("invalid_client"),
            detail,
            Docs::GetOAuthToken,
        )
    }

    fn invalid_grant(&mut self, detail: &str) -> Reply {
        self.counters.invalid_grants += 1;
        self.fail(
            StatusCode::BAD_REQUEST,
            Some("invalid_grant"),
            detail,
            Docs::GetOAuthToken,
        )
    }
}
