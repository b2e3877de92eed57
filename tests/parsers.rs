//! Parsers fed with answers recorded from a real PeerTube 6.3 server, the 8.x shapes of
//! PROTOCOL.md, and malformed input.

mod support;

use http::StatusCode;
use peertube_session::response::{
    DEFAULT_BODY_LIMIT, Parser, Secrets, parse_error, parse_login, parse_oauth_client,
    parse_refresh, parse_revoke,
};
use peertube_session::{Error, ErrorCode};
use std::time::Duration;
use support::{answer, fixture, json, problem};

// ----- recorded answers (PeerTube 6.3) -----

#[test]
fn recorded_client_pair_is_read() {
    let client = parse_oauth_client(&fixture("01-oauth-clients-local"), &Secrets::none()).unwrap();
    assert_eq!(client.client_id, "grvyb3ovub45ir4zv08p1cy1hlg3urym");
    assert_eq!(
        client.client_secret.expose_secret(),
        "zP04u0OxKFL1SNfiZlb4y53qnusyJzuu"
    );
}

#[test]
fn recorded_login_gives_both_tokens_and_lifetimes() {
    for name in ["02-token-password", "11-2fa-login-valid"] {
        let tokens = parse_login(&fixture(name), &Secrets::none()).unwrap();
        assert_eq!(tokens.access_token.expose_secret().len(), 40);
        assert_eq!(tokens.refresh_token.expose_secret().len(), 40);
        assert_eq!(tokens.expires_in, Some(Duration::from_secs(86399)));
        assert_eq!(
            tokens.refresh_token_expires_in,
            Some(Duration::from_secs(1209599))
        );
    }
}

#[test]
fn recorded_refresh_gives_a_new_pair() {
    let tokens = parse_refresh(&fixture("03b-token-refresh"), &Secrets::none()).unwrap();
    assert_eq!(
        tokens.access_token.expose_secret(),
        "413398b68f2f6f6c82b6a1e03ff9609921456507"
    );
    assert_eq!(
        tokens.refresh_token.expose_secret(),
        "eebbe99be55a198ee1e7f193f2b972c06fb29657"
    );
}

#[test]
fn reusing_a_rotated_refresh_token_means_log_in_again() {
    let error =
        parse_refresh(&fixture("03c-token-refresh-old-again"), &Secrets::none()).unwrap_err();
    let Error::LoginRequired(server) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(server.status, StatusCode::BAD_REQUEST);
    assert_eq!(server.code, Some(ErrorCode::InvalidGrant));
    assert_eq!(
        server.detail.as_deref(),
        Some("Invalid grant: refresh token is invalid")
    );
}

#[test]
fn recorded_wrong_password_is_bad_credentials() {
    let error = parse_login(&fixture("04a-wrong-password"), &Secrets::none()).unwrap_err();
    assert!(matches!(error, Error::BadCredentials(_)), "{error:?}");
    assert_eq!(error.status(), Some(StatusCode::BAD_REQUEST));
    assert_eq!(error.code(), Some(&ErrorCode::InvalidGrant));
    assert_eq!(
        error.to_string(),
        "login rejected: unknown user or wrong password (HTTP 400 invalid_grant: Invalid grant: user credentials are invalid)"
    );
}

#[test]
fn recorded_wrong_client_is_invalid_client() {
    let error = parse_login(&fixture("04b-wrong-client-id"), &Secrets::none()).unwrap_err();
    assert!(matches!(error, Error::InvalidClient(_)), "{error:?}");
    assert_eq!(error.code(), Some(&ErrorCode::InvalidClient));
}

#[test]
fn recorded_invalid_requests_keep_code_and_detail() {
    for (name, detail) in [
        ("04c-missing-grant-type", "Missing parameter: `grant_type`"),
        ("07c-missing-password", "Missing parameter: `password`"),
    ] {
        let error = parse_login(&fixture(name), &Secrets::none()).unwrap_err();
        let Error::Server(server) = &error else {
            panic!("{error:?}")
        };
        assert_eq!(server.code, Some(ErrorCode::InvalidRequest));
        assert_eq!(server.detail.as_deref(), Some(detail));
    }
}

