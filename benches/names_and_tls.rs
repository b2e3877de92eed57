//! The footing every real instance puts a client on: a host name, and TLS. Whole sessions and
//! authorized calls to `localhost`, plain and over TLS (a self-signed certificate this bench
//! makes and each client trusts), ours against plain ureq, plain hyper and `oauth2` with the
//! same host name, the same TLS and the same 30 s timeout; and the TLS handshakes each client
//! makes. Prints Markdown tables.
//!
//!     cargo bench --bench names_and_tls --features ureq,hyper,fake
//!
//! A whole session here is client pair → password grant → refresh grant, without the logout
//! (`oauth2` cannot revoke the way PeerTube does), so every variant does the same work.
//! Variants run interleaved, round after round; a rate is the median of the rounds, a ratio
//! the median of the rounds' ratios (each round runs the variants moments apart, so load that
//! comes and goes on the machine cancels out). Each ratio is given twice: by the wall clock,
//! and by the CPU time of the calling thread (the client's whole work; the server runs on
//! threads of its own), which a busy machine disturbs less.
//! Results: BENCHMARKS.md.

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo};
use peertube_session::Instance;
use peertube_session::Session;
use peertube_session::asynchronous::{AsyncClient, HyperTransport};
use peertube_session::blocking::{BlockingClient, Config, UreqTransport};
use peertube_session::fake::FakePeerTube;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use support::*;

const TIMEOUT: Duration = Duration::from_secs(30);
/// Authorized calls per run, so that a round of runs takes as long as a round of sessions.
const CALLS_PER_RUN: usize = 4;
/// Rounds per comparison: more than the loopback bench's, since ratios here are taken round
/// by round (see [`Rates::ratio`]).
const ROUNDS_HERE: usize = 21;

fn main() {
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return; // `cargo test --benches` runs benches as tests; this one is run by hand.
    }
    println!("# peertube-session: to a host name and over TLS\n");
    let fake = fake();
    let plain = fake.serve().unwrap();
    let certificate = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let der = certificate.cert.der().clone();
    let key = PrivatePkcs8KeyDer::from(certificate.signing_key.serialize_der());
    let tls = serve_tls(&fake, der.clone(), key.into());
    let peers = Peers::trusting(&der);

    let port = plain.address().port();
    let by_name = format!("http://localhost:{port}");
    let by_ip = format!("http://127.0.0.1:{port}");
    let over_tls = format!("https://localhost:{}", tls.address.port());

    host_names(&fake, &peers, &by_name, &by_ip);
    over_tls_sessions(&fake, &peers, &over_tls);
    authorized_calls(&fake, &peers, &by_name, &over_tls);
    handshakes(&fake, &peers, &der, &over_tls, &tls);
}

/// Every client of the comparison, set up alike: 30 s for an exchange, trusting the bench's
/// certificate and nothing else.
struct Peers {
    ours: UreqTransport,
    ureq: ureq::Agent,
    /// Plain ureq without a timeout, which is also without a lookup thread per request.
    ureq_untimed: ureq::Agent,
    ureq2: ureq2::Agent,
    runtime: tokio::runtime::Runtime,
    hyper_ours: HyperTransport<TlsConnector>,
    hyper: Client<TlsConnector, Full<Bytes>>,
}

type TlsConnector = hyper_rustls::HttpsConnector<HttpConnector>;

impl Peers {
    fn trusting(certificate: &CertificateDer<'static>) -> Peers {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let hyper = runtime.block_on(async { hyper_client(certificate) });
        Peers {
            ours: ours(certificate),
            ureq: plain_ureq(certificate),
            ureq_untimed: ureq::Agent::config_builder()
                .tls_config(ureq_tls(certificate))
                .build()
                .into(),
            ureq2: ureq2_agent(certificate),
            hyper_ours: HyperTransport::with_client(hyper.clone()),
            hyper,
            runtime,
        }
    }
}

fn ureq_tls(certificate: &CertificateDer<'static>) -> ureq::tls::TlsConfig {
    let root = ureq::tls::Certificate::from_der(certificate).to_owned();
    ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::new_with_certs(&[root]))
        .build()
}

fn ours(certificate: &CertificateDer<'static>) -> UreqTransport {
    UreqTransport::builder()
        .tls_config(ureq_tls(certificate))
        .build()
}

fn plain_ureq(certificate: &CertificateDer<'static>) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .tls_config(ureq_tls(certificate))
        .build()
        .into()
}

