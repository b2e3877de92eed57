//! The fake PeerTube, driven with raw `http` requests written by hand (not with the client's
//! builders), checked against PROTOCOL.md row by row.
#![cfg(feature = "fake")]

use http::{Request, Response, StatusCode};
use peertube_session::fake::{
    ClientAddr, FakePeerTube, FakeUser, RegistrationState, ServerVersion, totp,
};
use serde_json::Value;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

const TOTP_SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

fn fake() -> FakePeerTube {
    FakePeerTube::builder()
        .client("cid", "csecret")
        .version(ServerVersion::PeerTube6)
        .user(FakeUser::new("alice", "alice@example.org", "alice-pw"))
        .user(FakeUser::new("bob", "bob@example.org", "bob-pw").with_totp(TOTP_SECRET))
        .user(FakeUser::new("carol", "carol@example.org", "carol-pw").blocked())
        .user(FakeUser::new("dave", "dave@example.org", "dave-pw").email_unverified())
        .user(
            FakeUser::new("erin", "erin@example.org", "erin-pw")
                .with_logout_redirect("https://sso.example.org/bye"),
        )
        .registration("frank", "frank@example.org", RegistrationState::Pending)
        .registration("grace", "grace@example.org", RegistrationState::Rejected)
        .no_rate_limit()
        .build()
}

fn form(fields: &[(&str, &str)]) -> Request<Vec<u8>> {
    let body = fields
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    Request::post("http://127.0.0.1:9000/api/v1/users/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.into_bytes())
        .unwrap()
}

/// Percent-encodes everything but unreserved characters.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn password(username: &str, password: &str) -> Request<Vec<u8>> {
    form(&[
        ("client_id", "cid"),
        ("client_secret", "csecret"),
        ("grant_type", "password"),
        ("response_type", "code"),
        ("scope", "upload"),
        ("username", username),
        ("password", password),
    ])
}

fn refresh(token: &str) -> Request<Vec<u8>> {
    form(&[
        ("client_id", "cid"),
        ("client_secret", "csecret"),
        ("grant_type", "refresh_token"),
        ("response_type", "code"),
        ("refresh_token", token),
    ])
}

fn with_otp(mut request: Request<Vec<u8>>, code: &str) -> Request<Vec<u8>> {
    request
        .headers_mut()
        .insert("x-peertube-otp", code.parse().unwrap());
    request
}

fn bearer(method: &str, path: &str, authorization: Option<&str>) -> Request<Vec<u8>> {
    let mut builder = Request::builder()
        .method(method)
        .uri(format!("http://127.0.0.1:9000{path}"));
    if let Some(value) = authorization {
        builder = builder.header("authorization", value);
    }
    builder.body(Vec::new()).unwrap()
}

fn me(access: &str) -> Request<Vec<u8>> {
    bearer("GET", "/api/v1/users/me", Some(&format!("Bearer {access}")))
}

fn revoke(access: &str) -> Request<Vec<u8>> {
    bearer(
        "POST",
        "/api/v1/users/revoke-token",
        Some(&format!("Bearer {access}")),
    )
}

fn body(response: &Response<Vec<u8>>) -> Value {
    serde_json::from_slice(response.body())
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(response.body())))
}

/// Asserts a problem+json answer and returns its body.
fn problem(response: &Response<Vec<u8>>, status: u16, code: Option<&str>) -> Value {
    assert_eq!(
        response.status().as_u16(),
        status,
        "{:?}",
        String::from_utf8_lossy(response.body())
    );
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json; charset=utf-8"
    );
    let json = body(response);
    assert_eq!(json["status"], status);
    match code {
        Some(code) => {
            assert_eq!(json["code"], code);
            assert_eq!(
                json["type"],
                format!(
                    "https://docs.joinpeertube.org/api-rest-reference.html#section/Errors/{code}"
                )
            );
            assert!(json.get("title").is_none(), "no title with a code: {json}");
        }
        None => {
            assert!(json.get("code").is_none());
            assert_eq!(json["type"], "about:blank");
            assert!(json["title"].is_string());
        }
    }
    json
}

