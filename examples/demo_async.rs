//! The whole session against the bundled fake PeerTube on loopback, with the async hyper
//! driver, and several tasks sharing one session.
//!
//!     cargo run --example demo_async --features hyper,fake

use peertube_session::asynchronous::Config;
use peertube_session::asynchronous::{AsyncClient, HyperTransport};
use peertube_session::fake::{FakePeerTube, FakeUser};
use peertube_session::{Body, Credentials, Instance};
use std::sync::Arc;
use std::time::Duration;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let fake = FakePeerTube::builder()
        .user(FakeUser::new(
            "alice",
            "alice@example.org",
            "correct horse battery staple",
        ))
        .build();
    let server = fake.serve()?;
    let instance = Instance::new(&server.base_url())?;
    let clock = fake.clone();
    let client = Arc::new(
        AsyncClient::new(HyperTransport::new(), instance.clone())
            .with_config(Config::builder().clock(move || clock.now()).build()),
    );

    client
        .login(&Credentials::password(
            "alice",
            "correct horse battery staple",
        ))
        .await?;
    println!("state: {:?}", client.state());

    fake.advance(Duration::from_secs(24 * 3600 + 1));
    println!("the access token expired; 8 tasks call the API at once");
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (client, instance) = (client.clone(), instance.clone());
            tokio::spawn(async move {
                let me =
                    http::Request::get(instance.uri("/api/v1/users/me")?).body(Body::default())?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                    client.send_authorized(me).await?.status(),
                )
            })
        })
        .collect();
    for task in tasks {
        println!("  /api/v1/users/me -> {}", task.await??);
    }
    println!("refreshes sent: {}", fake.counters().refreshes);

    client.logout().await?;
    println!("state: {:?}", client.state());
    Ok(())
}
