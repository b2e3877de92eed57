//! Token sessions through both drivers (blocking over ureq, async over hyper) against the fake
//! PeerTube on loopback: list them, see the program's `User-Agent` as their device, revoke
//! another and see its tokens die, log out everywhere else, revoke our own (a logout), and an
//! old server without the routes. Every exchange is bounded by a 5 s timeout.
#![cfg(all(feature = "ureq", feature = "hyper", feature = "fake"))]

#[macro_use]
mod support;

use http::HeaderValue;
use peertube_session::api::{Endpoint, ListTokenSessions, Me, TokenSession, UserRole};
#[cfg(feature = "reqwest")]
use peertube_session::asynchronous::ReqwestTransport;
use peertube_session::asynchronous::{AsyncClient, AsyncTransport, HttpsConnector, HyperTransport};
use peertube_session::blocking::{
    BlockingClient, Config, DEFAULT_USER_AGENT, OtherSessionsEnded, SessionRevoked, UreqTransport,
};
use peertube_session::fake::{FakePeerTube, FakeRole, FakeUser, ServerVersion};
use peertube_session::store::MemoryStore;
use peertube_session::{Credentials, Error, Instance, State};
use std::sync::Arc;
use std::time::Duration;
use support::Served as Setup;

const TIMEOUT: Duration = Duration::from_secs(5);

/// One interface over both drivers, so each scenario is written once.
trait Driver {
    fn login(&self, credentials: &Credentials) -> Result<(), Error>;
    fn me(&self) -> Result<Me, Error>;
    fn list(&self, endpoint: &ListTokenSessions) -> Result<Vec<TokenSession>, Error>;
    fn sessions(&self) -> Result<Vec<TokenSession>, Error>;
    fn revoke_session(&self, id: u64) -> Result<SessionRevoked, Error>;
    fn log_out_other_sessions(&self) -> Result<OtherSessionsEnded, Error>;
    fn ensure_fresh(&self) -> Result<(), Error>;
    fn state(&self) -> State;
}

type Blocking = BlockingClient<UreqTransport, Arc<MemoryStore>>;

impl Driver for Blocking {
    fn login(&self, credentials: &Credentials) -> Result<(), Error> {
        BlockingClient::login(self, credentials)
    }
    fn me(&self) -> Result<Me, Error> {
        BlockingClient::me(self)
    }
    fn list(&self, endpoint: &ListTokenSessions) -> Result<Vec<TokenSession>, Error> {
        self.call(endpoint).map(|page| page.data)
    }
    fn sessions(&self) -> Result<Vec<TokenSession>, Error> {
        BlockingClient::sessions(self)
    }
    fn revoke_session(&self, id: u64) -> Result<SessionRevoked, Error> {
        BlockingClient::revoke_session(self, id)
    }
    fn log_out_other_sessions(&self) -> Result<OtherSessionsEnded, Error> {
        BlockingClient::log_out_other_sessions(self)
    }
    fn ensure_fresh(&self) -> Result<(), Error> {
        BlockingClient::ensure_fresh(self)
    }
    fn state(&self) -> State {
        BlockingClient::state(self)
    }
}

struct Async<T = HyperTransport<HttpsConnector>> {
    runtime: tokio::runtime::Runtime,
    client: AsyncClient<T, Arc<MemoryStore>>,
}

impl<T: AsyncTransport> Driver for Async<T> {
    fn login(&self, credentials: &Credentials) -> Result<(), Error> {
        self.runtime.block_on(self.client.login(credentials))
    }
    fn me(&self) -> Result<Me, Error> {
        self.runtime.block_on(self.client.me())
    }
    fn list(&self, endpoint: &ListTokenSessions) -> Result<Vec<TokenSession>, Error> {
        let page = self.runtime.block_on(self.client.call(endpoint));
        page.map(|page| page.data)
    }
    fn sessions(&self) -> Result<Vec<TokenSession>, Error> {
        self.runtime.block_on(self.client.sessions())
    }
    fn revoke_session(&self, id: u64) -> Result<SessionRevoked, Error> {
        self.runtime.block_on(self.client.revoke_session(id))
    }
    fn log_out_other_sessions(&self) -> Result<OtherSessionsEnded, Error> {
        self.runtime.block_on(self.client.log_out_other_sessions())
    }
    fn ensure_fresh(&self) -> Result<(), Error> {
        self.runtime.block_on(self.client.ensure_fresh())
    }
    fn state(&self) -> State {
        self.client.state()
    }
}

