//! Removing the secrets a request carried from the server's text before it goes into an error.
//!
//! A server, or a proxy in front of it, may echo what it was sent: the password in a `detail`,
//! the whole form body in an HTML error page. Every error built from an answer passes its text
//! through [`redact`] **before** it is cut to its excerpt length, so truncation cannot leave half
//! a secret behind.

use crate::request::{Credentials, OAuthClient};
use crate::secret::{AccessToken, RefreshToken};
use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

/// What replaces a secret in server text.
pub(crate) const REDACTED: &str = "[redacted]";

/// Shortest piece of a secret that is removed on its own: a prefix or suffix (or any other run)
/// of at least this many bytes of a secret, in any of its echo forms, is redacted wherever it
/// appears. Shorter secrets are removed only whole.
pub const MIN_PARTIAL_ECHO: usize = 8;

/// The secrets a request carried, so that the parser of its answer can remove them from any
/// server text that goes into an error.
///
/// Each secret is removed in every form a server or proxy is likely to echo it in: as it is,
/// form-urlencoded (`+` or `%20` for spaces, upper- or lower-case hex), JSON-escaped and
/// HTML-escaped; whole, or any run of at least [`MIN_PARTIAL_ECHO`] bytes of one of those forms
/// (a prefix or suffix cut by the server's own truncation, say). This happens before the text is
/// cut to its excerpt length.
///
/// # The rule
/// Give every parser the secrets of the request it answers. [`Session`](crate::Session) and the
/// drivers always do, with every secret they know (client secret, password, one-time code,
/// external-auth token, both tokens). A parser told [`Secrets::none`] cannot know what to remove.
///
/// ```
/// use peertube_session::response::{Secrets, parse_login};
/// use peertube_session::{Credentials, Error, OAuthClient};
///
/// let client = OAuthClient::new("id", "client-secret");
/// let credentials = Credentials::password("alice", "correct horse battery");
/// let answer = http::Response::builder()
///     .status(400)
///     .body(br#"{"code":"invalid_grant","detail":"wrong password correct+horse+battery"}"#.to_vec())?;
/// let error = parse_login(&answer, &Secrets::for_login(&client, &credentials)).unwrap_err();
/// assert!(matches!(error, Error::BadCredentials(_)));
/// assert!(!error.to_string().contains("horse"));
/// # Ok::<(), http::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct Secrets<'a> {
    values: Vec<&'a str>,
}

impl fmt::Debug for Secrets<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets({} redacted)", self.values.len())
    }
}

impl<'a> Secrets<'a> {
    /// No secrets: for a request that carried none (`GET /api/v1/oauth-clients/local`).
    // Mutation testing skips it: its one mutant, `Default::default()`, is this very body.
    #[cfg_attr(test, mutants::skip)]
    pub fn none() -> Self {
        Secrets::default()
    }

    /// The secrets of a password grant: the client secret, the password or external-auth
    /// token, and the one-time code.
    pub fn for_login(client: &'a OAuthClient, credentials: &'a Credentials) -> Self {
        Secrets::none().client(client).credentials(credentials)
    }

    /// The secrets of a refresh grant: the client secret and the refresh token.
    pub fn for_refresh(client: &'a OAuthClient, refresh_token: &'a RefreshToken) -> Self {
        Secrets::none().client(client).refresh_token(refresh_token)
    }

    /// The secret of a logout or any other authorized call: the access token.
    pub fn for_bearer(access_token: &'a AccessToken) -> Self {
        Secrets::none().access_token(access_token)
    }

    /// Adds any other secret text. Empty text is ignored.
    pub fn with(mut self, secret: &'a str) -> Self {
        if !secret.is_empty() {
            self.values.push(secret);
        }
        self
    }

    /// Adds the client secret.
    pub fn client(self, client: &'a OAuthClient) -> Self {
        self.with(client.client_secret.expose_secret())
    }

    /// Adds the password or external-auth token, and the one-time code.
    pub fn credentials(self, credentials: &'a Credentials) -> Self {
        let with_proof = self.with(credentials.proof_secret());
        match credentials.otp_secret() {
            Some(otp) => with_proof.with(otp),
            None => with_proof,
        }
    }

    /// Adds an access token.
    pub fn access_token(self, token: &'a AccessToken) -> Self {
        self.with(token.expose_secret())
    }

    /// Adds a refresh token.
    pub fn refresh_token(self, token: &'a RefreshToken) -> Self {
        self.with(token.expose_secret())
    }

