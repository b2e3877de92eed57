//! Core overhead against a hand-written floor: building each request and parsing each answer,
//! ours next to the least code that produces the same bytes or reads the same fields.
//!
//!     cargo bench --bench core
//!
//! Results and how to read them: BENCHMARKS.md.

use divan::{AllocProfiler, Bencher, black_box};
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use peertube_session::request::{
    oauth_client_request, password_grant_request, refresh_grant_request, revoke_request,
};
use peertube_session::response::{Secrets, parse_login, parse_oauth_client, parse_revoke};
use peertube_session::{AccessToken, Credentials, Instance, OAuthClient, RefreshToken};
use serde::Deserialize;

#[global_allocator]
static ALLOC: AllocProfiler = AllocProfiler::system();

fn main() {
    divan::main();
}

const BASE: &str = "https://video.example.org";
const CLIENT_ID: &str = "grvyb3ovub45ir4zv08p1cy1hlg3urym";
const CLIENT_SECRET: &str = "zP04u0OxKFL1SNfiZlb4y53qnusyJzuu";
const ACCESS: &str = "9557619c8ec82daae2de531b391d58e4e678131d";
const REFRESH: &str = "39ba8dd627ce985f26af8b9593439f8d1c598d8b";

fn instance() -> Instance {
    Instance::new(BASE).unwrap()
}

fn client() -> OAuthClient {
    OAuthClient::new(CLIENT_ID, CLIENT_SECRET)
}

mod build {
    use super::*;

    #[divan::bench]
    fn client_ours(bencher: Bencher) {
        let instance = instance();
        bencher.bench(|| oauth_client_request(black_box(&instance)));
    }

    #[divan::bench]
    fn client_floor(bencher: Bencher) {
        let base = black_box(BASE.to_owned());
        bencher.bench(|| {
            http::Request::get(format!("{base}/api/v1/oauth-clients/local"))
                .header(ACCEPT, "application/json")
                .body(Vec::<u8>::new())
                .unwrap()
        });
    }

    #[divan::bench]
    fn password_ours(bencher: Bencher) {
        let (instance, client) = (instance(), client());
        let credentials = Credentials::password("alice", "correct horse battery staple");
        bencher
            .bench(|| password_grant_request(&instance, &client, black_box(&credentials)).unwrap());
    }

    #[divan::bench]
    fn password_floor(bencher: Bencher) {
        let base = black_box(BASE.to_owned());
        bencher.bench(|| {
            let body = serde_urlencoded::to_string([
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
                ("grant_type", "password"),
                ("response_type", "code"),
                ("scope", "upload"),
                ("username", "alice"),
                ("password", black_box("correct horse battery staple")),
            ])
            .unwrap();
            http::Request::post(format!("{base}/api/v1/users/token"))
                .header(ACCEPT, "application/json")
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(body.into_bytes())
                .unwrap()
        });
    }

    #[divan::bench]
    fn refresh_ours(bencher: Bencher) {
        let (instance, client) = (instance(), client());
        let token = RefreshToken::new(REFRESH);
        bencher.bench(|| refresh_grant_request(&instance, &client, black_box(&token)).unwrap());
    }

    #[divan::bench]
    fn refresh_floor(bencher: Bencher) {
        let base = black_box(BASE.to_owned());
        bencher.bench(|| {
            let body = serde_urlencoded::to_string([
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
                ("grant_type", "refresh_token"),
                ("response_type", "code"),
                ("refresh_token", black_box(REFRESH)),
            ])
            .unwrap();
            http::Request::post(format!("{base}/api/v1/users/token"))
                .header(ACCEPT, "application/json")
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(body.into_bytes())
                .unwrap()
        });
    }

    #[divan::bench]
    fn revoke_ours(bencher: Bencher) {
        let instance = instance();
        let token = AccessToken::new(ACCESS);
        bencher.bench(|| revoke_request(&instance, black_box(&token)).unwrap());
    }

