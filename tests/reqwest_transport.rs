//! `ReqwestTransport` reads no proxy from the environment: a child process with `HTTP_PROXY`
//! (and its kin) pointing at a recording server sends through the transport straight to the
//! target, while a reqwest client built with reqwest's defaults in the same process goes
//! through the proxy (so the variables do reach reqwest there). `with_client` sends through the
//! user's own client.
#![cfg(all(feature = "reqwest", feature = "fake"))]

use peertube_session::Body;
use peertube_session::asynchronous::{AsyncTransport, ExchangeLimits, ReqwestTransport};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

/// Set in the child: `target URL`.
const CHILD: &str = "PEERTUBE_SESSION_PROXY_CHILD";

/// A server on 127.0.0.1 that answers every request with `body`, for at most 8 connections.
fn answering(body: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(8) {
            let Ok(mut stream) = stream else { return };
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(body.as_bytes());
        }
    });
    format!("http://{address}")
}

/// The child: what the transport and a default reqwest client each reach.
#[test]
fn proxy_child() {
    let Ok(target) = std::env::var(CHILD) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (through_transport, through_default) = runtime.block_on(async {
        let mut request = http::Request::get(&target).body(Body::default()).unwrap();
        request
            .extensions_mut()
            .insert(ExchangeLimits::new(Duration::from_secs(5), 64 * 1024));
        let answer = ReqwestTransport::new().send(request).await.unwrap();
        let default = reqwest::Client::new().get(&target).send().await.unwrap();
        (
            String::from_utf8(answer.into_body()).unwrap(),
            default.text().await.unwrap(),
        )
    });
    assert_eq!(through_transport, "target");
    assert_eq!(
        through_default, "proxy",
        "the variables reach reqwest's defaults"
    );
}

#[test]
fn the_transport_reads_no_proxy_from_the_environment() {
    let target = answering("target");
    let proxy = answering("proxy");
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "proxy_child", "--test-threads=1", "--nocapture"])
        .env(CHILD, format!("{target}/api/v1/oauth-clients/local"))
        .env("HTTP_PROXY", &proxy)
        .env("http_proxy", &proxy)
        .env("ALL_PROXY", &proxy)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn with_client_sends_through_the_users_own_client() {
    // A server that answers with the `x-client` header it got.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let Some(Ok(mut stream)) = listener.incoming().next() else {
            return;
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut request = [0u8; 4096];
        let read = stream.read(&mut request).unwrap_or(0);
        let head = String::from_utf8_lossy(&request[..read]).to_lowercase();
        let body = head
            .lines()
            .find_map(|line| line.strip_prefix("x-client: "))
            .unwrap_or("none")
            .trim()
            .to_owned();
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(answer.as_bytes());
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let answer = runtime.block_on(async {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-client", http::HeaderValue::from_static("mine"));
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let transport = ReqwestTransport::with_client(client);
        assert!(transport.client().is_some());
        let request = http::Request::get(format!("http://{address}/api/v1/ping"))
            .body(Body::default())
            .unwrap();
        transport.send(request).await.unwrap()
    });
    assert_eq!(answer.body(), b"mine");
}
