//! The fake's token-session routes against what a real PeerTube 8.0.1 answered (and 6.3, which
//! has no such routes), read as raw JSON: nothing of the client's parsers is used here.
#![cfg(feature = "fake")]

use http::{Request, Response, StatusCode};
use peertube_session::fake::{ClientAddr, FakePeerTube, FakeRole, FakeUser, ServerVersion};
use serde_json::Value;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// The body of a recorded answer (`tests/fixtures/<server>/<name>.http`).
fn recorded_body(server: &str, name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/{server}/{name}.http",
        env!("CARGO_MANIFEST_DIR")
    );
    let raw = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    raw.split_once("\r\n\r\n")
        .expect("head and body")
        .1
        .to_owned()
}

fn fake(version: ServerVersion) -> FakePeerTube {
    FakePeerTube::builder()
        .client("cid", "csecret")
        .version(version)
        .user(
            FakeUser::new("root", "admin@example.com", "root-pw")
                .with_role(FakeRole::Administrator),
        )
        .user(FakeUser::new("alice", "alice@example.org", "alice-pw"))
        .user(FakeUser::new("bob", "bob@example.org", "bob-pw").with_role(FakeRole::Moderator))
        .no_rate_limit()
        .build()
}

/// Logs in from `agent` (no `User-Agent` when `None`) at `address`; the access token.
fn login(fake: &FakePeerTube, username: &str, agent: Option<&str>, address: Ipv4Addr) -> String {
    let mut builder = Request::post("/api/v1/users/token")
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(agent) = agent {
        builder = builder.header("user-agent", agent);
    }
    let mut request = builder
        .body(format!(
            "client_id=cid&client_secret=csecret&grant_type=password&username={username}&password={username}-pw"
        ))
        .unwrap();
    request
        .extensions_mut()
        .insert(ClientAddr(IpAddr::V4(address)));
    let response = fake.handle(&request);
    assert_eq!(response.status(), StatusCode::OK);
    json(&response)["access_token"].as_str().unwrap().to_owned()
}

fn call(fake: &FakePeerTube, method: &str, path: &str, token: Option<&str>) -> Response<Vec<u8>> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    fake.handle(&builder.body(Vec::new()).unwrap())
}

fn json(response: &Response<Vec<u8>>) -> Value {
    serde_json::from_slice(response.body())
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(response.body())))
}

fn body(response: &Response<Vec<u8>>) -> &str {
    std::str::from_utf8(response.body()).unwrap()
}

const LOCAL: Ipv4Addr = Ipv4Addr::LOCALHOST;

#[test]
fn a_listed_session_has_the_recorded_members_in_their_order() {
    let fake = fake(ServerVersion::PeerTube8);
    let token = login(&fake, "root", Some("session-recorder/1.0 (login-1)"), LOCAL);
    let response = call(&fake, "GET", "/api/v1/users/1/token-sessions", Some(&token));
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let recorded = recorded_body("peertube-8.0", "03-token-sessions-list-one");
    let keys = |text: &str| -> Vec<String> {
        // The member names of `data[0]`, in the order written.
        let start = text.find("\"data\":[{").unwrap() + 9;
        text[start..]
            .split(',')
            .filter_map(|part| {
                part.split_once("\":")
                    .map(|(k, _)| k.trim_start_matches('"').to_owned())
            })
            .take(9)
            .collect()
    };
    assert_eq!(keys(body(&response)), keys(&recorded));
    let ours = json(&response);
    let theirs: Value = serde_json::from_str(&recorded).unwrap();
    assert_eq!(ours["total"], theirs["total"]);
    let (ours, theirs) = (&ours["data"][0], &theirs["data"][0]);
    for member in [
        "loginIP",
        "loginDevice",
        "lastActivityIP",
        "lastActivityDevice",
        "currentSession",
    ] {
        assert_eq!(ours[member], theirs[member], "{member}");
    }
    let date = ours["loginDate"].as_str().unwrap();
    assert_eq!(
        date, "2026-11-27T17:20:00.000Z",
        "the fake clock, as toISOString writes it"
    );
    assert_eq!(ours["createdAt"], ours["loginDate"]);
}