fn login(fake: &FakePeerTube, user: &str, pw: &str) -> (String, String) {
    let response = fake.handle(&password(user, pw));
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "{:?}",
        String::from_utf8_lossy(response.body())
    );
    let json = body(&response);
    (
        json["access_token"].as_str().unwrap().to_owned(),
        json["refresh_token"].as_str().unwrap().to_owned(),
    )
}

// ----- GET /api/v1/oauth-clients/local -----

#[test]
fn client_endpoint_returns_exactly_the_pair() {
    let response = fake().handle(&bearer("GET", "/api/v1/oauth-clients/local", None));
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    assert_eq!(
        body(&response),
        serde_json::json!({"client_id": "cid", "client_secret": "csecret"})
    );
}

#[test]
fn default_client_pair_looks_like_peertube_s() {
    let (id, secret) = FakePeerTube::default().client_pair();
    assert_eq!(id.len(), 32);
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    );
    assert_eq!(secret.len(), 32);
    assert!(secret.bytes().all(|b| b.is_ascii_alphanumeric()));
}

#[test]
fn client_endpoint_refuses_other_hosts() {
    let fake = FakePeerTube::builder().host("video.example.org").build();
    let request = Request::get("/api/v1/oauth-clients/local")
        .header("host", "127.0.0.1:9000")
        .body(Vec::new())
        .unwrap();
    let json = problem(&fake.handle(&request), 403, None);
    assert_eq!(json["title"], "Forbidden");
    assert_eq!(
        json["detail"],
        "Getting client tokens for host 127.0.0.1:9000 is forbidden"
    );
    assert_eq!(
        json["docs"],
        "https://docs.joinpeertube.org/api-rest-reference.html#operation/getOAuthClient"
    );

    let request = Request::get("/api/v1/oauth-clients/local")
        .header("host", "video.example.org")
        .body(Vec::new())
        .unwrap();
    assert_eq!(fake.handle(&request).status(), StatusCode::OK);
    let request = Request::get("https://video.example.org/api/v1/oauth-clients/local")
        .body(Vec::new())
        .unwrap();
    assert_eq!(fake.handle(&request).status(), StatusCode::OK);
}

#[test]
fn an_install_without_a_client_row_answers_500_with_code_error() {
    let fake = FakePeerTube::builder()
        .client("cid", "csecret")
        .without_oauth_client()
        .build();
    let json = problem(
        &fake.handle(&bearer("GET", "/api/v1/oauth-clients/local", None)),
        500,
        Some("Error"),
    );
    assert_eq!(json["detail"], "No client available.");
    problem(
        &fake.handle(&password("alice", "alice-pw")),
        400,
        Some("invalid_client"),
    );
}

// ----- POST /api/v1/users/token: request checks in PeerTube's order -----

