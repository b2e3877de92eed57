//! Secret newtypes: values that must never reach a log.
//!
//! Each type wraps a [`secrecy::SecretString`] (zeroed on drop), prints `[redacted]` in `Debug`,
//! has no `Display`, and gives its text only through `expose_secret()`.

use secrecy::{ExposeSecret, SecretString};
use std::fmt;

macro_rules! secret_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name(SecretString);

        impl $name {
            /// Wraps a secret value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(SecretString::from(value.into()))
            }

            /// The secret text.
            ///
            /// # Security warning
            /// Whatever you do with the returned string is outside this crate's protection:
            /// do not log it, print it, or put it in an error message.
            pub fn expose_secret(&self) -> &str {
                self.0.expose_secret()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                constant_time_eq(self.expose_secret().as_bytes(), other.expose_secret().as_bytes())
            }
        }

        impl Eq for $name {}

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self::new(value)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self::new(value)
            }
        }

        // Serialization exposes the secret on purpose: it is only used by the saved form of a
        // session (`SavedSession`), whose documentation says so.
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.expose_secret())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                String::deserialize(deserializer).map(Self::new)
            }
        }
    };
}

secret_type!(
    /// The OAuth client secret of an instance (from `GET /api/v1/oauth-clients/local`).
    ClientSecret
);
secret_type!(
    /// A user's password.
    Password
);
secret_type!(
    /// A two-factor one-time code (TOTP), sent in the `x-peertube-otp` header.
    Otp
);
secret_type!(
    /// The short-lived token an external-auth plugin (OpenID Connect, SAML…) hands to the browser,
    /// exchanged once for a token pair.
    ExternalAuthToken
);
secret_type!(
    /// An OAuth access token, sent as `Authorization: Bearer …`.
    AccessToken
);
secret_type!(
    /// An OAuth refresh token. PeerTube rotates it on every refresh: each one is good for one use.
    RefreshToken
);

/// Compares without an early exit on the first differing byte, so timing does not reveal how
/// much of a secret matched (length still may). `subtle` keeps the optimiser from turning the
/// comparison back into one that stops early.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(a, b).into()
}

/// Whether a token can travel in an `Authorization` header and a form: non-empty visible ASCII.
pub(crate) fn is_sendable_token(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic())
}
