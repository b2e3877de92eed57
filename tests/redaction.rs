//! A server (or a proxy) that echoes what it was sent never gets a secret into an error: random
//! secrets, echoed whole, as a prefix or suffix of 8 bytes or more, form-urlencoded,
//! JSON-escaped or inside an HTML page, in a problem+json `detail` or a raw body, through every
//! error variant that carries server text, the stateless parsers, `Session` and both drivers.
//! Deterministic: a fixed seed, a fixed number of cases.

mod support;

#[path = "support/capture.rs"]
mod capture;

use capture::Capture;
use peertube_session::api::{self, ListTokenSessions, RevokeTokenSession, UsersMe};
use peertube_session::response::{
    Secrets, error_for, parse_error, parse_login, parse_oauth_client, parse_refresh, parse_revoke,
};
use peertube_session::{
    AccessToken, Credentials, Error, Instance, OAuthClient, Operation, RefreshToken, Session,
};
use support::{answer, json, t0};

const CASES: u64 = 300;

/// xorshift64*: small, deterministic, good enough to spread test inputs.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn text(&mut self, alphabet: &[char], min: usize, max: usize) -> String {
        let len = min + self.below(max - min + 1);
        (0..len)
            .map(|_| alphabet[self.below(alphabet.len())])
            .collect()
    }
}

const ALNUM: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const PUNCT: &str = " &+%\"\\/<>'=?#~!é€;:";

struct Case {
    client_secret: String,
    password: String,
    otp: String,
    external: String,
    access: String,
    refresh: String,
}

impl Case {
    fn new(random: &mut Random) -> Self {
        let alnum: Vec<char> = ALNUM.chars().collect();
        let mixed: Vec<char> = ALNUM.chars().chain(PUNCT.chars()).collect();
        let hex: Vec<char> = "0123456789abcdef".chars().collect();
        Case {
            client_secret: random.text(&alnum, 32, 32),
            password: random.text(&mixed, 8, 40),
            otp: random.text(&"0123456789".chars().collect::<Vec<_>>(), 6, 6),
            external: random.text(&alnum, 32, 32),
            access: random.text(&hex, 40, 40),
            refresh: random.text(&hex, 40, 40),
        }
    }

    fn all(&self) -> [&str; 6] {
        [
            &self.client_secret,
            &self.password,
            &self.otp,
            &self.external,
            &self.access,
            &self.refresh,
        ]
    }

    fn client(&self) -> OAuthClient {
        OAuthClient::new("cid", self.client_secret.as_str())
    }

    /// The instance's answer with this case's client pair.
    fn client_pair_answer(&self) -> http::Response<Vec<u8>> {
        let pair = serde_json::json!({"client_id": "cid", "client_secret": self.client_secret});
        json(200, &pair.to_string())
    }
}

/// The first half of `sent`, or more of it, up to all (the form bodies echoed here are ASCII).
fn at_least_half<'a>(random: &mut Random, sent: &'a str) -> &'a str {
    let cut = (sent.len() / 2 + random.below(sent.len() / 2 + 1)).min(sent.len());
    &sent[..cut]
}

fn percent(secret: &str, space: &str, lower: bool) -> String {
    let mut out = String::new();
    for byte in secret.bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(byte))
            }
            b' ' => out.push_str(space),
            _ if lower => out.push_str(&format!("%{byte:02x}")),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

fn json_escaped(secret: &str) -> String {
    let quoted = serde_json::to_string(secret).unwrap();
    quoted[1..quoted.len() - 1].to_owned()
}

/// The forms a secret may come back in, and what of each must never be printed: every run of 8
/// bytes (or the whole form, for shorter ones).
fn forms(secret: &str) -> Vec<String> {
    vec![
        secret.to_owned(),
        percent(secret, "+", false),
        percent(secret, "%20", true),
        json_escaped(secret),
    ]
}

