//! Success bodies: the client pair, the token pair, the logout answer.

use crate::error::Error;
use crate::request::OAuthClient;
use crate::secret::{AccessToken, ClientSecret, RefreshToken, is_sendable_token};
use http::StatusCode;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use std::fmt;
use std::time::Duration;

/// Longest token lifetime accepted: 100 years. Larger values are not lifetimes but garbage, and
/// would overflow deadline arithmetic.
const MAX_LIFETIME_SECS: u64 = 100 * 365 * 24 * 3600;

/// A token pair from the password or refresh grant.
///
/// Lifetimes are relative to the moment the answer arrived; [`Session`](crate::Session) turns
/// them into absolute deadlines when it handles the answer.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenResponse {
    /// `access_token`.
    pub access_token: AccessToken,
    /// `refresh_token` (a new one on every refresh).
    pub refresh_token: RefreshToken,
    /// `expires_in`: the access token's lifetime (1 day by default), when sent.
    pub expires_in: Option<Duration>,
    /// `refresh_token_expires_in`: the refresh token's lifetime (2 weeks by default, 4 since
    /// PeerTube 8.2), when sent.
    pub refresh_token_expires_in: Option<Duration>,
}

/// The answer to a logout.
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevokeResponse {
    /// `redirectUrl`: where an auth plugin wants the user sent after logout (OpenID Connect
    /// end-session page and the like).
    pub redirect_url: Option<String>,
}

#[derive(Deserialize)]
struct RawClient {
    client_id: Option<String>,
    client_secret: Option<String>,
}

pub(super) fn oauth_client(status: StatusCode, body: &[u8]) -> Result<OAuthClient, Error> {
    let raw: RawClient = json(status, body)?;
    match (raw.client_id, raw.client_secret) {
        (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => {
            Ok(OAuthClient::new(id, ClientSecret::new(secret)))
        }
        _ => Err(Error::malformed(
            status,
            "client_id and client_secret must both be non-empty strings",
        )),
    }
}

#[derive(Deserialize)]
struct RawToken {
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<Seconds>,
    #[serde(default)]
    refresh_token_expires_in: Option<Seconds>,
}

pub(super) fn token(status: StatusCode, body: &[u8]) -> Result<TokenResponse, Error> {
    let raw: RawToken = json(status, body)?;
    if let Some(kind) = &raw.token_type
        && !kind.eq_ignore_ascii_case("bearer")
    {
        return Err(Error::malformed(status, "token_type is not Bearer"));
    }
    let access_token = usable_token(status, raw.access_token, "access_token")?;
    let refresh_token = usable_token(status, raw.refresh_token, "refresh_token")?;
    Ok(TokenResponse {
        access_token: AccessToken::new(access_token),
        refresh_token: RefreshToken::new(refresh_token),
        expires_in: raw.expires_in.map(|s| Duration::from_secs(s.0)),
        refresh_token_expires_in: raw
            .refresh_token_expires_in
            .map(|s| Duration::from_secs(s.0)),
    })
}

/// A token must be non-empty visible ASCII: it goes into an `Authorization` header or a form.
fn usable_token(status: StatusCode, token: Option<String>, name: &str) -> Result<String, Error> {
    match token {
        Some(token) if is_sendable_token(&token) => Ok(token),
        Some(token) if !token.is_empty() => Err(Error::malformed(
            status,
            format!("{name} contains characters a token cannot have"),
        )),
        _ => Err(Error::malformed(
            status,
            format!("{name} is missing or empty"),
        )),
    }
}

#[derive(Deserialize)]
struct RawRevoke {
    #[serde(default, rename = "redirectUrl")]
    redirect_url: Option<String>,
}

/// The status decides a logout; the body only adds `redirectUrl`, so a body that cannot be
/// read is not a reason to claim the logout failed.
pub(crate) fn revoke(body: &[u8]) -> RevokeResponse {
    let redirect_url = serde_json::from_slice::<RawRevoke>(body)
        .ok()
        .and_then(|raw| raw.redirect_url)
        .filter(|url| !url.is_empty());
    RevokeResponse { redirect_url }
}

/// A JSON body, or [`Error::MalformedResponse`] naming what was wrong but never quoting it.
pub(crate) fn json<'a, T: Deserialize<'a>>(status: StatusCode, body: &'a [u8]) -> Result<T, Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::malformed(status, "empty body"));
    }
    serde_json::from_slice(body).map_err(|e| Error::malformed(status, describe(&e)))
}

/// serde_json's message without the values it quotes: a half-valid token answer must not put a
/// token into an error message.
fn describe(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let mut out = String::with_capacity(message.len());
    let mut quote = None;
    let mut escaped = false;
    for c in message.chars() {
        match quote {
            Some(close) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == close {
                    out.push('…');
                    out.push(c);
                    quote = None;
                }
            }
            None => {
                out.push(c);
                if c == '"' || c == '`' {
                    quote = Some(c);
                }
            }
        }
    }
    if quote.is_some() {
        out.push('…');
    }
    format!("not the expected JSON: {out}")
}

