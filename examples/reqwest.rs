//! Any PeerTube API call through your own reqwest client, kept authorized by the session:
//! `SessionMiddleware` in a `reqwest_middleware::ClientWithMiddleware` puts the token on,
//! refreshes it when due or when the server says it died, and sends the request again. Against
//! the bundled fake PeerTube on loopback.
//!
//!     cargo run --example reqwest --features reqwest-middleware,fake

use peertube_session::asynchronous::{AsyncClient, Config, ReqwestTransport, SessionMiddleware};
use peertube_session::fake::{FakePeerTube, FakeUser};
use peertube_session::{Credentials, Instance};
use std::sync::Arc;
use std::time::Duration;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let fake = FakePeerTube::builder()
        .user(FakeUser::new("alice", "alice@example.org", "correct horse"))
        .build();
    let server = fake.serve()?;
    let instance = Instance::new(&server.base_url())?;
    // The fake's clock, so that the example can move time on; leave it out in a program.
    let clock = fake.clone();
    let session = Arc::new(
        AsyncClient::new(ReqwestTransport::new(), instance)
            .with_config(Config::builder().clock(move || clock.now()).build()),
    );
    session
        .login(&Credentials::password("alice", "correct horse"))
        .await?;

    // Your client: reqwest needs a TLS provider when built without its default features, as
    // this crate builds it; an application with reqwest's defaults has one already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(SessionMiddleware::new(session.clone()))
        .build();
    let me = format!("{}/api/v1/users/me", server.base_url());

    let answer = http.get(&me).send().await?;
    println!("GET /api/v1/users/me -> {}", answer.status());

    fake.advance(Duration::from_secs(24 * 3600 + 1));
    println!("a day later, the access token has expired");
    let answer = http.get(&me).send().await?;
    println!("GET /api/v1/users/me -> {}", answer.status());
    println!("refreshes sent: {}", fake.counters().refreshes);

    // The session's own errors come back inside the middleware's, as `Error::Middleware`.
    session.logout().await?;
    match http.get(&me).send().await {
        Err(reqwest_middleware::Error::Middleware(error)) => match error.downcast_ref() {
            Some(peertube_session::Error::LoggedOut) => println!("after logout: logged out"),
            _ => println!("after logout: {error}"),
        },
        other => println!("after logout: {other:?}"),
    }
    Ok(())
}
