//! The account's API through the driver ([`crate::api`]): any endpoint as an authorized call,
//! and the token-session operations built on it.

use super::{AsyncClient, AsyncTransport};
use crate::api::{
    AllTokenSessions, Endpoint, Me, RevokeTokenSession, SessionSort, TokenSession, UsersMe,
};
use crate::driver::CallDeadline;
use crate::error::Error;
use crate::response::{Parser, Secrets};
use crate::session::Authorized;
use crate::store::{Ending, SessionStore};
use crate::trace;

/// How many times `log_out_other_sessions` lists the sessions and ends the others: a session
/// that refreshed between the listing and its revocation comes back under a new id, and is
/// ended in the next round.
const MAX_ROUNDS: usize = 3;

/// What a driver's `revoke_session` ended.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRevoked {
    /// Whether it was this client's own session: the client is then logged out, as after
    /// `logout` (and so is every process sharing its store).
    pub current: bool,
    /// `redirectUrl`, when an auth plugin wants the user sent somewhere.
    pub redirect_url: Option<String>,
}

/// What a driver's `log_out_other_sessions` did.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherSessionsEnded {
    /// The sessions it revoked, as they were listed before.
    pub ended: Vec<TokenSession>,
    /// This client's own session, which it kept, as last listed.
    pub kept: Option<TokenSession>,
}

/// Every session of a user, and which one is the caller's, with the token it was listed with.
pub(super) struct Listing {
    pub(super) sessions: Vec<TokenSession>,
    current: Option<(TokenSession, Authorized)>,
}

impl<T: AsyncTransport, S: SessionStore> AsyncClient<T, S> {
    pub(crate) async fn call_within<E: Endpoint>(
        &self,
        endpoint: &E,
        deadline: CallDeadline,
    ) -> Result<E::Output, Error> {
        trace::in_span!("call", self, self.call_plain(endpoint, deadline))
    }

    /// [`call_within`](Self::call_within) inside the span of the call that makes it.
    async fn call_plain<E: Endpoint>(
        &self,
        endpoint: &E,
        deadline: CallDeadline,
    ) -> Result<E::Output, Error> {
        Ok(self.call_ticketed(endpoint, deadline).await?.0)
    }

    /// An endpoint's call and which token answered it.
    async fn call_ticketed<E: Endpoint>(
        &self,
        endpoint: &E,
        deadline: CallDeadline,
    ) -> Result<(E::Output, Authorized), Error> {
        let request = endpoint.request(&self.instance())?;
        let body_limit = self.config.body_limit().max(E::BODY_LIMIT);
        let sent = self
            .send_authorized_capped(request, deadline, body_limit)
            .await?;
        let secrets = match sent.token() {
            Some(token) => Secrets::none().with(token),
            None => Secrets::none(),
        };
        let output = Parser::new().with_body_limit(body_limit).endpoint(
            endpoint,
            &sent.response,
            &secrets,
        )?;
        Ok((output, sent.ticket))
    }

    pub(crate) async fn me_within(&self, deadline: CallDeadline) -> Result<Me, Error> {
        trace::in_span!("me", self, self.call_plain(&UsersMe, deadline))
    }

    pub(crate) async fn sessions_within(
        &self,
        deadline: CallDeadline,
    ) -> Result<Vec<TokenSession>, Error> {
        trace::in_span!("sessions", self, async {
            let me = self.call_plain(&UsersMe, deadline).await?;
            let listing = self
                .listing(AllTokenSessions::new(me.id), false, deadline)
                .await?;
            Ok(listing.sessions)
        })
    }

    /// Walks the pages of `all`; with `until_current`, stops at the page holding the caller's
    /// session.
    pub(super) async fn listing(
        &self,
        mut all: AllTokenSessions,
        until_current: bool,
        deadline: CallDeadline,
    ) -> Result<Listing, Error> {
        let mut current = None;
        while let Some(page) = all.next_page() {
            let (answer, ticket) = self.call_ticketed(&page, deadline).await?;
            if let Some(mine) = answer.data.iter().find(|s| s.current_session) {
                current = Some((mine.clone(), ticket));
            }
            all.add(&page, answer);
            if until_current && current.is_some() {
                break;
            }
        }
        Ok(Listing {
            sessions: all.into_sessions(),
            current,
        })
    }

    pub(crate) async fn revoke_session_within(
        &self,
        session_id: u64,
        deadline: CallDeadline,
    ) -> Result<SessionRevoked, Error> {
        trace::in_span!("revoke_session", self, async {
            let me = self.call_plain(&UsersMe, deadline).await?;
            // Whether the session is this client's own decides what happens here after: newest
            // first, the caller's session is on the first page.
            let newest_first = AllTokenSessions::new(me.id).sort(SessionSort::NewestFirst);
            let listing = self.listing(newest_first, true, deadline).await?;
            let revoke = RevokeTokenSession::new(me.id, session_id);
            let (answer, ticket) = self.call_ticketed(&revoke, deadline).await?;
            // It was ours if it was listed as ours with the very token that revoked it: a refresh
            // in between would have given our session another id, and the revocation a 404.
            let current = listing
                .current
                .is_some_and(|(mine, listed)| mine.id == session_id && listed == ticket);
            if current {
                self.ended_here(&ticket, deadline).await;
            }
            Ok(SessionRevoked {
                current,
                redirect_url: answer.redirect_url,
            })
        })
    }