fn rustls_client(certificate: &CertificateDer<'static>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certificate.clone()).unwrap();
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// `oauth2`'s own HTTP client (ureq 2), with its whole-request timeout.
fn ureq2_agent(certificate: &CertificateDer<'static>) -> ureq2::Agent {
    ureq2::AgentBuilder::new()
        .timeout(TIMEOUT)
        .tls_config(Arc::new(rustls_client(certificate)))
        .build()
}

fn hyper_client(certificate: &CertificateDer<'static>) -> Client<TlsConnector, Full<Bytes>> {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(rustls_client(certificate))
        .https_or_http()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(connector)
}

// ----- the server -----

/// The fake behind TLS on 127.0.0.1, counting the handshakes it completes.
struct TlsFake {
    address: SocketAddr,
    handshakes: Arc<AtomicUsize>,
}

/// Serves `fake` over TLS with `certificate`, on a thread and a single-threaded runtime of its
/// own like [`FakePeerTube::serve`]; it lives as long as the bench.
fn serve_tls(
    fake: &FakePeerTube,
    certificate: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> TlsFake {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![certificate], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let address = listener.local_addr().unwrap();
    let handshakes = Arc::new(AtomicUsize::new(0));
    let (fake, counted) = (fake.clone(), handshakes.clone());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            while let Ok((stream, _)) = listener.accept().await {
                let (acceptor, fake, counted) = (acceptor.clone(), fake.clone(), counted.clone());
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    counted.fetch_add(1, Ordering::Relaxed);
                    let service = service_fn(move |request: http::Request<Incoming>| {
                        let fake = fake.clone();
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = body.collect().await?.to_bytes();
                            let response = fake.handle(&http::Request::from_parts(parts, body));
                            Ok::<_, hyper::Error>(response.map(|b| Full::new(Bytes::from(b))))
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    TlsFake {
        address,
        handshakes,
    }
}

// ----- the tables -----

fn ureq_session(fake: &FakePeerTube, base: &str, transport: &UreqTransport) {
    blocking_driver_session(fake, &Instance::new(base).unwrap(), transport, false);
}

fn hyper_session<C: Connect + Clone + Send + Sync + 'static>(
    peers: &Peers,
    fake: &FakePeerTube,
    base: &str,
    transport: &HyperTransport<C>,
) {
    let session = Session::new(Instance::new(base).unwrap());
    peers
        .runtime
        .block_on(hyper_driver_session(fake, transport, session, false));
}

fn host_names(fake: &FakePeerTube, peers: &Peers, by_name: &str, by_ip: &str) {
    // Plain HTTP needs no roots; the same clients serve it.
    let rates = race_rounds(
        ROUNDS_HERE,
        &mut [
            ("ours, localhost", &mut || {
                ureq_session(fake, by_name, &peers.ours)
            }),
            ("ours, 127.0.0.1", &mut || {
                ureq_session(fake, by_ip, &peers.ours)
            }),
            ("oauth2, localhost", &mut || {
                oauth2_session(&peers.ureq2, by_name)
            }),
            ("oauth2, 127.0.0.1", &mut || {
                oauth2_session(&peers.ureq2, by_ip)
            }),
            ("plain ureq, localhost", &mut || {
                plain_ureq_session(&peers.ureq, by_name, false);
            }),
            ("plain ureq, 127.0.0.1", &mut || {
                plain_ureq_session(&peers.ureq, by_ip, false);
            }),
        ],
    );
    println!("## Whole sessions to a host name (plain HTTP, `localhost` and `127.0.0.1`)\n");
    println!("| variant | sessions/s | ratio |");
    println!("|---|---|---|");
    let row = |what: &str, rate: f64, ratio: String| println!("| {what} | {rate:.0} | {ratio} |");
    row(
        "`BlockingClient` + `UreqTransport` to `localhost`",
        rates.rate(0),
        format!(
            "{} of ours to 127.0.0.1, {} of oauth2 to localhost",
            both(&rates, 0, 1),
            both(&rates, 0, 2)
        ),
    );
    row(
        "`BlockingClient` + `UreqTransport` to `127.0.0.1`",
        rates.rate(1),
        format!("{} of oauth2 to 127.0.0.1", both(&rates, 1, 3)),
    );
    row(
        "oauth2 5 + ureq 2 (30 s timeout) to `localhost`",
        rates.rate(2),
        format!("{} of its own to 127.0.0.1", both(&rates, 2, 3)),
    );
    row(
        "oauth2 5 + ureq 2 (30 s timeout) to `127.0.0.1`",
        rates.rate(3),
        "1.00".into(),
    );
    row(
        "plain ureq 3 (30 s global timeout) to `localhost`",
        rates.rate(4),
        format!("{} of its own to 127.0.0.1", both(&rates, 4, 5)),
    );
    row(
        "plain ureq 3 (30 s global timeout) to `127.0.0.1`",
        rates.rate(5),
        "1.00".into(),
    );
    println!();
}

fn over_tls_sessions(fake: &FakePeerTube, peers: &Peers, base: &str) {
    let rates = race_rounds(
        ROUNDS_HERE,
        &mut [
            ("ours, ureq", &mut || ureq_session(fake, base, &peers.ours)),
            ("plain ureq", &mut || {
                plain_ureq_session(&peers.ureq, base, false);
            }),
            ("plain ureq, no timeout", &mut || {
                plain_ureq_session(&peers.ureq_untimed, base, false);
            }),
            ("oauth2", &mut || oauth2_session(&peers.ureq2, base)),
            ("ours, hyper", &mut || {
                hyper_session(peers, fake, base, &peers.hyper_ours)
            }),
            ("plain hyper", &mut || {
                peers
                    .runtime
                    .block_on(plain_hyper_session(&peers.hyper, base, false))
            }),
        ],
    );
    println!("## Whole sessions over TLS to `localhost`\n");
    println!("| variant | sessions/s | ratio |");
    println!("|---|---|---|");
    println!(
        "| `BlockingClient` + `UreqTransport` | {:.0} | {} of plain ureq, {} of plain ureq without a timeout, {} of oauth2 |",
        rates.rate(0),
        both(&rates, 0, 1),
        both(&rates, 0, 2),
        both(&rates, 0, 3)
    );
    println!(
        "| plain ureq 3, same TLS and 30 s global timeout | {:.0} | 1.00 |",
        rates.rate(1)
    );
    println!(
        "| plain ureq 3, same TLS, no timeout | {:.0} | 1.00 |",
        rates.rate(2)
    );
    println!(
        "| oauth2 5 + ureq 2, same TLS and 30 s timeout | {:.0} | 1.00 |",
        rates.rate(3)
    );
    println!(
        "| `AsyncClient` + `HyperTransport` (same hyper client) | {:.0} | {} of plain hyper, {} of oauth2 |",
        rates.rate(4),
        both(&rates, 4, 5),
        both(&rates, 4, 3)
    );
    println!(
        "| plain hyper-util + hyper-rustls, same TLS | {:.0} | 1.00 |\n",
        rates.rate(5)
    );
}

/// `GET /api/v1/users/me` with a bearer token, by each client: ours through
/// `send_authorized`, the others by hand.
fn authorized_calls(fake: &FakePeerTube, peers: &Peers, by_name: &str, over_tls: &str) {
    println!("## Authorized calls (`GET /api/v1/users/me`), logged in once\n");
    println!("| to | variant | calls/s | ratio |");
    println!("|---|---|---|---|");
    for base in [by_name, over_tls] {
        let instance = Instance::new(base).unwrap();
        let frozen = Arc::new(AtomicU64::new(0));
        let blocking = BlockingClient::new(peers.ours.clone(), instance.clone())
            .with_config(Config::builder().clock(clock(fake, &frozen)).build());
        blocking.login(&credentials()).unwrap();
        let asynchronous =
            AsyncClient::from_session(peers.hyper_ours.clone(), Session::new(instance.clone()))
                .with_config(Config::builder().clock(clock(fake, &frozen)).build());
        peers
            .runtime
            .block_on(asynchronous.login(&credentials()))
            .unwrap();
        let token = plain_ureq_session(&peers.ureq, base, false);
        let me = format!("{base}/api/v1/users/me");
        let bearer = format!("Bearer {token}");
        let request = || http::Request::get(&me).body(Vec::<u8>::new()).unwrap();
        let times = |call: &mut dyn FnMut()| {
            for _ in 0..CALLS_PER_RUN {
                call();
            }
        };
        let rates = race_rounds(
            ROUNDS_HERE,
            &mut [
                ("ours, ureq", &mut || {
                    times(&mut || assert_ok(blocking.send_authorized(request()).unwrap().status()))
                }),
                ("plain ureq", &mut || {
                    times(&mut || {
                        let mut response = peers
                            .ureq
                            .get(&me)
                            .header("authorization", &bearer)
                            .call()
                            .unwrap();
                        response.body_mut().read_to_vec().unwrap();
                    })
                }),
                ("ureq 2", &mut || {
                    times(&mut || {
                        let response = peers.ureq2.get(&me).set("authorization", &bearer).call();
                        response.unwrap().into_string().unwrap();
                    })
                }),
                ("ours, hyper", &mut || {
                    times(&mut || {
                        let response = peers
                            .runtime
                            .block_on(asynchronous.send_authorized(request()))
                            .unwrap();
                        assert_ok(response.status());
                    })
                }),
                ("plain hyper", &mut || {
                    times(&mut || {
                        peers.runtime.block_on(async {
                            let request = http::Request::get(&me)
                                .header("authorization", &bearer)
                                .body(Full::new(Bytes::new()))
                                .unwrap();
                            let response = peers.hyper.request(request).await.unwrap();
                            assert_ok(response.status());
                            response.into_body().collect().await.unwrap();
                        })
                    })
                }),
            ],
        );
        let calls = |rate: f64| rate * CALLS_PER_RUN as f64;
        let to = if base.starts_with("https") {
            "TLS"
        } else {
            "localhost"
        };
        println!(
            "| {to} | `BlockingClient::send_authorized` (ureq) | {:.0} | {} of plain ureq, {} of ureq 2 |",
            calls(rates.rate(0)),
            both(&rates, 0, 1),
            both(&rates, 0, 2)
        );
        println!(
            "| {to} | plain ureq 3 | {:.0} | 1.00 |",
            calls(rates.rate(1))
        );
        println!(
            "| {to} | ureq 2 (oauth2's client) | {:.0} | 1.00 |",
            calls(rates.rate(2))
        );
        println!(
            "| {to} | `AsyncClient::send_authorized` (hyper) | {:.0} | {} of plain hyper |",
            calls(rates.rate(3)),
            both(&rates, 3, 4)
        );
        println!(
            "| {to} | plain hyper | {:.0} | 1.00 |",
            calls(rates.rate(4))
        );
    }
    println!();
}

/// `a` over `b`: by the wall clock, and by the calling thread's CPU time.
fn both(rates: &Rates, a: usize, b: usize) -> String {
    format!(
        "**{:.2}** (CPU {:.2})",
        rates.ratio(a, b),
        rates.cpu_ratio(a, b)
    )
}

fn assert_ok(status: http::StatusCode) {
    assert_eq!(status, http::StatusCode::OK);
}

/// TLS handshakes a new client makes for `SESSIONS` whole sessions: with pooled connections,
/// one.
fn handshakes(
    fake: &FakePeerTube,
    peers: &Peers,
    certificate: &CertificateDer<'static>,
    base: &str,
    server: &TlsFake,
) {
    const SESSIONS: usize = 20;
    let counted = |run: &mut dyn FnMut()| {
        let before = server.handshakes.load(Ordering::Relaxed);
        for _ in 0..SESSIONS {
            run();
        }
        server.handshakes.load(Ordering::Relaxed) - before
    };
    let ours_fresh = ours(certificate);
    let ureq_fresh = plain_ureq(certificate);
    let ureq2_fresh = ureq2_agent(certificate);
    let hyper_fresh = peers.runtime.block_on(async { hyper_client(certificate) });
    let hyper_ours_fresh = peers
        .runtime
        .block_on(async { HyperTransport::with_client(hyper_client(certificate)) });
    let rows = [
        (
            "`BlockingClient` + `UreqTransport`",
            counted(&mut || ureq_session(fake, base, &ours_fresh)),
        ),
        (
            "plain ureq 3",
            counted(&mut || {
                plain_ureq_session(&ureq_fresh, base, false);
            }),
        ),
        (
            "oauth2 + ureq 2",
            counted(&mut || oauth2_session(&ureq2_fresh, base)),
        ),
        (
            "`AsyncClient` + `HyperTransport`",
            counted(&mut || hyper_session(peers, fake, base, &hyper_ours_fresh)),
        ),
        (
            "plain hyper",
            counted(&mut || {
                peers
                    .runtime
                    .block_on(plain_hyper_session(&hyper_fresh, base, false))
            }),
        ),
    ];
    println!("## TLS handshakes: a new client, {SESSIONS} whole sessions\n");
    println!("| variant | handshakes |");
    println!("|---|---|");
    for (variant, count) in rows {
        println!("| {variant} | {count} |");
    }
    println!();
}
