//! No secret ever appears in `Debug` or `Display` output.

mod support;

use peertube_session::request::{password_grant_request, refresh_grant_request, revoke_request};
use peertube_session::response::{Secrets, parse_login};
use peertube_session::{
    AccessToken, ClientSecret, Credentials, ExternalAuthToken, Instance, OAuthClient, Otp,
    Password, RefreshToken, Session,
};
use support::{json, problem, t0};

const CLIENT_SECRET: &str = "CLIENTSECRETzP04u0OxKFL1SNfiZlb4y5";
const PASSWORD: &str = "PASSWORD-correct-horse-battery";
const OTP: &str = "424242";
const EXTERNAL: &str = "EXTERNALAUTHTOKENXb4TQ0Qk3f1fA9Yw";
const ACCESS: &str = "ACCESSTOKEN9557619c8ec82daae2de531b";
const REFRESH: &str = "REFRESHTOKEN39ba8dd627ce985f26af8b95";
const SECRETS: [&str; 6] = [CLIENT_SECRET, PASSWORD, OTP, EXTERNAL, ACCESS, REFRESH];

fn assert_clean(label: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{label} leaks {secret}: {text}");
    }
    // The body's bytes must not appear as a list of numbers either.
    assert!(
        !text.contains("80, 65, 83, 83"),
        "{label} prints body bytes: {text}"
    );
}

fn client() -> OAuthClient {
    OAuthClient::new("cid", CLIENT_SECRET)
}

fn token_body() -> String {
    format!(
        r#"{{"token_type":"Bearer","access_token":"{ACCESS}","refresh_token":"{REFRESH}","expires_in":86399,"refresh_token_expires_in":1209599}}"#
    )
}

/// A session logged in with the secrets above.
fn logged_in() -> Session {
    let instance = Instance::new("https://video.example.org").unwrap();
    let mut session = Session::with_client(instance, client());
    let (_, pending) = session
        .login(&Credentials::password("alice", PASSWORD))
        .unwrap();
    session
        .handle(pending, &json(200, &token_body()), t0())
        .unwrap();
    session
}

#[test]
fn secret_types_print_redacted() {
    assert_clean(
        "ClientSecret",
        &format!("{:?}", ClientSecret::new(CLIENT_SECRET)),
    );
    assert_clean("Password", &format!("{:?}", Password::new(PASSWORD)));
    assert_clean("Otp", &format!("{:?}", Otp::new(OTP)));
    assert_clean(
        "ExternalAuthToken",
        &format!("{:?}", ExternalAuthToken::new(EXTERNAL)),
    );
    assert_clean("AccessToken", &format!("{:?}", AccessToken::new(ACCESS)));
    assert_clean("RefreshToken", &format!("{:?}", RefreshToken::new(REFRESH)));
    assert_eq!(
        format!("{:?}", AccessToken::new(ACCESS)),
        "AccessToken([redacted])"
    );
}

#[test]
fn credentials_and_client_pair_print_redacted() {
    let credentials = Credentials::password("alice", PASSWORD).with_otp(OTP);
    assert_clean("Credentials", &format!("{credentials:?}"));
    assert!(format!("{credentials:?}").contains("alice"));
    assert_clean(
        "Credentials",
        &format!("{:?}", Credentials::external_auth("alice", EXTERNAL)),
    );
    assert_clean("OAuthClient", &format!("{:?}", client()));
}

#[test]
fn built_requests_print_redacted() {
    let instance = Instance::new("https://video.example.org").unwrap();
    let login = password_grant_request(
        &instance,
        &client(),
        &Credentials::password("alice", PASSWORD).with_otp(OTP),
    )
    .unwrap();
    assert_clean("login request", &format!("{login:?}"));
    let external = password_grant_request(
        &instance,
        &client(),
        &Credentials::external_auth("alice", EXTERNAL),
    )
    .unwrap();
    assert_clean("external login request", &format!("{external:?}"));
    let refresh = refresh_grant_request(&instance, &client(), &RefreshToken::new(REFRESH)).unwrap();
    assert_clean("refresh request", &format!("{refresh:?}"));
    let revoke = revoke_request(&instance, &AccessToken::new(ACCESS)).unwrap();
    assert_clean("revoke request", &format!("{revoke:?}"));
}

#[test]
fn parsed_tokens_print_redacted() {
    let tokens = parse_login(&json(200, &token_body()), &Secrets::none()).unwrap();
    assert_clean("TokenResponse", &format!("{tokens:?}"));
}

#[test]
fn sessions_pending_handles_and_saved_forms_print_redacted() {
    let instance = Instance::new("https://video.example.org").unwrap();
    let mut session = Session::with_client(instance, client());
    let (_, pending) = session
        .login(&Credentials::password("alice", PASSWORD).with_otp(OTP))
        .unwrap();
    assert_clean("Pending", &format!("{pending:?}"));
    session
        .handle(pending, &json(200, &token_body()), t0())
        .unwrap();
    assert_clean("Session", &format!("{session:?}"));
    assert_clean("SavedSession", &format!("{:?}", session.save()));
    let (_, pending) = session.refresh().unwrap();
    assert_clean("Pending", &format!("{pending:?}"));
    let mut request = http::Request::get("https://video.example.org/x")
        .body(())
        .unwrap();
    let ticket = session.authorize(&mut request, t0()).unwrap();
    assert_clean("Authorized", &format!("{ticket:?}"));
    assert_clean("authorized request", &format!("{request:?}"));
    session.abandon(pending);
}