#[test]
fn a_json_body_is_invalid_request() {
    let request = Request::post("http://127.0.0.1:9000/api/v1/users/token")
        .header("content-type", "application/json")
        .body(br#"{"client_id":"cid","client_secret":"csecret","grant_type":"password","username":"alice","password":"alice-pw"}"#.to_vec())
        .unwrap();
    let json = problem(&fake().handle(&request), 400, Some("invalid_request"));
    assert_eq!(
        json["detail"],
        "Invalid request: content must be application/x-www-form-urlencoded"
    );
    assert_eq!(
        json["docs"],
        "https://docs.joinpeertube.org/api-rest-reference.html#operation/getOAuthToken"
    );
}

#[test]
fn a_charset_parameter_on_the_form_type_is_fine() {
    let mut request = password("alice", "alice-pw");
    request.headers_mut().insert(
        "content-type",
        "application/x-www-form-urlencoded; charset=UTF-8"
            .parse()
            .unwrap(),
    );
    assert_eq!(fake().handle(&request).status(), StatusCode::OK);
}

#[test]
fn client_checks_come_before_grant_checks() {
    let fake = fake();
    let json = problem(
        &fake.handle(&form(&[("grant_type", "password")])),
        400,
        Some("invalid_client"),
    );
    assert_eq!(
        json["detail"],
        "Invalid client: cannot retrieve client credentials"
    );
    let json = problem(
        &fake.handle(&form(&[
            ("client_id", "cid"),
            ("client_secret", "nope"),
            ("grant_type", "password"),
        ])),
        400,
        Some("invalid_client"),
    );
    assert_eq!(json["detail"], "Invalid client: client is invalid");
}

#[test]
fn grant_type_is_required_and_checked() {
    let fake = fake();
    let json = problem(
        &fake.handle(&form(&[("client_id", "cid"), ("client_secret", "csecret")])),
        400,
        Some("invalid_request"),
    );
    assert_eq!(json["detail"], "Missing parameter: `grant_type`");
    problem(
        &fake.handle(&form(&[
            ("client_id", "cid"),
            ("client_secret", "csecret"),
            ("grant_type", "client_credentials"),
        ])),
        400,
        Some("unsupported_grant_type"),
    );
}

#[test]
fn missing_username_password_or_refresh_token_is_invalid_request() {
    let fake = fake();
    let base = [
        ("client_id", "cid"),
        ("client_secret", "csecret"),
        ("grant_type", "password"),
    ];
    let json = problem(&fake.handle(&form(&base)), 400, Some("invalid_request"));
    assert_eq!(json["detail"], "Missing parameter: `username`");
    let mut fields = base.to_vec();
    fields.push(("username", "alice"));
    let json = problem(&fake.handle(&form(&fields)), 400, Some("invalid_request"));
    assert_eq!(json["detail"], "Missing parameter: `password`");
    let json = problem(
        &fake.handle(&form(&[
            ("client_id", "cid"),
            ("client_secret", "csecret"),
            ("grant_type", "refresh_token"),
        ])),
        400,
        Some("invalid_request"),
    );
    assert_eq!(json["detail"], "Missing parameter: `refresh_token`");
}

// ----- password grant -----

#[test]
fn login_answers_a_token_pair_with_no_store() {
    let response = fake().handle(&password("alice", "alice-pw"));
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["pragma"], "no-cache");
    assert_eq!(
        response.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let json = body(&response);
    assert_eq!(json["token_type"], "Bearer");
    for name in ["access_token", "refresh_token"] {
        let token = json[name].as_str().unwrap();
        assert_eq!(token.len(), 40);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    assert_eq!(json["expires_in"], 86399);
    assert_eq!(json["refresh_token_expires_in"], 1209599);
}

#[test]
fn usernames_match_case_insensitively_but_are_not_trimmed() {
    let fake = fake();
    login(&fake, "ALICE", "alice-pw");
    problem(
        &fake.handle(&password(" alice", "alice-pw")),
        400,
        Some("invalid_grant"),
    );
    problem(
        &fake.handle(&password("alice", "alice-pw ")),
        400,
        Some("invalid_grant"),
    );
    problem(
        &fake.handle(&password("alice", "ALICE-PW")),
        400,
        Some("invalid_grant"),
    );
}

#[test]
fn email_login_follows_the_version() {
    let six = fake();
    login(&six, "alice@example.org", "alice-pw");
    problem(
        &six.handle(&password("Alice@Example.org", "alice-pw")),
        400,
        Some("invalid_grant"),
    );
    let eight = FakePeerTube::builder()
        .client("cid", "csecret")
        .version(ServerVersion::PeerTube8)
        .user(FakeUser::new("alice", "alice@example.org", "alice-pw"))
        .build();
    login(&eight, "Alice@Example.org", "alice-pw");
}

#[test]
fn wrong_password_is_invalid_grant() {
    let json = problem(
        &fake().handle(&password("alice", "nope")),
        400,
        Some("invalid_grant"),
    );
    assert_eq!(
        json["detail"],
        "Invalid grant: user credentials are invalid"
    );
    problem(
        &fake().handle(&password("nobody", "x")),
        400,
        Some("invalid_grant"),
    );
}

#[test]
fn blocked_and_unverified_users_are_denied_only_after_the_password_matched() {
    let fake = fake();
    let json = problem(
        &fake.handle(&password("carol", "carol-pw")),
        400,
        Some("access_denied"),
    );
    assert_eq!(json["detail"], "User is blocked.");
    problem(
        &fake.handle(&password("carol", "wrong")),
        400,
        Some("invalid_grant"),
    );
    let json = problem(
        &fake.handle(&password("dave", "dave-pw")),
        400,
        Some("access_denied"),
    );
    assert_eq!(json["detail"], "User email is not verified.");
}

#[test]
fn pending_and_rejected_registrations_say_so() {
    let fake = fake();
    problem(
        &fake.handle(&password("frank", "x")),
        400,
        Some("account_waiting_for_approval"),
    );
    problem(
        &fake.handle(&password("grace@example.org", "x")),
        400,
        Some("account_approval_rejected"),
    );
}

// ----- two-factor -----

#[test]
fn two_factor_asks_for_the_code_with_a_401_and_a_header() {
    let fake = fake();
    let response = fake.handle(&password("bob", "bob-pw"));
    let json = problem(&response, 401, Some("missing_two_factor"));
    assert_eq!(json["detail"], "Missing two factor header");
    assert_eq!(response.headers()["x-peertube-otp"], "required; app");
}

#[test]
fn a_wrong_code_is_invalid_two_factor_and_a_right_one_logs_in() {
    let fake = fake();
    let json = problem(
        &fake.handle(&with_otp(password("bob", "bob-pw"), "000000")),
        400,
        Some("invalid_two_factor"),
    );
    assert_eq!(json["detail"], "Invalid two factor header");
    let code = totp(TOTP_SECRET, fake.now()).unwrap();
    let response = fake.handle(&with_otp(password("bob", "bob-pw"), &code));
    assert_eq!(response.status(), StatusCode::OK);
    // The server keeps no record of used codes.
    assert_eq!(
        fake.handle(&with_otp(password("bob", "bob-pw"), &code))
            .status(),
        StatusCode::OK
    );
}

#[test]
fn codes_one_step_old_are_accepted_two_steps_old_are_not() {
    let fake = fake();
    let old = totp(TOTP_SECRET, fake.now()).unwrap();
    fake.advance(Duration::from_secs(30));
    assert_eq!(
        fake.handle(&with_otp(password("bob", "bob-pw"), &old))
            .status(),
        StatusCode::OK
    );
    fake.advance(Duration::from_secs(30));
    problem(
        &fake.handle(&with_otp(password("bob", "bob-pw"), &old)),
        400,
        Some("invalid_two_factor"),
    );
}

#[test]
fn a_wrong_password_with_a_valid_code_is_invalid_grant() {
    let fake = fake();
    let code = totp(TOTP_SECRET, fake.now()).unwrap();
    problem(
        &fake.handle(&with_otp(password("bob", "nope"), &code)),
        400,
        Some("invalid_grant"),
    );
}

// ----- external auth -----

fn external(username: &str, token: &str) -> Request<Vec<u8>> {
    form(&[
        ("client_id", "cid"),
        ("client_secret", "csecret"),
        ("grant_type", "password"),
        ("response_type", "code"),
        ("username", username),
        ("externalAuthToken", token),
    ])
}

#[test]
fn external_auth_tokens_are_single_use_and_live_five_minutes() {
    let fake = fake();
    let token = fake.issue_external_auth_token("alice");
    assert_eq!(token.len(), 32);
    assert_eq!(
        fake.handle(&external("alice", &token)).status(),
        StatusCode::OK
    );
    let json = problem(&fake.handle(&external("alice", &token)), 400, Some("Error"));
    assert_eq!(
        json["detail"],
        "Cannot authenticate user with unknown bypass token"
    );

    let token = fake.issue_external_auth_token("alice");
    fake.advance(Duration::from_secs(5 * 60 + 1));
    problem(&fake.handle(&external("alice", &token)), 400, Some("Error"));

    let token = fake.issue_external_auth_token("alice");
    problem(&fake.handle(&external("bob", &token)), 400, Some("Error"));
}

// ----- refresh grant -----

#[test]
fn refresh_rotates_and_kills_the_old_pair() {
    let fake = fake();
    let (access, refresh_token) = login(&fake, "alice", "alice-pw");
    let response = fake.handle(&refresh(&refresh_token));
    assert_eq!(response.status(), StatusCode::OK);
    let json = body(&response);
    let (new_access, new_refresh) = (
        json["access_token"].as_str().unwrap(),
        json["refresh_token"].as_str().unwrap(),
    );
    assert_ne!(new_access, access);
    assert_ne!(new_refresh, refresh_token);
    problem(&fake.handle(&me(&access)), 401, Some("invalid_token"));
    let json = problem(
        &fake.handle(&refresh(&refresh_token)),
        400,
        Some("invalid_grant"),
    );
    assert_eq!(json["detail"], "Invalid grant: refresh token is invalid");
    assert_eq!(fake.handle(&me(new_access)).status(), StatusCode::OK);
    let counters = fake.counters();
    assert_eq!(counters.refreshes, 1);
    assert_eq!(counters.refreshes_per_token[&refresh_token], 2);
    assert_eq!(counters.live_sessions, 1);
}

#[test]
fn refresh_works_after_the_access_token_expired_until_the_refresh_token_does() {
    let fake = FakePeerTube::builder()
        .client("cid", "csecret")
        .user(FakeUser::new("alice", "alice@example.org", "alice-pw"))
        .token_lifetimes(Duration::from_secs(60), Duration::from_secs(600))
        .build();
    let (access, refresh_token) = login(&fake, "alice", "alice-pw");
    assert_eq!(fake.handle(&me(&access)).status(), StatusCode::OK);
    fake.advance(Duration::from_secs(61));
    problem(&fake.handle(&me(&access)), 401, Some("invalid_token"));
    problem(&fake.handle(&revoke(&access)), 401, Some("invalid_token"));
    let response = fake.handle(&refresh(&refresh_token));
    assert_eq!(response.status(), StatusCode::OK);
    let refresh_token = body(&response)["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    fake.advance(Duration::from_secs(601));
    let json = problem(
        &fake.handle(&refresh(&refresh_token)),
        400,
        Some("invalid_grant"),
    );
    assert_eq!(json["detail"], "Invalid grant: refresh token has expired");
    assert_eq!(fake.counters().live_sessions, 0);
}

// ----- revoke -----

#[test]
fn revoke_kills_both_tokens() {
    let fake = fake();
    let (access, refresh_token) = login(&fake, "alice", "alice-pw");
    let response = fake.handle(&revoke(&access));
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body(&response), serde_json::json!({"success": true}));
    let json = problem(&fake.handle(&me(&access)), 401, Some("invalid_token"));
    assert_eq!(json["detail"], "Token is invalid");
    assert!(json.get("docs").is_none());
    problem(
        &fake.handle(&refresh(&refresh_token)),
        400,
        Some("invalid_grant"),
    );
    assert_eq!(fake.counters().revocations, 1);
}

#[test]
fn revoke_hands_back_the_plugin_redirect() {
    let fake = fake();
    let (access, _) = login(&fake, "erin", "erin-pw");
    let response = fake.handle(&revoke(&access));
    assert_eq!(
        body(&response),
        serde_json::json!({"success": true, "redirectUrl": "https://sso.example.org/bye"})
    );
}

#[test]
fn a_lowercase_bearer_is_rejected_and_revokes_nothing() {
    let fake = fake();
    let (access, _) = login(&fake, "alice", "alice-pw");
    let request = bearer(
        "POST",
        "/api/v1/users/revoke-token",
        Some(&format!("bearer {access}")),
    );
    let json = problem(&fake.handle(&request), 400, Some("invalid_request"));
    assert_eq!(json["detail"], "Token is invalid");
    assert_eq!(fake.handle(&me(&access)).status(), StatusCode::OK);
}

#[test]
fn revoke_without_a_token_is_unauthorized_request() {
    let json = problem(
        &fake().handle(&bearer("POST", "/api/v1/users/revoke-token", None)),
        401,
        Some("unauthorized_request"),
    );
    assert_eq!(json["detail"], "Token is invalid");
    assert_eq!(
        json["docs"],
        "https://docs.joinpeertube.org/api-rest-reference.html#operation/revokeOAuthToken"
    );
}

#[test]
fn a_token_in_two_places_is_invalid_request() {
    let fake = fake();
    let (access, _) = login(&fake, "alice", "alice-pw");
    let request = bearer(
        "POST",
        &format!("/api/v1/users/revoke-token?access_token={access}"),
        Some(&format!("Bearer {access}")),
    );
    problem(&fake.handle(&request), 400, Some("invalid_request"));
    assert_eq!(fake.handle(&me(&access)).status(), StatusCode::OK);
}

#[test]
fn an_unknown_token_is_invalid_token() {
    problem(
        &fake().handle(&revoke("0123456789abcdef")),
        401,
        Some("invalid_token"),
    );
}

// ----- users/me and admin actions -----

#[test]
fn me_names_the_user() {
    let fake = fake();
    let (access, _) = login(&fake, "ALICE", "alice-pw");
    let json = body(&fake.handle(&me(&access)));
    assert_eq!(json["username"], "alice");
    assert_eq!(json["id"], 1);
    problem(
        &fake.handle(&bearer("GET", "/api/v1/users/me", None)),
        401,
        Some("unauthorized_request"),
    );
}

#[test]
fn blocking_a_user_or_changing_the_password_kills_the_sessions() {
    let fake = fake();
    let (access, refresh_token) = login(&fake, "alice", "alice-pw");
    fake.change_password("alice", "new-pw");
    problem(&fake.handle(&me(&access)), 401, Some("invalid_token"));
    problem(
        &fake.handle(&refresh(&refresh_token)),
        400,
        Some("invalid_grant"),
    );
    let (access, _) = login(&fake, "alice", "new-pw");
    fake.block_user("alice");
    problem(&fake.handle(&me(&access)), 401, Some("invalid_token"));
    problem(
        &fake.handle(&password("alice", "new-pw")),
        400,
        Some("access_denied"),
    );
}

// ----- rate limit -----

#[test]
fn the_login_rate_limit_answers_plain_text_429() {
    let fake = FakePeerTube::builder()
        .client("cid", "csecret")
        .user(FakeUser::new("alice", "alice@example.org", "alice-pw"))
        .login_rate_limit(3, Duration::from_secs(300))
        .build();
    for remaining in [2, 1, 0] {
        let response = fake.handle(&password("alice", "wrong"));
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()["x-ratelimit-limit"], "3");
        assert_eq!(
            response.headers()["x-ratelimit-remaining"],
            remaining.to_string().as_str()
        );
    }
    fake.advance(Duration::from_secs(22));
    let response = fake.handle(&password("alice", "alice-pw"));
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        response.body(),
        b"Too many requests, please try again later."
    );
    assert_eq!(response.headers()["retry-after"], "278");
    assert_eq!(response.headers()["x-ratelimit-remaining"], "0");
    let reset: u64 = response.headers()["x-ratelimit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(reset, 1_795_800_000 + 300);
    assert!(
        !response.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("json")
    );

    // Refreshes count too, and other addresses have their own window.
    assert_eq!(
        fake.handle(&refresh("x")).status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    let mut elsewhere = password("alice", "alice-pw");
    elsewhere
        .extensions_mut()
        .insert(ClientAddr(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))));
    assert_eq!(fake.handle(&elsewhere).status(), StatusCode::OK);

    fake.advance(Duration::from_secs(300));
    assert_eq!(
        fake.handle(&password("alice", "alice-pw")).status(),
        StatusCode::OK
    );
    assert_eq!(fake.counters().rate_limited, 2);
}