/// A lifetime in whole seconds, read leniently: an integer, a float, or a numeric string (some
/// servers and proxies send those). Negative or absurd values are errors.
struct Seconds(u64);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SecondsVisitor)
    }
}

struct SecondsVisitor;

impl SecondsVisitor {
    fn checked<E: de::Error>(secs: u64) -> Result<Seconds, E> {
        if secs > MAX_LIFETIME_SECS {
            Err(E::custom("a token lifetime is larger than 100 years"))
        } else {
            Ok(Seconds(secs))
        }
    }
}

impl Visitor<'_> for SecondsVisitor {
    type Value = Seconds;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-negative number of seconds")
    }

    fn visit_u64<E: de::Error>(self, secs: u64) -> Result<Seconds, E> {
        Self::checked(secs)
    }

    fn visit_i64<E: de::Error>(self, secs: i64) -> Result<Seconds, E> {
        u64::try_from(secs)
            .map_err(|_| E::custom("a token lifetime is negative"))
            .and_then(Self::checked)
    }

    fn visit_f64<E: de::Error>(self, secs: f64) -> Result<Seconds, E> {
        if !(secs.is_finite() && secs >= 0.0) {
            return Err(E::custom("a token lifetime is negative or not a number"));
        }
        if secs > MAX_LIFETIME_SECS as f64 {
            return Err(E::custom("a token lifetime is larger than 100 years"));
        }
        // In range and non-negative, so the truncating conversion is exact enough.
        Ok(Seconds(secs as u64))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Seconds, E> {
        let text = text.trim();
        if let Ok(secs) = text.parse::<u64>() {
            return Self::checked(secs);
        }
        match text.parse::<f64>() {
            Ok(secs) => self.visit_f64(secs),
            Err(_) => Err(E::custom("a token lifetime is not a number")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lifetime(json: &str) -> Result<u64, serde_json::Error> {
        serde_json::from_str::<Seconds>(json).map(|Seconds(secs)| secs)
    }

    #[test]
    fn a_lifetime_of_exactly_100_years_is_kept_and_one_second_more_is_refused() {
        let cap = MAX_LIFETIME_SECS;
        assert_eq!(cap, 3_153_600_000);
        for accepted in [format!("{cap}"), format!("{cap}.0"), format!("\"{cap}\"")] {
            assert_eq!(lifetime(&accepted).unwrap(), cap, "{accepted}");
        }
        for refused in [
            format!("{}", cap + 1),
            format!("{}.5", cap),
            format!("\"{}\"", cap + 1),
            "1e300".to_owned(),
        ] {
            assert!(lifetime(&refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn a_negative_or_non_numeric_lifetime_is_refused_not_read_as_zero() {
        for refused in [
            "-1", "-0.5", "-86400.0", "\"-3\"", "\"soon\"", "\"NaN\"", "\"inf\"",
        ] {
            assert!(lifetime(refused).is_err(), "{refused}");
        }
        assert_eq!(lifetime("86399.9").unwrap(), 86399);
        assert_eq!(lifetime("\" 7200 \"").unwrap(), 7200);
        assert_eq!(lifetime("0").unwrap(), 0);
    }

    #[test]
    fn serde_messages_lose_the_values_they_quote() {
        let cases = [
            // serde quotes a string value with double quotes, a number or a name with backticks.
            serde_json::from_str::<u64>(r#""SECRETVALUEbyquotes""#).unwrap_err(),
            serde_json::from_str::<u64>(r#""SECRET\"VALUE\\with\"escapes""#).unwrap_err(),
            serde_json::from_str::<RawClient>(r#"{"client_id": 1234567890123}"#)
                .err()
                .unwrap(),
        ];
        for error in &cases {
            let described = describe(error);
            assert!(
                described.starts_with("not the expected JSON: "),
                "{described}"
            );
            for piece in ["SECRET", "VALUE", "1234567890123", "escapes"] {
                assert!(!described.contains(piece), "{piece} in {described}");
            }
            assert!(described.contains("expected"), "{described}");
        }
    }

    #[test]
    fn serde_messages_keep_their_words_and_lose_only_the_quoted_values() {
        let cases = [
            (
                r#""abc""#,
                "not the expected JSON: invalid type: string \"…\", expected u64 at line 1 column 5",
            ),
            (
                r#""a\"b\\c""#,
                "not the expected JSON: invalid type: string \"…\", expected u64 at line 1 column 9",
            ),
            (
                "-5",
                "not the expected JSON: invalid value: integer `…`, expected u64 at line 1 column 2",
            ),
        ];
        for (json, expected) in cases {
            let error = serde_json::from_str::<u64>(json).unwrap_err();
            assert_eq!(describe(&error), expected, "{error}");
        }
    }

    #[test]
    fn an_unclosed_quote_hides_the_rest_of_the_message() {
        let error = serde_json::from_str::<u64>(r#""SECRET"#).unwrap_err();
        assert!(!describe(&error).contains("SECRET"));
    }
}
