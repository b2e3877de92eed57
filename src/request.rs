//! Request builders: one pure function per operation, each returning an `http::Request`.
//!
//! They need no [`Session`](crate::Session): use them directly if you keep the tokens yourself.
//! Bodies are [`Body`] values, whose `Debug` never shows the bytes (they hold the password).

use crate::error::{Error, InputError};
use crate::instance::{Instance, OAUTH_CLIENT_PATH, REVOKE_PATH, TOKEN_PATH};
use crate::secret::{AccessToken, ClientSecret, ExternalAuthToken, Otp, Password, RefreshToken};
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use http::{HeaderName, Method, Request};
use secrecy::zeroize::Zeroize;
use std::fmt;

/// The request header carrying a two-factor one-time code (and, in responses, announcing that
/// one is required).
pub const OTP_HEADER: HeaderName = HeaderName::from_static("x-peertube-otp");

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

/// A request body. It may hold a password or a token, so `Debug` shows only its length, and the
/// bytes are zeroed when it is dropped.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Body(Vec<u8>);

impl Body {
    /// The bytes to send.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The number of bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The bytes, for an HTTP client that wants a `Vec<u8>`. They are no longer zeroed on drop.
    pub fn into_vec(mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        Body(bytes)
    }
}

impl From<String> for Body {
    fn from(text: String) -> Self {
        Body(text.into_bytes())
    }
}

impl From<&[u8]> for Body {
    fn from(bytes: &[u8]) -> Self {
        Body(bytes.to_vec())
    }
}

impl From<&str> for Body {
    fn from(text: &str) -> Self {
        Body(text.as_bytes().to_vec())
    }
}

impl From<()> for Body {
    // Mutation testing skips it: its one mutant, `Default::default()`, is this very body.
    #[cfg_attr(test, mutants::skip)]
    fn from((): ()) -> Self {
        Body::default()
    }
}

impl AsRef<[u8]> for Body {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Body> for Vec<u8> {
    fn from(body: Body) -> Self {
        body.into_vec()
    }
}

impl Drop for Body {
    // Mutation testing skips it: zeroing memory that is being freed is invisible to safe code,
    // so no test can tell; it is defence in depth against memory disclosure.
    #[cfg_attr(test, mutants::skip)]
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Body({} bytes, redacted)", self.0.len())
    }
}

/// An instance's OAuth client pair, from `GET /api/v1/oauth-clients/local`. Stable for an
/// instance: cache it (it is part of [`SavedSession`](crate::SavedSession)) and skip that call
/// next time.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OAuthClient {
    /// `client_id`: not a secret.
    pub client_id: String,
    /// `client_secret`.
    pub client_secret: ClientSecret,
}

impl OAuthClient {
    /// A client pair you already know.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<ClientSecret>) -> Self {
        OAuthClient {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
        }
    }
}

/// What proves the user's identity in a password grant.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Proof {
    Password(Password),
    ExternalAuth(ExternalAuthToken),
}

/// What a login sends: a username with a password or an external-auth token, and optionally a
/// two-factor code.
///
/// The username and password are sent exactly as given (PeerTube trims neither: `" root"` is
/// another user).
///
/// ```
/// use peertube_session::Credentials;
///
/// let credentials = Credentials::password("alice", "correct horse").with_otp("123 456");
/// assert!(!format!("{credentials:?}").contains("correct horse"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    username: String,
    proof: Proof,
    otp: Option<Otp>,
}

impl Credentials {
    /// A username (or e-mail address) and password.
    pub fn password(username: impl Into<String>, password: impl Into<Password>) -> Self {
        Credentials {
            username: username.into(),
            proof: Proof::Password(password.into()),
            otp: None,
        }
    }

    /// The `username` and `externalAuthToken` an external-auth plugin (OpenID Connect, SAML…)
    /// handed to the browser after its own login flow. The token lives 5 minutes and is single
    /// use; a bad one gets 400 with code `Error`.
    pub fn external_auth(username: impl Into<String>, token: impl Into<ExternalAuthToken>) -> Self {
        Credentials {
            username: username.into(),
            proof: Proof::ExternalAuth(token.into()),
            otp: None,
        }
    }

    /// Adds the two-factor one-time code, after the server answered
    /// [`Error::TwoFactorRequired`]. Spaces are removed; it must then be 6 digits.
    pub fn with_otp(mut self, otp: impl Into<Otp>) -> Self {
        self.otp = Some(otp.into());
        self
    }

    /// The username as it will be sent.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// Whether a one-time code is attached.
    pub fn has_otp(&self) -> bool {
        self.otp.is_some()
    }

    /// The password or external-auth token, for redaction.
    pub(crate) fn proof_secret(&self) -> &str {
        match &self.proof {
            Proof::Password(password) => password.expose_secret(),
            Proof::ExternalAuth(token) => token.expose_secret(),
        }
    }

    /// The one-time code, for redaction.
    pub(crate) fn otp_secret(&self) -> Option<&str> {
        self.otp.as_ref().map(Otp::expose_secret)
    }
}

/// `GET {base}/api/v1/oauth-clients/local`: the instance's client pair.
pub fn oauth_client_request(instance: &Instance) -> Request<Body> {
    request(Method::GET, instance, OAUTH_CLIENT_PATH, Body::default())
}

