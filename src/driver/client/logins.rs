//! Logging in through a shared store: re-login when the refresh token is dead.

use super::lease::Saved;
use super::{AsyncClient, AsyncTransport};
use crate::driver::CallDeadline;
use crate::error::Error;
use crate::request::Credentials;
use crate::session::State;
use crate::store::{Ending, Lease, SessionStore, Version};
use std::fmt;
use std::time::Instant;

impl<T: AsyncTransport, S: SessionStore> AsyncClient<T, S> {
    /// Whether the session lost its tokens to a refused refresh (not to a logout): what a
    /// re-login may repair.
    pub(super) fn relogin_possible(&self) -> bool {
        let session = self.session();
        session.state() == State::HaveClient && !matches!(self.ending(), Some(Ending::LoggedOut))
    }

    /// Logs in again under the refresh lease, saving the new pair for every process.
    pub(super) async fn relogin_holding(
        &self,
        loaded: Option<Version>,
        lease: &Lease,
        until: Instant,
        deadline: CallDeadline,
    ) -> Result<Saved, Error> {
        let Some(relogin) = &self.relogin else {
            return Err(Error::LoggedOut);
        };
        let Some(credentials) = (relogin.credentials)() else {
            return Err(self.ending().map_or(Error::LoggedOut, |e| e.error()));
        };
        let mut outcome = self.log_in_once(&credentials, deadline).await;
        if let (Err(Error::TwoFactorRequired(_)), Some(otp)) = (&outcome, &relogin.otp)
            && let Some(code) = otp()
        {
            outcome = self
                .log_in_once(&credentials.clone().with_otp(code), deadline)
                .await;
        }
        if let Err(Error::RateLimited(limit)) = &outcome {
            self.block_refreshes(limit);
        }
        outcome?;
        {
            let mut shared = self.sharing.state();
            shared.ending = None;
            shared.authored = true;
        }
        Ok(self.save_under_if(loaded, lease, until, deadline).await)
    }

    /// One login (fetching the client pair if the session has none), without saving.
    pub(super) async fn log_in_once(
        &self,
        credentials: &Credentials,
        deadline: CallDeadline,
    ) -> Result<(), Error> {
        if self.state() == State::NoClient {
            self.fetch_client_within(deadline).await?;
        }
        let step = self.session().login(credentials)?;
        self.exchange(step, deadline).await.map(drop)
    }
}

/// Where a client gets credentials to log in again by itself (see `with_relogin`).
#[derive(Clone)]
pub struct Relogin {
    credentials: std::sync::Arc<dyn Fn() -> Option<Credentials> + Send + Sync>,
    otp: Option<std::sync::Arc<dyn Fn() -> Option<String> + Send + Sync>>,
}

impl fmt::Debug for Relogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Relogin")
            .field("otp", &self.otp.is_some())
            .finish_non_exhaustive()
    }
}

impl Relogin {
    /// Logs in again with what `credentials` gives (`None`: not now, the call fails with
    /// [`Error::LoginRequired`]). It runs while no lock of the client is held.
    pub fn new(credentials: impl Fn() -> Option<Credentials> + Send + Sync + 'static) -> Self {
        Relogin {
            credentials: std::sync::Arc::new(credentials),
            otp: None,
        }
    }

    /// For a two-factor account: asks `otp` for the current code when the server wants one.
    pub fn with_otp(mut self, otp: impl Fn() -> Option<String> + Send + Sync + 'static) -> Self {
        self.otp = Some(std::sync::Arc::new(otp));
        self
    }
}