#[test]
fn the_list_is_newest_first_by_default_and_counts_every_live_session() {
    let fake = fake(ServerVersion::PeerTube8);
    let first = login(&fake, "root", Some("a"), LOCAL);
    fake.advance(Duration::from_secs(1));
    login(&fake, "root", None, Ipv4Addr::new(10, 0, 0, 2));
    fake.advance(Duration::from_secs(1));
    login(&fake, "root", Some("c"), LOCAL);
    login(&fake, "alice", Some("not root's"), LOCAL);
    let all = json(&call(
        &fake,
        "GET",
        "/api/v1/users/1/token-sessions",
        Some(&first),
    ));
    assert_eq!(all["total"], 3);
    let devices: Vec<&Value> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["loginDevice"])
        .collect();
    assert_eq!(
        devices,
        [&Value::from("c"), &Value::Null, &Value::from("a")]
    );
    assert_eq!(all["data"][1]["loginIP"], "10.0.0.2");
    let current: Vec<bool> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["currentSession"].as_bool().unwrap())
        .collect();
    assert_eq!(current, [false, false, true]);
    let oldest = json(&call(
        &fake,
        "GET",
        "/api/v1/users/1/token-sessions?sort=createdAt&start=1&count=1",
        Some(&first),
    ));
    assert_eq!(oldest["total"], 3);
    assert_eq!(oldest["data"].as_array().unwrap().len(), 1);
    assert_eq!(oldest["data"][0]["loginIP"], "10.0.0.2");
    let empty = json(&call(
        &fake,
        "GET",
        "/api/v1/users/1/token-sessions?start=9",
        Some(&first),
    ));
    assert_eq!(
        (
            empty["total"].clone(),
            empty["data"].as_array().unwrap().len()
        ),
        (Value::from(3), 0)
    );
}

#[test]
fn a_refresh_gives_a_new_id_and_keeps_the_login() {
    let fake = fake(ServerVersion::PeerTube8);
    let login_answer = {
        let request = Request::post("/api/v1/users/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("user-agent", "first/1")
            .body("client_id=cid&client_secret=csecret&grant_type=password&username=root&password=root-pw".to_owned())
            .unwrap();
        json(&fake.handle(&request))
    };
    let before = json(&call(
        &fake,
        "GET",
        "/api/v1/users/1/token-sessions",
        login_answer["access_token"].as_str(),
    ));
    fake.advance(Duration::from_secs(60));
    let refresh = Request::post("/api/v1/users/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("user-agent", "second/2")
        .body(format!(
            "client_id=cid&client_secret=csecret&grant_type=refresh_token&refresh_token={}",
            login_answer["refresh_token"].as_str().unwrap()
        ))
        .unwrap();
    let refreshed = json(&fake.handle(&refresh));
    let after = json(&call(
        &fake,
        "GET",
        "/api/v1/users/1/token-sessions",
        refreshed["access_token"].as_str(),
    ));
    let (old, new) = (&before["data"][0], &after["data"][0]);
    assert_eq!(after["total"], 1);
    assert_ne!(old["id"], new["id"]);
    assert_eq!(new["loginDevice"], "first/1");
    assert_eq!(new["loginDate"], old["loginDate"]);
    assert_eq!(new["lastActivityDevice"], "second/2");
    assert_eq!(new["createdAt"], "2026-11-27T17:21:00.000Z");
}

#[test]
fn sessions_whose_access_token_expired_are_neither_listed_nor_revocable() {
    // `listSessionsOf` and `loadSessionOf` want both tokens alive (oauth-token.ts).
    let fake = FakePeerTube::builder()
        .client("cid", "csecret")
        .user(FakeUser::new("root", "admin@example.com", "root-pw"))
        .token_lifetimes(Duration::from_secs(60), Duration::from_secs(3600))
        .build();
    let idle = login(&fake, "root", Some("idle"), LOCAL);
    let listed = json(&call(
        &fake,
        "GET",
        "/api/v1/users/1/token-sessions",
        Some(&idle),
    ));
    let idle_id = listed["data"][0]["id"].as_u64().unwrap();
    fake.advance(Duration::from_secs(61));
    let fresh = login(&fake, "root", Some("fresh"), LOCAL);
    let now = json(&call(
        &fake,
        "GET",
        "/api/v1/users/1/token-sessions",
        Some(&fresh),
    ));
    assert_eq!(now["total"], 1);
    assert_eq!(now["data"][0]["loginDevice"], "fresh");
    let revoke = call(
        &fake,
        "POST",
        &format!("/api/v1/users/1/token-sessions/{idle_id}/revoke"),
        Some(&fresh),
    );
    assert_eq!(revoke.status(), StatusCode::NOT_FOUND);
}

#[test]
fn revoking_kills_both_tokens_and_answers_as_recorded() {
    let fake = fake(ServerVersion::PeerTube8);
    let keeper = login(&fake, "root", Some("keeper"), LOCAL);
    let victim_login = {
        let request = Request::post("/api/v1/users/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .body("client_id=cid&client_secret=csecret&grant_type=password&username=root&password=root-pw".to_owned())
            .unwrap();
        json(&fake.handle(&request))
    };
    let victim = victim_login["access_token"].as_str().unwrap();
    let list = json(&call(
        &fake,
        "GET",
        "/api/v1/users/1/token-sessions",
        Some(&keeper),
    ));
    let victim_id = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["currentSession"] == false)
        .unwrap()["id"]
        .as_u64()
        .unwrap();
    let path = format!("/api/v1/users/1/token-sessions/{victim_id}/revoke");
    let revoked = call(&fake, "POST", &path, Some(&keeper));
    assert_eq!(revoked.status(), StatusCode::OK);
    assert_eq!(
        body(&revoked),
        recorded_body("peertube-8.0", "15-token-sessions-revoke")
    );
    // Its access token: 401 invalid_token as recorded; its refresh token: invalid_grant.
    let dead = call(&fake, "GET", "/api/v1/users/me", Some(victim));
    assert_eq!(dead.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        body(&dead),
        recorded_body("peertube-8.0", "16-revoked-session-access-token")
    );
    let refresh = Request::post("/api/v1/users/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "client_id=cid&client_secret=csecret&grant_type=refresh_token&refresh_token={}",
            victim_login["refresh_token"].as_str().unwrap()
        ))
        .unwrap();
    assert_eq!(json(&fake.handle(&refresh))["code"], "invalid_grant");
    // Again, or an id that never was: the recorded 404.
    let again = call(&fake, "POST", &path, Some(&keeper));
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        body(&again),
        recorded_body(
            "peertube-8.0",
            "18-token-sessions-revoke-unknown-or-revoked"
        )
    );
    let never = call(
        &fake,
        "POST",
        "/api/v1/users/1/token-sessions/999999/revoke",
        Some(&keeper),
    );
    assert_eq!(body(&never), body(&again));
    assert_eq!(fake.counters().token_sessions_revoked, 1);
}

