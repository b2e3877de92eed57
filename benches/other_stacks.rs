//! The session on other HTTP stacks, side by side with the same work done by hand: a whole
//! session over `ReqwestTransport` against plain reqwest; one authorized API call through the
//! reqwest middleware against plain reqwest with a static bearer header; the same through the
//! tower layer against the bare hyper-util client. Prints a Markdown table.
//!
//!     cargo bench --bench other_stacks --features reqwest-middleware,tower,ureq,hyper,fake
//!
//! Variants run interleaved, round after round, so machine noise hits them alike; each ratio is
//! the median of the rounds' ratios, by the wall clock and per CPU-second of the thread that
//! ran the client (a current-thread runtime; the fake serves from a thread of its own).
//! Results: BENCHMARKS.md.

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use peertube_session::asynchronous::{
    AsyncClient, AuthorizeLayer, Config, HttpsConnector, HyperTransport, ReqwestTransport,
    SessionMiddleware,
};
use peertube_session::{Instance, Session};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use support::*;
use tower::{Layer, ServiceExt};

fn main() {
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return; // `cargo test --benches` runs benches as tests; this one is run by hand.
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fake = fake();
    let server = fake.serve().unwrap();
    let base = server.base_url();
    let instance = Instance::new(&base).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The user's own reqwest client, set as `ReqwestTransport::new` sets its own.
    let plain = runtime.block_on(async {
        reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    });
    let transport = runtime.block_on(async { ReqwestTransport::new() });

    println!("# The session on other HTTP stacks\n");
    println!("| variant | runs/s | ratio (wall) | ratio (CPU) |");
    println!("|---|---|---|---|");

    // The hyper driver beside it, in the same rounds: the yardstick of section 2, measured
    // under the same load.
    let hyper_transport = runtime.block_on(async { HyperTransport::new() });
    let plain_hyper: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let sessions = race_rounds(
        ROUNDS,
        &mut [
            ("reqwest driver", &mut || {
                runtime.block_on(reqwest_driver_session(&fake, &transport, &instance))
            }),
            ("plain reqwest", &mut || {
                runtime.block_on(plain_reqwest_session(&plain, &base))
            }),
            ("hyper driver", &mut || {
                runtime.block_on(hyper_driver_session(
                    &fake,
                    &hyper_transport,
                    Session::new(instance.clone()),
                    true,
                ))
            }),
            ("plain hyper", &mut || {
                runtime.block_on(plain_hyper_session(&plain_hyper, &base, true))
            }),
        ],
    );
    row(
        "whole session: `AsyncClient` + `ReqwestTransport`",
        &sessions,
        0,
        1,
    );
    row("whole session: plain reqwest by hand", &sessions, 1, 1);
    row(
        "whole session: `AsyncClient` + `HyperTransport`",
        &sessions,
        2,
        3,
    );
    row("whole session: plain hyper-util by hand", &sessions, 3, 3);

    // One logged-in session for the API calls; its token lives a day, so no refresh here.
    // The system clock, as in a program (the fake's clock takes the lock its server holds
    // while it answers, which would charge the session for the fake's contention).
    let session = Arc::new(AsyncClient::new(transport.clone(), instance.clone()));
    runtime.block_on(session.login(&credentials())).unwrap();
    let token = runtime.block_on(session.access_token()).unwrap();
    let bearer = format!("Bearer {}", token.expose_secret());
    let me = format!("{base}/api/v1/users/me");

    let middleware = reqwest_middleware::ClientBuilder::new(plain.clone())
        .with(SessionMiddleware::new(session.clone()))
        .build();
    // The chain's own cost, apart from the session's: a middleware that only sets the header.
    let static_bearer = StaticBearer(http::HeaderValue::from_str(&bearer).unwrap());
    let chain_only = reqwest_middleware::ClientBuilder::new(plain.clone())
        .with(static_bearer.clone())
        .build();
    let calls = race_rounds(
        ROUNDS,
        &mut [
            ("middleware", &mut || {
                runtime.block_on(async {
                    let answer = middleware.get(&me).send().await.unwrap();
                    assert_eq!(answer.status(), 200);
                    answer.bytes().await.unwrap();
                })
            }),
            ("static-bearer middleware", &mut || {
                runtime.block_on(async {
                    let answer = chain_only.get(&me).send().await.unwrap();
                    assert_eq!(answer.status(), 200);
                    answer.bytes().await.unwrap();
                })
            }),
            ("plain reqwest, static bearer", &mut || {
                runtime.block_on(async {
                    let answer = plain
                        .get(&me)
                        .header("authorization", &bearer)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(answer.status(), 200);
                    answer.bytes().await.unwrap();
                })
            }),
        ],
    );
    row("API call: through `SessionMiddleware`", &calls, 0, 2);
    row(
        "API call: through a middleware setting a static bearer",
        &calls,
        1,
        2,
    );
    row("API call: plain reqwest, static bearer", &calls, 2, 2);
    println!(
        "| (`SessionMiddleware` over the static-bearer middleware) | | {:.3} | {:.3} |",
        calls.ratio(0, 1),
        calls.cpu_ratio(0, 1)
    );

    let hyper_session: Arc<AsyncClient<HyperTransport<HttpsConnector>>> =
        Arc::new(AsyncClient::from_session(
            runtime.block_on(async { HyperTransport::new() }),
            Session::restore(session.save()).unwrap(),
        ));
    let bare: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let layered = AuthorizeLayer::new(hyper_session).layer(bare.clone());
    // The layering's own cost, apart from the session's: a layer that only sets the header.
    let header = http::HeaderValue::from_str(&bearer).unwrap();
    let map_only = tower::util::MapRequestLayer::new(move |mut request: http::Request<_>| {
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, header.clone());
        request
    })
    .layer(bare.clone());
    let uri: http::Uri = me.parse().unwrap();
    let calls = race_rounds(
        ROUNDS,
        &mut [
            ("tower layer", &mut || {
                runtime.block_on(async {
                    let request = http::Request::get(uri.clone())
                        .body(Full::default())
                        .unwrap();
                    let answer = layered.clone().oneshot(request).await.unwrap();
                    assert_eq!(answer.status(), 200);
                    answer.into_body().collect().await.unwrap();
                })
            }),
            ("static-bearer layer", &mut || {
                runtime.block_on(async {
                    let request = http::Request::get(uri.clone())
                        .body(Full::default())
                        .unwrap();
                    let answer = map_only.clone().oneshot(request).await.unwrap();
                    assert_eq!(answer.status(), 200);
                    answer.into_body().collect().await.unwrap();
                })
            }),
            ("bare hyper-util, static bearer", &mut || {
                runtime.block_on(async {
                    let request = http::Request::get(uri.clone())
                        .header("authorization", &bearer)
                        .body(Full::default())
                        .unwrap();
                    let answer = bare.request(request).await.unwrap();
                    assert_eq!(answer.status(), 200);
                    answer.into_body().collect().await.unwrap();
                })
            }),
        ],
    );
    row(
        "API call: through `AuthorizeLayer` around hyper-util",
        &calls,
        0,
        2,
    );
    row(
        "API call: through a layer setting a static bearer",
        &calls,
        1,
        2,
    );
    row(
        "API call: bare hyper-util client, static bearer",
        &calls,
        2,
        2,
    );
    println!(
        "| (`AuthorizeLayer` over the static-bearer layer) | | {:.3} | {:.3} |",
        calls.ratio(0, 1),
        calls.cpu_ratio(0, 1)
    );
    without_network(&runtime);
}

