//! Replays every fuzz seed (`tests/fuzz/seeds/<target>/`) and every committed reproducer
//! (`tests/fuzz/regressions/<target>/`) through the same checks the fuzz targets run, on stable.

#[path = "fuzz/checks.rs"]
mod checks;

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fuzz");
    let mut replayed = 0;
    for folder in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(folder).join(target)) else {
            continue;
        };
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            let input = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| check(&input));
            assert!(outcome.is_ok(), "{} fails its checks", path.display());
            replayed += 1;
        }
    }
    assert!(replayed > 0, "no seeds for {target}");
}

#[test]
fn oauth_client_seeds_pass() {
    replay("oauth_client", checks::check_oauth_client);
}

#[test]
fn token_seeds_pass() {
    replay("token", checks::check_token);
}

#[test]
fn revoke_seeds_pass() {
    replay("revoke", checks::check_revoke);
}

#[test]
fn error_seeds_pass() {
    replay("error", checks::check_error_decoder);
}

#[test]
fn session_ops_seeds_pass() {
    replay("session_ops", checks::check_session_ops);
}

#[test]
fn lenient_reading_of_raw_answers() {
    let response = checks::response_from_bytes(
        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 5\r\n\r\nslow down",
    );
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "5");
    assert_eq!(response.body(), b"slow down");
    let response = checks::response_from_bytes(b"\xff\xfe garbage");
    assert_eq!(response.status(), 200);
    assert!(response.headers().is_empty());
}

#[test]
fn users_me_seeds_pass() {
    replay("users_me", checks::check_users_me);
}

#[test]
fn token_sessions_seeds_pass() {
    replay("token_sessions", checks::check_token_sessions);
}
