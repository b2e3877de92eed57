//! The two transports at their edges: the same garbage answer is the same kind of error for
//! both, a server that drips its answer cannot hold either past its timeout, a host name is
//! looked up within the bound, and the hyper transport needs no timer from the tokio runtime.
#![cfg(all(feature = "ureq", feature = "hyper", feature = "fake"))]

use peertube_session::asynchronous::{AsyncTransport, HyperTransport};
use peertube_session::blocking::{ExchangeLimits, Transport, UreqTransport};
use peertube_session::fake::{FakePeerTube, FakeUser};
use peertube_session::{Body, Credentials, Instance, State, TransportErrorKind};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(5);

/// A server on 127.0.0.1 that answers every connection with `answer` and closes it.
fn garbage_server(answer: &'static [u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(4) {
            let Ok(mut stream) = stream else { return };
            stream.set_read_timeout(Some(TIMEOUT)).unwrap();
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(answer);
        }
    });
    format!("http://{address}/api/v1/oauth-clients/local")
}

fn get(url: &str) -> http::Request<Body> {
    within(TIMEOUT, url)
}

/// A GET whose exchange must end within `timeout`, as a driver asks its transport.
fn within(timeout: Duration, url: &str) -> http::Request<Body> {
    let mut request = http::Request::get(url).body(Body::default()).unwrap();
    request
        .extensions_mut()
        .insert(ExchangeLimits::new(timeout, 64 * 1024));
    request
}

fn kinds(answer: &'static [u8]) -> (TransportErrorKind, TransportErrorKind) {
    let url = garbage_server(answer);
    let ureq = UreqTransport::new().send(get(&url)).unwrap_err().kind();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let hyper = runtime
        .block_on(async {
            let transport = HyperTransport::new();
            transport.send(get(&url)).await
        })
        .unwrap_err()
        .kind();
    (ureq, hyper)
}

#[test]
fn an_answer_that_is_not_http_is_a_protocol_error_for_both_transports() {
    assert_eq!(
        kinds(b"SSH-2.0-OpenSSH_9.6\r\nnot http at all\r\n\r\n"),
        (TransportErrorKind::Protocol, TransportErrorKind::Protocol)
    );
}

#[test]
fn an_http_0_9_answer_is_a_protocol_error_for_both_transports() {
    assert_eq!(
        kinds(b"{\"client_id\":\"a\",\"client_secret\":\"b\"}\n"),
        (TransportErrorKind::Protocol, TransportErrorKind::Protocol)
    );
}