/// The session's own work per call, with no network under it: the layer around a service that
/// answers at once (with a `Date`, as PeerTube does), against a layer that only sets the header.
fn without_network(runtime: &tokio::runtime::Runtime) {
    let fake = fake();
    let in_process = fake.clone();
    let session = Arc::new(AsyncClient::new(
        move |request: http::Request<peertube_session::Body>| {
            let answer = in_process.handle(&request);
            async move { Ok(answer) }
        },
        Instance::new("http://127.0.0.1:9").unwrap(),
    ));
    runtime.block_on(session.login(&credentials())).unwrap();
    let date = http::HeaderValue::from_str(&httpdate::fmt_http_date(fake.now())).unwrap();
    let answer_at_once = tower::service_fn(move |_: http::Request<Full<Bytes>>| {
        let mut answer = http::Response::new(Full::<Bytes>::default());
        answer
            .headers_mut()
            .insert(http::header::DATE, date.clone());
        std::future::ready(Ok::<_, std::convert::Infallible>(answer))
    });
    let layered = AuthorizeLayer::new(session).layer(answer_at_once.clone());
    let header = http::HeaderValue::from_static("Bearer 0123456789abcdef0123456789abcdef01234567");
    let map_only = tower::util::MapRequestLayer::new(move |mut request: http::Request<_>| {
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, header.clone());
        request
    })
    .layer(answer_at_once);
    let uri: http::Uri = "http://127.0.0.1:9/api/v1/users/me".parse().unwrap();
    const BATCH: usize = 1000;
    let rates = race_rounds(
        ROUNDS,
        &mut [
            ("layer, no network", &mut || {
                runtime.block_on(async {
                    for _ in 0..BATCH {
                        let request = http::Request::get(uri.clone()).body(Full::default());
                        layered.clone().oneshot(request.unwrap()).await.unwrap();
                    }
                })
            }),
            ("static bearer, no network", &mut || {
                runtime.block_on(async {
                    for _ in 0..BATCH {
                        let request = http::Request::get(uri.clone()).body(Full::default());
                        map_only.clone().oneshot(request.unwrap()).await.unwrap();
                    }
                })
            }),
        ],
    );
    let nanos = |index: usize| 1e9 / (rates.cpu_rate(index) * BATCH as f64);
    println!(
        "\nThe session's own work per call, no network (`AuthorizeLayer` around a service that \
         answers at once, with a `Date`): {:.0} ns of CPU, against {:.0} ns for a layer that \
         only sets a static bearer: {:.0} ns more.",
        nanos(0),
        nanos(1),
        nanos(0) - nanos(1)
    );
}

