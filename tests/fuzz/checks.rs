//! The properties every fuzz target checks, shared with the stable seed-replay test
//! (`tests/fuzz_seeds.rs`), so CI checks the same things without nightly.
//!
//! Parser targets read their input as a raw HTTP answer (status line, header lines, blank line,
//! body), decoded leniently: any bytes make some response, and recorded server answers are
//! seeds as they are. `session_ops` decodes its input with `arbitrary` into a sequence of
//! operations, answers and clock jumps.

#![allow(dead_code)]

use arbitrary::{Arbitrary, Unstructured};
use http::{HeaderName, HeaderValue, Response, StatusCode};
use peertube_session::response::{
    DEFAULT_BODY_LIMIT, Secrets, error_for, parse_error, parse_login, parse_oauth_client,
    parse_refresh, parse_revoke,
};
use peertube_session::{Credentials, Error, Instance, OAuthClient, Operation, Session, State};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MAX_HEADERS: usize = 64;

/// Any bytes as an HTTP answer: `[HTTP/1.1 ]STATUS[ reason]`, then `name: value` lines, a blank
/// line, the body. An unreadable status is 200; unreadable header lines are skipped; without a
/// blank line everything after the status line is body.
pub fn response_from_bytes(data: &[u8]) -> Response<Vec<u8>> {
    let (status_line, rest) = split_line(data);
    let status = std::str::from_utf8(status_line)
        .ok()
        .and_then(|line| {
            line.split_whitespace()
                .find_map(|word| word.parse::<u16>().ok())
        })
        .and_then(|code| StatusCode::from_u16(code).ok())
        .unwrap_or(StatusCode::OK);
    let (head, body) = match find(rest, b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| find(rest, b"\n\n").map(|i| (i, 2)))
    {
        Some((at, gap)) => (&rest[..at], &rest[at + gap..]),
        None => (&[][..], rest),
    };
    let mut response = Response::new(body.to_vec());
    *response.status_mut() = status;
    for line in head.split(|b| *b == b'\n').take(MAX_HEADERS) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.trim_ascii()),
            HeaderValue::from_bytes(value.trim_ascii()),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

fn split_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[]),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

// ----- parser targets -----

pub fn check_oauth_client(data: &[u8]) {
    let response = response_from_bytes(data);
    let result = parse_oauth_client(&response, &Secrets::none());
    match &result {
        Ok(client) => {
            assert!(response.status().is_success());
            assert!(
                !client.client_id.is_empty() && !client.client_secret.expose_secret().is_empty()
            );
            assert_debug_ignores_members(&response, &["client_secret"], |r| {
                parse_oauth_client(r, &Secrets::none())
                    .ok()
                    .map(|client| format!("{client:?}"))
            });
        }
        Err(error) => check_error(&response, error),
    }
    check_no_echo(&response, &["client_secret"], |r| {
        parse_oauth_client(r, &Secrets::none()).err()
    });
}

pub fn check_token(data: &[u8]) {
    let response = response_from_bytes(data);
    for result in [
        parse_login(&response, &Secrets::none()),
        parse_refresh(&response, &Secrets::none()),
    ] {
        match &result {
            Ok(tokens) => {
                assert!(response.status().is_success());
                for token in [
                    tokens.access_token.expose_secret(),
                    tokens.refresh_token.expose_secret(),
                ] {
                    assert!(!token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic()));
                }
                assert_debug_ignores_members(&response, &["access_token", "refresh_token"], |r| {
                    parse_login(r, &Secrets::none())
                        .ok()
                        .map(|tokens| format!("{tokens:?}"))
                });
                for lifetime in [tokens.expires_in, tokens.refresh_token_expires_in]
                    .into_iter()
                    .flatten()
                {
                    assert!(lifetime <= Duration::from_secs(100 * 365 * 24 * 3600));
                }
            }
            Err(error) => check_error(&response, error),
        }
    }
    check_no_echo(&response, &["access_token", "refresh_token"], |r| {
        parse_login(r, &Secrets::none()).err()
    });
}

pub fn check_revoke(data: &[u8]) {
    let response = response_from_bytes(data);
    match parse_revoke(&response, &Secrets::none()) {
        Ok(answer) => {
            assert!(response.status().is_success());
            assert!(
                answer
                    .redirect_url
                    .as_ref()
                    .is_none_or(|url| !url.is_empty())
            );
        }
        Err(error) => check_error(&response, &error),
    }
}

