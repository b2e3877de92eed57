//! How a fake instance is set up: its users, lifetimes, limits and the PeerTube version it plays.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Which PeerTube the fake answers like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServerVersion {
    /// PeerTube 6.x, as recorded from a real 6.3 server: problem+json bodies carry the legacy
    /// `error` member (a copy of `detail`), e-mail addresses are matched case-sensitively at
    /// login, and there are no token-session routes (they answer like any unknown API route).
    PeerTube6,
    /// PeerTube 8.x, as recorded from a real 8.0.1 server: no `error` member, e-mail addresses
    /// matched case-insensitively, token sessions listed and revoked.
    #[default]
    PeerTube8,
}

/// A user's role on the fake instance: who may manage whose token sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FakeRole {
    /// Manages every user.
    Administrator,
    /// Manages users whose role is `User`.
    Moderator,
    /// Manages only itself.
    #[default]
    User,
}

impl FakeRole {
    pub(crate) fn id(self) -> u8 {
        match self {
            FakeRole::Administrator => 0,
            FakeRole::Moderator => 1,
            FakeRole::User => 2,
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            FakeRole::Administrator => "Administrator",
            FakeRole::Moderator => "Moderator",
            FakeRole::User => "User",
        }
    }

    /// PeerTube's `checkCanManageAccount` (the right to manage users) and `checkCanModerate`
    /// (a moderator manages plain users only).
    pub(crate) fn can_manage(self, other: FakeRole) -> bool {
        match self {
            FakeRole::Administrator => true,
            FakeRole::Moderator => other == FakeRole::User,
            FakeRole::User => false,
        }
    }
}

/// A registration that has not become an account yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationState {
    /// Waiting for a moderator: login answers `account_waiting_for_approval`.
    Pending,
    /// Refused: login answers `account_approval_rejected`.
    Rejected,
}

/// An account on the fake instance.
#[derive(Debug, Clone)]
pub struct FakeUser {
    pub(crate) username: String,
    pub(crate) email: String,
    pub(crate) password: String,
    pub(crate) totp_secret: Option<Vec<u8>>,
    pub(crate) blocked: bool,
    pub(crate) email_verified: bool,
    pub(crate) logout_redirect: Option<String>,
    pub(crate) role: FakeRole,
}

impl FakeUser {
    /// An active account with a verified e-mail.
    pub fn new(username: &str, email: &str, password: &str) -> Self {
        FakeUser {
            username: username.to_owned(),
            email: email.to_owned(),
            password: password.to_owned(),
            totp_secret: None,
            blocked: false,
            email_verified: true,
            logout_redirect: None,
            role: FakeRole::User,
        }
    }

    /// Gives the account a role (a plain user by default).
    pub fn with_role(mut self, role: FakeRole) -> Self {
        self.role = role;
        self
    }

    /// Turns two-factor authentication on with a base32 TOTP secret (see
    /// [`totp`](super::totp) to compute codes). An invalid secret leaves it off.
    pub fn with_totp(mut self, secret_base32: &str) -> Self {
        self.totp_secret = super::totp::base32_decode(secret_base32);
        self
    }

    /// A blocked account: a right password answers 400 `access_denied`, "User is blocked.".
    pub fn blocked(mut self) -> Self {
        self.blocked = true;
        self
    }

    /// An account whose e-mail is not verified, on an instance that requires it: a right
    /// password answers 400 `access_denied`, "User email is not verified.".
    pub fn email_unverified(mut self) -> Self {
        self.email_verified = false;
        self
    }

