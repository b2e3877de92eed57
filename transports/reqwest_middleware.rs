//! The session as a reqwest-middleware [`Middleware`]: any request to the instance sent through
//! a `ClientWithMiddleware` goes authorized, refreshed and retried as `send_authorized` does.

use crate::asynchronous::{AsyncClient, AsyncTransport};
use crate::driver::client::downstream::Downstream;
use crate::error::Error;
use crate::reqwest_transport::whole;
use crate::store::{MemoryStore, SessionStore};
use bytes::Bytes;
use http::{Extensions, HeaderMap, StatusCode, Uri};
use reqwest::ResponseBuilderExt;
use reqwest_middleware::{Middleware, Next};
use std::fmt;
use std::sync::Arc;

/// Keeps every request to the instance that goes through a
/// [`ClientWithMiddleware`](reqwest_middleware::ClientWithMiddleware) authorized with the
/// session of an [`AsyncClient`].
///
/// For a request to the instance (under its path prefix: [`Instance::contains`]) that carries
/// no `Authorization` header of its own, it makes sure the access token is fresh (the client's
/// single-flight refresh, through its store when it has one), puts the bearer on and sends the
/// request down the chain. On a 401 `invalid_token` it refreshes once (or takes the pair
/// another caller or process already saved) and sends the request again when
/// [`reqwest::Request::try_clone`] can copy it; a streaming body that cannot be copied gets its
/// 401 back, and the session is refreshed for the next request. As many sends as
/// [`AsyncClient::send_authorized`] makes. Requests to any other origin, and requests with their
/// own `Authorization`, go down untouched.
///
/// Every request to the instance is sent with the session's token, public routes included: so
/// the session must be logged in. Before the login, and once it has ended (a logout here or in
/// another process sharing the store, a refresh token refused), such requests end with the
/// session's error (`InvalidState`, `LoggedOut`, `LoginRequired`) and nothing is sent.
///
/// The session's own exchanges (a refresh, a re-login) go through the client's transport, not
/// through the chain; their time is bounded by the client's call deadline
/// ([`Config::call_timeout`](crate::asynchronous::Config::call_timeout)). The request itself
/// has the chain's timeouts.
///
/// Your reqwest client needs a TLS provider: reqwest with its default features has one; this
/// crate builds reqwest without choosing one for you (its own transport names ring). With
/// `default-features = false` on reqwest, install one
/// (`rustls::crypto::ring::default_provider().install_default()`), or build the chain over
/// the transport's own client, [`ReqwestTransport::client`](crate::asynchronous::ReqwestTransport::client).
///
/// The session's errors (say [`Error::LoginRequired`] once the refresh token is dead, or a
/// logout elsewhere) reach the caller as [`reqwest_middleware::Error::Middleware`], which holds
/// our [`Error`]:
///
/// ```
/// # fn show(error: reqwest_middleware::Error) {
/// use peertube_session::Error;
///
/// if let reqwest_middleware::Error::Middleware(inner) = &error
///     && let Some(Error::LoginRequired(_)) = inner.downcast_ref::<Error>()
/// {
///     eprintln!("log in again");
/// }
/// # }
/// ```
///
/// ```no_run
/// use peertube_session::asynchronous::{AsyncClient, ReqwestTransport, SessionMiddleware};
/// use peertube_session::{Credentials, Instance};
/// use std::sync::Arc;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let instance = Instance::new("https://video.example.org")?;
/// let session = Arc::new(AsyncClient::new(ReqwestTransport::new(), instance));
/// session.login(&Credentials::password("alice", "correct horse")).await?;
/// let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(SessionMiddleware::new(session.clone()))
///     .build();
/// let me = http.get("https://video.example.org/api/v1/users/me").send().await?;
/// println!("{}", me.text().await?);
/// # Ok(())
/// # }
/// ```
///
/// [`Instance::contains`]: crate::Instance::contains
pub struct SessionMiddleware<T, S = MemoryStore> {
    client: Arc<AsyncClient<T, S>>,
}

impl<T, S> SessionMiddleware<T, S> {
    /// The middleware of `client`'s session.
    pub fn new(client: Arc<AsyncClient<T, S>>) -> Self {
        SessionMiddleware { client }
    }

    /// The client whose session it puts on requests.
    pub fn client(&self) -> &Arc<AsyncClient<T, S>> {
        &self.client
    }
}

impl<T, S> Clone for SessionMiddleware<T, S> {
    fn clone(&self) -> Self {
        SessionMiddleware {
            client: self.client.clone(),
        }
    }
}

impl<T, S> fmt::Debug for SessionMiddleware<T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionMiddleware")
            .field("client", &self.client)
            .finish()
    }
}

#[async_trait::async_trait]
impl<T, S> Middleware for SessionMiddleware<T, S>
where
    T: AsyncTransport + 'static,
    S: SessionStore + 'static,
{
    async fn handle(
        &self,
        request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let mut chain = Chain { next, extensions };
        self.client.send_down(&mut chain, request).await
    }
}

/// The rest of the middleware chain, and the request's extensions it passes along.
struct Chain<'a> {
    next: Next<'a>,
    extensions: &'a mut Extensions,
}

impl Downstream for Chain<'_> {
    type Request = reqwest::Request;
    type Response = reqwest::Response;
    type Error = reqwest_middleware::Error;

    fn target(request: &reqwest::Request) -> Option<Uri> {
        Uri::try_from(request.url().as_str()).ok()
    }

    fn headers_mut(request: &mut reqwest::Request) -> &mut HeaderMap {
        request.headers_mut()
    }

    fn try_clone(request: &reqwest::Request) -> Option<reqwest::Request> {
        request.try_clone()
    }

    async fn send(
        &mut self,
        request: reqwest::Request,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        self.next.clone().run(request, self.extensions).await
    }

    fn head(response: &reqwest::Response) -> (StatusCode, &HeaderMap) {
        (response.status(), response.headers())
    }

    async fn read_whole(
        response: reqwest::Response,
        limit: usize,
    ) -> reqwest_middleware::Result<(reqwest::Response, http::Response<Bytes>)> {
        let url = response.url().clone();
        let read = whole(response, limit)
            .await
            .map_err(|error| Chain::failed(Error::Transport(error)))?
            .map(Bytes::from);
        // The answer's URL goes only through the builder; a builder given nothing else cannot
        // fail, so the fallback is never taken.
        let mut again = http::Response::builder()
            .url(url)
            .body(read.body().clone())
            .unwrap_or_else(|_| http::Response::new(read.body().clone()));
        *again.status_mut() = read.status();
        *again.version_mut() = read.version();
        *again.headers_mut() = read.headers().clone();
        Ok((reqwest::Response::from(again), read))
    }

    fn failed(error: Error) -> reqwest_middleware::Error {
        reqwest_middleware::Error::middleware(error)
    }
}
