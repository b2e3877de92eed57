//! The async driver needs no runtime: a whole session over a closure transport, driven by
//! `pollster` (a bare `block_on`), no runtime started. CI checks that the driver features alone
//! pull in no runtime (`cargo tree`) and build without a warning (`cargo clippy`).
#![cfg(feature = "async-client")]

use peertube_session::asynchronous::AsyncClient;
use peertube_session::asynchronous::Config;
use peertube_session::{Body, Credentials, Instance, State, TransportError};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

/// A tiny PeerTube: the client pair, a password grant, refresh grants that rotate, logout.
#[derive(Default)]
struct Server {
    issued: AtomicUsize,
    live_access: Mutex<Option<String>>,
}

impl Server {
    fn answer(&self, request: &http::Request<Body>) -> http::Response<Vec<u8>> {
        let body = String::from_utf8_lossy(request.body().as_bytes()).into_owned();
        let json = |status: u16, text: String| {
            http::Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(text.into_bytes())
                .unwrap()
        };
        match request.uri().path() {
            "/api/v1/oauth-clients/local" => {
                json(200, r#"{"client_id":"id","client_secret":"secret"}"#.into())
            }
            "/api/v1/users/token" if body.contains("client_secret=secret") => {
                let n = self.issued.fetch_add(1, Ordering::SeqCst);
                *self.live_access.lock().unwrap() = Some(format!("access{n}"));
                json(
                    200,
                    format!(
                        r#"{{"token_type":"Bearer","access_token":"access{n}","refresh_token":"refresh{n}","expires_in":60,"refresh_token_expires_in":600}}"#
                    ),
                )
            }
            "/api/v1/users/revoke-token" => {
                let live = self.live_access.lock().unwrap().take();
                let sent = request.headers().get("authorization").cloned();
                assert_eq!(
                    sent.unwrap().to_str().unwrap(),
                    format!("Bearer {}", live.unwrap())
                );
                json(200, r#"{"success":true}"#.into())
            }
            "/api/v1/users/me" => json(200, r#"{"id":1,"username":"alice"}"#.into()),
            _ => json(404, "{}".into()),
        }
    }
}

#[test]
fn the_async_client_runs_a_whole_session_without_any_runtime() {
    let server = std::sync::Arc::new(Server::default());
    let now = std::sync::Arc::new(Mutex::new(
        SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 30),
    ));
    let (answers, clock) = (server.clone(), now.clone());
    let client = AsyncClient::new(
        move |request: http::Request<Body>| {
            let answer = answers.answer(&request);
            async move { Ok::<_, TransportError>(answer) }
        },
        Instance::new("http://127.0.0.1:9").unwrap(),
    )
    .with_config(
        Config::builder()
            .clock(move || *clock.lock().unwrap())
            .build(),
    );

    pollster::block_on(async {
        client
            .login(&Credentials::password("alice", "pw"))
            .await
            .unwrap();
        assert_eq!(client.state(), State::LoggedIn);
        *now.lock().unwrap() += Duration::from_secs(61);
        let me = http::Request::get("/api/v1/users/me")
            .body(Body::default())
            .unwrap();
        let answer = client.send_authorized(me).await.unwrap();
        assert_eq!(answer.status(), 200);
        assert_eq!(
            server.issued.load(Ordering::SeqCst),
            2,
            "login, then one refresh"
        );
        client.logout().await.unwrap();
        assert_eq!(client.state(), State::Revoked);
    });
}