#[test]
fn the_default_rate_limit_is_fifteen_per_five_minutes() {
    let fake = FakePeerTube::builder().client("cid", "csecret").build();
    for _ in 0..15 {
        assert_eq!(
            fake.handle(&password("x", "y")).status(),
            StatusCode::BAD_REQUEST
        );
    }
    assert_eq!(
        fake.handle(&password("x", "y")).status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

// ----- shapes and the rest -----

#[test]
fn error_bodies_follow_the_chosen_version() {
    let six = problem(
        &fake().handle(&password("alice", "nope")),
        400,
        Some("invalid_grant"),
    );
    assert_eq!(six["error"], six["detail"]);
    let eight = FakePeerTube::builder()
        .client("cid", "csecret")
        .version(ServerVersion::PeerTube8)
        .build();
    let eight = problem(
        &eight.handle(&password("alice", "nope")),
        400,
        Some("invalid_grant"),
    );
    assert!(eight.get("error").is_none());
    assert_eq!(
        eight["detail"],
        "Invalid grant: user credentials are invalid"
    );
}

#[test]
fn the_6_x_error_body_matches_the_recorded_one_byte_for_byte() {
    let recorded = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/peertube-6.3/04a-wrong-password.http"
    ))
    .unwrap();
    let recorded_body = recorded.split("\r\n\r\n").nth(1).unwrap();
    let response = fake().handle(&password("alice", "nope"));
    assert_eq!(String::from_utf8_lossy(response.body()), recorded_body);
}