#[test]
fn one_s_own_current_session_can_be_revoked() {
    let fake = fake(ServerVersion::PeerTube8);
    let token = login(&fake, "alice", Some("me"), LOCAL);
    let list = json(&call(
        &fake,
        "GET",
        "/api/v1/users/2/token-sessions",
        Some(&token),
    ));
    let id = list["data"][0]["id"].as_u64().unwrap();
    let revoked = call(
        &fake,
        "POST",
        &format!("/api/v1/users/2/token-sessions/{id}/revoke"),
        Some(&token),
    );
    assert_eq!(revoked.status(), StatusCode::OK);
    assert_eq!(
        call(&fake, "GET", "/api/v1/users/me", Some(&token)).status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(fake.counters().live_sessions, 0);
}

#[test]
fn who_may_see_whose_sessions() {
    let fake = fake(ServerVersion::PeerTube8);
    let root = login(&fake, "root", None, LOCAL);
    let alice = login(&fake, "alice", None, LOCAL);
    let bob = login(&fake, "bob", None, LOCAL);
    let forbidden = recorded_body("peertube-8.0", "21-token-sessions-revoke-other-users");
    // A plain user, another user's list or session: the recorded 403.
    for path in [
        "/api/v1/users/1/token-sessions",
        "/api/v1/users/3/token-sessions",
    ] {
        let answer = call(&fake, "GET", path, Some(&alice));
        assert_eq!(answer.status(), StatusCode::FORBIDDEN);
        assert_eq!(body(&answer), forbidden);
    }
    let answer = call(
        &fake,
        "POST",
        "/api/v1/users/1/token-sessions/1/revoke",
        Some(&alice),
    );
    assert_eq!(body(&answer), forbidden);
    // A moderator manages plain users, not administrators.
    assert_eq!(
        call(&fake, "GET", "/api/v1/users/2/token-sessions", Some(&bob)).status(),
        StatusCode::OK
    );
    assert_eq!(
        call(&fake, "GET", "/api/v1/users/1/token-sessions", Some(&bob)).status(),
        StatusCode::FORBIDDEN
    );
    // An administrator manages everyone; nobody's session is "current" for it.
    let bobs = json(&call(
        &fake,
        "GET",
        "/api/v1/users/3/token-sessions",
        Some(&root),
    ));
    assert_eq!(bobs["data"][0]["currentSession"], false);
    // Unknown users are 404 even to an administrator; a user id that is not a number is 400.
    let unknown = call(&fake, "GET", "/api/v1/users/99/token-sessions", Some(&root));
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(json(&unknown)["detail"], "User not found");
    let bad = call(&fake, "GET", "/api/v1/users/me/token-sessions", Some(&root));
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json(&bad)["invalid-params"]["userId"]["location"], "params");
    let bad = call(
        &fake,
        "POST",
        "/api/v1/users/1/token-sessions/x/revoke",
        Some(&root),
    );
    assert_eq!(json(&bad)["invalid-params"]["tokenSessionId"]["value"], "x");
}