/// `POST {base}/api/v1/users/token` with the password grant, form-encoded like PeerTube's own
/// clients: `client_id`, `client_secret`, `grant_type=password`, `response_type=code`,
/// `scope=upload`, `username`, and `password` (or `externalAuthToken`); the one-time code, if
/// any, goes in the sensitive `x-peertube-otp` header.
pub fn password_grant_request(
    instance: &Instance,
    client: &OAuthClient,
    credentials: &Credentials,
) -> Result<Request<Body>, Error> {
    if credentials.username.is_empty() {
        return Err(Error::InvalidInput(InputError::EmptyUsername));
    }
    let (proof_name, proof) = match &credentials.proof {
        Proof::Password(password) => ("password", password.expose_secret()),
        Proof::ExternalAuth(token) => ("externalAuthToken", token.expose_secret()),
    };
    if proof.is_empty() {
        return Err(Error::InvalidInput(match credentials.proof {
            Proof::Password(_) => InputError::EmptyPassword,
            Proof::ExternalAuth(_) => InputError::EmptyExternalAuthToken,
        }));
    }
    let otp = credentials.otp.as_ref().map(otp_header_value).transpose()?;
    let body = form(&[
        ("client_id", client.client_id.as_str()),
        ("client_secret", client.client_secret.expose_secret()),
        ("grant_type", "password"),
        ("response_type", "code"),
        ("scope", "upload"),
        ("username", credentials.username.as_str()),
        (proof_name, proof),
    ])?;
    let mut request = token_request(instance, body);
    if let Some(otp) = otp {
        request.headers_mut().insert(OTP_HEADER, otp);
    }
    Ok(request)
}

/// `POST {base}/api/v1/users/token` with the refresh grant: `client_id`, `client_secret`,
/// `grant_type=refresh_token`, `response_type=code`, `refresh_token`. The answer carries a new
/// refresh token and the one sent here dies: never send the same one twice.
pub fn refresh_grant_request(
    instance: &Instance,
    client: &OAuthClient,
    refresh_token: &RefreshToken,
) -> Result<Request<Body>, Error> {
    let body = form(&[
        ("client_id", client.client_id.as_str()),
        ("client_secret", client.client_secret.expose_secret()),
        ("grant_type", "refresh_token"),
        ("response_type", "code"),
        ("refresh_token", refresh_token.expose_secret()),
    ])?;
    Ok(token_request(instance, body))
}

/// `POST {base}/api/v1/users/revoke-token` with `Authorization: Bearer <access token>` and an
/// empty body. The server revokes the access token and its refresh token together.
pub fn revoke_request(
    instance: &Instance,
    access_token: &AccessToken,
) -> Result<Request<Body>, Error> {
    let mut request = request(Method::POST, instance, REVOKE_PATH, Body::default());
    request
        .headers_mut()
        .insert(AUTHORIZATION, bearer_header_value(access_token)?);
    Ok(request)
}

/// `Bearer <token>`, marked sensitive so HTTP libraries keep it out of their logs. The word
/// `Bearer` is capitalised: PeerTube rejects `bearer`.
pub(crate) fn bearer_header_value(token: &AccessToken) -> Result<HeaderValue, Error> {
    // Put together by hand, not with `format!`: every authorized request makes one.
    let token = token.expose_secret();
    let mut text = String::with_capacity("Bearer ".len() + token.len());
    text.push_str("Bearer ");
    text.push_str(token);
    let value = HeaderValue::from_str(&text);
    text.zeroize();
    let mut value = value.map_err(|_| Error::InvalidInput(InputError::InvalidHeaderValue))?;
    value.set_sensitive(true);
    Ok(value)
}

fn otp_header_value(otp: &Otp) -> Result<HeaderValue, Error> {
    let digits: String = otp.expose_secret().chars().filter(|c| *c != ' ').collect();
    if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::InvalidInput(InputError::InvalidOtp));
    }
    let mut value =
        HeaderValue::from_str(&digits).map_err(|_| Error::InvalidInput(InputError::InvalidOtp))?;
    value.set_sensitive(true);
    Ok(value)
}

fn form(fields: &[(&str, &str)]) -> Result<Body, Error> {
    serde_urlencoded::to_string(fields)
        .map(|text| Body(text.into_bytes()))
        // Serializing pairs of strings cannot fail; map it anyway rather than panic.
        .map_err(|_| Error::InvalidInput(InputError::InvalidHeaderValue))
}

fn token_request(instance: &Instance, body: Body) -> Request<Body> {
    let mut request = request(Method::POST, instance, TOKEN_PATH, body);
    request
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(FORM));
    request
}

/// A request with no body and no token for an API route of the instance (`/api/v1/...`, query
/// included), as the endpoints of [`crate::api`] build them.
pub(crate) fn api_request(
    method: Method,
    instance: &Instance,
    path_and_query: &str,
) -> Result<Request<Body>, Error> {
    let mut request = Request::new(Body::default());
    *request.method_mut() = method;
    *request.uri_mut() = instance.uri(path_and_query)?;
    request
        .headers_mut()
        .insert(ACCEPT, HeaderValue::from_static(JSON));
    Ok(request)
}

/// Puts `Authorization: Bearer <access token>` (marked sensitive) on a request, for callers
/// that keep their tokens without a [`Session`](crate::Session) ([`Session::authorize`](crate::Session::authorize)
/// does this and more: it checks the request is the instance's and the token has not expired).
/// Only ever put it on requests for the instance that issued the token.
pub fn put_bearer<B>(request: &mut Request<B>, access_token: &AccessToken) -> Result<(), Error> {
    let value = bearer_header_value(access_token)?;
    request.headers_mut().insert(AUTHORIZATION, value);
    Ok(())
}

fn request(method: Method, instance: &Instance, path: &'static str, body: Body) -> Request<Body> {
    let mut request = Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = instance.endpoint(path);
    request
        .headers_mut()
        .insert(ACCEPT, HeaderValue::from_static(JSON));
    request
}
