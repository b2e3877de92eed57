//! Golden tests of the request builders: method, URI, headers and the exact form fields.

mod support;

use peertube_session::request::{
    oauth_client_request, password_grant_request, refresh_grant_request, revoke_request,
};
use peertube_session::{
    AccessToken, Credentials, Error, Instance, OAuthClient, RefreshToken, error::InputError,
};
use support::form_fields;

fn instance() -> Instance {
    Instance::new("https://video.example.org").unwrap()
}

fn client() -> OAuthClient {
    OAuthClient::new(
        "grvyb3ovub45ir4zv08p1cy1hlg3urym",
        "zP04u0OxKFL1SNfiZlb4y53qnusyJzuu",
    )
}

fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn client_request_is_a_plain_get_asking_for_json() {
    let request = oauth_client_request(&instance());
    assert_eq!(request.method(), http::Method::GET);
    assert_eq!(
        request.uri(),
        "https://video.example.org/api/v1/oauth-clients/local"
    );
    assert_eq!(request.headers()["accept"], "application/json");
    assert!(request.headers().get("authorization").is_none());
    assert!(request.body().is_empty());
}

#[test]
fn password_grant_sends_what_the_official_clients_send() {
    let credentials = Credentials::password("alice", "correct horse");
    let request = password_grant_request(&instance(), &client(), &credentials).unwrap();
    assert_eq!(request.method(), http::Method::POST);
    assert_eq!(
        request.uri(),
        "https://video.example.org/api/v1/users/token"
    );
    assert_eq!(
        request.headers()["content-type"],
        "application/x-www-form-urlencoded"
    );
    assert_eq!(request.headers()["accept"], "application/json");
    assert!(request.headers().get("x-peertube-otp").is_none());
    assert!(request.headers().get("authorization").is_none());
    assert_eq!(
        form_fields(request.body().as_bytes()),
        fields(&[
            ("client_id", "grvyb3ovub45ir4zv08p1cy1hlg3urym"),
            ("client_secret", "zP04u0OxKFL1SNfiZlb4y53qnusyJzuu"),
            ("grant_type", "password"),
            ("response_type", "code"),
            ("scope", "upload"),
            ("username", "alice"),
            ("password", "correct horse"),
        ])
    );
}

#[test]
fn password_grant_percent_encodes_awkward_passwords() {
    let password = "a&b=c+d e%f/ü🦀";
    let credentials = Credentials::password("ålice", password);
    let request = password_grant_request(&instance(), &client(), &credentials).unwrap();
    let body = std::str::from_utf8(request.body().as_bytes()).unwrap();
    assert!(
        body.contains("password=a%26b%3Dc%2Bd+e%25f%2F%C3%BC%F0%9F%A6%80"),
        "{body}"
    );
    let decoded = form_fields(request.body().as_bytes());
    assert!(decoded.contains(&("password".to_owned(), password.to_owned())));
    assert!(decoded.contains(&("username".to_owned(), "ålice".to_owned())));
}

#[test]
fn username_and_password_are_sent_exactly_as_given() {
    let credentials = Credentials::password(" root", "test1 ");
    let request = password_grant_request(&instance(), &client(), &credentials).unwrap();
    let decoded = form_fields(request.body().as_bytes());
    assert!(decoded.contains(&("username".to_owned(), " root".to_owned())));
    assert!(decoded.contains(&("password".to_owned(), "test1 ".to_owned())));
}

#[test]
fn one_time_code_goes_in_a_sensitive_header_not_the_body() {
    let credentials = Credentials::password("alice", "pw").with_otp("123 456");
    let request = password_grant_request(&instance(), &client(), &credentials).unwrap();
    let otp = &request.headers()["x-peertube-otp"];
    assert_eq!(otp, "123456");
    assert!(otp.is_sensitive());
    assert!(
        !form_fields(request.body().as_bytes())
            .iter()
            .any(|(_, v)| v.contains("123"))
    );
}

#[test]
fn one_time_code_must_be_six_digits() {
    for bad in ["12345", "1234567", "12345a", "", "１２３４５６"] {
        let credentials = Credentials::password("alice", "pw").with_otp(bad);
        let error = password_grant_request(&instance(), &client(), &credentials).unwrap_err();
        assert_eq!(
            error,
            Error::InvalidInput(InputError::InvalidOtp),
            "{bad:?}"
        );
    }
}

