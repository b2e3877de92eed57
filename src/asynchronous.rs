//! An async driver over any async HTTP client, its hyper and reqwest transports (features
//! `hyper`, `reqwest`), and the session on your own client: `SessionMiddleware` for a
//! `reqwest_middleware::ClientWithMiddleware` (feature `reqwest-middleware`), `AuthorizeLayer`
//! for any tower service (feature `tower`).
//!
//! [`AsyncClient`] runs the same steps as the blocking driver over an [`AsyncTransport`]: log
//! in (fetching the client pair when needed, asking for the one-time code when the server wants
//! one), keep the access token fresh, send authorized API calls retried after one refresh on
//! `invalid_token` (and again with the new token when another caller's refresh killed the
//! one they carried), log out. Share it between tasks with an `Arc`: refreshes are single-flight,
//! so no two requests ever carry the same refresh token. Every future it returns is `Send`.
//!
//! ```no_run
//! use peertube_session::asynchronous::{AsyncClient, HyperTransport};
//! use peertube_session::{Body, Credentials, Instance};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = AsyncClient::new(HyperTransport::new(), Instance::new("https://video.example.org")?);
//! client.login(&Credentials::password("alice", "correct horse")).await?;
//! let me = http::Request::get(client.instance().uri("/api/v1/users/me")?).body(Body::default())?;
//! let answer = client.send_authorized(me).await?;
//! println!("{}", String::from_utf8_lossy(answer.body()));
//! client.logout().await?;
//! # Ok(())
//! # }
//! ```

pub use crate::driver::client::{AsyncClient, AsyncTransport};
pub use crate::driver::client::{LoginOutcome, OtherSessionsEnded, Relogin, SessionRevoked};
pub use crate::driver::{
    CallDeadline, Clock, Config, ConfigBuilder, DEFAULT_CALL_TIMEOUT, DEFAULT_TIMEOUT,
    DEFAULT_USER_AGENT, DeadlineElapsed, ExchangeLimits, STORE_BUDGET,
};
pub use crate::session::DEFAULT_REFRESH_MARGIN;
#[cfg(feature = "hyper")]
pub use {bytes, http_body_util, hyper, hyper_util};

#[cfg(feature = "hyper")]
pub use crate::hyper_transport::{HttpsConnector, HyperTransport};
#[cfg(feature = "reqwest-middleware")]
pub use crate::reqwest_middleware::SessionMiddleware;
#[cfg(feature = "reqwest")]
pub use crate::reqwest_transport::ReqwestTransport;
#[cfg(feature = "tower")]
pub use crate::tower_layer::{
    Authorize, AuthorizeError, AuthorizeLayer, AuthorizedBody, TryCloneBody,
};
#[cfg(feature = "reqwest")]
pub use reqwest;
#[cfg(feature = "reqwest-middleware")]
pub use reqwest_middleware;
