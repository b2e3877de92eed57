//! # peertube-session
//!
//! Log programs in and out of [PeerTube](https://joinpeertube.org) instances: fetch the OAuth
//! client pair, log in (with two-factor authentication or an external-auth plugin), keep the
//! token fresh, put it on API requests, and log out.
//!
//! The core is **sans-IO**: it builds [`http::Request`] values and reads [`http::Response`]
//! values, and keeps the login session as a pure state machine ([`Session`]) that never touches
//! the network, the clock, the environment or the filesystem. Time comes in as an argument. Send
//! the requests with any HTTP client you like. The drivers built on it (features below) read
//! the clock for their deadlines and reach the network only through the transport you give them.
//!
//! ## States
//!
//! ```text
//!            fetch_client / with_client(cached)
//! NoClient ─────────────────────────────────────▶ HaveClient
//!                                                  │  ▲  login (password + optional OTP,
//!                                                  │  │        or external-auth token)
//!                                                  ▼  │  refresh invalid_grant / forget
//!                                                LoggedIn ◀──┐ refresh (rotates both tokens)
//!                                                  │  └──────┘
//!                                                  │ logout (200)
//!                                                  ▼
//!                                                Revoked ── login ──▶ LoggedIn
//! ```
//!
//! ## Operations
//!
//! | step | request | [`Session`] method | builder / parser (no state) |
//! |---|---|---|---|
//! | get the OAuth client | `GET /api/v1/oauth-clients/local` | [`Session::fetch_client`] | [`request::oauth_client_request`] / [`response::parse_oauth_client`] |
//! | log in | `POST /api/v1/users/token`, `grant_type=password` | [`Session::login`] | [`request::password_grant_request`] / [`response::parse_login`] |
//! | refresh | `POST /api/v1/users/token`, `grant_type=refresh_token` | [`Session::refresh`] | [`request::refresh_grant_request`] / [`response::parse_refresh`] |
//! | log out | `POST /api/v1/users/revoke-token` with `Authorization: Bearer` | [`Session::logout`] | [`request::revoke_request`] / [`response::parse_revoke`] |
//! | call any other API | your request | [`Session::authorize`], then [`Session::observe`] | |
//! | who am I, login sessions (PeerTube 7.3+) | `GET /api/v1/users/me`, `…/users/{id}/token-sessions` | [`Session::authorize`]; [`Session::current_session_revoked`] after revoking one's own | [`api`]: one module per endpoint |
//!
//! ## Call order
//!
//! 1. Each command (`fetch_client`, `login`, `refresh`, `logout`) checks the state and returns
//!    the request to send plus a [`Pending`] handle. Calling one in the wrong state is
//!    [`Error::InvalidState`], never a panic.
//! 2. Send the request however you like. Treat 4xx and 5xx as responses, not failures, keep
//!    all headers, follow no redirects.
//! 3. Hand the response back with [`Session::handle`]`(pending, &response, now)`: the only
//!    place the state changes. If no response came, call [`Session::abandon`]`(pending)`.
//! 4. Ask [`Session::refresh_due`]`(now)` or [`Session::next_deadline`] when to refresh.
//!
//! ## A whole session
//!
//! The responses here are written by hand; in a program they come from your HTTP client.
//!
//! ```
//! use peertube_session::{Credentials, Error, Event, Instance, Session, State};
//! use std::time::{Duration, SystemTime};
//!
//! fn json(status: u16, body: &str) -> http::Response<Vec<u8>> {
//!     http::Response::builder()
//!         .status(status)
//!         .header("content-type", "application/json; charset=utf-8")
//!         .body(body.as_bytes().to_vec())
//!         .unwrap()
//! }
//! let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
//!
//! let mut session = Session::new(Instance::new("https://video.example.org")?);
//! assert_eq!(session.state(), State::NoClient);
//!
//! // 1. The instance's OAuth client pair.
//! let (request, pending) = session.fetch_client()?;
//! assert_eq!(request.uri(), "https://video.example.org/api/v1/oauth-clients/local");
//! let response = json(200, r#"{"client_id":"abc","client_secret":"s3cret"}"#);
//! assert_eq!(session.handle(pending, &response, now)?, Event::ClientFetched);
//!
//! // 2. Log in; this account has two-factor authentication on.
//! let credentials = Credentials::password("alice", "correct horse");
//! let (_request, pending) = session.login(&credentials)?;
//! let response = http::Response::builder()
//!     .status(401)
//!     .header("x-peertube-otp", "required; app")
//!     .body(br#"{"status":401,"code":"missing_two_factor","detail":"Missing two factor header"}"#.to_vec())
//!     .unwrap();
//! let error = session.handle(pending, &response, now).unwrap_err();
//! assert!(matches!(error, Error::TwoFactorRequired(_)));
//!
//! let (request, pending) = session.login(&credentials.with_otp("123456"))?;
//! assert!(request.headers()["x-peertube-otp"].is_sensitive());
//! let response = json(200, r#"{"token_type":"Bearer","access_token":"a1","refresh_token":"r1",
//!                             "expires_in":86399,"refresh_token_expires_in":1209599}"#);
//! assert_eq!(session.handle(pending, &response, now)?, Event::LoggedIn);
//!
//! // 3. Any other API call carries the access token.
//! let mut me = http::Request::get(session.instance().uri("/api/v1/users/me")?).body(())?;
//! let ticket = session.authorize(&mut me, now)?;
//! assert!(me.headers()["authorization"].is_sensitive());
//! // The server says the token died (say the password was changed elsewhere):
//! let answer = http::Response::builder()
//!     .status(401)
//!     .body(br#"{"status":401,"code":"invalid_token","detail":"Invalid token."}"#.to_vec())?;
//! assert!(session.observe(&ticket, &answer));
//! assert!(session.refresh_due(now));
//!
//! // 4. Refresh: both tokens are replaced.
//! let (_request, pending) = session.refresh()?;
//! let response = json(200, r#"{"token_type":"Bearer","access_token":"a2","refresh_token":"r2",
//!                             "expires_in":86399,"refresh_token_expires_in":1209599}"#);
//! assert_eq!(session.handle(pending, &response, now)?, Event::Refreshed);
//! assert!(!session.refresh_due(now));
//! assert_eq!(session.next_deadline(), Some(now + Duration::from_secs(86399 - 60)));
//!
//! // 5. Log out.
//! let (request, pending) = session.logout()?;
//! assert_eq!(request.uri().path(), "/api/v1/users/revoke-token");
//! let response = json(200, r#"{"success":true}"#);
//! assert_eq!(session.handle(pending, &response, now)?, Event::LoggedOut { redirect_url: None });
//! assert_eq!(session.state(), State::Revoked);
//!
//! // Nothing secret is ever printed.
//! assert!(!format!("{session:?}").contains("s3cret"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Secrets
//!
//! The client secret, passwords, one-time codes, external-auth tokens and both tokens are
//! newtypes ([`secret`]) whose `Debug` prints `[redacted]`; request bodies ([`request::Body`])
//! print only their length; `Authorization` and `x-peertube-otp` headers are marked sensitive.
//! Server text that goes into an error is cleaned of every secret of the request it answers
//! ([`response::Secrets`]). Only [`SavedSession`] writes secrets out, on purpose.
//!
//! ## Features
//!
//! None are on by default, and the core depends on nothing that does IO. On docs.rs every item
//! that needs a feature says which.
//! - `blocking-client`: `blocking::BlockingClient` over any blocking HTTP client: login with
//!   two-factor prompt, auto-refresh, authorized calls with one retry, single-flight refresh
//!   across threads, one deadline per call, logout.
//! - `async-client`: the same as `asynchronous::AsyncClient`, on any executor (no runtime
//!   needed); every future is `Send`.
//! - `ureq`: `blocking-client` plus `blocking::UreqTransport`.
//! - `hyper`: `async-client` plus `asynchronous::HyperTransport` (tokio).
//! - `file-store`: [`store`]`::FileStore`, one session shared by the processes of a machine.
//! - `redis`: [`store`]`::RedisStore` and `AsyncRedisStore`, one session shared by the
//!   processes of many machines.
//! - `fake`: `fake::FakePeerTube`, a model of a PeerTube server's session endpoints for tests,
//!   in-process or served on a loopback port.
//! - `tracing`: the drivers emit [`tracing`](https://docs.rs/tracing) spans (one per call,
//!   with the instance's host and the account) and events (logins, refreshes and why, the
//!   store's lease and steps, 429s, transport failures) under the target `peertube_session`;
//!   never a secret, never server text. Without it, none of that code exists.
//!
//! ## Sharing a session between processes
//!
//! The drivers keep their session in a [`store`]: by default a [`store::MemoryStore`] of their
//! own; given a shared one with `with_store`, processes on one machine (file store) or many
//! (Redis) refresh one at a time, under the store's lease, and see each other's logins, refreshes
//! and logouts. The store's decisions are pure functions of [`store`], tested without any store.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
// docs.rs builds with `--cfg docsrs` on nightly: label each feature-gated item with its feature.
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The README's examples, compiled as doctests.
#[cfg(all(doctest, feature = "ureq", feature = "hyper"))]
#[doc = include_str!("../README.md")]
#[doc(hidden)]
pub struct ReadmeDoctests;

