//! Writing answers the way PeerTube's express stack writes them. Written apart from the
//! client's parsers on purpose, so that a mistake on one side is not mirrored on the other.

use super::config::ServerVersion;
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
pub(crate) fn too_many_requests() -> Response<Vec<u8>> {
    with_type(
        StatusCode::TOO_MANY_REQUESTS,
        "text/html; charset=utf-8",
        b"Too many requests, please try again later.".to_vec(),
    )
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
