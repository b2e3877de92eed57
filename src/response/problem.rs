//! Error answers: problem+json (PeerTube 6.x with the legacy `error` member, and 8.x), and the
//! bodies that are not JSON at all (the rate limiter's plain text, a proxy's HTML).

use super::DEFAULT_BODY_LIMIT;
use super::redact::{Secrets, redact};
use crate::error::{Error, ErrorCode, Operation, RateLimitInfo, ServerError};
use crate::request::OTP_HEADER;
use http::header::{DATE, RETRY_AFTER};
use http::{HeaderMap, HeaderName, Response, StatusCode};
use serde::Deserialize;
use std::borrow::Cow;
use std::time::Duration;

/// Longest `detail` kept; PeerTube's are one short sentence.
const MAX_DETAIL_CHARS: usize = 1024;
/// Longest excerpt kept from a body that is not problem+json.
const MAX_EXCERPT_CHARS: usize = 160;

/// Reads any response as an error answer: status, `code`, `detail` (or the legacy `error`),
/// `Retry-After`, the `X-RateLimit-*` headers and the `x-peertube-otp` signal. A body that is not
/// problem+json leaves a short printable excerpt instead; a body over the default cap is not read.
/// The `secrets` of the request it answers are removed from both (see [`Secrets`]).
pub fn parse_error<B: AsRef<[u8]>>(response: &Response<B>, secrets: &Secrets<'_>) -> ServerError {
    let body = response.body().as_ref();
    let body = if body.len() > DEFAULT_BODY_LIMIT {
        &[][..]
    } else {
        body
    };
    read(response, body, secrets)
}

/// The members of RFC 7807 problem+json that PeerTube sends. Each is read leniently: a member of
/// an unexpected type is ignored rather than failing the whole error.
#[derive(Deserialize)]
struct Problem<'a> {
    #[serde(default, borrow)]
    code: Lenient<'a>,
    #[serde(default, borrow)]
    detail: Lenient<'a>,
    #[serde(default, borrow)]
    error: Lenient<'a>,
}

/// A string member, borrowed from the body when it has no escapes, so only the one kept is
/// copied.
#[derive(Default)]
struct Lenient<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for Lenient<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LenientVisitor)
    }
}

/// Keeps strings, skips anything else without building it.
struct LenientVisitor;

impl<'de> serde::de::Visitor<'de> for LenientVisitor {
    type Value = Lenient<'de>;

    // Mutation testing skips `expecting` and the arms for non-strings: their mutants return
    // `Default::default()`, which is `Lenient(None)`, what these arms return; and `expecting`
    // is never shown, since this visitor accepts every JSON value.
    #[cfg_attr(test, mutants::skip)]
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: serde::de::Error>(self, text: &'de str) -> Result<Lenient<'de>, E> {
        Ok(Lenient(Some(Cow::Borrowed(text))))
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Lenient<'de>, E> {
        Ok(Lenient(Some(Cow::Owned(text.to_owned()))))
    }

    fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Lenient<'de>, E> {
        Ok(Lenient(Some(Cow::Owned(text))))
    }

    #[cfg_attr(test, mutants::skip)]
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Lenient<'de>, E> {
        Ok(Lenient(None))
    }

    #[cfg_attr(test, mutants::skip)]
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Lenient<'de>, E> {
        Ok(Lenient(None))
    }

    #[cfg_attr(test, mutants::skip)]
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Lenient<'de>, E> {
        Ok(Lenient(None))
    }

    #[cfg_attr(test, mutants::skip)]
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Lenient<'de>, E> {
        Ok(Lenient(None))
    }

    #[cfg_attr(test, mutants::skip)]
    fn visit_unit<E: serde::de::Error>(self) -> Result<Lenient<'de>, E> {
        Ok(Lenient(None))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Lenient<'de>, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Lenient(None))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Lenient<'de>, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(Lenient(None))
    }
}

const RATE_LIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const RATE_LIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const RATE_LIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