fn assert_clean(label: &str, printed: &str, case: &Case) {
    let mut pieces = std::collections::HashSet::new();
    for secret in case.all() {
        for form in forms(secret) {
            if form.len() < 8 {
                assert!(
                    !printed.contains(&form),
                    "{label} leaks {secret:?}: {printed}"
                );
            } else {
                pieces.extend(form.as_bytes().windows(8).map(<[u8]>::to_vec));
            }
        }
    }
    for window in printed.as_bytes().windows(8) {
        assert!(
            !pieces.contains(window),
            "{label} leaks a piece {:?} of a secret: {printed}",
            String::from_utf8_lossy(window)
        );
    }
}

/// One echo of `secret`: which form, which part, padded so that our own truncation would cut
/// it if it came after.
fn echo(random: &mut Random, secret: &str) -> String {
    let form = match random.below(4) {
        0 => secret.to_owned(),
        1 => percent(secret, "+", false),
        2 => percent(secret, "%20", random.below(2) == 0),
        _ => json_escaped(secret),
    };
    let part = if form.len() >= 8 {
        let len = 8 + random.below(form.len() - 7);
        // A prefix, a suffix, or the whole (on a char boundary, since forms may hold 'é').
        let cut = |at: usize| {
            (at..=form.len())
                .find(|&i| form.is_char_boundary(i))
                .unwrap()
        };
        match random.below(3) {
            0 => form[..cut(len)].to_owned(),
            1 => form[cut(form.len() - len)..].to_owned(),
            _ => form.clone(),
        }
    } else {
        form
    };
    let padding: String = "x".repeat(120 + random.below(60));
    format!("{padding} {part}")
}

/// A response with `text` in a problem+json `detail`, or raw in the body (plain text or an HTML
/// page).
fn response(
    random: &mut Random,
    status: u16,
    code: Option<&str>,
    text: &str,
) -> http::Response<Vec<u8>> {
    match random.below(3) {
        0 => {
            let mut problem = serde_json::json!({ "status": status, "detail": text });
            if let Some(code) = code {
                problem["code"] = code.into();
            }
            answer(
                status,
                &[("content-type", "application/problem+json; charset=utf-8")],
                &problem.to_string(),
            )
        }
        1 => answer(status, &[("content-type", "text/plain")], text),
        _ => answer(
            status,
            &[("content-type", "text/html")],
            &format!("<html><body><h1>{status}</h1><pre>{text}</pre></body></html>"),
        ),
    }
}

/// Every error variant that carries server text, as (status, code, operation).
const VARIANTS: [(u16, Option<&str>, Operation); 13] = [
    (401, Some("missing_two_factor"), Operation::Login),
    (400, Some("invalid_two_factor"), Operation::Login),
    (400, Some("invalid_grant"), Operation::Login),
    (400, Some("access_denied"), Operation::Login),
    (400, Some("invalid_grant"), Operation::Refresh),
    (400, Some("invalid_client"), Operation::Login),
    (401, Some("invalid_token"), Operation::Logout),
    (429, None, Operation::Login),
    (403, None, Operation::FetchClient),
    (502, None, Operation::Refresh),
    // The account API's own: `NotFound`, `Forbidden`, and a bad parameter (`Server`).
    (404, None, Operation::Authorize),
    (403, None, Operation::Authorize),
    (400, None, Operation::Authorize),
];

fn printed(error: &Error) -> String {
    format!("{error} {error:?}")
}

