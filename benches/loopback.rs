//! Whole sessions over loopback against the fake PeerTube, side by side with the same requests
//! sent by hand and with the `oauth2` crate; scale of the hyper driver; the size of an idle
//! session; a shared session under contention. Prints Markdown tables.
//!
//!     cargo bench --bench loopback --features ureq,hyper,fake
//!
//! Variants run interleaved, round after round, so machine noise hits them alike; each figure is
//! the median of the rounds. Results: BENCHMARKS.md.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use peertube_session::asynchronous::{AsyncClient, HyperTransport};
use peertube_session::blocking::Config;
use peertube_session::blocking::{BlockingClient, Transport, UreqTransport};
use peertube_session::fake::{FakePeerTube, FakeUser};
use peertube_session::{
    Body, Credentials, Instance, OAuthClient, Session, TransportError, TransportErrorKind,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime};

/// Counts live heap bytes, for the size of an idle session.
struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const PASSWORD: &str = "correct horse battery staple";
const ROUNDS: usize = 7;
const SESSIONS_PER_ROUND: usize = 100;

fn fake() -> FakePeerTube {
    FakePeerTube::builder()
        .user(FakeUser::new("alice", "alice@example.org", PASSWORD))
        .no_rate_limit()
        .build()
}

fn credentials() -> Credentials {
    Credentials::password("alice", PASSWORD)
}

/// A clock a day ahead of the fake's once `ahead` is set, so the driver's next step refreshes.
fn clock(
    fake: &FakePeerTube,
    ahead: &Arc<AtomicU64>,
) -> impl Fn() -> SystemTime + Send + Sync + 'static {
    let (fake, ahead) = (fake.clone(), ahead.clone());
    move || fake.now() + Duration::from_secs(ahead.load(Ordering::Relaxed))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Runs each variant `ROUNDS` times, interleaved, and returns sessions per second (median).
fn race(variants: &mut [(&str, &mut dyn FnMut())]) -> Vec<f64> {
    let mut rates = vec![Vec::new(); variants.len()];
    for (_, run) in variants.iter_mut() {
        run(); // warm-up: connections, caches
    }
    for _ in 0..ROUNDS {
        for (index, (_, run)) in variants.iter_mut().enumerate() {
            let started = Instant::now();
            for _ in 0..SESSIONS_PER_ROUND {
                run();
            }
            rates[index].push(SESSIONS_PER_ROUND as f64 / started.elapsed().as_secs_f64());
        }
    }
    rates.into_iter().map(median).collect()
}

fn form(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap()
}

/// The password grant as PeerTube's own clients send it.
fn login_form(client_id: &str, client_secret: &str) -> String {
    form(&[
        ("client_id", client_id),
        ("client_secret", client_secret),
        ("grant_type", "password"),
        ("response_type", "code"),
        ("scope", "upload"),
        ("username", "alice"),
        ("password", PASSWORD),
    ])
}