pub mod api;
pub mod error;
pub mod instance;
pub mod request;
pub mod response;
pub mod secret;
pub mod session;
pub mod store;

pub use error::{Error, ErrorCode, Operation, ServerError, TransportError, TransportErrorKind};
pub use http;
pub use instance::Instance;
pub use request::{Body, Credentials, OAuthClient};
pub use secret::{AccessToken, ClientSecret, ExternalAuthToken, Otp, Password, RefreshToken};
pub use session::{Authorized, Event, Pending, SavedSession, Session, State};

#[cfg(feature = "fake")]
pub mod fake;

// The drivers are part of the core: they do no IO of their own and reach the network only
// through a transport they are given. `transports/` holds only code that touches a socket.
#[cfg(any(feature = "async-client", feature = "blocking-client"))]
mod driver;
#[cfg(any(feature = "async-client", feature = "blocking-client"))]
mod trace;

#[cfg(feature = "async-client")]
pub mod asynchronous;
#[cfg(feature = "blocking-client")]
pub mod blocking;

#[cfg(any(feature = "hyper", feature = "reqwest"))]
#[path = "../transports/classify.rs"]
mod classify;
#[cfg(feature = "fake")]
#[path = "../transports/fake_server.rs"]
mod fake_server;
#[cfg(feature = "file-store")]
#[path = "../transports/file_store.rs"]
mod file_store;
#[cfg(feature = "hyper")]
#[path = "../transports/hyper_transport.rs"]
mod hyper_transport;
#[cfg(any(feature = "file-store", feature = "redis"))]
#[path = "../transports/lease_holder.rs"]
mod lease_holder;
#[cfg(feature = "redis")]
#[path = "../transports/redis_store.rs"]
mod redis_store;
#[cfg(feature = "reqwest-middleware")]
#[path = "../transports/reqwest_middleware.rs"]
mod reqwest_middleware;
#[cfg(feature = "reqwest")]
#[path = "../transports/reqwest_transport.rs"]
mod reqwest_transport;
#[cfg(any(feature = "ureq", feature = "hyper", feature = "reqwest"))]
#[path = "../transports/resend.rs"]
mod resend;
#[cfg(feature = "tower")]
#[path = "../transports/tower_layer.rs"]
mod tower_layer;
#[cfg(feature = "ureq")]
#[path = "../transports/ureq_connection.rs"]
mod ureq_connection;
#[cfg(feature = "ureq")]
#[path = "../transports/ureq_lookup.rs"]
mod ureq_lookup;
#[cfg(feature = "ureq")]
#[path = "../transports/ureq_transport.rs"]
mod ureq_transport;