    #[divan::bench]
    fn revoke_floor(bencher: Bencher) {
        let base = black_box(BASE.to_owned());
        bencher.bench(|| {
            http::Request::post(format!("{base}/api/v1/users/revoke-token"))
                .header(ACCEPT, "application/json")
                .header(AUTHORIZATION, format!("Bearer {}", black_box(ACCESS)))
                .body(Vec::<u8>::new())
                .unwrap()
        });
    }
}

mod parse {
    use super::*;

    fn answer(status: u16, body: &str) -> http::Response<Vec<u8>> {
        http::Response::builder()
            .status(status)
            .header(CONTENT_TYPE, "application/json; charset=utf-8")
            .body(body.as_bytes().to_vec())
            .unwrap()
    }

    const CLIENT: &str = r#"{"client_id":"grvyb3ovub45ir4zv08p1cy1hlg3urym","client_secret":"zP04u0OxKFL1SNfiZlb4y53qnusyJzuu"}"#;
    const TOKEN: &str = r#"{"token_type":"Bearer","access_token":"9557619c8ec82daae2de531b391d58e4e678131d","refresh_token":"39ba8dd627ce985f26af8b9593439f8d1c598d8b","expires_in":86399,"refresh_token_expires_in":1209599}"#;
    const REVOKE: &str = r#"{"success":true}"#;
    const INVALID_GRANT: &str = r#"{"type":"https://docs.joinpeertube.org/api-rest-reference.html#section/Errors/invalid_grant","detail":"Invalid grant: user credentials are invalid","status":400,"docs":"https://docs.joinpeertube.org/api-rest-reference.html#operation/getOAuthToken","code":"invalid_grant","error":"Invalid grant: user credentials are invalid"}"#;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct PlainClient {
        client_id: String,
        client_secret: String,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct PlainToken {
        token_type: String,
        access_token: String,
        refresh_token: String,
        expires_in: u64,
        refresh_token_expires_in: u64,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct PlainRevoke {
        success: bool,
        #[serde(rename = "redirectUrl")]
        redirect_url: Option<String>,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct PlainProblem {
        status: u16,
        code: Option<String>,
        detail: Option<String>,
    }

    #[divan::bench]
    fn client_ours(bencher: Bencher) {
        let response = answer(200, CLIENT);
        bencher.bench(|| parse_oauth_client(black_box(&response), &Secrets::none()).unwrap());
    }

    #[divan::bench]
    fn client_floor(bencher: Bencher) {
        let response = answer(200, CLIENT);
        bencher
            .bench(|| serde_json::from_slice::<PlainClient>(black_box(response.body())).unwrap());
    }

    #[divan::bench]
    fn token_ours(bencher: Bencher) {
        let response = answer(200, TOKEN);
        bencher.bench(|| parse_login(black_box(&response), &Secrets::none()).unwrap());
    }

    #[divan::bench]
    fn token_floor(bencher: Bencher) {
        let response = answer(200, TOKEN);
        bencher.bench(|| serde_json::from_slice::<PlainToken>(black_box(response.body())).unwrap());
    }

    #[divan::bench]
    fn revoke_ours(bencher: Bencher) {
        let response = answer(200, REVOKE);
        bencher.bench(|| parse_revoke(black_box(&response), &Secrets::none()).unwrap());
    }

    #[divan::bench]
    fn revoke_floor(bencher: Bencher) {
        let response = answer(200, REVOKE);
        bencher
            .bench(|| serde_json::from_slice::<PlainRevoke>(black_box(response.body())).unwrap());
    }

    #[divan::bench]
    fn invalid_grant_ours(bencher: Bencher) {
        let response = answer(400, INVALID_GRANT);
        bencher.bench(|| parse_login(black_box(&response), &Secrets::none()).unwrap_err());
    }

    #[divan::bench]
    fn invalid_grant_floor(bencher: Bencher) {
        let response = answer(400, INVALID_GRANT);
        bencher
            .bench(|| serde_json::from_slice::<PlainProblem>(black_box(response.body())).unwrap());
    }
}
