//! `ReqwestTransport` reads no proxy from the environment: a child process with `HTTP_PROXY`
//! (and its kin) pointing at a recording server sends through the transport straight to the
//! target, while a reqwest client built with reqwest's defaults in the same process goes
//! through the proxy (so the variables do reach reqwest there). `with_client` sends through the
//! user's own client.
#![cfg(all(feature = "reqwest", feature = "fake"))]

mod support;

use peertube_session::Body;
use peertube_session::asynchronous::{AsyncTransport, ExchangeLimits, ReqwestTransport};
use std::time::Duration;

/// Set in the child: `target URL`.
const CHILD: &str = "PEERTUBE_SESSION_PROXY_CHILD";

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
    let (target, _) = support::answering_server(|_| "target".to_owned());
    let (proxy, _) = support::answering_server(|_| "proxy".to_owned());
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
    let (server, _) = support::answering_server(|head| {
        head.lines()
            .find_map(|line| line.strip_prefix("x-client: "))
            .unwrap_or("none")
            .trim()
            .to_owned()
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
        let request = http::Request::get(format!("{server}/api/v1/ping"))
            .body(Body::default())
            .unwrap();
        transport.send(request).await.unwrap()
    });
    assert_eq!(answer.body(), b"mine");
}