/// Makes a client of one driver kind: for `setup`, sending `user_agent` (the default one when
/// `None`), sharing `store`.
type Make<D> = fn(&Setup, Option<&'static str>, Arc<MemoryStore>) -> D;

impl Setup {
    fn config(&self, user_agent: Option<&'static str>) -> Config {
        let fake = self.fake.clone();
        let mut config = Config::builder().timeout(TIMEOUT).clock(move || fake.now());
        if let Some(agent) = user_agent {
            config = config.user_agent(HeaderValue::from_static(agent));
        }
        config.build()
    }
}

fn blocking(setup: &Setup, agent: Option<&'static str>, store: Arc<MemoryStore>) -> Blocking {
    BlockingClient::new(UreqTransport::new(), setup.instance())
        .with_store(store)
        .with_config(setup.config(agent))
}

fn asynchronous(setup: &Setup, agent: Option<&'static str>, store: Arc<MemoryStore>) -> Async {
    over(setup, agent, store, HyperTransport::new)
}

#[cfg(feature = "reqwest")]
fn over_reqwest(
    setup: &Setup,
    agent: Option<&'static str>,
    store: Arc<MemoryStore>,
) -> Async<ReqwestTransport> {
    over(setup, agent, store, ReqwestTransport::new)
}

/// The async driver over the transport `make` gives (made on the driver's runtime).
fn over<T: AsyncTransport>(
    setup: &Setup,
    agent: Option<&'static str>,
    store: Arc<MemoryStore>,
    make: fn() -> T,
) -> Async<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let transport = runtime.block_on(async { make() });
    let client = AsyncClient::new(transport, setup.instance())
        .with_store(store)
        .with_config(setup.config(agent));
    Async { runtime, client }
}

fn fake(version: ServerVersion) -> FakePeerTube {
    FakePeerTube::builder()
        .version(version)
        .user(FakeUser::new("alice", "alice@example.org", "alice-pw"))
        .user(FakeUser::new("bob", "bob@example.org", "bob-pw"))
        .user(
            FakeUser::new("root", "root@example.org", "root-pw").with_role(FakeRole::Administrator),
        )
        .token_lifetimes(Duration::from_secs(3600), Duration::from_secs(7200))
        .build()
}

fn alice() -> Credentials {
    Credentials::password("alice", "alice-pw")
}

/// A client logged in as `credentials`, with a store of its own.
fn logged_in<D: Driver>(
    make: Make<D>,
    setup: &Setup,
    agent: Option<&'static str>,
    credentials: &Credentials,
) -> D {
    let driver = make(setup, agent, Arc::new(MemoryStore::new()));
    driver.login(credentials).unwrap();
    driver
}

fn ids(sessions: &[TokenSession]) -> Vec<u64> {
    sessions.iter().map(|s| s.id).collect()
}

fn current(sessions: &[TokenSession]) -> &TokenSession {
    let mine: Vec<&TokenSession> = sessions.iter().filter(|s| s.current_session).collect();
    assert_eq!(
        mine.len(),
        1,
        "exactly one session is the caller's: {sessions:?}"
    );
    mine[0]
}

// ----- scenarios, each run with both drivers -----

