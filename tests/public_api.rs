//! The small promises of the public API that nothing else checks: what `Display` says, what
//! `source()` gives, equality, and the `Body` helpers.

mod support;

use http::StatusCode;
use peertube_session::error::{InputError, UrlError};
use peertube_session::response::{Secrets, parse_login};
use peertube_session::{
    Body, Credentials, Error, Instance, Operation, Session, State, TransportError,
    TransportErrorKind,
};
use std::error::Error as _;
use support::json;

/// Every `Display` in the chain of `error`, outermost first.
fn chain(error: &dyn std::error::Error) -> Vec<String> {
    let mut out = vec![error.to_string()];
    let mut next = error.source();
    while let Some(cause) = next {
        out.push(cause.to_string());
        next = cause.source();
    }
    out
}

#[test]
fn the_error_chain_names_each_level_once() {
    let cause = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "peer reset");
    let error = Error::from(TransportError::new(
        TransportErrorKind::ConnectionClosed,
        cause,
    ));
    let links = chain(&error);
    assert_eq!(links.len(), 3, "{links:?}");
    assert_eq!(links[0], "could not talk to the instance");
    assert_eq!(links[1], TransportErrorKind::ConnectionClosed.to_string());
    assert_eq!(links[2], "peer reset");

    let bare = TransportError::of_kind(TransportErrorKind::Timeout);
    assert_eq!(chain(&bare), ["timed out"]);

    let url = Instance::new("http://127.0.0.1:0").unwrap_err();
    assert_eq!(url, Error::InvalidUrl(UrlError::BadPort));
    assert_eq!(
        chain(&url),
        [
            "invalid instance URL",
            "the port must be a number from 1 to 65535"
        ]
    );

    let input = Credentials::password("", "pw");
    let pair = peertube_session::OAuthClient::new("id", "secret");
    let error = Session::with_client(instance(), pair)
        .login(&input)
        .expect_err("an empty user name is refused");
    assert!(matches!(
        error,
        Error::InvalidInput(InputError::EmptyUsername)
    ));
    assert_eq!(chain(&error), ["invalid input", "the username is empty"]);
}

fn instance() -> Instance {
    Instance::new("https://video.example.org").unwrap()
}

#[test]
fn transport_errors_are_equal_by_kind_and_keep_their_cause() {
    let with_cause = TransportError::new(TransportErrorKind::Timeout, "slow");
    let without = TransportError::of_kind(TransportErrorKind::Timeout);
    assert_eq!(with_cause, without);
    assert_ne!(
        without,
        TransportError::of_kind(TransportErrorKind::Connect)
    );
    assert_eq!(with_cause.kind(), TransportErrorKind::Timeout);
    assert_eq!(
        with_cause.source().map(|c| c.to_string()).as_deref(),
        Some("slow")
    );
    assert!(without.source().is_none());
    assert_eq!(
        Error::Transport(with_cause.clone()),
        Error::Transport(without)
    );
    assert_eq!(Error::Transport(with_cause).status(), None);
}