pub fn check_error_decoder(data: &[u8]) {
    let response = response_from_bytes(data);
    let server = parse_error(&response, &Secrets::none());
    assert_eq!(server.status, response.status());
    check_server_error_bounds(&server);
    for operation in [
        Operation::FetchClient,
        Operation::Login,
        Operation::Refresh,
        Operation::Logout,
        Operation::Authorize,
    ] {
        let error = error_for(operation, &response, &Secrets::none());
        match &error {
            Error::ResponseTooLarge { .. } => assert!(response.body().len() > DEFAULT_BODY_LIMIT),
            other => assert_eq!(other.status(), Some(response.status())),
        }
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(matches!(
                error,
                Error::RateLimited(_) | Error::ResponseTooLarge { .. }
            ));
        }
    }
}

/// Every parser error keeps the status and stays small.
fn check_error(response: &Response<Vec<u8>>, error: &Error) {
    let text = format!("{error} {error:?}");
    assert!(
        text.len() < 8 * 1024,
        "an error message of {} bytes",
        text.len()
    );
    match error {
        Error::ResponseTooLarge { status, limit } => {
            assert_eq!(*status, response.status());
            assert!(response.body().len() > *limit);
        }
        Error::MalformedResponse { status, reason } => {
            assert_eq!(*status, response.status());
            assert!(response.status().is_success());
            assert!(reason.len() < 512);
        }
        other => {
            let server = other
                .server_error()
                .expect("any other parser error is the server's");
            assert_eq!(server.status, response.status());
            assert!(!response.status().is_success());
            check_server_error_bounds(server);
        }
    }
}

fn check_server_error_bounds(server: &peertube_session::ServerError) {
    assert!(
        server
            .excerpt
            .as_ref()
            .is_none_or(|e| e.chars().count() <= 161 && !e.contains('\n'))
    );
    assert!(
        server
            .detail
            .as_ref()
            .is_none_or(|d| d.chars().count() <= 1025 && !d.contains('\n'))
    );
}

/// A secret member of a success body must never reach an error message: the messages for the
/// body and for the same body with those members blanked out must agree on it.
fn check_no_echo(
    response: &Response<Vec<u8>>,
    members: &[&str],
    parse: impl Fn(&Response<Vec<u8>>) -> Option<Error>,
) {
    let Ok(serde_json::Value::Object(object)) =
        serde_json::from_slice::<serde_json::Value>(response.body())
    else {
        return;
    };
    let secrets: Vec<(&str, String)> = members
        .iter()
        .filter_map(|member| match object.get(*member) {
            Some(serde_json::Value::String(value)) if value.len() >= 8 => {
                Some((*member, value.clone()))
            }
            _ => None,
        })
        .collect();
    if secrets.is_empty() {
        return;
    }
    let mut blanked = object.clone();
    for (member, value) in &secrets {
        blanked.insert(
            (*member).to_owned(),
            serde_json::Value::String("Q".repeat(value.len())),
        );
    }
    // Both bodies go through the same serialisation, so only the secret values differ.
    let body = |object| serde_json::to_vec(&serde_json::Value::Object(object)).unwrap_or_default();
    let (Some(original), Some(blanked)) = (
        parse(&with_body(response, body(object))),
        parse(&with_body(response, body(blanked))),
    ) else {
        return;
    };
    let (original, blanked) = (
        format!("{original} {original:?}"),
        format!("{blanked} {blanked:?}"),
    );
    for (_, secret) in &secrets {
        assert!(
            !original.contains(secret.as_str()) || blanked.contains(secret.as_str()),
            "an error echoes a secret: {original}"
        );
    }
}

/// `Debug` of a parsed value does not depend on its secret members: replacing them with other
/// sendable text of the same length gives the same output. (Checking that the output does not
/// contain the secret would misfire on one-letter tokens.)
fn assert_debug_ignores_members(
    response: &Response<Vec<u8>>,
    members: &[&str],
    debug: impl Fn(&Response<Vec<u8>>) -> Option<String>,
) {
    let Ok(serde_json::Value::Object(object)) =
        serde_json::from_slice::<serde_json::Value>(response.body())
    else {
        return;
    };
    let mut replaced = object.clone();
    for member in members {
        if let Some(serde_json::Value::String(value)) = replaced.get_mut(*member) {
            *value = "Q".repeat(value.chars().count().max(1));
        }
    }
    let body = |object| serde_json::to_vec(&serde_json::Value::Object(object)).unwrap_or_default();
    if let (Some(original), Some(replaced)) = (
        debug(&with_body(response, body(object))),
        debug(&with_body(response, body(replaced))),
    ) {
        assert_eq!(original, replaced, "Debug output depends on a secret");
    }
}

