//! Any PeerTube API call through a tower service (hyper-util's client here), kept authorized by
//! the session: `AuthorizeLayer` puts the token on, refreshes it when due or when the server
//! says it died, and sends the request again. Against the bundled fake PeerTube on loopback.
//!
//!     cargo run --example tower --features tower,hyper,fake

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use peertube_session::asynchronous::{AsyncClient, AuthorizeLayer, Config, HyperTransport};
use peertube_session::fake::{FakePeerTube, FakeUser};
use peertube_session::{Credentials, Instance};
use std::sync::Arc;
use std::time::Duration;
use tower::{ServiceBuilder, ServiceExt};

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
        AsyncClient::new(HyperTransport::new(), instance.clone())
            .with_config(Config::builder().clock(move || clock.now()).build()),
    );
    session
        .login(&Credentials::password("alice", "correct horse"))
        .await?;

    let http = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(HttpConnector::new());
    let api = ServiceBuilder::new()
        .layer(AuthorizeLayer::new(session.clone()))
        .service(http);
    let uri = instance.uri("/api/v1/users/me")?;
    let me = || http::Request::get(uri.clone()).body(Full::default());

    let answer = api.clone().oneshot(me()?).await?;
    println!("GET /api/v1/users/me -> {}", answer.status());

    fake.advance(Duration::from_secs(24 * 3600 + 1));
    println!("a day later, the access token has expired");
    let answer = api.clone().oneshot(me()?).await?;
    let status = answer.status();
    let body = answer.into_body().collect().await?.to_bytes();
    println!("GET /api/v1/users/me -> {status}, {} bytes", body.len());
    println!("refreshes sent: {}", fake.counters().refreshes);

    session.logout().await?;
    // The session's own errors are the service's, `peertube_session::Error` inside.
    let error = api.oneshot(me()?).await.unwrap_err();
    match error.downcast_ref::<peertube_session::Error>() {
        Some(peertube_session::Error::LoggedOut) => println!("after logout: logged out"),
        _ => println!("after logout: {error}"),
    }
    Ok(())
}