    /// Whether there is nothing to remove.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// `text` with every echo of `secrets` replaced by `[redacted]`.
pub(crate) fn redact<'t>(text: &'t str, secrets: &Secrets<'_>) -> Cow<'t, str> {
    if text.is_empty() || secrets.is_empty() {
        return Cow::Borrowed(text);
    }
    let forms = echo_forms(secrets);
    let bytes = text.as_bytes();
    let mut hidden = vec![false; bytes.len()];
    let mut windows = HashSet::new();
    for form in &forms {
        for (start, _) in text.match_indices(form.as_str()) {
            hidden[start..start + form.len()].fill(true);
        }
        if form.len() >= MIN_PARTIAL_ECHO {
            windows.extend(form.as_bytes().windows(MIN_PARTIAL_ECHO).map(window_key));
        }
    }
    // Any run of at least MIN_PARTIAL_ECHO bytes shared with a form is made of windows of that
    // form, so hiding every matching window hides the whole run.
    if !windows.is_empty() {
        for (start, window) in bytes.windows(MIN_PARTIAL_ECHO).enumerate() {
            if windows.contains(&window_key(window)) {
                hidden[start..start + MIN_PARTIAL_ECHO].fill(true);
            }
        }
    }
    if !hidden.contains(&true) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut in_secret = false;
    for (index, c) in text.char_indices() {
        // A character is hidden when any of its bytes is.
        if hidden[index..index + c.len_utf8()].contains(&true) {
            if !in_secret {
                out.push_str(REDACTED);
                in_secret = true;
            }
        } else {
            out.push(c);
            in_secret = false;
        }
    }
    Cow::Owned(out)
}

fn window_key(window: &[u8]) -> u64 {
    let mut key = [0u8; MIN_PARTIAL_ECHO];
    key.copy_from_slice(window);
    u64::from_le_bytes(key)
}

/// Every form each secret may come back in.
fn echo_forms(secrets: &Secrets<'_>) -> Vec<String> {
    let mut forms: Vec<String> = Vec::with_capacity(secrets.values.len() * 7);
    for secret in &secrets.values {
        let candidates = [
            (*secret).to_owned(),
            percent_encoded(secret, "+", Hex::Upper),
            percent_encoded(secret, "+", Hex::Lower),
            percent_encoded(secret, "%20", Hex::Upper),
            percent_encoded(secret, "%20", Hex::Lower),
            json_escaped(secret),
            html_escaped(secret),
        ];
        for form in candidates {
            if !form.is_empty() && !forms.contains(&form) {
                forms.push(form);
            }
        }
    }
    forms
}

#[derive(Clone, Copy)]
enum Hex {
    Upper,
    Lower,
}

/// Form-urlencoding as `application/x-www-form-urlencoded` writes it: alphanumerics and `*-._`
/// as they are, the space as `space`, every other byte as `%XX`.
fn percent_encoded(secret: &str, space: &str, hex: Hex) -> String {
    let digits = match hex {
        Hex::Upper => b"0123456789ABCDEF",
        Hex::Lower => b"0123456789abcdef",
    };
    let mut out = String::with_capacity(secret.len() * 3);
    for byte in secret.bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(byte));
            }
            b' ' => out.push_str(space),
            _ => {
                out.push('%');
                out.push(char::from(digits[usize::from(byte >> 4)]));
                out.push(char::from(digits[usize::from(byte & 0xf)]));
            }
        }
    }
    out
}

/// The secret as it appears inside a JSON string.
fn json_escaped(secret: &str) -> String {
    let quoted = serde_json::to_string(secret).unwrap_or_default();
    quoted
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or_default()
        .to_owned()
}

/// The secret as an HTML page would show it.
fn html_escaped(secret: &str) -> String {
    let mut out = String::with_capacity(secret.len());
    for c in secret.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redacted(text: &str, secret: &str) -> String {
        redact(text, &Secrets::none().with(secret)).into_owned()
    }

    #[test]
    fn whole_and_encoded_echoes_are_removed() {
        let secret = "p@ss wörd\"&<x>";
        for echo in [
            secret.to_owned(),
            percent_encoded(secret, "+", Hex::Upper),
            percent_encoded(secret, "%20", Hex::Lower),
            json_escaped(secret),
            html_escaped(secret),
        ] {
            assert_eq!(redacted(&format!("got {echo}."), secret), "got [redacted].");
        }
        assert_eq!(percent_encoded("a b/é", "+", Hex::Upper), "a+b%2F%C3%A9");
        assert_eq!(json_escaped("a\"b\\c\n"), "a\\\"b\\\\c\\n");
        assert_eq!(html_escaped("<a&'\">"), "&lt;a&amp;&#39;&quot;&gt;");
    }

    #[test]
    fn pieces_of_eight_bytes_or_more_are_removed_shorter_ones_stay() {
        let secret = "0123456789abcdef";
        assert_eq!(redacted("x 01234567 y", secret), "x [redacted] y");
        assert_eq!(redacted("x 89abcdef", secret), "x [redacted]");
        assert_eq!(redacted("x 0123456 y", secret), "x 0123456 y");
        // A short secret is removed whole only.
        assert_eq!(
            redacted("code 424242, 4242", "424242"),
            "code [redacted], 4242"
        );
    }

    #[test]
    fn text_without_secrets_is_borrowed() {
        assert!(matches!(
            redact("plain", &Secrets::none().with("other-secret")),
            Cow::Borrowed(_)
        ));
        assert!(matches!(
            redact("plain", &Secrets::none()),
            Cow::Borrowed(_)
        ));
        assert!(Secrets::none().with("").is_empty());
    }

    #[test]
    fn debug_prints_only_a_count() {
        let secrets = Secrets::none().with("hunter22");
        assert_eq!(format!("{secrets:?}"), "Secrets(1 redacted)");
    }
}
