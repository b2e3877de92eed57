//! A caller's own request on its way down another HTTP stack (the reqwest middleware, the tower
//! layer): the token put on, the answer observed, the session refreshed and the request sent
//! again, with the decisions `send_authorized` makes. The stacks only move bytes.

use super::{AsyncClient, AsyncTransport, Dead, Sends, within};
use crate::error::Error;
use crate::session::{Authorized, Target};
use crate::store::SessionStore;
use crate::trace;
use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{HeaderMap, Response, StatusCode, Uri};
use std::future::Future;

/// What the session needs of another HTTP stack's requests and answers.
pub(crate) trait Downstream {
    /// The stack's request.
    type Request: Send;
    /// The stack's answer.
    type Response: Send;
    /// The stack's error, which ours become.
    type Error: Send;

    /// The request's target, when it reads as a URI (a request without one goes down as it
    /// came).
    fn target(request: &Self::Request) -> Option<Uri>;
    /// The request's headers.
    fn headers_mut(request: &mut Self::Request) -> &mut HeaderMap;
    /// A copy to send again, when the body allows one.
    fn try_clone(request: &Self::Request) -> Option<Self::Request>;
    /// Sends `request` down the stack.
    fn send(
        &mut self,
        request: Self::Request,
    ) -> impl Future<Output = Result<Self::Response, Self::Error>> + Send;
    /// The answer's status and headers.
    fn head(response: &Self::Response) -> (StatusCode, &HeaderMap);
    /// The answer read whole (a 401's, a few hundred bytes on PeerTube), and the same answer
    /// made again from those bytes for the caller. More than `limit` bytes is an error.
    fn read_whole(
        response: Self::Response,
        limit: usize,
    ) -> impl Future<Output = Result<(Self::Response, Response<Bytes>), Self::Error>> + Send;
    /// Our error, as the stack's.
    fn failed(error: Error) -> Self::Error;
}

impl<T: AsyncTransport, S: SessionStore> AsyncClient<T, S> {
    /// Learns from the head of an answer that was not a 401: the server's clock (its `Date`)
    /// and that the token on the request worked.
    fn answered(&self, ticket: &Authorized, head: &HeaderMap) {
        let now = self.now();
        let mut session = self.session();
        session.learn_date_header(head, now);
        session.note_worked(ticket);
    }

    /// Sends `request` down `stack`, authorized when it is for the instance and carries no
    /// `Authorization` of its own; after a 401 `invalid_token`, refreshes (or takes the pair
    /// another caller or process saved) and sends it again when it can be copied, as
    /// `send_authorized` does. A request that cannot be copied gets its 401 back, and the
    /// session is refreshed for the next one.
    pub(crate) async fn send_down<D: Downstream>(
        &self,
        stack: &mut D,
        mut request: D::Request,
    ) -> Result<D::Response, D::Error> {
        let ours = !D::headers_mut(&mut request).contains_key(AUTHORIZATION)
            && D::target(&request)
                .is_some_and(|target| self.session().instance().contains(&target));
        if !ours {
            return stack.send(request).await;
        }
        let deadline = self.deadline();
        let mut sends = Sends::default();
        loop {
            let copy = if sends.may_follow() {
                D::try_clone(&request)
            } else {
                None
            };
            let headers = D::headers_mut(&mut request);
            let (ticket, refreshes_before) = within(deadline, || {
                self.authorize_within(Target::Instance, headers, deadline)
            })
            .await
            .map_err(D::failed)?;
            let response = stack.send(request).await?;
            let (status, head) = D::head(&response);
            if status != StatusCode::UNAUTHORIZED {
                self.answered(&ticket, head);
                return Ok(response);
            }
            let (response, whole) = D::read_whole(response, self.config.body_limit()).await?;
            let dead = self
                .observed_with_store(&ticket, &whole, &sends, refreshes_before, deadline)
                .await;
            if !sends.again(dead, refreshes_before) {
                return Ok(response);
            }
            match copy {
                Some(copy) => request = copy,
                None => {
                    trace::event!(
                        debug,
                        "the request's body cannot be sent again: its 401 goes back, the \
                         session is refreshed for the next one"
                    );
                    if matches!(dead, Some(Dead::Ours { .. })) {
                        // Its outcome reaches the next call, which needs it.
                        let _ = within(deadline, || self.ensure_fresh_within(deadline)).await;
                    }
                    return Ok(response);
                }
            }
        }
    }
}