/// A middleware that puts one fixed `Authorization` on every request.
#[derive(Clone)]
struct StaticBearer(http::HeaderValue);

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for StaticBearer {
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut http::Extensions,
        next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, self.0.clone());
        next.run(request, extensions).await
    }
}

fn row(variant: &str, rates: &Rates, index: usize, of: usize) {
    println!(
        "| {variant} | {:.0} | {:.3} | {:.3} |",
        rates.rate(index),
        rates.ratio(index, of),
        rates.cpu_ratio(index, of)
    );
}

/// Client pair, login, refresh (the clock moved a day on), logout, with the reqwest driver.
async fn reqwest_driver_session(
    fake: &peertube_session::fake::FakePeerTube,
    transport: &ReqwestTransport,
    instance: &Instance,
) {
    let ahead = Arc::new(AtomicU64::new(0));
    let client = AsyncClient::new(transport.clone(), instance.clone())
        .with_config(Config::builder().clock(clock(fake, &ahead)).build());
    client.login(&credentials()).await.unwrap();
    ahead.store(86_400, Ordering::Relaxed);
    client.ensure_fresh().await.unwrap();
    client.logout().await.unwrap();
}

/// The same four requests by hand with reqwest.
async fn plain_reqwest_session(client: &reqwest::Client, base: &str) {
    async fn read(response: reqwest::Response) -> serde_json::Value {
        json(&response.bytes().await.unwrap())
    }
    let form = |body: String| {
        client
            .post(format!("{base}/api/v1/users/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    };
    let pair = read(
        client
            .get(format!("{base}/api/v1/oauth-clients/local"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let (id, secret) = (
        pair["client_id"].as_str().unwrap(),
        pair["client_secret"].as_str().unwrap(),
    );
    let tokens = read(form(login_form(id, secret)).send().await.unwrap()).await;
    let refresh = refresh_form(id, secret, tokens["refresh_token"].as_str().unwrap());
    let tokens = read(form(refresh).send().await.unwrap()).await;
    let access = tokens["access_token"].as_str().unwrap();
    read(
        client
            .post(format!("{base}/api/v1/users/revoke-token"))
            .header("authorization", format!("Bearer {access}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
}
