//! The session as a tower [`Layer`]: any request to the instance sent through the wrapped
//! service goes authorized, refreshed and retried as `send_authorized` does.

use crate::asynchronous::{AsyncClient, AsyncTransport};
use crate::driver::client::downstream::Downstream;
use crate::error::Error;
use crate::store::{MemoryStore, SessionStore};
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, Uri};
use http_body::Body as HttpBody;
use http_body_util::{BodyExt, Either, Empty, Full, Limited};
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_layer::Layer;
use tower_service::Service;

/// The error of an [`Authorize`] service: the wrapped service's, or the session's ([`Error`],
/// found with `downcast_ref::<peertube_session::Error>()`).
pub type AuthorizeError = Box<dyn std::error::Error + Send + Sync>;

/// The body of an [`Authorize`] service's answers: the wrapped service's own, or (for a 401 the
/// session had to read) the same bytes read whole.
pub type AuthorizedBody<B> = Either<B, Full<Bytes>>;

/// Wraps a service in [`Authorize`]: keeps every request to the instance authorized with the
/// session of an [`AsyncClient`].
///
/// ```no_run
/// use peertube_session::asynchronous::http_body_util::{BodyExt, Full};
/// use peertube_session::asynchronous::hyper_util::client::legacy::Client;
/// use peertube_session::asynchronous::hyper_util::client::legacy::connect::HttpConnector;
/// use peertube_session::asynchronous::hyper_util::rt::TokioExecutor;
/// use peertube_session::asynchronous::{AsyncClient, AuthorizeLayer, HyperTransport};
/// use peertube_session::asynchronous::bytes::Bytes;
/// use peertube_session::{Credentials, Instance};
/// use std::sync::Arc;
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let instance = Instance::new("http://peertube.localhost:9000")?;
/// let session = Arc::new(AsyncClient::new(HyperTransport::new(), instance.clone()));
/// session.login(&Credentials::password("alice", "correct horse")).await?;
/// // Any client service will do; for https, give hyper-util's client an https connector.
/// let http = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(HttpConnector::new());
/// let api = ServiceBuilder::new()
///     .layer(AuthorizeLayer::new(session))
///     .service(http);
/// let me = http::Request::get(instance.uri("/api/v1/users/me")?).body(Full::default())?;
/// let answer = api.oneshot(me).await?;
/// let body = answer.into_body().collect().await?.to_bytes();
/// println!("{}", String::from_utf8_lossy(&body));
/// # Ok(())
/// # }
/// ```
pub struct AuthorizeLayer<T, S = MemoryStore> {
    client: Arc<AsyncClient<T, S>>,
}

impl<T, S> AuthorizeLayer<T, S> {
    /// The layer of `client`'s session.
    pub fn new(client: Arc<AsyncClient<T, S>>) -> Self {
        AuthorizeLayer { client }
    }
}

impl<T, S> Clone for AuthorizeLayer<T, S> {
    fn clone(&self) -> Self {
        AuthorizeLayer {
            client: self.client.clone(),
        }
    }
}

impl<T, S> fmt::Debug for AuthorizeLayer<T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizeLayer")
            .field("client", &self.client)
            .finish()
    }
}

impl<Svc, T, S> Layer<Svc> for AuthorizeLayer<T, S> {
    type Service = Authorize<Svc, T, S>;

    fn layer(&self, inner: Svc) -> Self::Service {
        Authorize {
            inner,
            client: self.client.clone(),
        }
    }
}

/// A service that keeps every request to the instance authorized with an [`AsyncClient`]'s
/// session (made by [`AuthorizeLayer`]).
///
/// For a request to the instance (under its path prefix: [`Instance::contains`]) that carries
/// no `Authorization` header of its own, it makes sure the access token is fresh (the client's
/// single-flight refresh, through its store when it has one), puts the bearer on and calls the
/// wrapped service. On a 401 `invalid_token` it refreshes once (or takes the pair another
/// caller or process already saved) and sends the request again when its body can be copied
/// ([`TryCloneBody`]); a body that cannot be copied gets its 401 back, and the session is
/// refreshed for the next request. As many sends as [`AsyncClient::send_authorized`] makes.
/// Requests to any other origin, and requests with their own `Authorization`, go through
/// untouched.
///
/// Every request to the instance is sent with the session's token, public routes included: so
/// the session must be logged in. Before the login, and once it has ended (a logout here or in
/// another process sharing the store, a refresh token refused), such requests end with the
/// session's error (`InvalidState`, `LoggedOut`, `LoginRequired`) and nothing is sent.
///
/// The wrapped service is cloned for each request (it must be `Clone`, as hyper-util's client
/// is); the session's own exchanges go through the client's transport, bounded by its call
/// deadline.
///
/// [`Instance::contains`]: crate::Instance::contains
pub struct Authorize<Svc, T, S = MemoryStore> {
    inner: Svc,
    client: Arc<AsyncClient<T, S>>,
}