    /// The server ended this client's session (it revoked it through the token-session route):
    /// the same state as after a logout, here and in the store.
    async fn ended_here(&self, ticket: &Authorized, deadline: CallDeadline) {
        let lineage = {
            let mut session = self.session();
            let lineage = session.lineage();
            session.current_session_revoked(ticket).then_some(lineage)
        };
        if let Some(lineage) = lineage {
            self.save_over(Some((Ending::LoggedOut, lineage)), deadline)
                .await;
        }
    }

    pub(crate) async fn log_out_other_sessions_within(
        &self,
        deadline: CallDeadline,
    ) -> Result<OtherSessionsEnded, Error> {
        trace::in_span!("log_out_other_sessions", self, async {
            let me = self.call_plain(&UsersMe, deadline).await?;
            let mut ended = Vec::new();
            let mut kept = None;
            for _ in 0..MAX_ROUNDS {
                let listing = self
                    .listing(AllTokenSessions::new(me.id), false, deadline)
                    .await?;
                let Some((mine, _)) = listing.current else {
                    // Without knowing which session is ours, revoking "the others" could end ours.
                    return Err(Error::malformed(
                        http::StatusCode::OK,
                        "no listed session is marked as the current one",
                    ));
                };
                // A session marked current on an earlier page, when a refresh of ours came between
                // two pages, is our old pair: already gone (its revocation is a 404, skipped).
                let others: Vec<TokenSession> = listing
                    .sessions
                    .into_iter()
                    .filter(|s| s.id != mine.id)
                    .collect();
                kept = Some(mine);
                if others.is_empty() {
                    break;
                }
                for session in others {
                    let revoke = RevokeTokenSession::new(me.id, session.id);
                    match self.call_plain(&revoke, deadline).await {
                        Ok(_) => ended.push(session),
                        // It ended on its own meanwhile, or refreshed into a new id: the next
                        // round lists it again if it lives on.
                        Err(Error::NotFound(_)) => {}
                        Err(error) => return Err(error),
                    }
                }
            }
            Ok(OtherSessionsEnded { ended, kept })
        })
    }
}

#[cfg(feature = "async-client")]
impl<T: AsyncTransport, S: SessionStore> AsyncClient<T, S> {
    /// Calls any [`Endpoint`] as an authorized request (refreshing and retrying like
    /// [`send_authorized`](Self::send_authorized)) and reads its answer, errors typed as
    /// [`crate::api`] describes. The answer's body cap is the larger of the configured one and
    /// the endpoint's [`BODY_LIMIT`](Endpoint::BODY_LIMIT).
    pub async fn call<E: Endpoint>(&self, endpoint: &E) -> Result<E::Output, Error> {
        let deadline = self.deadline();
        super::within(deadline, || self.call_within(endpoint, deadline)).await
    }

    /// `GET /api/v1/users/me`: the logged-in user's id, username and role.
    pub async fn me(&self) -> Result<Me, Error> {
        let deadline = self.deadline();
        super::within(deadline, || self.me_within(deadline)).await
    }

    /// Every login session of the logged-in account (PeerTube 7.3 and later; an older server
    /// is [`Error::NotSupported`]), oldest first; the one marked
    /// [`current_session`](TokenSession::current_session) is this client's. One call: its
    /// deadline covers the lookup of the user and every page.
    pub async fn sessions(&self) -> Result<Vec<TokenSession>, Error> {
        let deadline = self.deadline();
        super::within(deadline, || self.sessions_within(deadline)).await
    }

    /// Ends one login session of the logged-in account. Ending this client's own session is a
    /// logout: the client (and every process sharing its store) ends up as after
    /// [`logout`](Self::logout). An unknown or already ended session is [`Error::NotFound`].
    pub async fn revoke_session(&self, session_id: u64) -> Result<SessionRevoked, Error> {
        let deadline = self.deadline();
        super::within(deadline, || {
            self.revoke_session_within(session_id, deadline)
        })
        .await
    }

    /// Ends every login session of the account but this client's own, and says which it ended.
    /// Sessions that refresh meanwhile (and so change id) are caught by listing again, up to
    /// three rounds.
    ///
    /// PeerTube lists (and lets one revoke) only sessions whose access token is still valid
    /// (`listSessionsOf` and `loadSessionOf` in its `oauth-token.ts`): a session left unused
    /// for longer than the access token's lifetime (1 day by default) is out of reach until its
    /// holder refreshes it, though its refresh token lives on (2 weeks by default). This call
    /// cannot end those; run it again later, or have an administrator reset the password.
    pub async fn log_out_other_sessions(&self) -> Result<OtherSessionsEnded, Error> {
        let deadline = self.deadline();
        super::within(deadline, || self.log_out_other_sessions_within(deadline)).await
    }
}