#[test]
fn the_stateless_parsers_never_print_an_echoed_secret() {
    let mut random = Random(0x5EED_0001);
    for _ in 0..CASES {
        let case = Case::new(&mut random);
        let client = case.client();
        let credentials = if random.below(2) == 0 {
            Credentials::password("alice", case.password.as_str()).with_otp(case.otp.as_str())
        } else {
            Credentials::external_auth("alice", case.external.as_str()).with_otp(case.otp.as_str())
        };
        let access = AccessToken::new(case.access.as_str());
        let refresh = RefreshToken::new(case.refresh.as_str());
        // The echo may be any of the six, so the parsers are told all six.
        let everything = Secrets::for_login(&client, &credentials)
            .with(&case.password)
            .with(&case.external)
            .access_token(&access)
            .refresh_token(&refresh);
        for (status, code, operation) in VARIANTS {
            let secret = case.all()[random.below(6)];
            let text = echo(&mut random, secret);
            let answer = response(&mut random, status, code, &text);
            let errors = [
                parse_login(&answer, &everything).unwrap_err(),
                parse_refresh(&answer, &everything).unwrap_err(),
                parse_revoke(&answer, &everything).unwrap_err(),
                parse_oauth_client(&answer, &everything).unwrap_err(),
                error_for(operation, &answer, &everything),
                api::parse(&UsersMe, &answer, &everything).unwrap_err(),
                api::parse(&ListTokenSessions::new(1), &answer, &everything).unwrap_err(),
                api::parse(&RevokeTokenSession::new(1, 2), &answer, &everything).unwrap_err(),
            ];
            for error in &errors {
                assert!(error.server_error().is_some(), "{error:?}");
                assert_clean("parser", &printed(error), &case);
            }
            let server = parse_error(&answer, &everything);
            assert_clean("parse_error", &format!("{server} {server:?}"), &case);
        }
    }
}

/// The session is told nothing: it knows every secret itself.
#[test]
fn session_errors_never_print_an_echoed_secret() {
    let mut random = Random(0x5EED_0002);
    for _ in 0..CASES {
        let case = Case::new(&mut random);
        let instance = Instance::new("https://video.example.org").unwrap();
        let mut session = Session::with_client(instance, case.client());
        let credentials =
            Credentials::password("alice", case.password.as_str()).with_otp(case.otp.as_str());
        let (_, pending) = session.login(&credentials).unwrap();
        let which = random.below(3);
        let login_echo = echo(&mut random, case.all()[which]);
        let (status, code, _) = VARIANTS[random.below(4)];
        let error = session
            .handle(
                pending,
                &response(&mut random, status, code, &login_echo),
                t0(),
            )
            .unwrap_err();
        assert_clean("session login", &printed(&error), &case);

        let external = Credentials::external_auth("alice", case.external.as_str());
        let (_, pending) = session.login(&external).unwrap();
        let echoed = echo(&mut random, &case.external);
        let error = session
            .handle(
                pending,
                &response(&mut random, 400, Some("Error"), &echoed),
                t0(),
            )
            .unwrap_err();
        assert_clean("session external login", &printed(&error), &case);

        let (_, pending) = session.login(&credentials).unwrap();
        let tokens = format!(
            r#"{{"token_type":"Bearer","access_token":"{}","refresh_token":"{}","expires_in":3600}}"#,
            case.access, case.refresh
        );
        session.handle(pending, &json(200, &tokens), t0()).unwrap();
        let (_, pending) = session.logout().unwrap();
        let echoed = echo(&mut random, &case.access);
        let error = session
            .handle(
                pending,
                &response(&mut random, 401, Some("invalid_token"), &echoed),
                t0(),
            )
            .unwrap_err();
        assert_clean("session logout", &printed(&error), &case);
        // What a refresh carries: the client secret and the refresh token; the session also
        // holds the access token.
        let (_, pending) = session.refresh().unwrap();
        let which = [0, 4, 5][random.below(3)];
        let echoed = echo(&mut random, case.all()[which]);
        let error = session
            .handle(
                pending,
                &response(&mut random, 400, Some("invalid_grant"), &echoed),
                t0(),
            )
            .unwrap_err();
        assert_clean("session refresh", &printed(&error), &case);
    }
}

