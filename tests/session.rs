//! The session state machine: every legal and illegal transition, with a fixed clock.

mod support;

use peertube_session::{
    Credentials, Error, Event, Instance, OAuthClient, Operation, SavedSession, Session, State,
};
use std::time::Duration;
use support::{answer, at, fixture, form_fields, json, problem, t0, tokens};

fn instance() -> Instance {
    Instance::new("https://video.example.org").unwrap()
}

fn have_client() -> Session {
    Session::with_client(instance(), OAuthClient::new("cid", "csecret"))
}

fn logged_in() -> Session {
    let mut session = have_client();
    let (_, pending) = session
        .login(&Credentials::password("alice", "pw"))
        .unwrap();
    session
        .handle(pending, &tokens("access-1", "refresh-1"), t0())
        .unwrap();
    session
}

fn revoked() -> Session {
    let mut session = logged_in();
    let (_, pending) = session.logout().unwrap();
    session
        .handle(pending, &json(200, r#"{"success":true}"#), t0())
        .unwrap();
    session
}

fn no_client() -> Session {
    Session::new(instance())
}

fn invalid_state(operation: Operation, state: State) -> Error {
    Error::InvalidState { operation, state }
}

fn sent_refresh_token(request: &http::Request<peertube_session::Body>) -> String {
    form_fields(request.body().as_bytes())
        .into_iter()
        .find(|(k, _)| k == "refresh_token")
        .map(|(_, v)| v)
        .unwrap()
}

// ----- legal transitions -----

#[test]
fn fetching_the_client_moves_from_no_client_to_have_client() {
    let mut session = no_client();
    assert_eq!(session.state(), State::NoClient);
    let (request, pending) = session.fetch_client().unwrap();
    assert_eq!(request.uri().path(), "/api/v1/oauth-clients/local");
    assert_eq!(pending.operation(), Operation::FetchClient);
    let event = session
        .handle(pending, &fixture("01-oauth-clients-local"), t0())
        .unwrap();
    assert_eq!(event, Event::ClientFetched);
    assert_eq!(session.state(), State::HaveClient);
    assert_eq!(
        session.client().unwrap().client_id,
        "grvyb3ovub45ir4zv08p1cy1hlg3urym"
    );
}

#[test]
fn a_cached_client_pair_starts_in_have_client() {
    assert_eq!(have_client().state(), State::HaveClient);
}

#[test]
fn login_moves_to_logged_in_with_deadlines_from_now() {
    let mut session = have_client();
    let (request, pending) = session
        .login(&Credentials::password("alice", "pw"))
        .unwrap();
    assert_eq!(request.uri().path(), "/api/v1/users/token");
    let event = session
        .handle(pending, &fixture("02-token-password"), t0())
        .unwrap();
    assert_eq!(event, Event::LoggedIn);
    assert_eq!(session.state(), State::LoggedIn);
    assert_eq!(session.access_expires_at(), Some(at(86399)));
    assert_eq!(session.refresh_expires_at(), Some(at(1209599)));
    assert_eq!(
        session.access_token().unwrap().expose_secret(),
        "9557619c8ec82daae2de531b391d58e4e678131d"
    );
}

#[test]
fn two_factor_login_needs_a_second_request_with_the_code() {
    let mut session = have_client();
    let credentials = Credentials::password("alice", "pw");
    let (_, pending) = session.login(&credentials).unwrap();
    let error = session
        .handle(pending, &fixture("08-2fa-login-no-otp-header"), t0())
        .unwrap_err();
    assert!(matches!(error, Error::TwoFactorRequired(_)));
    assert_eq!(session.state(), State::HaveClient);

    let (request, pending) = session
        .login(&credentials.clone().with_otp("000000"))
        .unwrap();
    assert_eq!(request.headers()["x-peertube-otp"], "000000");
    let error = session
        .handle(pending, &fixture("09-2fa-login-wrong-otp"), t0())
        .unwrap_err();
    assert!(matches!(error, Error::InvalidTwoFactor(_)));
    assert_eq!(session.state(), State::HaveClient);

    let (_, pending) = session.login(&credentials.with_otp("123456")).unwrap();
    session
        .handle(pending, &fixture("11-2fa-login-valid"), t0())
        .unwrap();
    assert_eq!(session.state(), State::LoggedIn);
}

#[test]
fn wrong_password_leaves_the_session_where_it_was() {
    let mut session = have_client();
    let (_, pending) = session
        .login(&Credentials::password("alice", "nope"))
        .unwrap();
    let error = session
        .handle(pending, &fixture("04a-wrong-password"), t0())
        .unwrap_err();
    assert!(matches!(error, Error::BadCredentials(_)));
    assert_eq!(session.state(), State::HaveClient);
}

#[test]
fn invalid_client_on_login_drops_the_cached_pair() {
    let mut session = have_client();
    let (_, pending) = session
        .login(&Credentials::password("alice", "pw"))
        .unwrap();
    let error = session
        .handle(pending, &fixture("04b-wrong-client-id"), t0())
        .unwrap_err();
    assert!(matches!(error, Error::InvalidClient(_)));
    assert_eq!(session.state(), State::NoClient);
    assert!(session.client().is_none());
}

#[test]
fn refresh_rotates_both_tokens() {
    let mut session = logged_in();
    let (request, pending) = session.refresh().unwrap();
    assert_eq!(sent_refresh_token(&request), "refresh-1");
    assert!(session.refresh_in_flight());
    let event = session
        .handle(pending, &tokens("access-2", "refresh-2"), at(100))
        .unwrap();
    assert_eq!(event, Event::Refreshed);
    assert!(!session.refresh_in_flight());
    assert_eq!(session.access_token().unwrap().expose_secret(), "access-2");
    assert_eq!(session.access_expires_at(), Some(at(100 + 86399)));
    let (request, _pending) = session.refresh().unwrap();
    assert_eq!(sent_refresh_token(&request), "refresh-2");
}

#[test]
fn a_second_refresh_while_one_is_in_flight_is_refused() {
    let mut session = logged_in();
    let (_, pending) = session.refresh().unwrap();
    assert_eq!(session.refresh().unwrap_err(), Error::RefreshInFlight);
    session
        .handle(pending, &tokens("access-2", "refresh-2"), t0())
        .unwrap();
    let (_, _pending) = session.refresh().unwrap();
}

#[test]
fn an_abandoned_refresh_allows_the_next_one() {
    let mut session = logged_in();
    let (_, pending) = session.refresh().unwrap();
    session.abandon(pending);
    assert!(!session.refresh_in_flight());
    let (request, _pending) = session.refresh().unwrap();
    assert_eq!(sent_refresh_token(&request), "refresh-1");
}

#[test]
fn a_stale_refresh_answer_is_ignored() {
    let mut session = logged_in();
    let (_, old) = session.refresh().unwrap();
    // The session moves on (a new login after forgetting) before the old answer arrives.
    session.forget();
    let (_, login) = session
        .login(&Credentials::password("alice", "pw"))
        .unwrap();
    session
        .handle(login, &tokens("access-9", "refresh-9"), t0())
        .unwrap();
    let error = session
        .handle(old, &tokens("access-X", "refresh-X"), t0())
        .unwrap_err();
    assert_eq!(error, Error::StaleResponse(Operation::Refresh));
    assert_eq!(session.access_token().unwrap().expose_secret(), "access-9");
}

#[test]
fn an_answer_for_another_session_is_stale() {
    let mut first = logged_in();
    let mut second = logged_in();
    let (_, pending) = first.refresh().unwrap();
    let error = second.handle(pending, &tokens("a", "r"), t0()).unwrap_err();
    assert_eq!(error, Error::StaleResponse(Operation::Refresh));
    assert_eq!(second.access_token().unwrap().expose_secret(), "access-1");
    assert!(first.refresh_in_flight());
}

#[test]
fn invalid_grant_on_refresh_means_log_in_again() {
    let mut session = logged_in();
    let (_, pending) = session.refresh().unwrap();
    let error = session
        .handle(pending, &fixture("03c-token-refresh-old-again"), t0())
        .unwrap_err();
    assert!(matches!(error, Error::LoginRequired(_)));
    assert_eq!(session.state(), State::HaveClient);
    assert!(session.access_token().is_none());
    let (_, _pending) = session
        .login(&Credentials::password("alice", "pw"))
        .unwrap();
}

#[test]
fn a_rate_limited_refresh_keeps_the_tokens_for_a_later_try() {
    let mut session = logged_in();
    let (_, pending) = session.refresh().unwrap();
    let error = session
        .handle(pending, &fixture("06c-first-429"), t0())
        .unwrap_err();
    assert_eq!(error.retry_after(), Some(Duration::from_secs(278)));
    assert_eq!(session.state(), State::LoggedIn);
    assert!(!session.refresh_in_flight());
    let (request, _pending) = session.refresh().unwrap();
    assert_eq!(sent_refresh_token(&request), "refresh-1");
}

#[test]
fn logout_moves_to_revoked_and_login_works_again() {
    let mut session = logged_in();
    let (request, pending) = session.logout().unwrap();
    assert_eq!(request.headers()["authorization"], "Bearer access-1");
    let event = session
        .handle(pending, &fixture("05b-revoke-token"), t0())
        .unwrap();
    assert_eq!(event, Event::LoggedOut { redirect_url: None });
    assert_eq!(session.state(), State::Revoked);
    assert!(session.access_token().is_none());
    assert!(session.client().is_some());

    let (_, pending) = session
        .login(&Credentials::password("alice", "pw"))
        .unwrap();
    session
        .handle(pending, &tokens("access-2", "refresh-2"), t0())
        .unwrap();
    assert_eq!(session.state(), State::LoggedIn);
}

#[test]
fn logout_hands_back_the_plugin_redirect() {
    let mut session = logged_in();
    let (_, pending) = session.logout().unwrap();
    let body = r#"{"success":true,"redirectUrl":"https://sso.example.org/end"}"#;
    let event = session.handle(pending, &json(200, body), t0()).unwrap();
    assert_eq!(
        event,
        Event::LoggedOut {
            redirect_url: Some("https://sso.example.org/end".to_owned())
        }
    );
}

#[test]
fn logout_with_a_dead_token_keeps_the_session_and_asks_for_a_refresh() {
    let mut session = logged_in();
    let (_, pending) = session.logout().unwrap();
    let dead = problem(
        401,
        r#"{"status":401,"code":"invalid_token","detail":"Token is invalid"}"#,
    );
    let error = session.handle(pending, &dead, t0()).unwrap_err();
    assert!(matches!(error, Error::InvalidToken(_)));
    assert_eq!(session.state(), State::LoggedIn);
    assert!(session.refresh_due(t0()));
    assert!(session.access_expired(t0()));
    assert_eq!(session.next_deadline(), Some(std::time::UNIX_EPOCH));
}

#[test]
fn forget_drops_tokens_locally() {
    let mut session = logged_in();
    session.forget();
    assert_eq!(session.state(), State::HaveClient);
    let mut session = no_client();
    session.forget();
    assert_eq!(session.state(), State::NoClient);
}

#[test]
fn fetching_the_client_again_is_allowed_when_not_logged_in() {
    for mut session in [have_client(), revoked()] {
        let before = session.state();
        let (_, pending) = session.fetch_client().unwrap();
        session
            .handle(pending, &fixture("01-oauth-clients-local"), t0())
            .unwrap();
        assert_eq!(session.state(), before);
    }
}

#[test]
fn a_forbidden_host_on_the_client_endpoint_leaves_no_client() {
    let mut session = no_client();
    let (_, pending) = session.fetch_client().unwrap();
    let body = r#"{"type":"about:blank","title":"Forbidden","detail":"Getting client tokens for host 127.0.0.1 is forbidden","status":403}"#;
    let error = session
        .handle(pending, &problem(403, body), t0())
        .unwrap_err();
    assert!(matches!(error, Error::ClientForbiddenForHost(_)));
    assert_eq!(session.state(), State::NoClient);
}

// ----- illegal transitions -----

#[test]
fn every_illegal_call_is_an_invalid_state_error_and_changes_nothing() {
    let credentials = Credentials::password("alice", "pw");
    for (make, state) in [
        (no_client as fn() -> Session, State::NoClient),
        (have_client, State::HaveClient),
        (logged_in, State::LoggedIn),
        (revoked, State::Revoked),
    ] {
        let mut session = make();
        let before = session.save();
        let expect = |result: Result<(), Error>, operation, allowed: &[State]| {
            if allowed.contains(&state) {
                assert!(result.is_ok(), "{operation:?} in {state:?}: {result:?}");
            } else {
                assert_eq!(result.unwrap_err(), invalid_state(operation, state));
            }
        };
        expect(
            session.fetch_client().map(|(_, p)| drop(p)),
            Operation::FetchClient,
            &[State::NoClient, State::HaveClient, State::Revoked],
        );
        expect(
            session.login(&credentials).map(|(_, p)| drop(p)),
            Operation::Login,
            &[State::HaveClient, State::Revoked],
        );
        expect(
            session.logout().map(|(_, p)| drop(p)),
            Operation::Logout,
            &[State::LoggedIn],
        );
        let mut request = http::Request::get("https://video.example.org/api/v1/users/me")
            .body(())
            .unwrap();
        expect(
            session.authorize(&mut request, t0()).map(drop),
            Operation::Authorize,
            &[State::LoggedIn],
        );
        let refresh = session
            .refresh()
            .map(|(_, p)| session_abandon(&mut session, p));
        expect(refresh, Operation::Refresh, &[State::LoggedIn]);
        assert_eq!(session.state(), state);
        assert_eq!(session.save(), before);
    }
}

fn session_abandon(session: &mut Session, pending: peertube_session::Pending) {
    session.abandon(pending);
}

// ----- time -----

#[test]
fn refresh_becomes_due_a_margin_before_expiry() {
    let session = logged_in();
    assert!(!session.refresh_due(t0()));
    assert!(!session.refresh_due(at(86399 - 61)));
    assert!(session.refresh_due(at(86399 - 60)));
    assert_eq!(session.next_deadline(), Some(at(86399 - 60)));
    assert!(!session.access_expired(at(86398)));
    assert!(session.access_expired(at(86399)));
    assert!(!session.refresh_expired(at(1209598)));
    assert!(session.refresh_expired(at(1209599)));
}

#[test]
fn the_margin_never_exceeds_half_a_short_lifetime() {
    let mut session = have_client().with_refresh_margin(Duration::from_secs(600));
    let (_, pending) = session
        .login(&Credentials::password("alice", "pw"))
        .unwrap();
    let short = json(
        200,
        r#"{"token_type":"Bearer","access_token":"a","refresh_token":"r","expires_in":30}"#,
    );
    session.handle(pending, &short, t0()).unwrap();
    assert!(!session.refresh_due(at(14)));
    assert!(session.refresh_due(at(15)));
    assert_eq!(session.refresh_expires_at(), None);
    assert!(!session.refresh_expired(at(1_000_000)));
}

#[test]
fn a_clock_before_the_epoch_does_not_panic() {
    let mut session = have_client();
    let (_, pending) = session
        .login(&Credentials::password("alice", "pw"))
        .unwrap();
    let past = std::time::UNIX_EPOCH - Duration::from_secs(10);
    session.handle(pending, &tokens("a", "r"), past).unwrap();
    assert!(!session.refresh_due(past));
}

// ----- authorize and observe -----

#[test]
fn authorize_adds_a_sensitive_bearer_header() {
    let session = logged_in();
    let mut request = http::Request::get(session.instance().uri("/api/v1/users/me").unwrap())
        .body(())
        .unwrap();
    session.authorize(&mut request, t0()).unwrap();
    let value = &request.headers()["authorization"];
    assert_eq!(value, "Bearer access-1");
    assert!(value.is_sensitive());
}

#[test]
fn authorize_refuses_other_origins() {
    let session = logged_in();
    for uri in [
        "https://evil.example.org/api/v1/users/me",
        "http://video.example.org/api/v1/users/me",
        "https://video.example.org:8443/api/v1/users/me",
        "https://user@video.example.org/api/v1/users/me",
        "/api/v1/users/me",
    ] {
        let mut request = http::Request::get(uri).body(()).unwrap();
        assert_eq!(
            session.authorize(&mut request, t0()).unwrap_err(),
            Error::ForeignOrigin,
            "{uri}"
        );
        assert!(request.headers().get("authorization").is_none());
    }
    let mut request = http::Request::get("https://VIDEO.example.org:443/x")
        .body(())
        .unwrap();
    session.authorize(&mut request, t0()).unwrap();
}

#[test]
fn authorize_refuses_an_expired_token() {
    let session = logged_in();
    let mut request = http::Request::get("https://video.example.org/x")
        .body(())
        .unwrap();
    assert_eq!(
        session.authorize(&mut request, at(86399)).unwrap_err(),
        Error::AccessTokenExpired
    );
}

#[test]
fn observe_marks_the_token_dead_only_for_invalid_token() {
    let mut session = logged_in();
    let mut request = http::Request::get("https://video.example.org/x")
        .body(())
        .unwrap();
    let ticket = session.authorize(&mut request, t0()).unwrap();
    assert!(!session.observe(&ticket, &json(200, "{}")));
    assert!(!session.observe(&ticket, &fixture("05e-revoke-without-auth")));
    assert!(!session.observe(&ticket, &answer(401, &[], "")));
    assert!(!session.refresh_due(t0()));
    assert!(session.observe(&ticket, &fixture("05c-users-me-after-revoke")));
    assert!(session.refresh_due(t0()));
}

#[test]
fn observe_with_an_old_ticket_does_not_kill_the_new_token() {
    let mut session = logged_in();
    let mut request = http::Request::get("https://video.example.org/x")
        .body(())
        .unwrap();
    let old_ticket = session.authorize(&mut request, t0()).unwrap();
    let (_, pending) = session.refresh().unwrap();
    session
        .handle(pending, &tokens("access-2", "refresh-2"), t0())
        .unwrap();
    assert!(session.observe(&old_ticket, &fixture("05c-users-me-after-revoke")));
    assert!(!session.refresh_due(t0()));
}

// ----- persistence -----

#[test]
fn save_restore_continue() {
    let mut session = logged_in();
    let (_, pending) = session.refresh().unwrap();
    session
        .handle(pending, &tokens("access-2", "refresh-2"), at(5))
        .unwrap();
    let json_text = serde_json::to_string(&session.save()).unwrap();
    let saved: SavedSession = serde_json::from_str(&json_text).unwrap();
    let mut restored = Session::restore(saved).unwrap();
    assert_eq!(restored.save(), session.save());
    assert_eq!(restored.state(), State::LoggedIn);
    assert_eq!(restored.access_expires_at(), session.access_expires_at());
    let (request, pending) = restored.refresh().unwrap();
    assert_eq!(sent_refresh_token(&request), "refresh-2");
    restored
        .handle(pending, &tokens("access-3", "refresh-3"), at(10))
        .unwrap();
    let (_, pending) = restored.logout().unwrap();
    restored.handle(pending, &json(200, "{}"), at(11)).unwrap();
    let again = Session::restore(restored.save()).unwrap();
    assert_eq!(again.state(), State::Revoked);
}

#[test]
fn every_state_survives_save_and_restore() {
    for session in [no_client(), have_client(), logged_in(), revoked()] {
        let restored = Session::restore(session.save()).unwrap();
        assert_eq!(restored.state(), session.state());
        assert_eq!(restored.save(), session.save());
    }
}

#[test]
fn inconsistent_saved_sessions_are_refused() {
    let mut saved = logged_in().save();
    saved.client = None;
    assert!(matches!(
        Session::restore(saved),
        Err(Error::InvalidSavedSession(_))
    ));
    let mut saved = logged_in().save();
    saved.version = 99;
    assert!(matches!(
        Session::restore(saved),
        Err(Error::InvalidSavedSession(_))
    ));
    let mut saved = logged_in().save();
    saved.logged_out = true;
    assert!(matches!(
        Session::restore(saved),
        Err(Error::InvalidSavedSession(_))
    ));
    let mut saved = no_client().save();
    saved.instance = "http://video.example.org".to_owned();
    assert!(matches!(Session::restore(saved), Err(Error::InvalidUrl(_))));
    let text = serde_json::to_string(&logged_in().save())
        .unwrap()
        .replace("access-1", "bad token");
    let saved: SavedSession = serde_json::from_str(&text).unwrap();
    assert!(matches!(
        Session::restore(saved),
        Err(Error::InvalidSavedSession(_))
    ));
}

#[test]
fn a_pending_handle_does_not_survive_a_restore() {
    let mut session = logged_in();
    let (_, pending) = session.refresh().unwrap();
    let mut restored = Session::restore(session.save()).unwrap();
    assert!(!restored.refresh_in_flight());
    assert_eq!(
        restored
            .handle(pending, &tokens("a", "r"), t0())
            .unwrap_err(),
        Error::StaleResponse(Operation::Refresh)
    );
}

// ----- secrets in errors -----

#[test]
fn a_server_echoing_a_token_does_not_leak_it_through_the_error() {
    let mut session = logged_in();
    let (_, pending) = session.refresh().unwrap();
    let echo = problem(
        400,
        r#"{"status":400,"code":"invalid_request","detail":"bad refresh-1 for csecret"}"#,
    );
    let error = session.handle(pending, &echo, t0()).unwrap_err();
    let text = format!("{error} {error:?}");
    assert!(!text.contains("refresh-1"), "{text}");
    assert!(!text.contains("csecret"), "{text}");
    assert!(text.contains("[redacted]"), "{text}");
}

#[test]
fn restore_refuses_an_empty_client_id_or_secret() {
    let session = logged_in();
    for (id, secret) in [("", "secret"), ("id", ""), ("", "")] {
        let mut saved = session.save();
        saved.client = Some(OAuthClient::new(id, secret));
        assert!(
            matches!(Session::restore(saved), Err(Error::InvalidSavedSession(_))),
            "{id:?} {secret:?}"
        );
    }
    assert!(Session::restore(session.save()).is_ok());
}

// ----- knobs that must take effect, flags only their own step may clear -----

#[test]
fn the_refresh_margin_moves_the_moment_a_refresh_is_due() {
    let mut session = have_client().with_refresh_margin(Duration::from_secs(3600));
    let (_, pending) = session
        .login(&Credentials::password("alice", "pw"))
        .unwrap();
    session.handle(pending, &tokens("a", "r"), t0()).unwrap();
    // 86399 s of life, one hour of margin.
    assert!(!session.refresh_due(at(86399 - 3601)));
    assert!(session.refresh_due(at(86399 - 3600)));
    assert_eq!(session.next_deadline(), Some(at(86399 - 3600)));
}

#[test]
fn the_body_limit_set_on_a_session_is_the_one_its_answers_meet() {
    let answer = tokens("access-2", "refresh-2");
    let size = answer.body().len();

    let mut session = logged_in().with_body_limit(size - 1);
    let (_, pending) = session.refresh().unwrap();
    let error = session.handle(pending, &answer, t0()).unwrap_err();
    assert!(
        matches!(error, Error::ResponseTooLarge { limit, .. } if limit == size - 1),
        "{error:?}"
    );

    let mut session = logged_in().with_body_limit(size);
    let (_, pending) = session.refresh().unwrap();
    session.handle(pending, &answer, t0()).unwrap();
}

#[test]
fn abandoning_another_step_keeps_the_refresh_in_flight() {
    let mut session = logged_in();
    let (_, refresh) = session.refresh().unwrap();
    let (_, logout) = session.logout().unwrap();
    session.abandon(logout);
    assert!(session.refresh_in_flight());
    assert_eq!(session.refresh().unwrap_err(), Error::RefreshInFlight);
    session.abandon(refresh);
    assert!(!session.refresh_in_flight());
}

#[test]
fn abandoning_a_stale_refresh_keeps_the_current_one_in_flight() {
    let mut session = logged_in();
    let (_, old) = session.refresh().unwrap();
    session.forget();
    let (_, login) = session
        .login(&Credentials::password("alice", "pw"))
        .unwrap();
    session
        .handle(login, &tokens("access-9", "refresh-9"), t0())
        .unwrap();
    let (_, _current) = session.refresh().unwrap();
    session.abandon(old);
    assert!(session.refresh_in_flight());
    assert_eq!(session.refresh().unwrap_err(), Error::RefreshInFlight);
}

#[test]
fn the_access_token_stays_under_the_instances_path_prefix() {
    let prefixed = Instance::new("https://example.org/peertube").unwrap();
    let mut session = Session::with_client(prefixed, OAuthClient::new("cid", "csecret"));
    let (_, pending) = session
        .login(&Credentials::password("alice", "pw"))
        .unwrap();
    session
        .handle(pending, &tokens("access-1", "refresh-1"), t0())
        .unwrap();
    for outside in [
        "https://example.org/other-app/api",
        "https://example.org/peertube-evil/api",
        "https://example.org/peertube/../other-app",
    ] {
        let mut request = http::Request::get(outside).body(()).unwrap();
        assert_eq!(
            session.authorize(&mut request, t0()).unwrap_err(),
            Error::ForeignOrigin,
            "{outside}"
        );
        assert!(request.headers().get("authorization").is_none());
    }
    let mut inside = http::Request::get("https://example.org/peertube/api/v1/users/me")
        .body(())
        .unwrap();
    session.authorize(&mut inside, t0()).unwrap();
    assert!(inside.headers().get("authorization").is_some());
}

// ----- the current token session revoked through the token-session route -----

fn authorized_request(session: &Session) -> peertube_session::Authorized {
    let mut request = http::Request::get("https://video.example.org/api/v1/users/me")
        .body(())
        .unwrap();
    session.authorize(&mut request, t0()).unwrap()
}

#[test]
fn revoking_the_current_token_session_is_a_logout() {
    let mut session = logged_in();
    let ticket = authorized_request(&session);
    assert!(session.current_session_revoked(&ticket));
    assert_eq!(session.state(), State::Revoked);
    assert_eq!(session.save(), revoked().save());
    // Once is enough: there is nothing left to revoke.
    assert!(!session.current_session_revoked(&ticket));
    assert_eq!(session.state(), State::Revoked);
}

#[test]
fn a_token_replaced_since_is_not_the_one_revoked() {
    let mut session = logged_in();
    let before = authorized_request(&session);
    let (_, pending) = session.refresh().unwrap();
    session
        .handle(pending, &tokens("access-2", "refresh-2"), at(10))
        .unwrap();
    assert!(!session.current_session_revoked(&before));
    assert_eq!(session.state(), State::LoggedIn);
    // Another session's ticket changes nothing either.
    let other = logged_in();
    assert!(!session.current_session_revoked(&authorized_request(&other)));
    assert_eq!(session.state(), State::LoggedIn);
}

/// The same `Date` header again is not read again within the second it came at, but a clock
/// that jumped meanwhile is learned from it all the same (a frozen server clock, or answers in
/// the same second as a jump of ours), and another header within that second is read.
#[test]
fn a_clock_that_jumps_is_learned_again_from_the_same_date_header() {
    let mut session = Session::new(Instance::new("https://video.example.org").unwrap());
    let date = httpdate::fmt_http_date(at(0));
    let answer = support::answer(200, &[("date", date.as_str())], "");
    session.learn_clock(&answer, at(0));
    assert_eq!(session.clock_offset(), Some(0));
    session.learn_clock(&answer, at(0));
    assert_eq!(session.clock_offset(), Some(0));
    // Our clock a day ahead, the server's answer the same.
    session.learn_clock(&answer, at(86_400));
    assert_eq!(session.clock_offset(), Some(-86_400));
    // And back.
    session.learn_clock(&answer, at(0));
    assert_eq!(session.clock_offset(), Some(0));
    // Another `Date` within the same second of ours: the server's clock jumped, learned.
    let jumped = httpdate::fmt_http_date(at(86_400));
    let answer = support::answer(200, &[("date", jumped.as_str())], "");
    session.learn_clock(&answer, at(0));
    assert_eq!(session.clock_offset(), Some(86_400));
}

/// A token answer's lifetimes count from its `Date` (when the server issued it), not from when
/// it arrived: an answer two seconds on its way, within what the known clock offset allows for,
/// keeps the server's moment.
#[test]
fn token_lifetimes_count_from_the_answer_s_date() {
    let mut session = have_client();
    // The server's clock is known: an hour ahead of ours.
    let hour_ahead = httpdate::fmt_http_date(at(3600));
    session.learn_clock(
        &support::answer(200, &[("date", hour_ahead.as_str())], ""),
        at(0),
    );
    let (_, pending) = session
        .login(&Credentials::password("alice", "pw"))
        .unwrap();
    // Issued at the server's 3700 (our 100), here at our 102.
    let mut answer = tokens("access-1", "refresh-1");
    let issued = httpdate::fmt_http_date(at(3700));
    answer
        .headers_mut()
        .insert(http::header::DATE, issued.parse().unwrap());
    session.handle(pending, &answer, at(102)).unwrap();
    assert_eq!(session.clock_offset(), Some(3600));
    assert_eq!(session.access_expires_at(), Some(at(100 + 86_399)));
}