#[test]
fn recorded_revoke_succeeds_without_redirect() {
    let answer = parse_revoke(&fixture("05b-revoke-token"), &Secrets::none()).unwrap();
    assert_eq!(answer.redirect_url, None);
}

#[test]
fn recorded_dead_token_on_an_api_call_is_invalid_token() {
    let error = peertube_session::response::error_for(
        peertube_session::Operation::Authorize,
        &fixture("05c-users-me-after-revoke"),
        &Secrets::none(),
    );
    assert!(matches!(error, Error::InvalidToken(_)), "{error:?}");
    assert_eq!(error.status(), Some(StatusCode::UNAUTHORIZED));
}

#[test]
fn recorded_revoke_without_token_is_unauthorized_request() {
    let error = parse_revoke(&fixture("05e-revoke-without-auth"), &Secrets::none()).unwrap_err();
    assert_eq!(error.code(), Some(&ErrorCode::UnauthorizedRequest));
    assert_eq!(error.status(), Some(StatusCode::UNAUTHORIZED));
}

#[test]
fn recorded_rate_limit_is_plain_text_with_retry_after() {
    let error = parse_login(&fixture("06c-first-429"), &Secrets::none()).unwrap_err();
    let Error::RateLimited(server) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(server.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(server.retry_after, Some(Duration::from_secs(278)));
    assert_eq!(server.code, None);
    assert_eq!(
        server.excerpt.as_deref(),
        Some("Too many requests, please try again later.")
    );
    let limit = server.rate_limit.unwrap();
    assert_eq!(
        (limit.limit, limit.remaining, limit.reset_epoch_secs),
        (20, 0, 1795802529)
    );
    assert_eq!(error.retry_after(), Some(Duration::from_secs(278)));
    assert!(error.to_string().contains("retry after 278 s"), "{error}");
}

#[test]
fn recorded_two_factor_challenge_is_its_own_error() {
    let error = parse_login(&fixture("08-2fa-login-no-otp-header"), &Secrets::none()).unwrap_err();
    let Error::TwoFactorRequired(server) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(server.status, StatusCode::UNAUTHORIZED);
    assert_eq!(server.code, Some(ErrorCode::MissingTwoFactor));
    assert!(server.two_factor_required);
}

#[test]
fn recorded_wrong_otp_is_invalid_two_factor() {
    let error = parse_login(&fixture("09-2fa-login-wrong-otp"), &Secrets::none()).unwrap_err();
    assert!(matches!(error, Error::InvalidTwoFactor(_)), "{error:?}");
}

#[test]
fn recorded_blocked_user_is_account_unavailable() {
    let error = parse_login(&fixture("14-login-blocked-user"), &Secrets::none()).unwrap_err();
    let Error::AccountUnavailable(server) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(server.code, Some(ErrorCode::AccessDenied));
    assert_eq!(server.detail.as_deref(), Some("User is blocked."));
}

// ----- 8.x shapes and other answers PROTOCOL.md describes -----

#[test]
fn problem_json_without_the_legacy_error_member_is_read() {
    let body = r#"{"type":"https://docs.joinpeertube.org/api-rest-reference.html#section/Errors/invalid_grant","detail":"Invalid grant: user credentials are invalid","status":400,"docs":"https://docs.joinpeertube.org/api-rest-reference.html#operation/getOAuthToken","code":"invalid_grant"}"#;
    let error = parse_login(&problem(400, body), &Secrets::none()).unwrap_err();
    let Error::BadCredentials(server) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(
        server.detail.as_deref(),
        Some("Invalid grant: user credentials are invalid")
    );
}

#[test]
fn legacy_error_member_is_the_fallback_for_detail() {
    let error = parse_error(
        &problem(
            400,
            r#"{"status":400,"code":"invalid_grant","error":"old text"}"#,
        ),
        &Secrets::none(),
    );
    assert_eq!(error.detail.as_deref(), Some("old text"));
    let error = parse_error(
        &problem(
            400,
            r#"{"status":400,"code":"invalid_grant","detail":"new","error":"old"}"#,
        ),
        &Secrets::none(),
    );
    assert_eq!(error.detail.as_deref(), Some("new"));
}

#[test]
fn host_check_failure_is_client_forbidden_for_host() {
    let body = r#"{"type":"about:blank","title":"Forbidden","detail":"Getting client tokens for host video.example.org is forbidden","status":403,"docs":"https://docs.joinpeertube.org/api-rest-reference.html#operation/getOAuthClient"}"#;
    let error = parse_oauth_client(&problem(403, body), &Secrets::none()).unwrap_err();
    let Error::ClientForbiddenForHost(server) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(server.code, None);
    assert!(error.to_string().contains("canonical address"), "{error}");
    assert!(error.to_string().contains("video.example.org"), "{error}");
}

#[test]
fn instance_without_client_row_keeps_the_plain_error_code() {
    let error = parse_oauth_client(
        &problem(
            500,
            r#"{"status":500,"code":"Error","detail":"No client available."}"#,
        ),
        &Secrets::none(),
    )
    .unwrap_err();
    assert_eq!(error.code(), Some(&ErrorCode::PlainError));
    assert_eq!(error.status(), Some(StatusCode::INTERNAL_SERVER_ERROR));
}

#[test]
fn two_factor_header_alone_on_a_401_login_is_two_factor_required() {
    let response = answer(401, &[("x-peertube-otp", "required; app")], "");
    assert!(matches!(
        parse_login(&response, &Secrets::none()).unwrap_err(),
        Error::TwoFactorRequired(_)
    ));
}

#[test]
fn newer_and_unknown_codes_are_kept_verbatim() {
    let error = parse_login(
        &problem(
            400,
            r#"{"status":400,"code":"account_blocked","detail":"User is blocked."}"#,
        ),
        &Secrets::none(),
    )
    .unwrap_err();
    assert!(matches!(error, Error::AccountUnavailable(_)), "{error:?}");
    let error = parse_login(
        &problem(400, r#"{"status":400,"code":"brand_new_code"}"#),
        &Secrets::none(),
    )
    .unwrap_err();
    assert_eq!(
        error.code(),
        Some(&ErrorCode::Other("brand_new_code".to_owned()))
    );
    assert_eq!(
        ErrorCode::parse("too_long_password"),
        ErrorCode::TooLongPassword
    );
    assert_eq!(ErrorCode::TooLongPassword.as_str(), "too_long_password");
}

#[test]
fn revoke_with_redirect_url_keeps_it() {
    let answer = parse_revoke(
        &json(
            200,
            r#"{"success":true,"redirectUrl":"https://sso.example.org/logout"}"#,
        ),
        &Secrets::none(),
    )
    .unwrap();
    assert_eq!(
        answer.redirect_url.as_deref(),
        Some("https://sso.example.org/logout")
    );
}

#[test]
fn revoke_with_empty_body_succeeds() {
    assert_eq!(
        parse_revoke(&answer(200, &[], ""), &Secrets::none())
            .unwrap()
            .redirect_url,
        None
    );
    assert_eq!(
        parse_revoke(&answer(204, &[], ""), &Secrets::none())
            .unwrap()
            .redirect_url,
        None
    );
}

#[test]
fn revoke_of_an_expired_token_is_invalid_token() {
    let error = parse_revoke(
        &problem(
            401,
            r#"{"status":401,"code":"invalid_token","detail":"Token is invalid"}"#,
        ),
        &Secrets::none(),
    )
    .unwrap_err();
    assert!(matches!(error, Error::InvalidToken(_)), "{error:?}");
}

#[test]
fn revoke_server_error_keeps_its_code() {
    let error = parse_revoke(
        &problem(503, r#"{"status":503,"code":"server_error"}"#),
        &Secrets::none(),
    )
    .unwrap_err();
    assert_eq!(error.code(), Some(&ErrorCode::ServerError));
    assert_eq!(error.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
}

#[test]
fn proxy_html_is_a_server_error_with_a_short_excerpt() {
    let html = format!(
        "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>{}</body></html>",
        "x".repeat(5000)
    );
    let error = parse_login(
        &answer(502, &[("content-type", "text/html")], &html),
        &Secrets::none(),
    )
    .unwrap_err();
    let Error::Server(server) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(server.status, StatusCode::BAD_GATEWAY);
    let excerpt = server.excerpt.as_deref().unwrap();
    assert!(
        excerpt.starts_with("<html> <head><title>502 Bad Gateway"),
        "{excerpt}"
    );
    assert!(excerpt.chars().count() <= 161);
    assert!(!excerpt.contains('\n'));
}

#[test]
fn error_with_no_body_still_names_the_status() {
    let error = parse_login(&answer(504, &[], ""), &Secrets::none()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "the instance answered with an error: HTTP 504 Gateway Timeout"
    );
}

#[test]
fn retry_after_as_an_http_date_is_ignored_not_fatal() {
    let error = parse_error(
        &answer(
            429,
            &[("retry-after", "Fri, 27 Nov 2026 18:00:00 GMT")],
            "Too many requests, please try again later.",
        ),
        &Secrets::none(),
    );
    assert_eq!(error.retry_after, None);
    assert_eq!(error.status, StatusCode::TOO_MANY_REQUESTS);
}

// ----- leniency of the token answer -----

#[test]
fn token_answer_is_read_leniently() {
    let tokens = parse_login(&json(
        200,
        r#"{"token_type":"bearer","access_token":"a","refresh_token":"r","expires_in":"3600","extra":{"x":[1,2]}}"#,
    ), &Secrets::none())
    .unwrap();
    assert_eq!(tokens.expires_in, Some(Duration::from_secs(3600)));
    assert_eq!(tokens.refresh_token_expires_in, None);
    let tokens = parse_login(&json(
        200,
        r#"{"access_token":"a","refresh_token":"r","expires_in":3600.0,"refresh_token_expires_in":" 7200 "}"#,
    ), &Secrets::none())
    .unwrap();
    assert_eq!(tokens.expires_in, Some(Duration::from_secs(3600)));
    assert_eq!(
        tokens.refresh_token_expires_in,
        Some(Duration::from_secs(7200))
    );
}

fn malformed(response: http::Response<Vec<u8>>) -> String {
    match parse_login(&response, &Secrets::none()).unwrap_err() {
        Error::MalformedResponse { status, reason } => {
            assert_eq!(status, response.status());
            reason
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn malformed_token_answers_are_typed_errors() {
    let cases = [
        "",
        "   ",
        r#"{"token_type":"Bearer","access_token":"a","refresh_tok"#,
        r#"{"token_type":"Bearer","refresh_token":"r","expires_in":1}"#,
        r#"{"token_type":"Bearer","access_token":"","refresh_token":"r"}"#,
        r#"{"token_type":"Bearer","access_token":"a","refresh_token":null}"#,
        r#"{"token_type":"Bearer","access_token":5,"refresh_token":"r"}"#,
        r#"{"token_type":"MAC","access_token":"a","refresh_token":"r"}"#,
        r#"{"access_token":"a","refresh_token":"r","expires_in":-1}"#,
        r#"{"access_token":"a","refresh_token":"r","expires_in":"soon"}"#,
        r#"{"access_token":"a","refresh_token":"r","expires_in":1e300}"#,
        r#"{"access_token":"a","refresh_token":"r","expires_in":99999999999999999999999}"#,
        r#"{"access_token":"a","refresh_token":"r","expires_in":18446744073709551615}"#,
        r#"{"access_token":"a b","refresh_token":"r"}"#,
        r#"{"access_token":"a\n","refresh_token":"r"}"#,
        r#"[1,2,3]"#,
        "<html>oops</html>",
    ];
    for body in cases {
        let reason = malformed(json(200, body));
        assert!(!reason.is_empty(), "{body}");
    }
}

#[test]
fn malformed_reasons_do_not_quote_response_values() {
    let reason = malformed(json(
        200,
        r#"{"access_token":"s3cr3t-access","refresh_token":["s3cr3t-refresh"]}"#,
    ));
    assert!(!reason.contains("s3cr3t"), "{reason}");
    let reason = malformed(json(
        200,
        r#"{"access_token":"s3cr3t-access","refresh_token":"r","expires_in":"s3cr3t"}"#,
    ));
    assert!(!reason.contains("s3cr3t"), "{reason}");
}

#[test]
fn client_pair_answer_must_have_both_members() {
    for body in [
        r#"{"client_id":"abc"}"#,
        r#"{"client_id":"","client_secret":"x"}"#,
        r#"{"client_id":1,"client_secret":"x"}"#,
        "",
    ] {
        assert!(
            matches!(
                parse_oauth_client(&json(200, body), &Secrets::none()).unwrap_err(),
                Error::MalformedResponse { .. }
            ),
            "{body}"
        );
    }
}

// ----- bounded work -----

#[test]
fn bodies_over_the_cap_are_refused_before_parsing() {
    let huge = format!(
        r#"{{"access_token":"{}","refresh_token":"r"}}"#,
        "a".repeat(DEFAULT_BODY_LIMIT)
    );
    assert_eq!(
        parse_login(&json(200, &huge), &Secrets::none()).unwrap_err(),
        Error::ResponseTooLarge {
            status: StatusCode::OK,
            limit: DEFAULT_BODY_LIMIT
        }
    );
    let small = Parser::new().with_body_limit(10);
    assert!(matches!(
        small
            .revoke(&json(200, r#"{"success":true}"#), &Secrets::none())
            .unwrap_err(),
        Error::ResponseTooLarge { .. }
    ));
    let huge_error = "x".repeat(DEFAULT_BODY_LIMIT + 1);
    assert!(matches!(
        parse_login(&answer(502, &[], &huge_error), &Secrets::none()).unwrap_err(),
        Error::ResponseTooLarge { .. }
    ));
}

#[test]
fn deeply_nested_json_is_a_quick_typed_error() {
    let nested = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
    assert!(matches!(
        Parser::new()
            .with_body_limit(1 << 20)
            .login(&json(200, &nested), &Secrets::none())
            .unwrap_err(),
        Error::MalformedResponse { .. }
    ));
    let nested_error = format!(r#"{{"code":{}{}}}"#, "[".repeat(30_000), "]".repeat(30_000));
    let error = parse_error(&problem(400, &nested_error), &Secrets::none());
    assert_eq!(error.code, None);
}

#[test]
fn parsers_accept_any_byte_container() {
    let body: &[u8] = br#"{"client_id":"a","client_secret":"b"}"#;
    let response = http::Response::new(body);
    assert_eq!(
        parse_oauth_client(&response, &Secrets::none())
            .unwrap()
            .client_id,
        "a"
    );
    let response = http::Response::new(body.to_vec());
    assert_eq!(
        parse_oauth_client(&response, &Secrets::none())
            .unwrap()
            .client_id,
        "a"
    );
}

#[test]
fn one_letter_tokens_are_accepted_and_still_redacted() {
    // Found by the token fuzzer (fuzz/regressions/token/one-letter-tokens): the check, not the
    // parser, was wrong; this pins the parser's side.
    let tokens = parse_login(
        &json(
            200,
            r#"{"token_type":"Bearer","access_token":"a","refresh_token":"r"}"#,
        ),
        &Secrets::none(),
    )
    .unwrap();
    assert_eq!(tokens.access_token.expose_secret(), "a");
    assert_eq!(
        format!("{tokens:?}"),
        "TokenResponse { access_token: AccessToken([redacted]), refresh_token: RefreshToken([redacted]), expires_in: None, refresh_token_expires_in: None }"
    );
}

// ----- classification edges: what an answer without a `code` means -----

#[test]
fn a_401_login_without_code_or_otp_header_is_not_a_two_factor_request() {
    let bare = answer(401, &[], "");
    let error = parse_login(&bare, &Secrets::none()).unwrap_err();
    assert!(matches!(error, Error::Server(_)), "{error:?}");
    assert_eq!(error.status(), Some(StatusCode::UNAUTHORIZED));

    // The same status with PeerTube's `x-peertube-otp: required` header is one.
    let asks = answer(401, &[("x-peertube-otp", "required")], "");
    let error = parse_login(&asks, &Secrets::none()).unwrap_err();
    assert!(matches!(error, Error::TwoFactorRequired(_)), "{error:?}");

    // The header on another status, or on another operation, asks for nothing.
    let wrong_status = answer(400, &[("x-peertube-otp", "required")], "");
    let error = parse_login(&wrong_status, &Secrets::none()).unwrap_err();
    assert!(!matches!(error, Error::TwoFactorRequired(_)), "{error:?}");
    let error = parse_refresh(&asks, &Secrets::none()).unwrap_err();
    assert!(!matches!(error, Error::TwoFactorRequired(_)), "{error:?}");
}

#[test]
fn only_a_403_without_code_means_the_client_pair_is_forbidden_for_this_host() {
    let forbidden = answer(403, &[], "");
    let error = parse_oauth_client(&forbidden, &Secrets::none()).unwrap_err();
    assert!(
        matches!(error, Error::ClientForbiddenForHost(_)),
        "{error:?}"
    );

    for (status, body) in [
        (500, "{}"),
        (502, "<html><body>Bad Gateway</body></html>"),
        (404, ""),
        (401, ""),
    ] {
        let error = parse_oauth_client(&answer(status, &[], body), &Secrets::none()).unwrap_err();
        assert!(matches!(error, Error::Server(_)), "{status}: {error:?}");
        assert_eq!(error.status(), StatusCode::from_u16(status).ok());
    }
    // A 403 that is another operation's answer is not about the client pair.
    let error = parse_login(&forbidden, &Secrets::none()).unwrap_err();
    assert!(
        !matches!(error, Error::ClientForbiddenForHost(_)),
        "{error:?}"
    );
}

// ----- lenient problem+json -----

#[test]
fn escaped_strings_in_a_problem_are_unescaped_and_folded() {
    let body = r#"{"status":400,"code":"invalid_grant","detail":"a \"quoted\" word\nnext \u00e9"}"#;
    let error = parse_error(&problem(400, body), &Secrets::none());
    assert_eq!(error.code, Some(ErrorCode::InvalidGrant));
    assert_eq!(error.detail.as_deref(), Some("a \"quoted\" word next é"));
}

#[test]
fn members_of_the_wrong_type_are_skipped_not_fatal() {
    let body = r#"{"code":["invalid_grant"],"detail":{"text":"nested"},"error":"legacy text","status":400}"#;
    let error = parse_error(&problem(400, body), &Secrets::none());
    assert_eq!(error.code, None);
    assert_eq!(error.detail.as_deref(), Some("legacy text"));
    assert_eq!(error.excerpt, None);

    let body = r#"{"code":"invalid_token","detail":[1,2,{"a":null}],"error":42}"#;
    let error = parse_error(&problem(401, body), &Secrets::none());
    assert_eq!(error.code, Some(ErrorCode::InvalidToken));
    assert_eq!(error.detail, None);
}

#[test]
fn parse_error_reads_a_body_at_its_cap_and_skips_one_over_it() {
    let padded = |len: usize| {
        let head = r#"{"code":"invalid_grant","detail":"d","pad":""#;
        let tail = r#""}"#;
        format!("{head}{}{tail}", " ".repeat(len - head.len() - tail.len()))
    };
    let at_cap = parse_error(&problem(400, &padded(DEFAULT_BODY_LIMIT)), &Secrets::none());
    assert_eq!(at_cap.code, Some(ErrorCode::InvalidGrant));
    assert_eq!(at_cap.detail.as_deref(), Some("d"));

    let over = parse_error(
        &problem(400, &padded(DEFAULT_BODY_LIMIT + 1)),
        &Secrets::none(),
    );
    assert_eq!(over.status, StatusCode::BAD_REQUEST);
    assert_eq!((over.code, over.detail, over.excerpt), (None, None, None));
}

// ----- Retry-After in both forms -----

#[test]
fn retry_after_is_read_in_seconds_and_as_a_date_against_the_servers_clock() {
    let seconds = parse_error(
        &answer(429, &[("retry-after", "120")], ""),
        &Secrets::none(),
    );
    assert_eq!(seconds.retry_after, Some(Duration::from_secs(120)));
    assert_eq!(seconds.retry_at, None);

    let dated = answer(
        503,
        &[
            ("date", "Sat, 28 Nov 2026 22:00:00 GMT"),
            ("retry-after", "Sat, 28 Nov 2026 22:01:30 GMT"),
        ],
        "",
    );
    let error = parse_error(&dated, &Secrets::none());
    assert_eq!(error.retry_after, Some(Duration::from_secs(90)));
    let at = std::time::UNIX_EPOCH + Duration::from_secs(1_795_903_290);
    assert_eq!(error.retry_at, Some(at));

    let no_date = answer(503, &[("retry-after", "Sat, 28 Nov 2026 22:01:30 GMT")], "");
    let error = parse_error(&no_date, &Secrets::none());
    assert_eq!((error.retry_after, error.retry_at), (None, Some(at)));

    let past = answer(
        503,
        &[
            ("date", "Sat, 28 Nov 2026 22:05:00 GMT"),
            ("retry-after", "Sat, 28 Nov 2026 22:01:30 GMT"),
        ],
        "",
    );
    assert_eq!(
        parse_error(&past, &Secrets::none()).retry_after,
        Some(Duration::ZERO)
    );

    for garbage in ["soon", "-5", "Sat, 99 Nov 2026 22:01:30 GMT", ""] {
        let error = parse_error(
            &answer(429, &[("retry-after", garbage)], ""),
            &Secrets::none(),
        );
        assert_eq!(
            (error.retry_after, error.retry_at),
            (None, None),
            "{garbage}"
        );
    }
}

#[test]
fn a_parser_tells_its_body_limit() {
    assert_eq!(Parser::new().body_limit(), DEFAULT_BODY_LIMIT);
    assert_eq!(Parser::default().body_limit(), DEFAULT_BODY_LIMIT);
    assert_eq!(Parser::new().with_body_limit(10).body_limit(), 10);
}

#[test]
fn an_empty_token_and_a_token_with_bad_characters_are_told_apart() {
    let reason = |access: &str| match parse_login(
        &json(
            200,
            &format!(r#"{{"access_token":"{access}","refresh_token":"r"}}"#),
        ),
        &Secrets::none(),
    )
    .unwrap_err()
    {
        Error::MalformedResponse { reason, .. } => reason,
        other => panic!("{other:?}"),
    };
    assert_eq!(reason(""), "access_token is missing or empty");
    assert_eq!(
        reason("a b"),
        "access_token contains characters a token cannot have"
    );
}

#[test]
fn a_lifetime_of_the_wrong_type_says_what_was_expected() {
    let answer = json(
        200,
        r#"{"access_token":"a","refresh_token":"r","expires_in":true}"#,
    );
    match parse_login(&answer, &Secrets::none()).unwrap_err() {
        Error::MalformedResponse { reason, .. } => assert!(
            reason.contains("expected a non-negative number of seconds"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
}
