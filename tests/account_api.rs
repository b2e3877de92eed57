//! The account API's builders and parsers (`peertube_session::api`), fed with answers recorded
//! from a real PeerTube 8.0.1 (and 6.3, which lacks the token-session routes), and with shapes
//! read in PeerTube's source (cited where they come from).

mod support;

use http::{Method, StatusCode};
use peertube_session::api::{
    self, AllTokenSessions, Endpoint, ListTokenSessions, RevokeTokenSession, SessionSort,
    Timestamp, UserRole, UsersMe,
};
use peertube_session::response::Secrets;
use peertube_session::{AccessToken, Error, ErrorCode, Instance};
use support::{answer, fixture, fixture8, json, problem};

fn instance() -> Instance {
    Instance::new("https://video.example.org").unwrap()
}

fn date(text: &str) -> Option<Timestamp> {
    Some(Timestamp::parse(text).expect("a recorded date"))
}

// ----- requests -----

#[test]
fn requests_go_to_peertube_s_routes_without_a_token() {
    // server/core/controllers/api/users/token.ts:48-65 (at 01808d9): `GET /:userId/token-sessions`
    // and `POST /:userId/token-sessions/:tokenSessionId/revoke` under `/api/v1/users`.
    let me = UsersMe.request(&instance()).unwrap();
    assert_eq!(
        (me.method(), me.uri().to_string()),
        (
            &Method::GET,
            "https://video.example.org/api/v1/users/me".to_owned()
        )
    );
    let list = ListTokenSessions::new(12).request(&instance()).unwrap();
    assert_eq!(list.method(), Method::GET);
    assert_eq!(
        list.uri(),
        "https://video.example.org/api/v1/users/12/token-sessions?start=0&count=50&sort=createdAt"
    );
    let list_of = ListTokenSessions::new(12);
    assert_eq!(
        (list_of.user_id(), list_of.first(), list_of.page_size()),
        (12, 0, 50)
    );
    let revoke_of = RevokeTokenSession::new(12, 497);
    assert_eq!(revoke_of.session_id(), 497);
    let revoke = revoke_of.request(&instance()).unwrap();
    assert_eq!(revoke.method(), Method::POST);
    assert_eq!(
        revoke.uri(),
        "https://video.example.org/api/v1/users/12/token-sessions/497/revoke"
    );
    assert!(revoke.body().is_empty());
    for request in [me, list, revoke] {
        assert!(request.headers().get("authorization").is_none());
        assert_eq!(request.headers()["accept"], "application/json");
    }
}

#[test]
fn the_sort_parameter_is_spelled_as_peertube_sorts() {
    // server/core/initializers/constants.ts: `SORTABLE_COLUMNS.TOKEN_SESSIONS: [ 'createdAt' ]`;
    // `-` in front for descending, the default `setDefaultSort` applies.
    assert_eq!(SessionSort::CreatedAt.as_str(), "createdAt");
    assert_eq!(SessionSort::NewestFirst.as_str(), "-createdAt");
    let newest = ListTokenSessions::new(1)
        .sort(SessionSort::NewestFirst)
        .start(3)
        .count(7);
    let uri = newest.request(&instance()).unwrap().uri().to_string();
    assert!(uri.ends_with("?start=3&count=7&sort=-createdAt"), "{uri}");
}

#[test]
fn a_caller_keeping_its_own_token_can_put_it_on() {
    let mut request = ListTokenSessions::new(1).request(&instance()).unwrap();
    peertube_session::request::put_bearer(&mut request, &AccessToken::new("a1".to_owned()))
        .unwrap();
    assert_eq!(request.headers()["authorization"], "Bearer a1");
    assert!(request.headers()["authorization"].is_sensitive());
}

// ----- recorded success answers -----

#[test]
fn recorded_users_me_gives_id_username_and_role_on_8_0_and_6_3() {
    for response in [fixture8("02-users-me"), fixture("58-users-me")] {
        let me = api::parse(&UsersMe, &response, &Secrets::none()).unwrap();
        assert_eq!(me.id, 1);
        assert_eq!(me.username, "root");
        assert_eq!(me.role, Some(UserRole::Administrator));
    }
}