#[test]
fn unknown_api_routes_get_peertube_s_empty_400() {
    let fake = fake();
    for (method, path) in [("GET", "/api/v1/videos"), ("GET", "/api/v1/users/token")] {
        let response = fake.handle(&bearer(method, path, None));
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            response.headers()["content-type"],
            "application/json; charset=utf-8"
        );
        assert!(response.body().is_empty());
    }
    problem(
        &fake.handle(&bearer("GET", "/not-the-api", None)),
        404,
        None,
    );
    assert_eq!(fake.counters().other_requests, 3);
}

#[test]
fn a_canned_answer_is_used_once() {
    let fake = fake();
    fake.respond_once(
        Some("/api/v1/users/token"),
        StatusCode::BAD_GATEWAY,
        &[("content-type", "text/html")],
        b"<html>502 Bad Gateway</html>".to_vec(),
    );
    assert_eq!(
        fake.handle(&bearer("GET", "/api/v1/oauth-clients/local", None))
            .status(),
        StatusCode::OK
    );
    let response = fake.handle(&password("alice", "alice-pw"));
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        fake.handle(&password("alice", "alice-pw")).status(),
        StatusCode::OK
    );
}

#[test]
fn counters_count_requests_per_endpoint() {
    let fake = fake();
    fake.handle(&bearer("GET", "/api/v1/oauth-clients/local", None));
    let (access, _) = login(&fake, "alice", "alice-pw");
    let (_, _) = login(&fake, "alice", "alice-pw");
    fake.handle(&me(&access));
    fake.handle(&revoke(&access));
    let counters = fake.counters();
    assert_eq!(counters.client_requests, 1);
    assert_eq!(counters.token_requests, 2);
    assert_eq!(counters.logins, 2);
    assert_eq!(counters.me_requests, 1);
    assert_eq!(counters.revoke_requests, 1);
    assert_eq!(counters.live_sessions, 1);
}

