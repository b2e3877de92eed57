//! The whole session against the bundled fake PeerTube on a loopback port, with the blocking
//! ureq driver: client pair → login → authorized call → refresh → logout. No network needed.
//!
//!     cargo run --example demo --features ureq,fake

use peertube_session::blocking::Config;
use peertube_session::blocking::{BlockingClient, Transport, UreqTransport};
use peertube_session::fake::{FakePeerTube, FakeUser};
use peertube_session::{Body, Credentials, Instance, TransportError};
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fake = FakePeerTube::builder()
        .user(FakeUser::new(
            "alice",
            "alice@example.org",
            "correct horse battery staple",
        ))
        .build();
    let server = fake.serve()?;
    println!("fake PeerTube listening at {}", server.base_url());

    // A transport that prints each exchange (method, path, status: never a header or body).
    let ureq = UreqTransport::new();
    let logging =
        move |request: http::Request<Body>| -> Result<http::Response<Vec<u8>>, TransportError> {
            let line = format!("  {} {}", request.method(), request.uri().path());
            let response = ureq.send(request)?;
            println!("{line} -> {}", response.status());
            Ok(response)
        };

    let clock = fake.clone();
    // One configuration for the client: the transport keeps to its timeout, which every
    // request carries; the fake's clock stands in for the system's.
    let config = Config::builder()
        .timeout(Duration::from_secs(10))
        .user_agent(http::HeaderValue::from_static("peertube-session-demo"))
        .clock(move || clock.now())
        .build();
    let client =
        BlockingClient::new(logging, Instance::new(&server.base_url())?).with_config(config);
    println!("state: {:?}", client.state());

    client.login(&Credentials::password(
        "alice",
        "correct horse battery staple",
    ))?;
    println!("state: {:?} (logged in)", client.state());

    let me = http::Request::get(client.instance().uri("/api/v1/users/me")?).body(Body::default())?;
    let answer = client.send_authorized(me)?;
    println!("me: {}", String::from_utf8_lossy(answer.body()));

    println!("a day passes on the fake clock: the access token expires");
    fake.advance(Duration::from_secs(24 * 3600 + 1));
    let me = http::Request::get(client.instance().uri("/api/v1/users/me")?).body(Body::default())?;
    let answer = client.send_authorized(me)?;
    println!("me again (after an automatic refresh): {}", answer.status());

    let redirect = client.logout()?;
    println!(
        "state: {:?} (logged out, redirect: {redirect:?})",
        client.state()
    );

    let counters = fake.counters();
    println!(
        "server saw: {} client request(s), {} login(s), {} refresh(es), {} logout(s), {} live session(s)",
        counters.client_requests,
        counters.logins,
        counters.refreshes,
        counters.revocations,
        counters.live_sessions
    );
    Ok(())
}
