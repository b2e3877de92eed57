//! Whole sessions over loopback against the fake PeerTube, side by side with the same requests
//! sent by hand and with the `oauth2` crate; scale of the hyper driver; the size of an idle
//! session; a shared session under contention. Prints Markdown tables.
//!
//!     cargo bench --bench loopback --features ureq,hyper,fake
//!
//! Variants run interleaved, round after round, so machine noise hits them alike; each figure is
//! the median of the rounds. Results: BENCHMARKS.md.

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use peertube_session::asynchronous::{AsyncClient, HyperTransport};
use peertube_session::blocking::Config;
use peertube_session::blocking::{BlockingClient, Transport, UreqTransport};
use peertube_session::{Body, Instance, OAuthClient, Session, TransportError, TransportErrorKind};
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

mod support;

use support::*;

#[global_allocator]
static ALLOCATOR: Counting = Counting;

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
    // `UreqTransport`'s bound: one 30 s timeout for the whole exchange.
    let timed_agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
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
            plain_ureq_session(&timed_agent, &base, true);
        }),
        ("driver over untimed ureq", &mut || {
            blocking_driver_session(&fake, &instance, &untimed, true)
        }),
        ("plain ureq, no timeout", &mut || {
            plain_ureq_session(&plain_agent, &base, true);
        }),
    ]);
    println!("## Whole session over loopback (client → login → refresh → logout)\n");
    println!("| variant | sessions/s | ratio |");
    println!("|---|---|---|");
    println!(
        "| `BlockingClient` + `UreqTransport` (one 30 s timeout per exchange, 64 KiB cap) | {:.0} | {:.2} of the next row |",
        rates[0],
        rates[0] / rates[1]
    );
    println!(
        "| plain ureq by hand, same 30 s global timeout | {:.0} | 1.00 |",
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
                true,
            ))
        }),
        ("plain hyper", &mut || {
            runtime.block_on(plain_hyper_session(&plain, &base, true))
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
        "| `BlockingClient` + `UreqTransport` (one 30 s timeout per exchange) | {:.0} | {:.2} of oauth2 |",
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
