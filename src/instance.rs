//! [`Instance`]: a validated PeerTube base URL and the endpoint URIs under it.

use crate::error::{Error, UrlError};
use http::Uri;
use http::uri::{Authority, PathAndQuery, Scheme};
use std::fmt;
use std::net::Ipv4Addr;

/// Path of the client-pair endpoint.
pub const OAUTH_CLIENT_PATH: &str = "/api/v1/oauth-clients/local";
/// Path of the token endpoint (password and refresh grants).
pub const TOKEN_PATH: &str = "/api/v1/users/token";
/// Path of the logout endpoint.
pub const REVOKE_PATH: &str = "/api/v1/users/revoke-token";

/// The address of a PeerTube instance: scheme, host, optional port, optional path prefix.
///
/// Only `https` is accepted, except for loopback hosts (`127.0.0.0/8`, `::1`, `localhost`),
/// where `http` is fine too; [`Instance::new_allowing_http`] is the explicit opt-in for plain
/// http elsewhere. A trailing slash is tolerated; a user name or password, a query or a fragment
/// is an error.
///
/// ```
/// use peertube_session::Instance;
///
/// let instance = Instance::new("https://video.example.org/")?;
/// assert_eq!(instance.base_url(), "https://video.example.org");
/// assert_eq!(
///     instance.uri("/api/v1/users/me")?.to_string(),
///     "https://video.example.org/api/v1/users/me"
/// );
/// assert!(Instance::new("http://video.example.org").is_err());
/// assert!(Instance::new("http://127.0.0.1:9000").is_ok());
/// # Ok::<(), peertube_session::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Instance {
    scheme: Scheme,
    authority: Authority,
    /// Empty, or a prefix starting with `/` and without a trailing slash.
    prefix: String,
    plain_http_allowed: bool,
}

impl Instance {
    /// Validates a base URL such as `https://video.example.org` or
    /// `https://example.org/peertube`.
    pub fn new(url: &str) -> Result<Self, Error> {
        Self::parse(url, false).map_err(Error::InvalidUrl)
    }

    /// Like [`Instance::new`], but also accepts plain `http` to any host. Passwords and tokens
    /// then cross the network readable by anyone on the path: use it only on networks you trust.
    pub fn new_allowing_http(url: &str) -> Result<Self, Error> {
        Self::parse(url, true).map_err(Error::InvalidUrl)
    }

    fn parse(url: &str, plain_http_allowed: bool) -> Result<Self, UrlError> {
        // `http::Uri` silently drops fragments, so look for them first.
        if url.contains('#') {
            return Err(UrlError::HasFragment);
        }
        let uri: Uri = url.trim().parse().map_err(|_| UrlError::Malformed)?;
        let scheme = uri.scheme().cloned().ok_or(UrlError::Malformed)?;
        let authority = uri.authority().cloned().ok_or(UrlError::MissingHost)?;
        if authority.as_str().contains('@') {
            return Err(UrlError::HasUserinfo);
        }
        if authority.host().is_empty() {
            return Err(UrlError::MissingHost);
        }
        // Host names are case-insensitive, and PeerTube compares the `Host` header with its
        // configured (lower-case) hostname: send it the way the server writes it.
        let authority = Authority::try_from(authority.as_str().to_ascii_lowercase())
            .map_err(|_| UrlError::Malformed)?;
        // `http::Uri` accepts any digits as a port (and an empty one), and reads an out-of-range
        // port as none at all, which would send the request to the scheme's default port.
        // (The user-info part was refused above, so the authority is `host[:port]`.)
        let port = authority
            .as_str()
            .get(authority.host().len()..)
            .unwrap_or_default();
        if !port.is_empty()
            && port
                .strip_prefix(':')
                .and_then(|digits| digits.parse::<u16>().ok())
                .is_none_or(|port| port == 0)
        {
            return Err(UrlError::BadPort);
        }
        if uri.query().is_some() {
            return Err(UrlError::HasQuery);
        }
        if scheme == Scheme::HTTP {
            if !plain_http_allowed && !is_loopback(authority.host()) {
                return Err(UrlError::PlainHttpNotAllowed);
            }
        } else if scheme != Scheme::HTTPS {
            return Err(UrlError::UnsupportedScheme);
        }
        let prefix = uri.path().trim_end_matches('/');
        if prefix
            .split('/')
            .skip(1)
            .any(|segment| segment.is_empty() || is_dot_segment(segment))
        {
            return Err(UrlError::BadPath);
        }
        Ok(Instance {
            scheme,
            authority,
            prefix: prefix.to_owned(),
            plain_http_allowed,
        })
    }