#[cfg(all(feature = "ureq", feature = "hyper"))]
#[test]
fn driver_errors_never_print_an_echoed_secret() {
    use peertube_session::asynchronous::AsyncClient;
    use peertube_session::blocking::BlockingClient;
    use peertube_session::{Body, TransportError};
    use std::sync::Arc;

    let mut random = Random(0x5EED_0003);
    for _ in 0..CASES / 10 {
        let case = Arc::new(Case::new(&mut random));
        let seed = random.next();
        // A server that hands out the pair, then echoes the whole form body of any token request
        // (the way a misconfigured proxy's error page might), cut to a random length.
        let server = {
            let case = case.clone();
            move |request: &http::Request<Body>| -> http::Response<Vec<u8>> {
                let mut random = Random(seed);
                if request.uri().path().ends_with("/oauth-clients/local") {
                    return case.client_pair_answer();
                }
                let sent = String::from_utf8_lossy(request.body().as_bytes()).into_owned();
                let otp = request
                    .headers()
                    .get("x-peertube-otp")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                let text = format!("{} otp={otp}", at_least_half(&mut random, &sent));
                let (status, code, _) = VARIANTS[random.below(4)];
                response(&mut random, status, code, &text)
            }
        };
        let instance = Instance::new("http://127.0.0.1:9").unwrap();
        let credentials =
            Credentials::password("alice", case.password.as_str()).with_otp(case.otp.as_str());

        let blocking_server = server.clone();
        let blocking = BlockingClient::new(
            move |request: http::Request<Body>| -> Result<http::Response<Vec<u8>>, TransportError> {
                Ok(blocking_server(&request))
            },
            instance.clone(),
        );
        let capture = Capture::new();
        let error = capture.during(|| blocking.login(&credentials).unwrap_err());
        assert_clean("blocking driver", &printed(&error), &case);

        let asynchronous = AsyncClient::new(
            move |request: http::Request<Body>| {
                let answer = server(&request);
                async move { Ok::<_, TransportError>(answer) }
            },
            instance,
        );
        let error =
            capture.during(|| pollster::block_on(asynchronous.login(&credentials)).unwrap_err());
        assert_clean("async driver", &printed(&error), &case);
        // Nor does any event or span field the drivers emitted on the way (feature `tracing`).
        let events = capture.events();
        assert!(!cfg!(feature = "tracing") || !events.is_empty());
        for event in events {
            assert_clean("tracing event", &event.text(), &case);
        }
    }
}

/// An API call through a driver: the server echoes the `Authorization` header it got into its
/// 404; the error printed carries none of the session's secrets.
#[cfg(feature = "blocking-client")]
#[test]
fn api_call_errors_never_print_the_bearer_token() {
    use peertube_session::blocking::BlockingClient;
    use peertube_session::{Body, TransportError};

    let mut random = Random(0x5EED_0004);
    for _ in 0..CASES / 10 {
        let case = std::sync::Arc::new(Case::new(&mut random));
        let seed = random.next();
        let server = {
            let case = case.clone();
            move |request: http::Request<Body>| -> Result<http::Response<Vec<u8>>, TransportError> {
                let mut random = Random(seed);
                let path = request.uri().path();
                if path.ends_with("/oauth-clients/local") {
                    let body = format!(
                        r#"{{"client_id":"cid","client_secret":"{}"}}"#,
                        case.client_secret
                    );
                    return Ok(json(200, &body));
                }
                if path.ends_with("/users/token") {
                    return Ok(json(
                        200,
                        &format!(
                            r#"{{"token_type":"Bearer","access_token":"{}","refresh_token":"{}","expires_in":3600}}"#,
                            case.access, case.refresh
                        ),
                    ));
                }
                let bearer = request.headers()["authorization"]
                    .to_str()
                    .unwrap()
                    .to_owned();
                let text = echo(&mut random, bearer.trim_start_matches("Bearer "));
                let status = [404, 403, 400, 500][random.below(4)];
                Ok(response(&mut random, status, None, &text))
            }
        };
        let client = BlockingClient::new(server, Instance::new("http://127.0.0.1:9").unwrap());
        client
            .login(&Credentials::password("alice", case.password.as_str()))
            .unwrap();
        for error in [
            client.me().unwrap_err(),
            client.sessions().unwrap_err(),
            client.revoke_session(7).unwrap_err(),
            client.log_out_other_sessions().unwrap_err(),
        ] {
            assert!(error.server_error().is_some(), "{error:?}");
            assert_clean("api call", &printed(&error), &case);
        }
    }
}

