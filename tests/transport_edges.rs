//! The two transports at their edges: the same garbage answer is the same kind of error for
//! both, and the hyper transport needs no timer from the tokio runtime.
#![cfg(all(feature = "ureq", feature = "hyper", feature = "fake"))]

use peertube_session::asynchronous::{AsyncTransport, HyperTransport};
use peertube_session::blocking::{Transport, UreqTransport};
use peertube_session::fake::{FakePeerTube, FakeUser};
use peertube_session::{Body, Credentials, Instance, State, TransportErrorKind};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

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
    http::Request::get(url).body(Body::default()).unwrap()
}

fn kinds(answer: &'static [u8]) -> (TransportErrorKind, TransportErrorKind) {
    let url = garbage_server(answer);
    let ureq = UreqTransport::new()
        .timeout(TIMEOUT)
        .send(get(&url))
        .unwrap_err()
        .kind();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let hyper = runtime
        .block_on(async {
            let transport = HyperTransport::new().unwrap().timeout(TIMEOUT);
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
        let transport = HyperTransport::new().unwrap().timeout(TIMEOUT);
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