#[test]
fn without_a_token_the_recorded_401() {
    let fake = fake(ServerVersion::PeerTube8);
    for (method, path) in [
        ("GET", "/api/v1/users/1/token-sessions"),
        ("POST", "/api/v1/users/1/token-sessions/1/revoke"),
    ] {
        let answer = call(&fake, method, path, None);
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            body(&answer),
            recorded_body("peertube-8.0", "29-token-sessions-no-auth")
        );
    }
}

#[test]
fn bad_pagination_and_sort_answer_byte_for_byte_as_recorded() {
    let fake = fake(ServerVersion::PeerTube8);
    let token = login(&fake, "root", None, LOCAL);
    let count = call(
        &fake,
        "GET",
        "/api/v1/users/1/token-sessions?count=-1",
        Some(&token),
    );
    assert_eq!(count.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        count.headers()["content-type"],
        "application/problem+json; charset=utf-8"
    );
    assert_eq!(
        body(&count),
        recorded_body("peertube-8.0", "07-token-sessions-list-bad-count")
    );
    let sort = call(
        &fake,
        "GET",
        "/api/v1/users/1/token-sessions?sort=bogus",
        Some(&token),
    );
    assert_eq!(
        body(&sort),
        recorded_body("peertube-8.0", "06-token-sessions-list-bad-sort")
    );
    for query in [
        "count=101",
        "count=1.5",
        "count=",
        "start=-1",
        "start=x",
        "sort=id",
        "sort=-lastActivityDate",
    ] {
        let answer = call(
            &fake,
            "GET",
            &format!("/api/v1/users/1/token-sessions?{query}"),
            Some(&token),
        );
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{query}");
        assert!(json(&answer)["invalid-params"].is_object(), "{query}");
    }
    let both = json(&call(
        &fake,
        "GET",
        "/api/v1/users/1/token-sessions?start=-1&count=500",
        Some(&token),
    ));
    assert_eq!(both["detail"], "Incorrect request parameters: start, count");
    for query in [
        "count=0",
        "count=100",
        "start=0",
        "sort=createdAt",
        "sort=-createdAt",
        "other=1",
    ] {
        let answer = call(
            &fake,
            "GET",
            &format!("/api/v1/users/1/token-sessions?{query}"),
            Some(&token),
        );
        assert_eq!(answer.status(), StatusCode::OK, "{query}");
    }
}

#[test]
fn a_6_x_server_has_no_such_routes_even_without_a_token() {
    let fake = fake(ServerVersion::PeerTube6);
    let token = login(&fake, "root", None, LOCAL);
    for (method, path, token) in [
        (
            "GET",
            "/api/v1/users/1/token-sessions",
            Some(token.as_str()),
        ),
        ("GET", "/api/v1/users/1/token-sessions", None),
        (
            "POST",
            "/api/v1/users/1/token-sessions/1/revoke",
            Some(token.as_str()),
        ),
    ] {
        let answer = call(&fake, method, path, token);
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            answer.headers()["content-type"],
            "application/json; charset=utf-8"
        );
        assert!(answer.body().is_empty());
    }
    assert_eq!(fake.counters().token_session_requests, 0);
}

#[test]
fn users_me_names_the_role_as_recorded() {
    let fake = fake(ServerVersion::PeerTube8);
    let token = login(&fake, "root", None, LOCAL);
    let me = json(&call(&fake, "GET", "/api/v1/users/me", Some(&token)));
    let recorded: Value =
        serde_json::from_str(&recorded_body("peertube-8.0", "02-users-me")).unwrap();
    assert_eq!(me["id"], recorded["id"]);
    assert_eq!(me["username"], recorded["username"]);
    assert_eq!(me["role"], recorded["role"]);
}