#[test]
fn errors_print_no_secret_even_when_the_server_echoes_one() {
    let mut session = logged_in();
    let echo = format!(
        r#"{{"status":400,"code":"invalid_grant","detail":"{REFRESH} / {ACCESS} / {CLIENT_SECRET}"}}"#
    );
    let (_, pending) = session.refresh().unwrap();
    let error = session
        .handle(pending, &problem(400, &echo), t0())
        .unwrap_err();
    assert_clean("Error Display", &error.to_string());
    assert_clean("Error Debug", &format!("{error:?}"));

    // A half-valid token answer: the error names the problem, not the values.
    let half = format!(r#"{{"access_token":"{ACCESS}","refresh_token":{{"x":"{REFRESH}"}}}}"#);
    let error = parse_login(&json(200, &half), &Secrets::none()).unwrap_err();
    assert_clean("malformed Display", &error.to_string());
    assert_clean("malformed Debug", &format!("{error:?}"));
}

#[test]
fn the_saved_form_is_the_one_place_secrets_are_written() {
    let session = logged_in();
    let text = serde_json::to_string(&session.save()).unwrap();
    assert!(text.contains(ACCESS) && text.contains(REFRESH) && text.contains(CLIENT_SECRET));
    assert!(!text.contains(PASSWORD));
}

#[cfg(feature = "fake")]
#[test]
fn the_fakes_counters_print_no_refresh_token() {
    use peertube_session::fake::{FakePeerTube, FakeUser};
    let fake = FakePeerTube::builder()
        .user(FakeUser::new("alice", "alice@example.org", PASSWORD))
        .build();
    let (id, secret) = fake.client_pair();
    let instance = Instance::new("http://127.0.0.1:9").unwrap();
    let mut session = Session::with_client(instance, OAuthClient::new(id, secret));
    let (request, pending) = session
        .login(&Credentials::password("alice", PASSWORD))
        .unwrap();
    session
        .handle(pending, &fake.handle(&request), fake.now())
        .unwrap();
    let (request, pending) = session.refresh().unwrap();
    let refresh_token = String::from_utf8_lossy(request.body().as_bytes())
        .split('&')
        .find_map(|pair| pair.strip_prefix("refresh_token=").map(str::to_owned))
        .unwrap();
    session
        .handle(pending, &fake.handle(&request), fake.now())
        .unwrap();
    let counters = fake.counters();
    assert!(counters.refreshes_per_token.contains_key(&refresh_token));
    let printed = format!("{counters:?}");
    assert!(!printed.contains(&refresh_token), "{printed}");
    assert!(printed.contains("refreshes: 1"), "{printed}");
}

/// Equality must see every byte: a comparison that answered "equal" for any two values, for
/// values of the same length, or for permutations would make every `assert_eq!` on a saved
/// session, a token answer or a client pair blind to its secrets.
macro_rules! equality_sees_every_byte {
    ($($name:ident),*) => {$(
        assert_eq!($name::new("s3cret-value"), $name::new("s3cret-value"));
        assert_eq!($name::new(""), $name::new(""));
        assert_ne!($name::new("s3cret-value"), $name::new("s3cret-valuf"), "last byte");
        assert_ne!($name::new("s3cret-value"), $name::new("t3cret-value"), "first byte");
        assert_ne!($name::new("ab"), $name::new("ba"), "permutation");
        assert_ne!($name::new("s3cret"), $name::new("s3cret-value"), "prefix");
        assert_ne!($name::new(""), $name::new("x"), "empty");
    )*};
}

#[test]
fn secrets_are_equal_only_when_every_byte_is() {
    equality_sees_every_byte!(
        ClientSecret,
        Password,
        Otp,
        ExternalAuthToken,
        AccessToken,
        RefreshToken
    );
}

#[test]
fn each_requests_secrets_are_the_ones_its_parser_removes() {
    use peertube_session::response::{parse_error, parse_refresh};
    let pair = client();
    let refresh = RefreshToken::new(REFRESH);
    let access = AccessToken::new(ACCESS);
    let echo = format!(
        r#"{{"status":400,"code":"invalid_grant","detail":"{REFRESH} / {ACCESS} / {CLIENT_SECRET}"}}"#
    );
    let answer = problem(400, &echo);

    let error = parse_refresh(&answer, &Secrets::for_refresh(&pair, &refresh)).unwrap_err();
    let text = error.to_string();
    assert!(
        !text.contains(REFRESH) && !text.contains(CLIENT_SECRET),
        "{text}"
    );
    assert!(
        text.contains(ACCESS),
        "only the refresh grant's secrets: {text}"
    );

    let detail = parse_error(&answer, &Secrets::for_bearer(&access))
        .detail
        .unwrap();
    assert!(!detail.contains(ACCESS), "{detail}");
    assert!(
        detail.contains(REFRESH),
        "only the bearer's secret: {detail}"
    );

    let untouched = parse_error(&answer, &Secrets::none()).detail.unwrap();
    assert!(untouched.contains(REFRESH) && untouched.contains(ACCESS));
}