fn the_list_shows_each_program_s_user_agent<D: Driver>(make: Make<D>) {
    let setup = Setup::new(fake(ServerVersion::PeerTube8));
    let uploader = logged_in(
        make,
        &setup,
        Some("uploader/2.1 (ops@example.org)"),
        &alice(),
    );
    let default = logged_in(make, &setup, None, &alice());
    let sessions = uploader.sessions().unwrap();
    assert_eq!(sessions.len(), 2);
    let mine = current(&sessions);
    assert_eq!(
        mine.login_device.as_deref(),
        Some("uploader/2.1 (ops@example.org)")
    );
    assert_eq!(
        mine.last_activity_device.as_deref(),
        Some("uploader/2.1 (ops@example.org)")
    );
    assert_eq!(mine.login_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(
        mine.login_date.map(|d| d.system_time()),
        Some(setup.fake.now())
    );
    let other = sessions.iter().find(|s| !s.current_session).unwrap();
    assert_eq!(other.login_device.as_deref(), Some(DEFAULT_USER_AGENT));
    assert!(DEFAULT_USER_AGENT.starts_with("peertube-session/"));
    // The other program sees the same two, its own marked.
    let seen = default.sessions().unwrap();
    assert_eq!(ids(&seen), ids(&sessions));
    assert_eq!(current(&seen).id, other.id);
    assert_eq!(uploader.me().unwrap().username, "alice");
}

fn revoking_another_session_kills_its_tokens<D: Driver>(make: Make<D>) {
    let setup = Setup::new(fake(ServerVersion::PeerTube8));
    let keeper = logged_in(make, &setup, Some("keeper/1"), &alice());
    let victim = logged_in(make, &setup, Some("victim/1"), &alice());
    let sessions = keeper.sessions().unwrap();
    let target = sessions.iter().find(|s| !s.current_session).unwrap();
    assert_eq!(target.login_device.as_deref(), Some("victim/1"));
    let revoked = keeper.revoke_session(target.id).unwrap();
    assert!(!revoked.current);
    assert_eq!(revoked.redirect_url, None);
    assert_eq!(keeper.state(), State::LoggedIn);
    assert_eq!(setup.fake.counters().token_sessions_revoked, 1);
    // The victim's access token is dead, and so is its refresh token.
    match victim.me() {
        Err(Error::LoginRequired(refusal)) => assert_eq!(refusal.status.as_u16(), 400),
        other => panic!("the revoked session's call: {other:?}"),
    }
    assert_eq!(setup.fake.counters().invalid_grants, 1);
    assert_eq!(ids(&keeper.sessions().unwrap()), [current(&sessions).id]);
    // Again: it is gone.
    assert!(matches!(
        keeper.revoke_session(target.id),
        Err(Error::NotFound(_))
    ));
    assert_eq!(keeper.state(), State::LoggedIn);
}

fn logging_out_everywhere_else_keeps_only_this_session<D: Driver>(make: Make<D>) {
    let setup = Setup::new(fake(ServerVersion::PeerTube8));
    let here = logged_in(make, &setup, Some("here/1"), &alice());
    let laptop = logged_in(make, &setup, Some("laptop/1"), &alice());
    let phone = logged_in(make, &setup, Some("phone/1"), &alice());
    let bob = logged_in(
        make,
        &setup,
        Some("bob/1"),
        &Credentials::password("bob", "bob-pw"),
    );
    // The laptop refreshes: its pair (and id) change, its login device stays.
    let before = laptop.sessions().unwrap();
    setup.fake.advance(Duration::from_secs(3600 - 30));
    laptop.ensure_fresh().unwrap();
    let after = laptop.sessions().unwrap();
    let (old, new) = (current(&before), current(&after));
    assert_ne!(old.id, new.id);
    assert_eq!(new.login_device.as_deref(), Some("laptop/1"));
    assert_eq!(new.login_date, old.login_date);
    assert!(new.created_at > old.created_at);
    // `here` and `phone` are due too after that clock move: they refresh on their next call.
    let report = here.log_out_other_sessions().unwrap();
    let mut devices: Vec<&str> = report
        .ended
        .iter()
        .filter_map(|s| s.login_device.as_deref())
        .collect();
    devices.sort_unstable();
    assert_eq!(devices, ["laptop/1", "phone/1"]);
    let kept = report.kept.expect("our own session");
    assert_eq!(kept.login_device.as_deref(), Some("here/1"));
    let left = here.sessions().unwrap();
    assert_eq!(ids(&left), [kept.id]);
    for gone in [&laptop, &phone] {
        assert!(matches!(gone.me(), Err(Error::LoginRequired(_))));
    }
    // Bob's sessions are another user's: untouched.
    assert_eq!(bob.sessions().unwrap().len(), 1);
    assert_eq!(here.state(), State::LoggedIn);
    // Nothing left to end.
    let again = here.log_out_other_sessions().unwrap();
    assert!(again.ended.is_empty());
}

fn revoking_our_own_session_is_a_logout<D: Driver>(make: Make<D>) {
    let setup = Setup::new(fake(ServerVersion::PeerTube8));
    let store = Arc::new(MemoryStore::new());
    let driver = make(&setup, Some("self/1"), Arc::clone(&store));
    driver.login(&alice()).unwrap();
    let sharer = make(&setup, Some("self/1"), Arc::clone(&store));
    assert_eq!(sharer.me().unwrap().username, "alice");
    let mine = current(&driver.sessions().unwrap()).id;
    let revoked = driver.revoke_session(mine).unwrap();
    assert!(revoked.current);
    assert_eq!(driver.state(), State::Revoked);
    assert_eq!(setup.fake.counters().live_sessions, 0);
    assert!(matches!(
        driver.me(),
        Err(Error::InvalidState { .. } | Error::LoggedOut)
    ));
    // Another client sharing the store is logged out as well, without a string of 401s.
    assert!(
        matches!(sharer.me(), Err(Error::LoggedOut)),
        "{:?}",
        sharer.me()
    );
    assert_eq!(sharer.state(), State::Revoked);
    // And it can log in again.
    driver.login(&alice()).unwrap();
    assert_eq!(driver.sessions().unwrap().len(), 1);
}

fn an_old_server_says_not_supported<D: Driver>(make: Make<D>) {
    let setup = Setup::new(fake(ServerVersion::PeerTube6));
    let driver = logged_in(make, &setup, None, &alice());
    assert_eq!(driver.me().unwrap().id, 1);
    for outcome in [
        driver.sessions().map(drop),
        driver.revoke_session(1).map(drop),
        driver.log_out_other_sessions().map(drop),
    ] {
        match outcome {
            Err(Error::NotSupported(answer)) => assert_eq!(answer.status.as_u16(), 400),
            other => panic!("{other:?}"),
        }
    }
    // Nothing changed for the session, and nothing was refreshed over it.
    assert_eq!(driver.state(), State::LoggedIn);
    assert_eq!(setup.fake.counters().refreshes, 0);
}

fn another_user_s_sessions_need_the_right_to_manage_users<D: Driver>(make: Make<D>) {
    let setup = Setup::new(fake(ServerVersion::PeerTube8));
    let bob = logged_in(
        make,
        &setup,
        Some("bob/1"),
        &Credentials::password("bob", "bob-pw"),
    );
    let bob_id = bob.me().unwrap().id;
    let alice = logged_in(make, &setup, None, &alice());
    assert!(matches!(
        alice.list(&ListTokenSessions::new(bob_id)),
        Err(Error::Forbidden(_))
    ));
    assert!(matches!(
        alice.list(&ListTokenSessions::new(999)),
        Err(Error::NotFound(_))
    ));
    let root = logged_in(
        make,
        &setup,
        None,
        &Credentials::password("root", "root-pw"),
    );
    assert_eq!(root.me().unwrap().role, Some(UserRole::Administrator));
    let bobs = root.list(&ListTokenSessions::new(bob_id)).unwrap();
    assert_eq!(bobs.len(), 1);
    assert!(!bobs[0].current_session);
    assert_eq!(bobs[0].login_device.as_deref(), Some("bob/1"));
}

fn many_sessions_are_walked_page_by_page<D: Driver>(make: Make<D>) {
    let setup = Setup::new(
        FakePeerTube::builder()
            .user(FakeUser::new("alice", "alice@example.org", "alice-pw"))
            .no_rate_limit()
            .build(),
    );
    let driver = logged_in(make, &setup, Some("lister/1"), &alice());
    // 120 more logins, straight to the fake: 121 sessions, 3 pages of 50.
    let (client_id, client_secret) = setup.fake.client_pair();
    let form = format!(
        "client_id={client_id}&client_secret={client_secret}&grant_type=password&username=alice&password=alice-pw"
    );
    for _ in 0..120 {
        setup.fake.advance(Duration::from_millis(1));
        let login = http::Request::post("/api/v1/users/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("user-agent", "many/1")
            .body(form.clone().into_bytes())
            .unwrap();
        assert_eq!(setup.fake.handle(&login).status(), http::StatusCode::OK);
    }
    let before = setup.fake.counters().token_session_requests;
    let sessions = driver.sessions().unwrap();
    assert_eq!(setup.fake.counters().token_session_requests - before, 3);
    assert_eq!(sessions.len(), 121);
    let mut unique = ids(&sessions);
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), 121);
    assert!(
        sessions
            .windows(2)
            .all(|w| w[0].created_at <= w[1].created_at)
    );
    assert_eq!(current(&sessions).login_device.as_deref(), Some("lister/1"));
    let one_page = driver.list(&ListTokenSessions::new(1).count(100)).unwrap();
    assert_eq!(one_page.len(), 100);
}