impl<Svc: Clone, T, S> Clone for Authorize<Svc, T, S> {
    fn clone(&self) -> Self {
        Authorize {
            inner: self.inner.clone(),
            client: self.client.clone(),
        }
    }
}

impl<Svc: fmt::Debug, T, S> fmt::Debug for Authorize<Svc, T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorize")
            .field("inner", &self.inner)
            .field("client", &self.client)
            .finish()
    }
}

impl<Svc, T, S, ReqB, ResB> Service<Request<ReqB>> for Authorize<Svc, T, S>
where
    Svc: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    Svc::Future: Send,
    Svc::Error: Into<AuthorizeError>,
    ReqB: TryCloneBody + Send + 'static,
    ResB: HttpBody<Data = Bytes> + Send + 'static,
    ResB::Error: Into<AuthorizeError>,
    T: AsyncTransport + 'static,
    S: SessionStore + 'static,
{
    type Response = Response<AuthorizedBody<ResB>>;
    type Error = AuthorizeError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, AuthorizeError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), AuthorizeError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        // The service made ready is the one that takes the request; a clone takes its place.
        let fresh = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, fresh);
        let client = self.client.clone();
        Box::pin(async move {
            let mut below = Below {
                service: ready,
                bodies: PhantomData,
            };
            client.send_down(&mut below, request).await
        })
    }
}

/// A request body that can say whether it can be sent again: copied when it can (a body held
/// in memory), not when it streams. Implement it for a body type of your own to use it with
/// [`Authorize`].
pub trait TryCloneBody: Sized {
    /// A copy, or `None` when the body cannot be sent twice.
    fn try_clone_body(&self) -> Option<Self>;
}

macro_rules! cloned_bodies {
    ($($body:ty),* $(,)?) => {
        $(impl TryCloneBody for $body {
            fn try_clone_body(&self) -> Option<Self> {
                Some(self.clone())
            }
        })*
    };
}

cloned_bodies!(
    Full<Bytes>,
    Empty<Bytes>,
    String,
    Vec<u8>,
    Bytes,
    (),
    &'static str,
    &'static [u8],
);

impl<D, E> TryCloneBody for http_body_util::combinators::BoxBody<D, E> {
    fn try_clone_body(&self) -> Option<Self> {
        None
    }
}

impl<D, E> TryCloneBody for http_body_util::combinators::UnsyncBoxBody<D, E> {
    fn try_clone_body(&self) -> Option<Self> {
        None
    }
}

/// The wrapped service, as the session sends requests down to it.
struct Below<Svc, ReqB, ResB> {
    service: Svc,
    /// The bodies it takes and gives.
    bodies: PhantomData<fn(ReqB) -> ResB>,
}

impl<Svc, ReqB, ResB> Downstream for Below<Svc, ReqB, ResB>
where
    Svc: Service<Request<ReqB>, Response = Response<ResB>> + Send,
    Svc::Future: Send,
    Svc::Error: Into<AuthorizeError>,
    ReqB: TryCloneBody + Send,
    ResB: HttpBody<Data = Bytes> + Send,
    ResB::Error: Into<AuthorizeError>,
{
    type Request = Request<ReqB>;
    type Response = Response<AuthorizedBody<ResB>>;
    type Error = AuthorizeError;

    fn target(request: &Request<ReqB>) -> Option<Uri> {
        Some(request.uri().clone())
    }

    fn headers_mut(request: &mut Request<ReqB>) -> &mut HeaderMap {
        request.headers_mut()
    }

    fn try_clone(request: &Request<ReqB>) -> Option<Request<ReqB>> {
        let mut copy = Request::new(request.body().try_clone_body()?);
        *copy.method_mut() = request.method().clone();
        *copy.uri_mut() = request.uri().clone();
        *copy.version_mut() = request.version();
        *copy.headers_mut() = request.headers().clone();
        *copy.extensions_mut() = request.extensions().clone();
        Some(copy)
    }

    async fn send(
        &mut self,
        request: Request<ReqB>,
    ) -> Result<Response<AuthorizedBody<ResB>>, AuthorizeError> {
        std::future::poll_fn(|cx| self.service.poll_ready(cx))
            .await
            .map_err(Into::into)?;
        let response = self.service.call(request).await.map_err(Into::into)?;
        Ok(response.map(Either::Left))
    }

    fn head(response: &Response<AuthorizedBody<ResB>>) -> (StatusCode, &HeaderMap) {
        (response.status(), response.headers())
    }

    async fn read_whole(
        response: Response<AuthorizedBody<ResB>>,
        limit: usize,
    ) -> Result<(Response<AuthorizedBody<ResB>>, Response<Bytes>), AuthorizeError> {
        let (parts, body) = response.into_parts();
        let bytes = Limited::new(body, limit).collect().await?.to_bytes();
        let again = Response::from_parts(parts.clone(), Either::Right(Full::new(bytes.clone())));
        Ok((again, Response::from_parts(parts, bytes)))
    }

    fn failed(error: Error) -> AuthorizeError {
        Box::new(error)
    }
}