#[test]
fn recorded_list_of_one_is_read_whole() {
    let page = api::parse(
        &ListTokenSessions::new(1),
        &fixture8("03-token-sessions-list-one"),
        &Secrets::none(),
    )
    .unwrap();
    assert_eq!(page.total, 1);
    let session = &page.data[0];
    assert_eq!(session.id, 495);
    assert!(session.current_session);
    assert_eq!(session.login_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(
        session.login_device.as_deref(),
        Some("session-recorder/1.0 (login-1)")
    );
    assert_eq!(session.login_date, date("2026-11-28T20:55:25.743Z"));
    assert_eq!(session.last_activity_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(
        session.last_activity_device.as_deref(),
        Some("session-recorder/1.0 (login-1)")
    );
    assert_eq!(session.last_activity_date, date("2026-11-28T20:55:25.743Z"));
    assert_eq!(Some(session.created_at), date("2026-11-28T20:55:25.744Z"));
    // Written back as PeerTube wrote it.
    assert_eq!(session.created_at.to_string(), "2026-11-28T20:55:25.744Z");
}

#[test]
fn recorded_list_of_three_is_newest_first_with_one_current() {
    let page = api::parse(
        &ListTokenSessions::new(1),
        &fixture8("13-token-sessions-list-three"),
        &Secrets::none(),
    )
    .unwrap();
    assert_eq!(page.total, 3);
    let ids: Vec<u64> = page.data.iter().map(|s| s.id).collect();
    assert_eq!(ids, [497, 496, 495]);
    let current: Vec<u64> = page
        .data
        .iter()
        .filter(|s| s.current_session)
        .map(|s| s.id)
        .collect();
    assert_eq!(current, [495]);
    assert!(
        page.data
            .windows(2)
            .all(|w| w[0].created_at > w[1].created_at)
    );
    assert_eq!(
        page.data[1].last_activity_device.as_deref(),
        Some("other-agent/2.0 (activity on session 2)")
    );
}

#[test]
fn sessions_without_a_user_agent_or_older_than_the_columns_have_nulls() {
    // The columns came with migration 0920-token-sessions.ts (nullable, no default): a pair
    // issued before it has nulls, and so has a login sent without a `User-Agent`.
    let body = r#"{"total":1,"data":[{"id":3,"loginIP":null,"loginDevice":null,"loginDate":null,
        "lastActivityIP":null,"lastActivityDevice":null,"lastActivityDate":null,
        "currentSession":false,"createdAt":"2025-01-02T03:04:05.006Z"}]}"#;
    let page = api::parse(
        &ListTokenSessions::new(1),
        &json(200, body),
        &Secrets::none(),
    )
    .unwrap();
    let session = &page.data[0];
    assert_eq!(
        (
            session.login_device.as_deref(),
            session.login_ip.as_deref(),
            session.login_date
        ),
        (None, None, None)
    );
    assert_eq!(session.last_activity_date, None);
}

#[test]
fn recorded_revoke_is_a_success() {
    let answer = api::parse(
        &RevokeTokenSession::new(1, 497),
        &fixture8("15-token-sessions-revoke"),
        &Secrets::none(),
    )
    .unwrap();
    assert_eq!(answer.redirect_url, None);
    let plugin = json(
        200,
        r#"{"success":true,"redirectUrl":"https://sso.example.org/bye"}"#,
    );
    let answer = api::parse(&RevokeTokenSession::new(1, 497), &plugin, &Secrets::none()).unwrap();
    assert_eq!(
        answer.redirect_url.as_deref(),
        Some("https://sso.example.org/bye")
    );
}

// ----- recorded error answers -----

#[test]
fn recorded_6_3_answer_to_the_missing_route_is_not_supported() {
    // The columns came with migration server/core/initializers/migrations/0920-token-sessions.ts
    // (PeerTube 7.3.0); before, `/api/v1/*` ends in PeerTube's catch-all `badRequest`: 400 and
    // nothing else.
    let error = api::parse(
        &ListTokenSessions::new(1),
        &fixture("51-token-sessions-list-route-missing"),
        &Secrets::none(),
    )
    .unwrap_err();
    assert!(matches!(error, Error::NotSupported(_)), "{error:?}");
    assert_eq!(error.status(), Some(StatusCode::BAD_REQUEST));
    assert_eq!(error.code(), None);
    let revoke = api::parse(
        &RevokeTokenSession::new(1, 2),
        &answer(
            400,
            &[("content-type", "application/json; charset=utf-8")],
            " \r\n",
        ),
        &Secrets::none(),
    )
    .unwrap_err();
    assert!(matches!(revoke, Error::NotSupported(_)), "{revoke:?}");
}

#[test]
fn recorded_bad_parameters_are_server_errors_not_unsupported() {
    for name in [
        "06-token-sessions-list-bad-sort",
        "07-token-sessions-list-bad-count",
    ] {
        let error = api::parse(
            &ListTokenSessions::new(1),
            &fixture8(name),
            &Secrets::none(),
        )
        .unwrap_err();
        assert!(matches!(error, Error::Server(_)), "{name}: {error:?}");
        assert_eq!(error.status(), Some(StatusCode::BAD_REQUEST));
        let detail = error.server_error().unwrap().detail.clone().unwrap();
        assert!(
            detail.starts_with("Incorrect request parameters: "),
            "{detail}"
        );
    }
    // A 400 whose body is anything at all is not mistaken for the missing route.
    for body in ["{}", "Bad Request", "null"] {
        let error = api::parse(
            &ListTokenSessions::new(1),
            &problem(400, body),
            &Secrets::none(),
        )
        .unwrap_err();
        assert!(matches!(error, Error::Server(_)), "{body}: {error:?}");
    }
}