fn access_token_of(response: &Response<Vec<u8>>) -> String {
    let body: Value = serde_json::from_slice(response.body()).unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

#[test]
fn every_answer_carries_the_date_of_the_fake_clock() {
    let fake = fake();
    let response = fake.handle(&password("alice", "alice-pw"));
    assert_eq!(response.headers()["date"], "Fri, 27 Nov 2026 17:20:00 GMT");
    fake.advance(Duration::from_secs(61));
    let response = fake.handle(&me("unknown"));
    assert_eq!(response.headers()["date"], "Fri, 27 Nov 2026 17:21:01 GMT");
}

/// PeerTube's `rates_limit.api` sits on the users router (the token route and `users/me`
/// included) and on `oauth-clients`: `server/core/controllers/api/users/index.ts` and
/// `oauth-clients.ts`, `usersRouter.use(apiRateLimiter)`; its handler lets an administrator's or
/// a moderator's token through (`middlewares/rate-limiter.ts`).
#[test]
fn the_api_limit_counts_every_users_route_per_address_and_lets_moderators_through() {
    use peertube_session::fake::FakeRole;
    let fake = FakePeerTube::builder()
        .client("cid", "csecret")
        .user(FakeUser::new("alice", "alice@example.org", "alice-pw"))
        .user(FakeUser::new("mod", "mod@example.org", "mod-pw").with_role(FakeRole::Moderator))
        .no_rate_limit()
        .api_rate_limit(5, Duration::from_secs(10))
        .build();
    let alice = access_token_of(&fake.handle(&password("alice", "alice-pw")));
    let moderator = access_token_of(&fake.handle(&password("mod", "mod-pw")));
    // 2 token requests so far; 3 more calls fill the window.
    for _ in 0..3 {
        assert_eq!(fake.handle(&me(&alice)).status(), StatusCode::OK);
    }
    let over = fake.handle(&me(&alice));
    assert_eq!(over.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(over.headers()["retry-after"], "10");
    assert_eq!(over.headers()["x-ratelimit-limit"], "5");
    assert_eq!(over.body(), b"Too many requests, please try again later.");
    // The token route and the client route are behind the same limit…
    assert_eq!(
        fake.handle(&password("alice", "alice-pw")).status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    let client = Request::get("http://127.0.0.1:9000/api/v1/oauth-clients/local")
        .body(Vec::new())
        .unwrap();
    assert_eq!(fake.handle(&client).status(), StatusCode::TOO_MANY_REQUESTS);
    // …an unknown API route is not (PeerTube's catch-all comes after no limiter)…
    let other = Request::get("http://127.0.0.1:9000/api/v1/videos")
        .body(Vec::new())
        .unwrap();
    assert_eq!(fake.handle(&other).status(), StatusCode::BAD_REQUEST);
    // …and a moderator's token passes, though it counts.
    assert_eq!(fake.handle(&me(&moderator)).status(), StatusCode::OK);
    let counters = fake.counters();
    assert_eq!((counters.rate_limited, counters.api_rate_limited), (1, 2));
    // Another address has a window of its own; the next window starts afresh.
    let mut elsewhere = me(&alice);
    elsewhere
        .extensions_mut()
        .insert(ClientAddr(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))));
    assert_eq!(fake.handle(&elsewhere).status(), StatusCode::OK);
    fake.advance(Duration::from_secs(10));
    assert_eq!(fake.handle(&me(&alice)).status(), StatusCode::OK);
}

#[test]
fn refused_tokens_are_counted() {
    let fake = fake();
    assert_eq!(fake.handle(&me("dead")).status(), StatusCode::UNAUTHORIZED);
    let missing = Request::get("http://127.0.0.1:9000/api/v1/users/me")
        .body(Vec::new())
        .unwrap();
    assert_eq!(fake.handle(&missing).status(), StatusCode::UNAUTHORIZED);
    // `unauthorized_request` (no token at all) is not a refused token.
    assert_eq!(fake.counters().refused_tokens, 1);
}