fn with_body(response: &Response<Vec<u8>>, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut copy = Response::new(body);
    *copy.status_mut() = response.status();
    *copy.headers_mut() = response.headers().clone();
    copy
}

// ----- session_ops -----

const CLIENT_SECRET: &str = "SECRET-client-0123456789";
const PASSWORD: &str = "SECRET-password-0123456789";
const OTP: &str = "424242";

#[derive(Arbitrary, Debug)]
enum Op {
    FetchClient,
    Login {
        otp: bool,
    },
    Refresh,
    Logout,
    Forget,
    Authorize,
    /// Answers one of the requests in flight (old ones included: stale answers).
    Answer {
        which: u8,
        with: Canned,
    },
    /// Answers with arbitrary bytes read as a raw HTTP answer.
    AnswerRaw {
        which: u8,
        raw: Vec<u8>,
    },
    /// Gives up on a request in flight.
    Abandon {
        which: u8,
    },
    /// Observes an answer to an authorized request.
    Observe {
        with: Canned,
    },
    /// Moves the clock, backwards too.
    Clock {
        seconds: i32,
    },
    SaveRestore,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Canned {
    Client,
    Tokens {
        expires_in: u16,
        refresh_expires_in: u16,
    },
    TokensAsStrings,
    Revoked,
    RevokedWithRedirect,
    RevokedEmpty,
    InvalidGrant,
    InvalidClient,
    MissingTwoFactor,
    InvalidTwoFactor,
    RateLimited,
    InvalidToken,
    Forbidden,
    ProxyHtml,
    EmptyOk,
    TruncatedJson,
}

struct Fed {
    secrets: Vec<String>,
    next_token: u32,
}

impl Fed {
    fn token(&mut self, kind: &str) -> String {
        self.next_token += 1;
        let token = format!("SECRET{kind}{:08}", self.next_token);
        self.secrets.push(token.clone());
        token
    }
}

fn canned(canned: Canned, fed: &mut Fed) -> Response<Vec<u8>> {
    let (status, headers, body): (u16, &[(&str, &str)], String) = match canned {
        Canned::Client => (200, &[], format!(r#"{{"client_id":"cid","client_secret":"{CLIENT_SECRET}"}}"#)),
        Canned::Tokens { expires_in, refresh_expires_in } => (
            200,
            &[],
            format!(
                r#"{{"token_type":"Bearer","access_token":"{}","refresh_token":"{}","expires_in":{expires_in},"refresh_token_expires_in":{refresh_expires_in}}}"#,
                fed.token("access"),
                fed.token("refresh")
            ),
        ),
        Canned::TokensAsStrings => (
            200,
            &[],
            format!(r#"{{"token_type":"bearer","access_token":"{}","refresh_token":"{}","expires_in":"3600"}}"#, fed.token("access"), fed.token("refresh")),
        ),
        Canned::Revoked => (200, &[], r#"{"success":true}"#.to_owned()),
        Canned::RevokedWithRedirect => (200, &[], r#"{"success":true,"redirectUrl":"https://sso.example.org/bye"}"#.to_owned()),
        Canned::RevokedEmpty => (200, &[], String::new()),
        Canned::InvalidGrant => (400, &[], r#"{"status":400,"code":"invalid_grant","detail":"Invalid grant: refresh token is invalid"}"#.to_owned()),
        Canned::InvalidClient => (400, &[], r#"{"status":400,"code":"invalid_client","detail":"Invalid client: client is invalid"}"#.to_owned()),
        Canned::MissingTwoFactor => (401, &[("x-peertube-otp", "required; app")], r#"{"status":401,"code":"missing_two_factor"}"#.to_owned()),
        Canned::InvalidTwoFactor => (400, &[], r#"{"status":400,"code":"invalid_two_factor"}"#.to_owned()),
        Canned::RateLimited => (429, &[("retry-after", "278")], "Too many requests, please try again later.".to_owned()),
        Canned::InvalidToken => (401, &[], r#"{"status":401,"code":"invalid_token","detail":"Token is invalid"}"#.to_owned()),
        Canned::Forbidden => (403, &[], r#"{"type":"about:blank","title":"Forbidden","status":403}"#.to_owned()),
        Canned::ProxyHtml => (502, &[("content-type", "text/html")], "<html><body>502 Bad Gateway</body></html>".to_owned()),
        Canned::EmptyOk => (200, &[], String::new()),
        Canned::TruncatedJson => (200, &[], r#"{"token_type":"Bearer","access_tok"#.to_owned()),
    };
    let mut response = Response::new(body.into_bytes());
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    for (name, value) in headers {
        response.headers_mut().insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}

pub fn check_session_ops(data: &[u8]) {
    let mut input = Unstructured::new(data);
    let Ok(instance) = Instance::new("https://video.example.org") else {
        unreachable!()
    };
    let mut session = if bool::arbitrary(&mut input).unwrap_or(false) {
        Session::with_client(instance, OAuthClient::new("cid", CLIENT_SECRET))
    } else {
        Session::new(instance)
    };
    let mut fed = Fed {
        secrets: vec![CLIENT_SECRET.to_owned(), PASSWORD.to_owned()],
        next_token: 0,
    };
    let mut now = UNIX_EPOCH + Duration::from_secs(1_795_800_000);
    let mut in_flight = Vec::new();
    let mut tickets = Vec::new();
    for _ in 0..64 {
        let Ok(op) = Op::arbitrary(&mut input) else {
            break;
        };
        apply(
            op,
            &mut session,
            &mut fed,
            &mut now,
            &mut in_flight,
            &mut tickets,
        );
        check_invariants(&session, &fed, now);
    }
}

fn apply(
    op: Op,
    session: &mut Session,
    fed: &mut Fed,
    now: &mut SystemTime,
    in_flight: &mut Vec<peertube_session::Pending>,
    tickets: &mut Vec<peertube_session::Authorized>,
) {
    let credentials = Credentials::password("alice", PASSWORD);
    let started = match op {
        Op::FetchClient => Some(session.fetch_client()),
        Op::Login { otp: false } => Some(session.login(&credentials)),
        Op::Login { otp: true } => {
            let started = session.login(&credentials.with_otp(OTP));
            if let Ok((request, _)) = &started {
                assert!(
                    !format!("{request:?}").contains(OTP),
                    "a request shows the one-time code"
                );
            }
            Some(started)
        }
        Op::Refresh => Some(session.refresh()),
        Op::Logout => Some(session.logout()),
        Op::Forget => {
            session.forget();
            None
        }
        Op::Authorize => {
            let mut request = http::Request::get("https://video.example.org/api/v1/users/me")
                .body(())
                .unwrap_or_default();
            if let Ok(ticket) = session.authorize(&mut request, *now) {
                tickets.push(ticket);
            }
            assert!(format!("{request:?}").find("SECRET").is_none());
            None
        }
        Op::Answer { which, with } => {
            answer(session, in_flight, which, canned(with, fed), *now);
            None
        }
        Op::AnswerRaw { which, raw } => {
            answer(session, in_flight, which, response_from_bytes(&raw), *now);
            None
        }
        Op::Abandon { which } => {
            if !in_flight.is_empty() {
                let pending = in_flight.remove(usize::from(which) % in_flight.len());
                session.abandon(pending);
            }
            None
        }
        Op::Observe { with } => {
            if let Some(ticket) = tickets.last() {
                session.observe(ticket, &canned(with, fed));
            }
            None
        }
        Op::Clock { seconds } => {
            let step = Duration::from_secs(u64::from(seconds.unsigned_abs()));
            *now = if seconds >= 0 {
                now.checked_add(step)
            } else {
                now.checked_sub(step)
            }
            .unwrap_or(*now);
            None
        }
        Op::SaveRestore => {
            let saved = session.save();
            let restored = Session::restore(saved.clone()).expect("a saved session restores");
            assert_eq!(restored.save(), saved);
            assert_eq!(restored.state(), session.state());
            *session = restored;
            None
        }
    };
    match started {
        Some(Ok((request, pending))) => {
            let shown = format!("{request:?} {pending:?}");
            for secret in &fed.secrets {
                assert!(
                    !shown.contains(secret.as_str()),
                    "a request or pending handle shows a secret: {shown}"
                );
            }
            in_flight.push(pending);
        }
        Some(Err(error)) => assert!(
            matches!(error, Error::InvalidState { .. } | Error::RefreshInFlight),
            "commands only fail on state: {error:?}"
        ),
        None => {}
    }
}

fn answer(
    session: &mut Session,
    in_flight: &mut Vec<peertube_session::Pending>,
    which: u8,
    response: Response<Vec<u8>>,
    now: SystemTime,
) {
    if in_flight.is_empty() {
        return;
    }
    let pending = in_flight.remove(usize::from(which) % in_flight.len());
    let live = live_secrets(session);
    if let Err(error) = session.handle(pending, &response, now) {
        let shown = format!("{error} {error:?}");
        for secret in &live {
            assert!(
                !shown.contains(secret.as_str()),
                "an error shows a live secret: {shown}"
            );
        }
    }
}

fn live_secrets(session: &Session) -> Vec<String> {
    let mut live = Vec::new();
    if let Some(client) = session.client() {
        live.push(client.client_secret.expose_secret().to_owned());
    }
    let saved = session.save();
    if let Some(tokens) = saved.tokens {
        live.push(tokens.access_token.expose_secret().to_owned());
        live.push(tokens.refresh_token.expose_secret().to_owned());
    }
    live
}

fn check_invariants(session: &Session, fed: &Fed, now: SystemTime) {
    let state = session.state();
    assert!(matches!(
        state,
        State::NoClient | State::HaveClient | State::LoggedIn | State::Revoked
    ));
    assert_eq!(
        session.access_token().is_some(),
        state == State::LoggedIn,
        "a token only while logged in"
    );
    assert_eq!(session.client().is_some(), state != State::NoClient);
    if state != State::LoggedIn {
        assert!(!session.refresh_in_flight());
        assert!(!session.refresh_due(now));
    }
    let shown = format!("{session:?}");
    for secret in &fed.secrets {
        assert!(
            !shown.contains(secret.as_str()),
            "Debug shows a secret: {shown}"
        );
    }
    let saved = session.save();
    let restored = Session::restore(saved.clone()).expect("a saved session restores");
    assert_eq!(restored.save(), saved);
    let _ = session.next_deadline();
}

/// `GET /api/v1/users/me`: a success has an id and a username; an error is the server's.
pub fn check_users_me(data: &[u8]) {
    use peertube_session::api::{self, UsersMe};
    let response = response_from_bytes(data);
    match api::parse(&UsersMe, &response, &Secrets::none()) {
        Ok(_) => assert!(response.status().is_success()),
        Err(error) => check_call_error(&response, &error),
    }
}

/// The token-session list and revoke: a page is at most 100 distinct sessions whose dates
/// print and read back, and walking it moves the cursor by what it held.
pub fn check_token_sessions(data: &[u8]) {
    use peertube_session::api::{self, AllTokenSessions, RevokeTokenSession, Timestamp};
    let response = response_from_bytes(data);
    let mut all = AllTokenSessions::new(1).page_size(100);
    let Some(page) = all.next_page() else {
        panic!("a walk starts with a page");
    };
    match api::parse(&page, &response, &Secrets::none()) {
        Ok(answer) => {
            assert!(response.status().is_success());
            assert!(answer.data.len() <= 100);
            for session in &answer.data {
                let printed = session.created_at.to_string();
                let read = Timestamp::parse(&printed).expect("a printed date reads back");
                assert_eq!(read.to_string(), printed);
            }
            let held = answer.data.len() as u64;
            let total = answer.total;
            all.add(&page, answer);
            assert_eq!(all.sessions().len() as u64, held);
            match all.next_page() {
                Some(next) => {
                    assert_eq!(next.first(), held);
                    assert!(held == 100 && held < total);
                }
                None => assert!(held < 100 || held >= total),
            }
        }
        Err(error) => check_call_error(&response, &error),
    }
    match api::parse(&RevokeTokenSession::new(1, 2), &response, &Secrets::none()) {
        Ok(_) => assert!(response.status().is_success()),
        Err(error) => check_call_error(&response, &error),
    }
}

/// An API call's error: a parser error, and "not supported" exactly for an empty 400.
fn check_call_error(response: &Response<Vec<u8>>, error: &Error) {
    check_error(response, error);
    let blank_400 = response.status() == StatusCode::BAD_REQUEST
        && response.body().iter().all(u8::is_ascii_whitespace);
    assert_eq!(matches!(error, Error::NotSupported(_)), blank_400);
}