fn refresh_form(client_id: &str, client_secret: &str, refresh_token: &str) -> String {
    form(&[
        ("client_id", client_id),
        ("client_secret", client_secret),
        ("grant_type", "refresh_token"),
        ("response_type", "code"),
        ("refresh_token", refresh_token),
    ])
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

// ----- blocking -----

fn blocking_driver_session<T: Transport + Clone>(
    fake: &FakePeerTube,
    instance: &Instance,
    transport: &T,
    logout: bool,
) {
    let ahead = Arc::new(AtomicU64::new(0));
    let client = BlockingClient::new(transport.clone(), instance.clone())
        .with_config(Config::builder().clock(clock(fake, &ahead)).build());
    client.login(&credentials()).unwrap();
    ahead.store(86_400, Ordering::Relaxed);
    client.ensure_fresh().unwrap();
    if logout {
        client.logout().unwrap();
    }
}

fn plain_ureq_session(agent: &ureq::Agent, base: &str) {
    let read = |mut response: http::Response<ureq::Body>| {
        json(&response.body_mut().read_to_vec().unwrap())
    };
    let pair = read(
        agent
            .get(format!("{base}/api/v1/oauth-clients/local"))
            .call()
            .unwrap(),
    );
    let (id, secret) = (
        pair["client_id"].as_str().unwrap(),
        pair["client_secret"].as_str().unwrap(),
    );
    let token_url = format!("{base}/api/v1/users/token");
    let login = login_form(id, secret);
    let tokens = read(
        agent
            .post(&token_url)
            .header("content-type", "application/x-www-form-urlencoded")
            .send(login)
            .unwrap(),
    );
    let refresh = refresh_form(id, secret, tokens["refresh_token"].as_str().unwrap());
    let tokens = read(
        agent
            .post(&token_url)
            .header("content-type", "application/x-www-form-urlencoded")
            .send(refresh)
            .unwrap(),
    );
    let access = tokens["access_token"].as_str().unwrap();
    read(
        agent
            .post(format!("{base}/api/v1/users/revoke-token"))
            .header("authorization", format!("Bearer {access}"))
            .send_empty()
            .unwrap(),
    );
}

fn oauth2_session(agent: &ureq2::Agent, base: &str) {
    use oauth2::basic::BasicClient;
    use oauth2::{
        AuthType, ClientId, ClientSecret, ResourceOwnerPassword, ResourceOwnerUsername,
        TokenResponse, TokenUrl,
    };
    let pair = json(
        agent
            .get(&format!("{base}/api/v1/oauth-clients/local"))
            .call()
            .unwrap()
            .into_string()
            .unwrap()
            .as_bytes(),
    );
    let client = BasicClient::new(ClientId::new(
        pair["client_id"].as_str().unwrap().to_owned(),
    ))
    .set_client_secret(ClientSecret::new(
        pair["client_secret"].as_str().unwrap().to_owned(),
    ))
    .set_auth_type(AuthType::RequestBody)
    .set_token_uri(TokenUrl::new(format!("{base}/api/v1/users/token")).unwrap());
    let tokens = client
        .exchange_password(
            &ResourceOwnerUsername::new("alice".into()),
            &ResourceOwnerPassword::new(PASSWORD.into()),
        )
        .request(agent)
        .unwrap();
    client
        .exchange_refresh_token(tokens.refresh_token().unwrap())
        .request(agent)
        .unwrap();
}

// ----- async -----

async fn hyper_driver_session<C>(
    fake: &FakePeerTube,
    transport: &HyperTransport<C>,
    session: Session,
) where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let ahead = Arc::new(AtomicU64::new(0));
    let client = AsyncClient::from_session(transport.clone(), session)
        .with_config(Config::builder().clock(clock(fake, &ahead)).build());
    client.login(&credentials()).await.unwrap();
    ahead.store(86_400, Ordering::Relaxed);
    client.ensure_fresh().await.unwrap();
    client.logout().await.unwrap();
}