    /// The base URL, without a trailing slash: `https://video.example.org`.
    pub fn base_url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.authority, self.prefix)
    }

    /// The host and port as they go into the `Host` header, e.g. `video.example.org` or
    /// `127.0.0.1:9000`. PeerTube compares it with its configured hostname.
    pub fn authority(&self) -> &str {
        self.authority.as_str()
    }

    /// Whether this instance was made with [`Instance::new_allowing_http`].
    pub fn plain_http_allowed(&self) -> bool {
        self.plain_http_allowed
    }

    /// The URI of an API path on this instance, e.g. `uri("/api/v1/users/me")`. The path may
    /// carry a query. A path that already starts with the instance's path prefix is not given
    /// it twice. A fragment (`#…`, which HTTP never sends) and dot segments (`.`, `..`,
    /// also percent-encoded as `%2e`), which could climb out of the instance's path, are
    /// refused with [`UrlError::BadPath`].
    ///
    /// ```
    /// use peertube_session::Instance;
    ///
    /// let instance = Instance::new("https://example.org/peertube")?;
    /// assert_eq!(instance.uri("api/v1/config")?.path(), "/peertube/api/v1/config");
    /// assert_eq!(instance.uri("/peertube/api/v1/config")?.path(), "/peertube/api/v1/config");
    /// assert!(instance.uri("/../../etc/passwd").is_err());
    /// assert!(instance.uri("/api/v1/%2E%2e/x").is_err());
    /// assert!(instance.uri("/api/v1/videos#top").is_err());
    /// # Ok::<(), peertube_session::Error>(())
    /// ```
    pub fn uri(&self, path_and_query: &str) -> Result<Uri, Error> {
        let path = path_and_query
            .split_once('?')
            .map_or(path_and_query, |(path, _)| path);
        if path_and_query.contains('#') || path.split('/').any(is_dot_segment) {
            return Err(Error::InvalidUrl(UrlError::BadPath));
        }
        let full = if self.is_under_prefix(path) {
            path_and_query.to_owned()
        } else {
            let separator = if path_and_query.starts_with('/') {
                ""
            } else {
                "/"
            };
            format!("{}{separator}{path_and_query}", self.prefix)
        };
        let path =
            PathAndQuery::try_from(full).map_err(|_| Error::InvalidUrl(UrlError::BadPath))?;
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()
            .map_err(|_| Error::InvalidUrl(UrlError::BadPath))
    }

    /// The URI of one of this crate's fixed endpoints; those paths are always valid.
    pub(crate) fn endpoint(&self, path: &'static str) -> Uri {
        self.uri(path).unwrap_or_else(|_| {
            unreachable!("the prefix was validated and endpoint paths are constant")
        })
    }

    /// Whether `uri` is this instance's: the same origin, and a path under the instance's path
    /// prefix with no dot segment that could climb out of it. Only such requests get its access
    /// token: an instance at `https://example.org/peertube` shares its origin with whatever
    /// else runs on `example.org`.
    ///
    /// ```
    /// use peertube_session::Instance;
    ///
    /// let instance = Instance::new("https://example.org/peertube")?;
    /// let owns = |uri: &str| instance.contains(&uri.parse().unwrap());
    /// assert!(owns("https://example.org/peertube/api/v1/users/me"));
    /// assert!(!owns("https://example.org/other-app/api"));
    /// assert!(!owns("https://example.org/peertube-evil/api"));
    /// assert!(!owns("https://example.org/peertube/../other-app"));
    /// # Ok::<(), peertube_session::Error>(())
    /// ```
    pub fn contains(&self, uri: &Uri) -> bool {
        let path = uri.path();
        // A dot segment holds a `.` or an escape: a path with neither (nearly every one) has
        // none.
        self.is_same_origin(uri)
            && self.is_under_prefix(path)
            && (!path.bytes().any(|b| b == b'.' || b == b'%')
                || !path.split('/').any(is_dot_segment))
    }

    /// Whether `path` is the prefix itself or below it (always, without a prefix).
    fn is_under_prefix(&self, path: &str) -> bool {
        match path.strip_prefix(self.prefix.as_str()) {
            Some(rest) => self.prefix.is_empty() || rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }

    /// Whether `uri` points at this instance's origin (same scheme, host and port). The access
    /// token needs more: see [`Instance::contains`].
    pub fn is_same_origin(&self, uri: &Uri) -> bool {
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return false;
        };
        // Nearly every request: the instance's own authority, as it was written (it has no
        // user-info, and its port is valid). Any other way to write the same origin (a default
        // port spelt out) takes the long way below.
        if *scheme == self.scheme
            && authority
                .as_str()
                .eq_ignore_ascii_case(self.authority.as_str())
        {
            return true;
        }
        *scheme == self.scheme
            && !authority.as_str().contains('@')
            && authority.host().eq_ignore_ascii_case(self.authority.host())
            && effective_port(scheme, authority) == effective_port(&self.scheme, &self.authority)
    }
}

/// `.` or `..`, written plainly or percent-encoded (`%2e`, `.%2E`, …): servers and proxies
/// normalise both away, climbing out of the path they are in.
fn is_dot_segment(segment: &str) -> bool {
    // Read in place, without a decoded copy: every authorized request asks.
    let mut rest = segment.as_bytes();
    let mut dots = 0;
    while !rest.is_empty() && dots <= 2 {
        rest = match rest {
            [b'.', after @ ..] => after,
            [b'%', b'2', b'e' | b'E', after @ ..] => after,
            _ => return false,
        };
        dots += 1;
    }
    dots == 1 || dots == 2
}

fn effective_port(scheme: &Scheme, authority: &Authority) -> Option<u16> {
    authority.port_u16().or(if *scheme == Scheme::HTTPS {
        Some(443)
    } else if *scheme == Scheme::HTTP {
        Some(80)
    } else {
        None
    })
}

/// `127.0.0.0/8`, `::1` and `localhost`: traffic to them never leaves the machine.
pub(crate) fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host == "[::1]"
        || host
            .parse::<Ipv4Addr>()
            .is_ok_and(|address| address.is_loopback())
}

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Instance").field(&self.base_url()).finish()
    }
}

impl fmt::Display for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base_url())
    }
}
