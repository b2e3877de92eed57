//! What the benches share: the fake, the clock, the race between variants, and one whole
//! session (client pair → password grant → refresh grant → revoke) sent by our drivers, by
//! plain ureq, by plain hyper and by `oauth2`, so every bench compares the same work.

// Each bench uses a part of this module.
#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::Connect;
use peertube_session::Session;
use peertube_session::asynchronous::{AsyncClient, HyperTransport};
use peertube_session::blocking::{BlockingClient, Config, Transport};
use peertube_session::fake::{FakePeerTube, FakeUser};
use peertube_session::{Credentials, Instance};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

pub const PASSWORD: &str = "correct horse battery staple";
pub const ROUNDS: usize = 7;
pub const SESSIONS_PER_ROUND: usize = 100;

pub fn fake() -> FakePeerTube {
    FakePeerTube::builder()
        .user(FakeUser::new("alice", "alice@example.org", PASSWORD))
        .no_rate_limit()
        .build()
}

pub fn credentials() -> Credentials {
    Credentials::password("alice", PASSWORD)
}

/// A clock a day ahead of the fake's once `ahead` is set, so the driver's next step refreshes.
pub fn clock(
    fake: &FakePeerTube,
    ahead: &Arc<AtomicU64>,
) -> impl Fn() -> SystemTime + Send + Sync + 'static {
    let (fake, ahead) = (fake.clone(), ahead.clone());
    move || fake.now() + Duration::from_secs(ahead.load(Ordering::Relaxed))
}

pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Runs each variant `ROUNDS` times `SESSIONS_PER_ROUND` runs, interleaved, and returns runs
/// per second (median).
pub fn race(variants: &mut [(&str, &mut dyn FnMut())]) -> Vec<f64> {
    let rates = race_rounds(ROUNDS, variants);
    (0..variants.len()).map(|index| rates.rate(index)).collect()
}

/// Each variant's runs per second, round by round: by the wall clock, and per second of CPU
/// time of the thread that ran them.
pub struct Rates {
    wall: Vec<Vec<f64>>,
    cpu: Vec<Vec<f64>>,
}

impl Rates {
    /// Variant `index`'s runs per second (median of the rounds).
    pub fn rate(&self, index: usize) -> f64 {
        median(self.wall[index].clone())
    }

    /// Variant `index`'s runs per CPU-second of the calling thread (median of the rounds).
    pub fn cpu_rate(&self, index: usize) -> f64 {
        median(self.cpu[index].clone())
    }

    /// Variant `a` over variant `b`: the median of the rounds' ratios. Both ran in the same
    /// round, moments apart, so load that comes and goes on the machine hits them alike.
    pub fn ratio(&self, a: usize, b: usize) -> f64 {
        paired(&self.wall[a], &self.wall[b])
    }

    /// Variant `a` over variant `b` in runs per CPU-second of the calling thread (which runs
    /// the client's whole work: ureq's, and hyper's on a current-thread runtime; the server
    /// runs on a thread of its own): what each client costs, whatever else the machine runs.
    pub fn cpu_ratio(&self, a: usize, b: usize) -> f64 {
        paired(&self.cpu[a], &self.cpu[b])
    }
}

fn paired(a: &[f64], b: &[f64]) -> f64 {
    median(a.iter().zip(b).map(|(a, b)| a / b).collect())
}

/// CPU time of the calling thread so far (Linux; zero elsewhere, which makes CPU ratios NaN).
pub fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|stat| stat.split_whitespace().next()?.parse().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