/// The session's errors as the reqwest middleware and the tower layer hand them over: a refresh
/// refused with an echo of what it sent (the client secret, the refresh token).
#[cfg(all(feature = "reqwest-middleware", feature = "tower"))]
#[test]
fn middleware_and_layer_errors_never_print_an_echoed_secret() {
    use bytes::Bytes;
    use http_body_util::Full;
    use peertube_session::asynchronous::{AsyncClient, AuthorizeLayer, Config, SessionMiddleware};
    use peertube_session::{Body, TransportError};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;
    use tower::{Layer, ServiceExt};

    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut random = Random(0x5EED_0005);
    for _ in 0..CASES / 10 {
        let case = Arc::new(Case::new(&mut random));
        let seed = random.next();
        // Hands out the pair at login, then echoes any refresh's form body.
        let server = {
            let case = case.clone();
            move |request: &http::Request<Body>| -> http::Response<Vec<u8>> {
                let mut random = Random(seed);
                let sent = String::from_utf8_lossy(request.body().as_bytes()).into_owned();
                if request.uri().path().ends_with("/oauth-clients/local") {
                    return case.client_pair_answer();
                }
                if sent.contains("grant_type=password") {
                    let tokens = serde_json::json!({
                        "token_type": "Bearer",
                        "access_token": case.access,
                        "refresh_token": case.refresh,
                        "expires_in": 3600,
                        "refresh_token_expires_in": 7200,
                    });
                    return json(200, &tokens.to_string());
                }
                let echoed = at_least_half(&mut random, &sent);
                let (status, code, _) = [VARIANTS[4], VARIANTS[7], VARIANTS[9]][random.below(3)];
                response(&mut random, status, code, echoed)
            }
        };
        let later = Arc::new(AtomicU64::new(0));
        let clock = later.clone();
        let client = Arc::new(
            AsyncClient::new(
                move |request: http::Request<Body>| {
                    let answer = server(&request);
                    async move { Ok::<_, TransportError>(answer) }
                },
                Instance::new("http://127.0.0.1:9").unwrap(),
            )
            .with_config(
                Config::builder()
                    .clock(move || t0() + Duration::from_secs(clock.load(Ordering::Relaxed)))
                    .build(),
            ),
        );
        runtime
            .block_on(client.login(&Credentials::password("alice", case.password.as_str())))
            .unwrap();
        // Due: each request below refreshes first, and the refresh is refused.
        later.store(3600, Ordering::Relaxed);
        let me = "http://127.0.0.1:9/api/v1/users/me";

        let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(SessionMiddleware::new(client.clone()))
            .build();
        let error = runtime.block_on(http.get(me).send()).unwrap_err();
        assert!(
            matches!(error, reqwest_middleware::Error::Middleware(_)),
            "{error:?}"
        );
        assert_clean("middleware", &format!("{error} {error:?} {error:#}"), &case);

        let never_called = tower::service_fn(|_: http::Request<String>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(Full::<Bytes>::default()))
        });
        let layered = AuthorizeLayer::new(client.clone()).layer(never_called);
        let request = http::Request::get(me).body(String::new()).unwrap();
        let error = runtime.block_on(layered.oneshot(request)).unwrap_err();
        assert!(error.downcast_ref::<Error>().is_some(), "{error:?}");
        assert_clean("tower layer", &format!("{error} {error:?}"), &case);
    }
}