#[test]
fn a_parse_failure_keeps_the_status_it_came_with() {
    let error = parse_login(&json(200, "{not json"), &Secrets::none()).unwrap_err();
    assert!(
        matches!(error, Error::MalformedResponse { .. }),
        "{error:?}"
    );
    assert_eq!(error.status(), Some(StatusCode::OK));
    let error = parse_login(&json(201, r#"{"access_token":""}"#), &Secrets::none()).unwrap_err();
    assert_eq!(error.status(), Some(StatusCode::CREATED));
    assert_eq!(Error::RefreshInFlight.status(), None);
}

#[test]
fn body_constructors_agree_and_count_bytes() {
    let from_all = [
        Body::from("héllo"),
        Body::from(String::from("héllo")),
        Body::from("héllo".as_bytes()),
        Body::from("héllo".as_bytes().to_vec()),
    ];
    for body in &from_all {
        assert_eq!(body.as_bytes(), "héllo".as_bytes());
        assert_eq!(body.len(), 6);
        assert!(!body.is_empty());
        assert_eq!(body, &from_all[0]);
    }
    assert_eq!(from_all[0].clone().into_vec(), "héllo".as_bytes());
    for empty in [Body::from(()), Body::default(), Body::from("")] {
        assert_eq!(empty.len(), 0);
        assert!(empty.is_empty());
    }
    assert_ne!(Body::from("a"), Body::from("b"));
    assert_eq!(
        format!("{:?}", Body::from("secret")),
        "Body(6 bytes, redacted)"
    );
}

#[test]
fn display_says_what_a_person_would() {
    assert_eq!(
        Instance::new("https://video.example.org/peertube/")
            .unwrap()
            .to_string(),
        "https://video.example.org/peertube"
    );
    assert_eq!(instance().to_string(), "https://video.example.org");
    let states = [
        (State::NoClient, "without an OAuth client"),
        (State::HaveClient, "not logged in"),
        (State::LoggedIn, "logged in"),
        (State::Revoked, "logged out"),
    ];
    for (state, text) in states {
        assert_eq!(state.to_string(), text);
    }
    let operations = [
        (Operation::FetchClient, "fetching the OAuth client"),
        (Operation::Login, "login"),
        (Operation::Refresh, "refresh"),
        (Operation::Logout, "logout"),
        (Operation::Authorize, "authorizing a request"),
    ];
    for (operation, text) in operations {
        assert_eq!(operation.to_string(), text);
    }
    assert_eq!(
        Error::InvalidState {
            operation: Operation::Refresh,
            state: State::HaveClient
        }
        .to_string(),
        "refresh is not possible while the session is not logged in"
    );
}

#[cfg(all(feature = "blocking-client", feature = "fake"))]
#[test]
fn send_authorized_takes_any_body_that_converts_and_sends_it_unchanged() {
    use peertube_session::blocking::BlockingClient;
    use peertube_session::fake::{FakePeerTube, FakeUser};
    use std::sync::{Arc, Mutex};

    let fake = FakePeerTube::builder()
        .user(FakeUser::new("alice", "alice@example.org", "alice-pw"))
        .build();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let log = sent.clone();
    let transport = move |request: http::Request<Body>| {
        if request.uri().path().starts_with("/api/v1/users/me") {
            log.lock().unwrap().push(request.body().as_bytes().to_vec());
        }
        Ok(fake.handle(&request))
    };
    let client = BlockingClient::new(transport, Instance::new("http://127.0.0.1:9").unwrap());
    client
        .login(&Credentials::password("alice", "alice-pw"))
        .unwrap();
    let empty = http::Request::get("/api/v1/users/me").body(()).unwrap();
    client.send_authorized(empty).unwrap();
    let json = serde_json::to_vec(&serde_json::json!({ "displayName": "Alice" })).unwrap();
    let put = http::Request::put("/api/v1/users/me")
        .header("content-type", "application/json")
        .body(json.clone())
        .unwrap();
    client.send_authorized(put).unwrap();
    let text = http::Request::put("/api/v1/users/me")
        .body(String::from("plain"))
        .unwrap();
    client.send_authorized(text).unwrap();
    assert_eq!(*sent.lock().unwrap(), [Vec::new(), json, b"plain".to_vec()]);
}

#[test]
fn credentials_tell_their_user_name_and_whether_they_carry_a_code() {
    let plain = Credentials::password("alice", "pw");
    assert_eq!(plain.username(), "alice");
    assert!(!plain.has_otp());
    let with_code = plain.clone().with_otp("123456");
    assert_eq!(with_code.username(), "alice");
    assert!(with_code.has_otp());
    let external = Credentials::external_auth("bob", "token");
    assert_eq!(external.username(), "bob");
    assert!(!external.has_otp());
}
