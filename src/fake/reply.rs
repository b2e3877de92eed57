//! Writing answers the way PeerTube's express stack writes them. Written apart from the
//! client's parsers on purpose, so that a mistake on one side is not mirrored on the other.

use super::config::ServerVersion;
use super::rate_limit::Verdict;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{HeaderName, Response, StatusCode};

const JSON_TYPE: &str = "application/json; charset=utf-8";
const PROBLEM_TYPE: &str = "application/problem+json; charset=utf-8";
const DOCS_BASE: &str = "https://docs.joinpeertube.org/api-rest-reference.html";

/// The OpenAPI operation a route documents (`docs` member of its errors), when it has one.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Docs {
    GetOAuthClient,
    GetOAuthToken,
    RevokeOAuthToken,
    None,
}

impl Docs {
    fn url(self) -> Option<String> {
        let operation = match self {
            Docs::GetOAuthClient => "getOAuthClient",
            Docs::GetOAuthToken => "getOAuthToken",
            Docs::RevokeOAuthToken => "revokeOAuthToken",
            Docs::None => return None,
        };
        Some(format!("{DOCS_BASE}#operation/{operation}"))
    }
}

fn quoted(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// `res.fail()`: RFC 7807 problem+json. `type` names the code when there is one, and `title`
/// is present only for `about:blank`; 6.x adds the legacy `error` member.
pub(crate) fn problem(
    version: ServerVersion,
    status: StatusCode,
    code: Option<&str>,
    detail: &str,
    docs: Docs,
) -> Response<Vec<u8>> {
    let mut body = String::from("{");
    match code {
        Some(code) => body.push_str(&format!(
            "\"type\":{}",
            quoted(&format!("{DOCS_BASE}#section/Errors/{code}"))
        )),
        None => body.push_str(&format!(
            "\"type\":\"about:blank\",\"title\":{}",
            quoted(status.canonical_reason().unwrap_or(""))
        )),
    }
    if !detail.is_empty() {
        body.push_str(&format!(",\"detail\":{}", quoted(detail)));
    }
    body.push_str(&format!(",\"status\":{}", status.as_u16()));
    if let Some(url) = docs.url() {
        body.push_str(&format!(",\"docs\":{}", quoted(&url)));
    }
    if let Some(code) = code {
        body.push_str(&format!(",\"code\":{}", quoted(code)));
    }
    if version == ServerVersion::PeerTube6 && !detail.is_empty() {
        body.push_str(&format!(",\"error\":{}", quoted(detail)));
    }
    body.push('}');
    with_type(status, PROBLEM_TYPE, body.into_bytes())
}

pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Response<Vec<u8>> {
    with_type(status, JSON_TYPE, value.to_string().into_bytes())
}

/// express-rate-limit's answer: plain text, sent with express's default HTML content type.
/// express-rate-limit's answer over the limit: plain text, `Retry-After` and the limit's
/// headers.
pub(crate) fn rate_limited(verdict: &Verdict, wait_secs: u64) -> Response<Vec<u8>> {
    let mut response = with_type(
        StatusCode::TOO_MANY_REQUESTS,
        "text/html; charset=utf-8",
        b"Too many requests, please try again later.".to_vec(),
    );
    set_header(&mut response, "retry-after", wait_secs);
    add_limit_headers(&mut response, verdict);
    response
}

pub(crate) fn add_limit_headers(response: &mut Response<Vec<u8>>, verdict: &Verdict) {
    set_header(response, "x-ratelimit-limit", verdict.limit);
    set_header(response, "x-ratelimit-remaining", verdict.remaining);
    set_header(response, "x-ratelimit-reset", verdict.reset_epoch_secs);
}

pub(crate) fn with_type(
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
) -> Response<Vec<u8>> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

pub(crate) fn set_header(
    response: &mut Response<Vec<u8>>,
    name: &'static str,
    value: impl ToString,
) {
    if let Ok(value) = HeaderValue::from_str(&value.to_string()) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(name), value);
    }
}

/// One entry of `invalid-params`: an express-validator error.
pub(crate) struct Invalid<'a> {
    name: &'a str,
    value: &'a str,
    location: &'a str,
    message: &'a str,
}

impl<'a> Invalid<'a> {
    /// A rejected parameter with express-validator's default message.
    pub(crate) fn new(name: &'a str, value: &'a str, location: &'a str) -> Self {
        Invalid {
            name,
            value,
            location,
            message: "Invalid value",
        }
    }

    /// With the validator's own message.
    pub(crate) fn because(self, message: &'a str) -> Self {
        Invalid { message, ..self }
    }
}

/// `areValidationErrors`: 400 problem+json with the request's path in `instance` and each
/// rejected parameter under `invalid-params` (as a real 8.0.1 answers `?count=-1`).
pub(crate) fn invalid_params(instance: &str, invalid: &[Invalid<'_>]) -> Response<Vec<u8>> {
    let names: Vec<&str> = invalid.iter().map(|i| i.name).collect();
    let params: Vec<String> = invalid
        .iter()
        .map(|entry| {
            format!(
                "{}:{{\"type\":\"field\",\"value\":{},\"msg\":{},\"path\":{},\"location\":{}}}",
                quoted(entry.name),
                quoted(entry.value),
                quoted(entry.message),
                quoted(entry.name),
                quoted(entry.location)
            )
        })
        .collect();
    let body = format!(
        "{{\"type\":\"about:blank\",\"title\":\"Bad Request\",\"detail\":{},\"instance\":{},\"status\":400,\"invalid-params\":{{{}}}}}",
        quoted(&format!(
            "Incorrect request parameters: {}",
            names.join(", ")
        )),
        quoted(instance),
        params.join(",")
    );
    with_type(StatusCode::BAD_REQUEST, PROBLEM_TYPE, body.into_bytes())
}

/// A JSON object with its members in the order given, as JavaScript writes them (serde_json's
/// own maps sort their keys).
pub(crate) fn ordered_object(members: &[(&str, serde_json::Value)]) -> String {
    let members: Vec<String> = members
        .iter()
        .map(|(name, value)| format!("{}:{value}", quoted(name)))
        .collect();
    format!("{{{}}}", members.join(","))
}

/// JavaScript's `Date.prototype.toISOString`: `2026-11-28T20:55:25.743Z`. The fake's clock
/// never goes before 1970.
pub(crate) fn iso_date(at: std::time::SystemTime) -> String {
    let since = at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let mut days = since.as_secs() / 86_400;
    let seconds = since.as_secs() % 86_400;
    let mut year = 1970;
    loop {
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let length = if leap { 366 } else { 365 };
        if days < length {
            break;
        }
        days -= length;
        year += 1;
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let lengths = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let mut month = 0;
    while days >= lengths[month] {
        days -= lengths[month];
        month += 1;
    }
    format!(
        "{year:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        month + 1,
        days + 1,
        seconds / 3_600,
        seconds / 60 % 60,
        seconds % 60,
        since.subsec_millis()
    )
}