/// Runs each variant `rounds` times `SESSIONS_PER_ROUND` runs, interleaved.
///
/// With `BENCH_ONLY=<variant>` set, only that variant runs, `BENCH_RUNS` times (default
/// `SESSIONS_PER_ROUND`) after every variant's warm-up, and the figures printed are
/// placeholders: the mode is for counting instructions, which the clock cannot do on a loaded
/// machine. Two runs under `valgrind --tool=callgrind`, one per variant, differ by exactly the
/// variants' work times the count.
pub fn race_rounds(rounds: usize, variants: &mut [(&str, &mut dyn FnMut())]) -> Rates {
    let mut rates = Rates {
        wall: vec![Vec::new(); variants.len()],
        cpu: vec![Vec::new(); variants.len()],
    };
    for (_, run) in variants.iter_mut() {
        run(); // warm-up: connections, caches
    }
    if let Ok(only) = std::env::var("BENCH_ONLY") {
        let count = std::env::var("BENCH_RUNS")
            .ok()
            .and_then(|runs| runs.parse().ok())
            .unwrap_or(SESSIONS_PER_ROUND);
        for (index, (name, run)) in variants.iter_mut().enumerate() {
            if *name == only {
                for _ in 0..count {
                    run();
                }
            }
            rates.wall[index].push(1.0);
            rates.cpu[index].push(1.0);
        }
        return rates;
    }
    let runs = SESSIONS_PER_ROUND as f64;
    for _ in 0..rounds {
        for (index, (_, run)) in variants.iter_mut().enumerate() {
            let (started, cpu) = (Instant::now(), thread_cpu());
            for _ in 0..SESSIONS_PER_ROUND {
                run();
            }
            rates.wall[index].push(runs / started.elapsed().as_secs_f64());
            rates.cpu[index].push(runs / (thread_cpu() - cpu).as_secs_f64());
        }
    }
    rates
}

pub fn form(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap()
}

/// The password grant as PeerTube's own clients send it.
pub fn login_form(client_id: &str, client_secret: &str) -> String {
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

pub fn refresh_form(client_id: &str, client_secret: &str, refresh_token: &str) -> String {
    form(&[
        ("client_id", client_id),
        ("client_secret", client_secret),
        ("grant_type", "refresh_token"),
        ("response_type", "code"),
        ("refresh_token", refresh_token),
    ])
}

pub fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

pub fn blocking_driver_session<T: Transport + Clone>(
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

/// A session by hand with ureq; the last access token (revoked if `logout`).
pub fn plain_ureq_session(agent: &ureq::Agent, base: &str, logout: bool) -> String {
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
    if logout {
        read(
            agent
                .post(format!("{base}/api/v1/users/revoke-token"))
                .header("authorization", format!("Bearer {access}"))
                .send_empty()
                .unwrap(),
        );
    }
    access.to_owned()
}

pub fn oauth2_session(agent: &ureq2::Agent, base: &str) {
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

pub async fn hyper_driver_session<C>(
    fake: &FakePeerTube,
    transport: &HyperTransport<C>,
    session: Session,
    logout: bool,
) where
    C: Connect + Clone + Send + Sync + 'static,
{
    let ahead = Arc::new(AtomicU64::new(0));
    let client = AsyncClient::from_session(transport.clone(), session)
        .with_config(Config::builder().clock(clock(fake, &ahead)).build());
    client.login(&credentials()).await.unwrap();
    ahead.store(86_400, Ordering::Relaxed);
    client.ensure_fresh().await.unwrap();
    if logout {
        client.logout().await.unwrap();
    }
}

/// A session by hand with hyper-util's client (revoked if `logout`).
pub async fn plain_hyper_session<C: Connect + Clone + Send + Sync + 'static>(
    client: &Client<C, Full<Bytes>>,
    base: &str,
    logout: bool,
) {
    async fn send<C: Connect + Clone + Send + Sync + 'static>(
        client: &Client<C, Full<Bytes>>,
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
    if !logout {
        return;
    }
    let revoke = http::Request::post(format!("{base}/api/v1/users/revoke-token"))
        .header(
            "authorization",
            format!("Bearer {}", tokens["access_token"].as_str().unwrap()),
        )
        .body(Full::new(Bytes::new()))
        .unwrap();
    send(client, revoke).await;
}