pub(super) fn read<B>(response: &Response<B>, body: &[u8], secrets: &Secrets<'_>) -> ServerError {
    let headers = response.headers();
    let mut error = ServerError {
        status: response.status(),
        code: None,
        detail: None,
        retry_after: retry_after(headers),
        retry_at: header_date(headers, &RETRY_AFTER),
        rate_limit: rate_limit(headers),
        two_factor_required: headers.get(OTP_HEADER).is_some_and(|value| {
            value
                .as_bytes()
                .get(..8)
                .is_some_and(|start| start.eq_ignore_ascii_case(b"required"))
        }),
        excerpt: None,
    };
    match serde_json::from_slice::<Problem>(body) {
        Ok(problem) => {
            error.code = problem
                .code
                .0
                .filter(|code| !code.is_empty())
                .map(|code| ErrorCode::parse(&code));
            error.detail = problem
                .detail
                .0
                .or(problem.error.0)
                .map(|text| printable(redact(&text, secrets), MAX_DETAIL_CHARS))
                .filter(|text| !text.is_empty());
        }
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            error.excerpt = Some(printable(redact(&text, secrets), MAX_EXCERPT_CHARS))
                .filter(|text| !text.is_empty())
        }
    }
    error
}

/// Decides on `code` first and on the status second, as PeerTube means its answers to be read.
pub(super) fn classify(operation: Operation, error: ServerError) -> Error {
    use ErrorCode as C;
    let error = Box::new(error);
    if error.status == StatusCode::TOO_MANY_REQUESTS {
        return Error::RateLimited(error);
    }
    match (&error.code, operation) {
        (Some(C::MissingTwoFactor), _) => Error::TwoFactorRequired(error),
        (None, Operation::Login)
            if error.status == StatusCode::UNAUTHORIZED && error.two_factor_required =>
        {
            Error::TwoFactorRequired(error)
        }
        (Some(C::InvalidTwoFactor), _) => Error::InvalidTwoFactor(error),
        (Some(C::InvalidGrant), Operation::Refresh) => Error::LoginRequired(error),
        (Some(C::InvalidGrant), Operation::Login) => Error::BadCredentials(error),
        (
            Some(
                C::AccessDenied
                | C::AccountBlocked
                | C::EmailNotVerified
                | C::AccountWaitingForApproval
                | C::AccountApprovalRejected,
            ),
            _,
        ) => Error::AccountUnavailable(error),
        (Some(C::InvalidClient), _) => Error::InvalidClient(error),
        (Some(C::InvalidToken), _) => Error::InvalidToken(error),
        (None, Operation::FetchClient) if error.status == StatusCode::FORBIDDEN => {
            Error::ClientForbiddenForHost(error)
        }
        _ => Error::Server(error),
    }
}

/// An error answer to a call of [`crate::api`]. A 400 with nothing in its body is what
/// PeerTube's API router answers for a route it does not have (its catch-all), so it means the
/// server is too old for the endpoint; a 400 about a bad parameter always has a problem+json
/// body.
pub(super) fn classify_call(error: ServerError, blank_body: bool) -> Error {
    let error = Box::new(error);
    if error.status == StatusCode::TOO_MANY_REQUESTS {
        return Error::RateLimited(error);
    }
    match (&error.code, error.status) {
        (Some(ErrorCode::InvalidToken), _) => Error::InvalidToken(error),
        (None, StatusCode::BAD_REQUEST) if blank_body => Error::NotSupported(error),
        (_, StatusCode::NOT_FOUND) => Error::NotFound(error),
        (_, StatusCode::FORBIDDEN) => Error::Forbidden(error),
        _ => Error::Server(error),
    }
}

fn header_u64(headers: &HeaderMap, name: &HeaderName) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// `Retry-After` in either form (RFC 9110 §10.2.3): delta-seconds, or an HTTP-date taken
/// relative to the answer's `Date`.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    if let Some(secs) = header_u64(headers, &RETRY_AFTER) {
        return Some(Duration::from_secs(secs));
    }
    let at = header_date(headers, &RETRY_AFTER)?;
    let sent = header_date(headers, &DATE)?;
    Some(at.duration_since(sent).unwrap_or(Duration::ZERO))
}