async fn plain_hyper_session(client: &Client<HttpConnector, Full<Bytes>>, base: &str) {
    async fn send(
        client: &Client<HttpConnector, Full<Bytes>>,
        request: http::Request<Full<Bytes>>,
    ) -> serde_json::Value {
        let response = client.request(request).await.unwrap();
        json(&response.into_body().collect().await.unwrap().to_bytes())
    }
    let post = |url: &str, body: String| {
        http::Request::post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    let get = http::Request::get(format!("{base}/api/v1/oauth-clients/local"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let pair = send(client, get).await;
    let (id, secret) = (
        pair["client_id"].as_str().unwrap(),
        pair["client_secret"].as_str().unwrap(),
    );
    let token_url = format!("{base}/api/v1/users/token");
    let login = login_form(id, secret);
    let tokens = send(client, post(&token_url, login)).await;
    let refresh = refresh_form(id, secret, tokens["refresh_token"].as_str().unwrap());
    let tokens = send(client, post(&token_url, refresh)).await;
    let revoke = http::Request::post(format!("{base}/api/v1/users/revoke-token"))
        .header(
            "authorization",
            format!("Bearer {}", tokens["access_token"].as_str().unwrap()),
        )
        .body(Full::new(Bytes::new()))
        .unwrap();
    send(client, revoke).await;
}

fn main() {
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return; // `cargo test --benches` runs benches as tests; this one is run by hand.
    }
    println!("# peertube-session loopback benchmarks\n");
    whole_sessions();
    // `-- sessions` runs only the comparison above.
    if std::env::args().any(|a| a == "sessions") {
        return;
    }
    scale();
    idle_session_size();
    contention();
}

/// The driver over a bare ureq agent with no timeout: what the driver itself costs, apart from
/// the transport's timeout bookkeeping.
#[derive(Clone)]
struct UntimedUreq(ureq::Agent);

impl Transport for UntimedUreq {
    fn send(
        &self,
        request: http::Request<Body>,
    ) -> Result<http::Response<Vec<u8>>, TransportError> {
        let failed = |e: ureq::Error| TransportError::new(TransportErrorKind::Other, e);
        let response = self.0.run(request.map(Body::into_vec)).map_err(failed)?;
        let (parts, mut body) = response.into_parts();
        Ok(http::Response::from_parts(
            parts,
            body.read_to_vec().map_err(failed)?,
        ))
    }
}

fn whole_sessions() {
    let fake = fake();
    let server = fake.serve().unwrap();
    let base = server.base_url();
    let instance = Instance::new(&base).unwrap();
    // The same phase split as `UreqTransport`'s 30 s (its docs): an IP address, no lookup.
    let share = |percent: u32| Some(Duration::from_secs(30) * percent / 100);
    let timed_agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(share(15))
        .timeout_send_request(share(5))
        .timeout_send_body(share(5))
        .timeout_recv_response(share(55))
        .timeout_recv_body(share(15))
        .build()
        .into();
    let by_name = Instance::new(&base.replace("127.0.0.1", "localhost")).unwrap();
    let untimed_agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let transport = UreqTransport::new();
    let untimed = UntimedUreq(untimed_agent.clone());
    let plain_agent = ureq::Agent::new_with_defaults();
    let agent2 = ureq2::Agent::new();

    let rates = race(&mut [
        ("ureq driver", &mut || {
            blocking_driver_session(&fake, &instance, &transport, true)
        }),
        ("plain ureq, same timeout", &mut || {
            plain_ureq_session(&timed_agent, &base)
        }),
        ("driver over untimed ureq", &mut || {
            blocking_driver_session(&fake, &instance, &untimed, true)
        }),
        ("plain ureq, no timeout", &mut || {
            plain_ureq_session(&plain_agent, &base)
        }),
        ("ureq driver, host name", &mut || {
            blocking_driver_session(&fake, &by_name, &transport, true)
        }),
    ]);
    println!("## Whole session over loopback (client → login → refresh → logout)\n");
    println!("| variant | sessions/s | ratio |");
    println!("|---|---|---|");
    println!(
        "| `BlockingClient` + `UreqTransport` (30 s timeout split across phases, 64 KiB cap) | {:.0} | {:.2} of the next row |",
        rates[0],
        rates[0] / rates[1]
    );
    println!(
        "| plain ureq by hand, same 30 s phase timeouts | {:.0} | 1.00 |",
        rates[1]
    );
    println!(
        "| `BlockingClient` over a bare ureq agent, no timeout | {:.0} | {:.2} of the next row |",
        rates[2],
        rates[2] / rates[3]
    );
    println!(
        "| plain ureq by hand, no timeout (ureq's default) | {:.0} | 1.00 |",
        rates[3]
    );
    println!(
        "| `BlockingClient` + `UreqTransport` to `localhost` (a bounded lookup: a thread per request) | {:.0} | {:.2} of the first row |",
        rates[4],
        rates[4] / rates[0]
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let hyper_transport = runtime.block_on(async { HyperTransport::new() });
    let plain = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let rates = race(&mut [
        ("hyper driver", &mut || {
            runtime.block_on(hyper_driver_session(
                &fake,
                &hyper_transport,
                Session::new(instance.clone()),
            ))
        }),
        ("plain hyper", &mut || {
            runtime.block_on(plain_hyper_session(&plain, &base))
        }),
    ]);
    println!(
        "| `AsyncClient` + `HyperTransport` (30 s timeout, 64 KiB cap) | {:.0} | {:.2} of the next row |",
        rates[0],
        rates[0] / rates[1]
    );
    println!(
        "| plain hyper-util client by hand | {:.0} | 1.00 |",
        rates[1]
    );

    let rates = race(&mut [
        ("ureq driver, no logout", &mut || {
            blocking_driver_session(&fake, &instance, &transport, false)
        }),
        ("driver over untimed ureq, no logout", &mut || {
            blocking_driver_session(&fake, &instance, &untimed, false)
        }),
        ("oauth2", &mut || oauth2_session(&agent2, &base)),
    ]);
    println!(
        "\n## Against the `oauth2` crate (client → login → refresh; oauth2 has no PeerTube logout)\n"
    );
    println!("| variant | sessions/s | ratio |");
    println!("|---|---|---|");
    println!(
        "| `BlockingClient` + `UreqTransport` (30 s timeout split across phases) | {:.0} | {:.2} of oauth2 |",
        rates[0],
        rates[0] / rates[2]
    );
    println!(
        "| `BlockingClient` over a bare ureq agent, no timeout | {:.0} | {:.2} of oauth2 |",
        rates[1],
        rates[1] / rates[2]
    );
    println!(
        "| oauth2 5 + its `ureq` feature (ureq 2, no global timeout), client pair fetched by hand | {:.0} | 1.00 |\n",
        rates[2]
    );
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn scale() {
    println!("## Scale: the hyper driver, independent sessions at once (login + refresh each)\n");
    println!("| sessions at once | token requests/s | wall time | peak RSS of the process |");
    println!("|---|---|---|---|");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for sessions in [1usize, 16, 256, 1024] {
        let fake = fake();
        let server = fake.serve().unwrap();
        let instance = Instance::new(&server.base_url()).unwrap();
        let (id, secret) = fake.client_pair();
        let transport = runtime.block_on(async { HyperTransport::new() });
        let mut times = Vec::new();
        for _ in 0..3 {
            let started = Instant::now();
            runtime.block_on(async {
                let tasks: Vec<_> = (0..sessions)
                    .map(|_| {
                        let (fake, instance, transport) =
                            (fake.clone(), instance.clone(), transport.clone());
                        let client = OAuthClient::new(id.clone(), secret.clone());
                        tokio::spawn(async move {
                            let ahead = Arc::new(AtomicU64::new(0));
                            let client = AsyncClient::from_session(
                                transport,
                                Session::with_client(instance, client),
                            )
                            .with_config(Config::builder().clock(clock(&fake, &ahead)).build());
                            client.login(&credentials()).await.unwrap();
                            ahead.store(86_400, Ordering::Relaxed);
                            client.ensure_fresh().await.unwrap();
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
            });
            times.push(started.elapsed().as_secs_f64());
        }
        let seconds = median(times);
        println!(
            "| {sessions} | {:.0} | {:.1} ms | {} MiB |",
            (2 * sessions) as f64 / seconds,
            seconds * 1000.0,
            peak_rss_kib() / 1024
        );
    }
    println!();
}

fn idle_session_size() {
    let instance = Instance::new("https://video.example.org").unwrap();
    let mut session = Session::with_client(
        instance,
        OAuthClient::new(
            "grvyb3ovub45ir4zv08p1cy1hlg3urym",
            "zP04u0OxKFL1SNfiZlb4y53qnusyJzuu",
        ),
    );
    let (_, pending) = session.login(&credentials()).unwrap();
    let answer = http::Response::builder()
        .status(200)
        .body(br#"{"token_type":"Bearer","access_token":"9557619c8ec82daae2de531b391d58e4e678131d","refresh_token":"39ba8dd627ce985f26af8b9593439f8d1c598d8b","expires_in":86399,"refresh_token_expires_in":1209599}"#.to_vec())
        .unwrap();
    session.handle(pending, &answer, SystemTime::now()).unwrap();
    let saved = session.save();
    drop(session);
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let session = Box::new(Session::restore(saved.clone()).unwrap());
    let heap = LIVE_BYTES.load(Ordering::Relaxed) - before;
    let strings = "https://video.example.org".len() + 32 + 32 + 40 + 40;
    println!("## Size of one idle logged-in session\n");
    println!("| what | bytes |");
    println!("|---|---|");
    println!("| heap, including the `Box` holding it | {heap} |");
    println!(
        "| of which the strings it must hold (base URL, client id and secret, two tokens) | {strings} |"
    );
    println!("| overhead beyond those strings | {} |\n", heap - strings);
    drop(session);
    drop(saved);
}

fn contention() {
    const THREADS: usize = 64;
    const CALLS_PER_THREAD: usize = 64;
    const EXPIRE_EVERY: u64 = 256;
    let fake = fake();
    let server = fake.serve().unwrap();
    let instance = Instance::new(&server.base_url()).unwrap();
    let epoch = Arc::new(AtomicU64::new(0));
    let calls = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let clock_fake = fake.clone();
    let clock_epoch = epoch.clone();
    let client = Arc::new(
        BlockingClient::new(UreqTransport::new(), instance.clone()).with_config(
            Config::builder()
                .clock(move || {
                    clock_fake.now()
                        + Duration::from_secs(86_400 * clock_epoch.load(Ordering::Relaxed))
                })
                .build(),
        ),
    );
    client.login(&credentials()).unwrap();
    let start = Arc::new(Barrier::new(THREADS));
    let started = Instant::now();
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (client, start, instance, epoch, calls, failed) = (
                client.clone(),
                start.clone(),
                instance.clone(),
                epoch.clone(),
                calls.clone(),
                failed.clone(),
            );
            std::thread::spawn(move || {
                start.wait();
                for _ in 0..CALLS_PER_THREAD {
                    let call = calls.fetch_add(1, Ordering::Relaxed) + 1;
                    if call % EXPIRE_EVERY == 0 {
                        epoch.fetch_add(1, Ordering::Relaxed);
                    }
                    let me = http::Request::get(instance.uri("/api/v1/users/me").unwrap())
                        .body(Body::default())
                        .unwrap();
                    if !client.send_authorized(me).unwrap().status().is_success() {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let seconds = started.elapsed().as_secs_f64();
    let total = (THREADS * CALLS_PER_THREAD) as f64;
    let counters = fake.counters();
    println!(
        "## Shared session under contention ({THREADS} threads, one `BlockingClient`, token expires every {EXPIRE_EVERY} calls)\n"
    );
    println!(
        "| calls | calls/s | expiries | refreshes sent | refresh requests per refresh token (max) | calls not answered 200 |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| {} | {:.0} | {} | {} | {} | {} |\n",
        total,
        total / seconds,
        epoch.load(Ordering::Relaxed),
        counters.refreshes,
        counters.max_refreshes_per_token(),
        failed.load(Ordering::Relaxed)
    );
}