#[test]
fn conflicting_content_lengths_are_a_protocol_error_for_both_transports() {
    assert_eq!(
        kinds(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello"),
        (TransportErrorKind::Protocol, TransportErrorKind::Protocol)
    );
}

#[test]
fn the_hyper_transport_works_on_a_runtime_without_timers() {
    let fake = FakePeerTube::builder()
        .user(FakeUser::new("alice", "alice@example.org", "alice-pw"))
        .build();
    let server = fake.serve().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    runtime.block_on(async {
        let transport = HyperTransport::new();
        let client = peertube_session::asynchronous::AsyncClient::new(
            transport,
            Instance::new(&server.base_url()).unwrap(),
        );
        client
            .login(&Credentials::password("alice", "alice-pw"))
            .await
            .unwrap();
        assert_eq!(client.state(), State::LoggedIn);
        client.logout().await.unwrap();
    });
}

/// A server on 127.0.0.1 that sends a head promising a large body, then one byte of it every
/// 20 ms until the client goes away (at most 10 s): each read succeeds, so only a bound on the
/// whole body phase ends it.
fn dripping_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(2) {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                let head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n";
                if stream.write_all(head).is_err() {
                    return;
                }
                for _ in 0..500 {
                    std::thread::sleep(Duration::from_millis(20));
                    if stream.write_all(b" ").is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{address}/api/v1/oauth-clients/local")
}

#[test]
fn a_dripping_answer_is_a_timeout_within_the_bound_for_both_transports() {
    let bound = Duration::from_millis(600);
    let url = dripping_server();

    let started = Instant::now();
    let ureq = UreqTransport::new().send(within(bound, &url));
    let ureq_took = started.elapsed();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let started = Instant::now();
    let hyper = runtime.block_on(async { HyperTransport::new().send(within(bound, &url)).await });
    let hyper_took = started.elapsed();

    assert_eq!(ureq.unwrap_err().kind(), TransportErrorKind::Timeout);
    assert_eq!(hyper.unwrap_err().kind(), TransportErrorKind::Timeout);
    // The bound plus scheduling slack; the drip alone would take 10 s.
    let slack = Duration::from_secs(2);
    assert!(ureq_took < bound + slack, "ureq took {ureq_took:?}");
    assert!(hyper_took < bound + slack, "hyper took {hyper_took:?}");
}

#[test]
fn a_host_name_is_looked_up_within_the_bound() {
    let fake = FakePeerTube::builder()
        .user(FakeUser::new("alice", "alice@example.org", "alice-pw"))
        .build();
    let server = fake.serve().unwrap();
    let by_name = server.base_url().replace("127.0.0.1", "localhost");
    let Ok(mut addresses) =
        std::net::ToSocketAddrs::to_socket_addrs(&by_name.trim_start_matches("http://"))
    else {
        eprintln!("skipped: this machine cannot resolve localhost");
        return;
    };
    if !addresses.any(|a| a.ip().is_loopback() && a.is_ipv4()) {
        eprintln!("skipped: localhost is not 127.0.0.1 here");
        return;
    }
    let answer = UreqTransport::new()
        .send(get(&format!("{by_name}/api/v1/oauth-clients/local")))
        .unwrap();
    assert_eq!(answer.status(), 200);
}

#[test]
fn a_users_agent_keeps_its_own_stricter_timeout() {
    let url = dripping_server();
    use peertube_session::blocking::ureq;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_recv_body(Some(Duration::from_millis(300)))
        .build()
        .into();
    let started = Instant::now();
    // The exchange may take 30 s; the agent's body phase may not take more than 300 ms.
    let error = UreqTransport::with_agent(agent)
        .send(within(Duration::from_secs(30), &url))
        .unwrap_err();
    assert_eq!(error.kind(), TransportErrorKind::Timeout);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[test]
fn each_request_keeps_its_own_timeout_on_a_shared_transport() {
    let fake = FakePeerTube::builder()
        .user(FakeUser::new("alice", "alice@example.org", "alice-pw"))
        .build();
    let server = fake.serve().unwrap();
    let transport = UreqTransport::new();
    // The first request sets up the transport's agent for its 30 s…
    let first = format!("{}/api/v1/oauth-clients/local", server.base_url());
    let answer = transport
        .send(within(Duration::from_secs(30), &first))
        .unwrap();
    assert_eq!(answer.status(), 200);
    // …which must not become the bound of a later request that asks for less.
    let bound = Duration::from_millis(600);
    let started = Instant::now();
    let error = transport
        .send(within(bound, &dripping_server()))
        .unwrap_err();
    assert_eq!(error.kind(), TransportErrorKind::Timeout);
    let took = started.elapsed();
    assert!(took < bound + Duration::from_secs(2), "took {took:?}");
}

#[test]
fn the_body_cap_each_request_carries_is_the_one_both_transports_keep() {
    let fake = FakePeerTube::builder()
        .user(FakeUser::new("alice", "alice@example.org", "alice-pw"))
        .build();
    let server = fake.serve().unwrap();
    let url = format!("{}/api/v1/oauth-clients/local", server.base_url());
    let size = UreqTransport::new().send(get(&url)).unwrap().body().len();
    let capped = |limit: usize| {
        let mut request = get(&url);
        request
            .extensions_mut()
            .insert(ExchangeLimits::new(TIMEOUT, limit));
        request
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let hyper = HyperTransport::default();
    for (limit, fits) in [(size, true), (size - 1, false)] {
        let ureq = UreqTransport::new().send(capped(limit));
        let hyper = runtime.block_on(hyper.send(capped(limit)));
        for answer in [ureq, hyper] {
            match answer {
                Ok(response) => assert!(
                    fits,
                    "{} bytes over a cap of {limit}",
                    response.body().len()
                ),
                Err(error) => {
                    assert!(!fits, "{error:?}");
                    assert_eq!(error.kind(), TransportErrorKind::BodyTooLarge);
                }
            }
        }
    }
}

/// The transports and the ureq builder show what they are in `Debug` (the builder its TLS
/// settings, where ureq shows a client certificate's key by its kind only).
#[test]
fn the_transports_and_the_builder_say_what_they_are() {
    let builder = UreqTransport::builder();
    let shown = format!("{builder:?}");
    assert!(shown.starts_with("UreqTransportBuilder { tls: "), "{shown}");
    assert!(shown.ends_with(", .. }"), "{shown}");
    let shown = format!("{:?}", builder.build());
    assert!(shown.starts_with("UreqTransport"), "{shown}");
}