#[test]
fn recorded_unknown_session_is_not_found() {
    // server/core/middlewares/validators/token.ts:28-45 (at 498bf26): `revokeTokenSessionValidator`
    // answers 404 with this detail when `loadSessionOf` (server/core/models/oauth/oauth-token.ts)
    // finds no session of that id among the user's whose tokens are both alive.
    let error = api::parse(
        &RevokeTokenSession::new(1, 495),
        &fixture8("18-token-sessions-revoke-unknown-or-revoked"),
        &Secrets::none(),
    )
    .unwrap_err();
    assert!(matches!(error, Error::NotFound(_)), "{error:?}");
    assert_eq!(
        error.server_error().unwrap().detail.as_deref(),
        Some("The token session does not exist or does not belong to the user.")
    );
}

#[test]
fn recorded_other_user_s_sessions_are_forbidden() {
    // server/core/middlewares/validators/token.ts:9-26 (at 498bf26): `manageTokenSessionsValidator`
    // checks the user exists (404), then `checkCanManageAccount` with `UserRight.MANAGE_USERS`
    // (403, no `code`) and `checkCanModerate`.
    let error = api::parse(
        &RevokeTokenSession::new(2, 500),
        &fixture8("21-token-sessions-revoke-other-users"),
        &Secrets::none(),
    )
    .unwrap_err();
    assert!(matches!(error, Error::Forbidden(_)), "{error:?}");
    assert_eq!(error.status(), Some(StatusCode::FORBIDDEN));
    assert_eq!(error.code(), None);
}

#[test]
fn recorded_dead_and_missing_tokens_keep_their_codes() {
    let dead = api::parse(
        &ListTokenSessions::new(1),
        &fixture8("16-revoked-session-access-token"),
        &Secrets::none(),
    )
    .unwrap_err();
    assert!(matches!(dead, Error::InvalidToken(_)), "{dead:?}");
    let missing = api::parse(
        &ListTokenSessions::new(1),
        &fixture8("29-token-sessions-no-auth"),
        &Secrets::none(),
    )
    .unwrap_err();
    assert!(matches!(missing, Error::Server(_)), "{missing:?}");
    assert_eq!(missing.code(), Some(&ErrorCode::UnauthorizedRequest));
    assert_eq!(missing.status(), Some(StatusCode::UNAUTHORIZED));
}

#[test]
fn a_rate_limited_call_keeps_retry_after() {
    let limited = answer(
        429,
        &[
            ("content-type", "text/html; charset=utf-8"),
            ("retry-after", "7"),
        ],
        "Too many requests, please try again later.",
    );
    let error = api::parse(&UsersMe, &limited, &Secrets::none()).unwrap_err();
    assert!(matches!(error, Error::RateLimited(_)), "{error:?}");
    assert_eq!(error.retry_after(), Some(std::time::Duration::from_secs(7)));
}

#[test]
fn a_token_echoed_in_an_error_is_removed() {
    let token = AccessToken::new("0123456789abcdef0123456789abcdef01234567".to_owned());
    let echo = problem(
        404,
        r#"{"status":404,"detail":"no session for token 0123456789abcdef0123456789abcdef01234567"}"#,
    );
    let error = api::parse(
        &RevokeTokenSession::new(1, 2),
        &echo,
        &Secrets::for_bearer(&token),
    )
    .unwrap_err();
    for text in [error.to_string(), format!("{error:?}")] {
        assert!(!text.contains("0123456789abcdef"), "{text}");
    }
}

#[test]
fn answers_over_the_endpoint_s_cap_are_not_read() {
    let huge = format!(
        r#"{{"id":1,"username":"root","pad":"{}"}}"#,
        "x".repeat(1024 * 1024)
    );
    let error = api::parse(&UsersMe, &json(200, &huge), &Secrets::none()).unwrap_err();
    assert!(matches!(error, Error::ResponseTooLarge { limit, .. } if limit == 1024 * 1024));
    // The user object is allowed to grow past the session endpoints' 64 KiB.
    let big = format!(
        r#"{{"id":1,"username":"root","pad":"{}"}}"#,
        "x".repeat(200 * 1024)
    );
    assert!(api::parse(&UsersMe, &json(200, &big), &Secrets::none()).is_ok());
    let list = format!(
        r#"{{"total":0,"data":[],"pad":"{}"}}"#,
        "x".repeat(64 * 1024)
    );
    assert!(matches!(
        api::parse(
            &ListTokenSessions::new(1),
            &json(200, &list),
            &Secrets::none()
        ),
        Err(Error::ResponseTooLarge { .. })
    ));
}

// ----- walking the pages of a real listing -----

#[test]
fn the_recorded_three_walked_one_a_page() {
    let recorded = api::parse(
        &ListTokenSessions::new(1),
        &fixture8("13-token-sessions-list-three"),
        &Secrets::none(),
    )
    .unwrap();
    let mut all = AllTokenSessions::new(1).page_size(1);
    let mut asked = 0;
    while let Some(page) = all.next_page() {
        asked += 1;
        let start = usize::try_from(page.first()).unwrap();
        let one: Vec<_> = recorded.data.iter().skip(start).take(1).cloned().collect();
        let body = serde_json::json!({ "total": recorded.total, "data": one });
        let answer = page
            .parse_success(StatusCode::OK, body.to_string().as_bytes())
            .unwrap();
        all.add(&page, answer);
    }
    assert_eq!(asked, 3);
    assert_eq!(all.into_sessions(), recorded.data);
}