pub(crate) fn header_date(headers: &HeaderMap, name: &HeaderName) -> Option<std::time::SystemTime> {
    httpdate::parse_http_date(headers.get(name)?.to_str().ok()?.trim()).ok()
}

fn rate_limit(headers: &HeaderMap) -> Option<RateLimitInfo> {
    Some(RateLimitInfo {
        limit: header_u64(headers, &RATE_LIMIT_LIMIT)?,
        remaining: header_u64(headers, &RATE_LIMIT_REMAINING)?,
        reset_epoch_secs: header_u64(headers, &RATE_LIMIT_RESET)?,
    })
}

/// A control character, or white space other than a plain space.
fn needs_replacing(c: char) -> bool {
    c.is_control() || (c.is_whitespace() && c != ' ')
}

/// At most `max` characters of `text`, control characters turned into spaces, runs of white
/// space folded, so a hostile body cannot forge log lines or flood a terminal.
fn printable(text: Cow<'_, str>, max: usize) -> String {
    // The fast path, for text that needs nothing done.
    let clean = text.len() <= max
        && !text.starts_with(' ')
        && !text.ends_with(' ')
        && !text.contains("  ")
        && !text.chars().any(needs_replacing);
    if clean {
        return text.into_owned();
    }
    let mut out = String::new();
    let mut taken = 0;
    let mut pending_space = false;
    for c in text.chars() {
        if c.is_whitespace() || c.is_control() {
            pending_space = !out.is_empty();
            continue;
        }
        if taken + usize::from(pending_space) >= max {
            out.push('…');
            break;
        }
        if pending_space {
            out.push(' ');
            taken += 1;
            pending_space = false;
        }
        out.push(c);
        taken += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn printable_folds_white_space_and_cuts_long_text() {
        assert_eq!(printable("  a\r\n\tb\u{7}c  ".into(), 10), "a b c");
        assert_eq!(printable("abcdef".into(), 3), "abc…");
        assert_eq!(printable("".into(), 3), "");
        assert_eq!(printable("a  b".into(), 10), "a b");
        assert_eq!(printable("plain text".into(), 10), "plain text");
    }

    #[test]
    fn owned_strings_from_another_deserializer_are_kept() {
        // serde_json::Value hands its strings over owned (`visit_string`).
        use serde::Deserialize;
        let text = super::Lenient::deserialize(serde_json::json!("gone")).unwrap();
        assert_eq!(text.0.as_deref(), Some("gone"));
        let number = super::Lenient::deserialize(serde_json::json!(1)).unwrap();
        assert_eq!(number.0, None);
    }

    #[test]
    fn one_control_character_in_otherwise_clean_text_is_still_removed() {
        // Each alone, so the fast path for clean text must notice it.
        for dirty in [
            "a\u{1b}[31mb",
            "a\u{7}b",
            "a\u{0}b",
            "a\u{2028}b",
            "a\u{85}b",
            "a\tb",
        ] {
            let out = printable(dirty.into(), 64);
            assert!(
                !out.chars()
                    .any(|c| c.is_control() || (c.is_whitespace() && c != ' ')),
                "{dirty:?} -> {out:?}"
            );
            assert!(out.starts_with('a') && out.ends_with('b'), "{out:?}");
        }
    }

    #[test]
    fn text_at_the_limit_is_kept_whole_and_one_more_is_cut() {
        assert_eq!(printable("abc".into(), 3), "abc");
        assert_eq!(printable("abcd".into(), 3), "abc…");
        assert_eq!(printable(" abc".into(), 3), "abc");
        assert_eq!(printable("ab ".into(), 3), "ab");
        assert_eq!(printable(" ab".into(), 10), "ab");
        assert_eq!(printable("ab ".into(), 10), "ab");
        // The space before a word counts: it does not slip past the limit.
        assert_eq!(printable("abc d".into(), 4), "abc…");
        assert_eq!(printable("ab d".into(), 4), "ab d");
    }
}