    /// An account owned by an auth plugin that sends the user to `url` after logout
    /// (`redirectUrl` in the logout answer).
    pub fn with_logout_redirect(mut self, url: &str) -> Self {
        self.logout_redirect = Some(url.to_owned());
        self
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Registration {
    pub(crate) username: String,
    pub(crate) email: String,
    pub(crate) state: RegistrationState,
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    /// `false` plays a broken install with no OAuth client row.
    pub(crate) has_client: bool,
    pub(crate) users: Vec<FakeUser>,
    pub(crate) registrations: Vec<Registration>,
    pub(crate) access_lifetime: Duration,
    pub(crate) refresh_lifetime: Duration,
    pub(crate) login_limit: Option<(u32, Duration)>,
    pub(crate) api_limit: Option<(u32, Duration)>,
    pub(crate) host: Option<String>,
    pub(crate) version: ServerVersion,
    pub(crate) start: SystemTime,
    pub(crate) seed: u64,
    pub(crate) access_token_uses: Option<u64>,
}

/// PeerTube's default `rates_limit.login`: 15 requests per 5 minutes per client address, on
/// `POST /api/v1/users/token`.
pub const LOGIN_LIMIT: (u32, Duration) = (15, Duration::from_secs(5 * 60));
/// PeerTube's default `rates_limit.api`: 50 requests per 10 s per client address, on the
/// routers that use it (`/api/v1/users/…`, `/api/v1/oauth-clients/…` among those the fake has).
pub const API_LIMIT: (u32, Duration) = (50, Duration::from_secs(10));

/// Sets up a [`FakePeerTube`](super::FakePeerTube).
///
/// Defaults: no users; access tokens live 1 day and refresh tokens 2 weeks; the login rate
/// limit is 15 token requests per 5 minutes per client address ([`LOGIN_LIMIT`]), the API
/// limit ([`API_LIMIT`]) is off until [`FakeBuilder::api_rate_limit`]; any `Host` is accepted (like a
/// PeerTube test instance) until [`FakeBuilder::host`] names the canonical one; PeerTube 8
/// answers, token sessions included ([`ServerVersion`]); the fake clock starts at 2026-11-27 (Unix 1 795 800 000).
#[derive(Debug, Clone)]
pub struct FakeBuilder {
    pub(crate) config: Config,
}

impl Default for FakeBuilder {
    fn default() -> Self {
        FakeBuilder {
            config: Config {
                client_id: String::new(),
                client_secret: String::new(),
                has_client: true,
                users: Vec::new(),
                registrations: Vec::new(),
                access_lifetime: Duration::from_secs(24 * 3600),
                refresh_lifetime: Duration::from_secs(14 * 24 * 3600),
                login_limit: Some(LOGIN_LIMIT),
                api_limit: None,
                host: None,
                version: ServerVersion::default(),
                start: UNIX_EPOCH + Duration::from_secs(1_795_800_000),
                seed: 0x5eed_cafe,
                access_token_uses: None,
            },
        }
    }
}

impl FakeBuilder {
    /// Adds an account.
    pub fn user(mut self, user: FakeUser) -> Self {
        self.config.users.push(user);
        self
    }

    /// Adds a registration that is pending or rejected (no account exists for it).
    pub fn registration(mut self, username: &str, email: &str, state: RegistrationState) -> Self {
        self.config.registrations.push(Registration {
            username: username.to_owned(),
            email: email.to_owned(),
            state,
        });
        self
    }

    /// Sets the OAuth client pair (by default, 32 random-looking characters each).
    pub fn client(mut self, client_id: &str, client_secret: &str) -> Self {
        self.config.client_id = client_id.to_owned();
        self.config.client_secret = client_secret.to_owned();
        self
    }

    /// Plays a broken install without an OAuth client row: the client endpoint answers 500 with
    /// code `Error`, and every token request `invalid_client`.
    pub fn without_oauth_client(mut self) -> Self {
        self.config.has_client = false;
        self
    }

    /// Sets the access and refresh token lifetimes.
    pub fn token_lifetimes(mut self, access: Duration, refresh: Duration) -> Self {
        self.config.access_lifetime = access;
        self.config.refresh_lifetime = refresh;
        self
    }

    /// Sets the login rate limit: at most `max` token requests per `window` per client address.
    pub fn login_rate_limit(mut self, max: u32, window: Duration) -> Self {
        self.config.login_limit = Some((max, window));
        self
    }

    /// Lets each access token serve `calls` calls to `GET /api/v1/users/me`; the next one is
    /// answered 401 `invalid_token`, as if it had expired (its refresh token stays good). Lets
    /// processes on real clocks meet expiries the fake's clock cannot give them.
    pub fn access_token_uses(mut self, calls: u64) -> Self {
        self.config.access_token_uses = Some(calls);
        self
    }

    /// Turns both rate limits off.
    pub fn no_rate_limit(mut self) -> Self {
        self.config.login_limit = None;
        self.config.api_limit = None;
        self
    }

    /// Sets PeerTube's API rate limit: at most `max` requests per `window` per client address
    /// to the routes PeerTube puts it on (`/api/v1/users/…`, the token route and
    /// `/api/v1/users/me` included, and `/api/v1/oauth-clients/…`), every request counted
    /// (fixed windows, as express-rate-limit's memory store). Over it: 429, plain text,
    /// `Retry-After` and `X-RateLimit-*`, except for requests carrying the live access token of
    /// an administrator or a moderator, which still count but pass.
    pub fn api_rate_limit(mut self, max: u32, window: Duration) -> Self {
        self.config.api_limit = Some((max, window));
        self
    }

    /// PeerTube's two default limits: [`LOGIN_LIMIT`] and [`API_LIMIT`].
    pub fn peertube_rate_limits(mut self) -> Self {
        self.config.login_limit = Some(LOGIN_LIMIT);
        self.config.api_limit = Some(API_LIMIT);
        self
    }

    /// The canonical `host[:port]`: `GET /api/v1/oauth-clients/local` answers 403 to any other
    /// `Host`, like a production instance.
    pub fn host(mut self, host: &str) -> Self {
        self.config.host = Some(host.to_owned());
        self
    }

    /// Which PeerTube version's error bodies and e-mail matching to use.
    pub fn version(mut self, version: ServerVersion) -> Self {
        self.config.version = version;
        self
    }

    /// Where the fake clock starts.
    pub fn clock_start(mut self, start: SystemTime) -> Self {
        self.config.start = start;
        self
    }

    /// Seeds the generator of client pairs and tokens (they are deterministic per seed).
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }

    /// The fake instance.
    pub fn build(self) -> super::FakePeerTube {
        super::FakePeerTube::from_config(self.config)
    }
}
