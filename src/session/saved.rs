//! The saved form of a session, to persist it (a file, a keyring, a database) and restore it.

use super::Session;
use super::lineage::Lineage;
use super::tokens::Tokens;
use crate::error::Error;
use crate::instance::Instance;
use crate::request::OAuthClient;
use crate::secret::{AccessToken, RefreshToken, is_sendable_token};
use serde::{Deserialize, Serialize};

/// The format version written by this crate.
const VERSION: u32 = 1;

/// A session as plain data, serializable with serde (JSON, TOML, …).
///
/// # Security warning
/// Serializing it writes the client secret and both tokens **in clear text**: that is its
/// purpose. Store the output where you would store a password (a keyring, a file readable only
/// by the user). Its `Debug` output stays redacted.
///
/// ```
/// use peertube_session::{Instance, OAuthClient, Session};
///
/// let instance = Instance::new("https://video.example.org")?;
/// let session = Session::with_client(instance, OAuthClient::new("id", "secret"));
/// let json = serde_json::to_string(&session.save()).unwrap();
/// let restored = Session::restore(serde_json::from_str(&json).unwrap())?;
/// assert_eq!(restored.save(), session.save());
/// # Ok::<(), peertube_session::Error>(())
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedSession {
    /// Format version (1).
    pub version: u32,
    /// The instance's base URL.
    pub instance: String,
    /// Whether plain http to a non-loopback host was explicitly allowed.
    #[serde(default)]
    pub plain_http_allowed: bool,
    /// The OAuth client pair, once known.
    #[serde(default)]
    pub client: Option<OAuthClient>,
    /// The token pair, while logged in.
    #[serde(default)]
    pub tokens: Option<SavedTokens>,
    /// Logged out (state `Revoked`).
    #[serde(default)]
    pub logged_out: bool,
}

/// The token pair of a saved session; times are whole seconds since the Unix epoch.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedTokens {
    /// The access token.
    pub access_token: AccessToken,
    /// The refresh token.
    pub refresh_token: RefreshToken,
    /// When the pair was handed out.
    pub issued_at: u64,
    /// When the access token expires, if known.
    #[serde(default)]
    pub access_expires_at: Option<u64>,
    /// When the refresh token expires, if known.
    #[serde(default)]
    pub refresh_expires_at: Option<u64>,
    /// The server said the access token is dead; refresh before use.
    #[serde(default)]
    pub access_rejected: bool,
    /// Which login the pair descends from and how many refreshes since (absent in saves of
    /// earlier versions of this crate: the pair then counts as a login of its own, at
    /// `issued_at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineage: Option<Lineage>,
}

impl Session {
    /// The session as plain data. A refresh in flight is not part of it.
    pub fn save(&self) -> SavedSession {
        SavedSession {
            version: VERSION,
            instance: self.instance.base_url(),
            plain_http_allowed: self.instance.plain_http_allowed(),
            client: self.client.clone(),
            tokens: self.tokens.as_ref().map(|t| SavedTokens {
                access_token: t.access.clone(),
                refresh_token: t.refresh.clone(),
                issued_at: t.issued_at,
                access_expires_at: t.access_expires_at,
                refresh_expires_at: t.refresh_expires_at,
                access_rejected: t.access_rejected,
                lineage: Some(t.lineage),
            }),
            logged_out: self.logged_out,
        }
    }

    /// A session from its saved form, checked for consistency: a known version, a valid
    /// instance URL, a client pair with a non-empty id and secret, tokens only with a client
    /// pair, and tokens that can be sent. The restored session is a new identity: it accepts no
    /// [`Pending`](super::Pending) handle of the session that was saved.
    pub fn restore(saved: SavedSession) -> Result<Session, Error> {
        if saved.version != VERSION {
            return Err(Error::InvalidSavedSession("unknown format version"));
        }
        let instance = if saved.plain_http_allowed {
            Instance::new_allowing_http(&saved.instance)?
        } else {
            Instance::new(&saved.instance)?
        };
        if saved.client.as_ref().is_some_and(|client| {
            client.client_id.is_empty() || client.client_secret.expose_secret().is_empty()
        }) {
            return Err(Error::InvalidSavedSession(
                "the OAuth client pair has an empty client_id or client_secret",
            ));
        }
        if saved.tokens.is_some() && saved.client.is_none() {
            return Err(Error::InvalidSavedSession(
                "tokens without an OAuth client pair",
            ));
        }
        if saved.tokens.is_some() && saved.logged_out {
            return Err(Error::InvalidSavedSession("tokens in a logged-out session"));
        }
        let tokens = saved.tokens.map(restore_tokens).transpose()?;
        let mut session = Session::new(instance);
        session.client = saved.client;
        session.tokens = tokens;
        session.logged_out = saved.logged_out;
        Ok(session)
    }
}

#[cfg(any(feature = "async-client", feature = "blocking-client"))]
impl Session {
    /// Takes the client pair and tokens of `saved` (another process's save of this session),
    /// keeping this session's identity and settings. Handles and tickets issued before are
    /// stale afterwards.
    pub(crate) fn adopt(&mut self, saved: SavedSession) -> Result<(), Error> {
        let restored = Session::restore(saved)?;
        if restored.instance != self.instance {
            return Err(Error::InvalidSavedSession(
                "the stored session is for another instance",
            ));
        }
        self.client = restored.client;
        self.tokens = restored.tokens;
        self.logged_out = restored.logged_out;
        self.new_generation();
        Ok(())
    }
}

fn restore_tokens(saved: SavedTokens) -> Result<Tokens, Error> {
    if !is_sendable_token(saved.access_token.expose_secret())
        || !is_sendable_token(saved.refresh_token.expose_secret())
    {
        return Err(Error::InvalidSavedSession(
            "a token is empty or has characters a token cannot have",
        ));
    }
    let lineage = saved
        .lineage
        .unwrap_or_else(|| Lineage::of_login(saved.refresh_token.expose_secret(), saved.issued_at));
    Ok(Tokens {
        lineage,
        access: saved.access_token,
        refresh: saved.refresh_token,
        issued_at: saved.issued_at,
        access_expires_at: saved.access_expires_at,
        refresh_expires_at: saved.refresh_expires_at,
        access_rejected: saved.access_rejected,
        access_proven: false,
    })
}