with_both_drivers!(
    the_list_shows_each_program_s_user_agent,
    revoking_another_session_kills_its_tokens,
    logging_out_everywhere_else_keeps_only_this_session,
    revoking_our_own_session_is_a_logout,
    an_old_server_says_not_supported,
    another_user_s_sessions_need_the_right_to_manage_users,
    many_sessions_are_walked_page_by_page,
);

#[test]
fn the_endpoint_trait_is_open_to_routes_of_one_s_own() {
    /// `GET /api/v1/users/me/video-quota-used`, defined outside the crate.
    struct QuotaUsed;
    impl Endpoint for QuotaUsed {
        type Output = u16;
        fn request(
            &self,
            instance: &Instance,
        ) -> Result<http::Request<peertube_session::Body>, Error> {
            let uri = instance.uri("/api/v1/users/me/video-quota-used")?;
            Ok(http::Request::get(uri)
                .body(peertube_session::Body::default())
                .unwrap())
        }
        fn parse_success(&self, status: http::StatusCode, _: &[u8]) -> Result<u16, Error> {
            Ok(status.as_u16())
        }
    }
    let setup = Setup::new(fake(ServerVersion::PeerTube8));
    let driver = logged_in(blocking, &setup, None, &alice());
    // The fake does not have that route: it answers as PeerTube does for a route it lacks.
    assert!(matches!(
        driver.call(&QuotaUsed),
        Err(Error::NotSupported(_))
    ));
}