#[test]
fn external_auth_sends_the_token_instead_of_a_password() {
    let credentials = Credentials::external_auth("alice", "Xb4TQ0Qk3f1fA9Yw8Gj2Lz6Rm5Vn7Pc1");
    let request = password_grant_request(&instance(), &client(), &credentials).unwrap();
    let decoded = form_fields(request.body().as_bytes());
    assert_eq!(
        decoded,
        fields(&[
            ("client_id", "grvyb3ovub45ir4zv08p1cy1hlg3urym"),
            ("client_secret", "zP04u0OxKFL1SNfiZlb4y53qnusyJzuu"),
            ("grant_type", "password"),
            ("response_type", "code"),
            ("scope", "upload"),
            ("username", "alice"),
            ("externalAuthToken", "Xb4TQ0Qk3f1fA9Yw8Gj2Lz6Rm5Vn7Pc1"),
        ])
    );
}

#[test]
fn empty_username_or_password_is_refused_before_sending() {
    let cases = [
        (Credentials::password("", "pw"), InputError::EmptyUsername),
        (
            Credentials::password("alice", ""),
            InputError::EmptyPassword,
        ),
        (
            Credentials::external_auth("alice", ""),
            InputError::EmptyExternalAuthToken,
        ),
    ];
    for (credentials, expected) in cases {
        assert_eq!(
            password_grant_request(&instance(), &client(), &credentials).unwrap_err(),
            Error::InvalidInput(expected)
        );
    }
}

#[test]
fn refresh_grant_sends_the_refresh_token_and_the_client_pair() {
    let token = RefreshToken::new("39ba8dd627ce985f26af8b9593439f8d1c598d8b");
    let request = refresh_grant_request(&instance(), &client(), &token).unwrap();
    assert_eq!(request.method(), http::Method::POST);
    assert_eq!(
        request.uri(),
        "https://video.example.org/api/v1/users/token"
    );
    assert_eq!(
        request.headers()["content-type"],
        "application/x-www-form-urlencoded"
    );
    assert_eq!(
        form_fields(request.body().as_bytes()),
        fields(&[
            ("client_id", "grvyb3ovub45ir4zv08p1cy1hlg3urym"),
            ("client_secret", "zP04u0OxKFL1SNfiZlb4y53qnusyJzuu"),
            ("grant_type", "refresh_token"),
            ("response_type", "code"),
            ("refresh_token", "39ba8dd627ce985f26af8b9593439f8d1c598d8b"),
        ])
    );
}

#[test]
fn revoke_sends_a_capitalised_sensitive_bearer_header_and_no_body() {
    let token = AccessToken::new("9557619c8ec82daae2de531b391d58e4e678131d");
    let request = revoke_request(&instance(), &token).unwrap();
    assert_eq!(request.method(), http::Method::POST);
    assert_eq!(
        request.uri(),
        "https://video.example.org/api/v1/users/revoke-token"
    );
    let authorization = &request.headers()["authorization"];
    assert_eq!(
        authorization,
        "Bearer 9557619c8ec82daae2de531b391d58e4e678131d"
    );
    assert!(authorization.is_sensitive());
    assert!(request.body().is_empty());
    assert!(request.uri().query().is_none());
    assert!(request.headers().get("content-type").is_none());
}

#[test]
fn a_token_that_cannot_be_a_header_is_a_typed_error() {
    let token = AccessToken::new("abc\ndef");
    assert_eq!(
        revoke_request(&instance(), &token).unwrap_err(),
        Error::InvalidInput(InputError::InvalidHeaderValue)
    );
}

#[test]
fn endpoints_live_under_the_instance_path_prefix() {
    let instance = Instance::new("https://example.org/peertube/").unwrap();
    assert_eq!(
        oauth_client_request(&instance).uri(),
        "https://example.org/peertube/api/v1/oauth-clients/local"
    );
    let token = AccessToken::new("t");
    assert_eq!(
        revoke_request(&instance, &token).unwrap().uri(),
        "https://example.org/peertube/api/v1/users/revoke-token"
    );
}

#[test]
fn body_converts_to_the_bytes_an_http_client_wants() {
    let credentials = Credentials::password("alice", "pw");
    let request = password_grant_request(&instance(), &client(), &credentials).unwrap();
    let expected = request.body().as_bytes().to_vec();
    let request = request.map(Vec::from);
    assert_eq!(request.body(), &expected);
}
