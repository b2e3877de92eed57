//! Host-name lookups for the ureq transport: cached for a while, one at a time per name, and
//! bounded by the exchange's timeout without a thread per request.
//!
//! ureq's own resolver bounds a lookup by running it on a new thread, once per request, even
//! for a request that reuses a pooled connection (it resolves before it looks in the pool):
//! on loopback that halved the requests per second to a host name. Here a name is looked up
//! once, on a thread only if no lookup of it is under way, and the answer serves every request
//! for [`CACHE_FOR`]. A lookup that hangs holds one thread, not one per request, and each
//! request waits for it no longer than its own timeout.
//!
//! It plugs into ureq through `ureq::unversioned::resolver::Resolver`, which ureq does not
//! promise to keep stable: the `ureq` dependency is held to 3.5.x for it (see Cargo.toml).

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// How long a looked-up address is used before it is looked up again. The system's lookup
/// gives no TTL; this is short enough to follow an instance that moves, long enough that a busy
/// client looks up once in thousands of requests.
pub(crate) const CACHE_FOR: Duration = Duration::from_secs(30);

/// How a host name becomes addresses: `(host, port)` to addresses, blocking.
pub(crate) type Lookup = Arc<dyn Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync>;

/// The system's lookup (`getaddrinfo`).
pub(crate) fn system_lookup() -> Lookup {
    Arc::new(|host, port| Ok((host, port).to_socket_addrs()?.collect()))
}

/// A resolver with a cache, shared by the clones of one transport.
#[derive(Clone)]
pub(crate) struct CachingResolver {
    lookup: Lookup,
    names: Arc<Mutex<HashMap<(String, u16), Entry>>>,
}

impl fmt::Debug for CachingResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachingResolver").finish_non_exhaustive()
    }
}

enum Entry {
    Known(Vec<SocketAddr>, Instant),
    Pending(Arc<Pending>),
}

/// A lookup under way, and its answer once it came.
#[derive(Default)]
struct Pending {
    answer: Mutex<Option<io::Result<Vec<SocketAddr>>>>,
    arrived: Condvar,
}

impl CachingResolver {
    pub(crate) fn new(lookup: Lookup) -> Self {
        CachingResolver {
            lookup,
            names: Arc::default(),
        }
    }

    /// The addresses of `host`, waiting at most `within` for a lookup.
    pub(crate) fn addresses(
        &self,
        host: &str,
        port: u16,
        within: Option<Duration>,
    ) -> Result<Vec<SocketAddr>, ureq::Error> {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let key = (host.to_ascii_lowercase(), port);
        let pending = {
            let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
            match names.get(&key) {
                Some(Entry::Known(addresses, until)) if Instant::now() < *until => {
                    return Ok(addresses.clone());
                }
                Some(Entry::Pending(pending)) => pending.clone(),
                _ => {
                    let pending = Arc::new(Pending::default());
                    names.insert(key.clone(), Entry::Pending(pending.clone()));
                    self.start(key.clone(), pending.clone());
                    pending
                }
            }
        };
        wait(&pending, within)
    }

    /// Looks `key` up on a thread of its own, and records the answer for everyone.
    fn start(&self, key: (String, u16), pending: Arc<Pending>) {
        let (lookup, names, answered) = (self.lookup.clone(), self.names.clone(), pending.clone());
        let name = key.clone();
        let spawned = std::thread::Builder::new()
            .name("peertube-session-lookup".into())
            .spawn(move || {
                let answer = lookup(&key.0, key.1).and_then(|found| {
                    if found.is_empty() {
                        Err(io::Error::new(io::ErrorKind::NotFound, "no address"))
                    } else {
                        Ok(found)
                    }
                });
                {
                    let mut names = names.lock().unwrap_or_else(|p| p.into_inner());
                    match &answer {
                        Ok(found) => {
                            let until = Instant::now() + CACHE_FOR;
                            names.insert(key, Entry::Known(found.clone(), until));
                        }
                        // A failure is not kept: the next request looks up again.
                        Err(_) => {
                            names.remove(&key);
                        }
                    }
                }
                *answered.answer.lock().unwrap_or_else(|p| p.into_inner()) = Some(answer);
                answered.arrived.notify_all();
            });
        if let Err(error) = spawned {
            self.names
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&name);
            *pending.answer.lock().unwrap_or_else(|p| p.into_inner()) = Some(Err(error));
        }
    }
}

/// The lookup's answer, or a timeout after `within`.
fn wait(pending: &Pending, within: Option<Duration>) -> Result<Vec<SocketAddr>, ureq::Error> {
    let answer = pending.answer.lock().unwrap_or_else(|p| p.into_inner());
    let answer = match within {
        Some(within) => {
            let (answer, _) = pending
                .arrived
                .wait_timeout_while(answer, within, |answer| answer.is_none())
                .unwrap_or_else(|p| p.into_inner());
            answer
        }
        None => pending
            .arrived
            .wait_while(answer, |answer| answer.is_none())
            .unwrap_or_else(|p| p.into_inner()),
    };
    match answer.as_ref() {
        None => Err(ureq::Error::Timeout(ureq::Timeout::Resolve)),
        Some(Ok(found)) => Ok(found.clone()),
        Some(Err(error)) if error.kind() == io::ErrorKind::NotFound => {
            Err(ureq::Error::HostNotFound)
        }
        Some(Err(error)) => Err(ureq::Error::Io(io::Error::new(
            error.kind(),
            error.to_string(),
        ))),
    }
}

impl Resolver for CachingResolver {
    fn resolve(
        &self,
        uri: &http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let host = uri
            .host()
            .ok_or_else(|| ureq::Error::BadUri(uri.to_string()))?;
        let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
            Some("https") => 443,
            _ => 80,
        });
        let within = (!timeout.after.is_not_happening()).then(|| *timeout.after);
        let found = self.addresses(host, port, within)?;
        let mut addresses = self.empty();
        for address in config.ip_family().keep_wanted(found.into_iter()).take(16) {
            addresses.push(address);
        }
        if addresses.is_empty() {
            return Err(ureq::Error::HostNotFound);
        }
        Ok(addresses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn counting(delay: Duration) -> (Lookup, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let lookup: Lookup = Arc::new(move |_, port| {
            counted.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(delay);
            Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
        });
        (lookup, calls)
    }

    #[test]
    fn a_name_is_looked_up_once_for_many_requests_and_an_address_never() {
        let (lookup, calls) = counting(Duration::ZERO);
        let resolver = CachingResolver::new(lookup);
        for _ in 0..100 {
            let found = resolver.addresses("LocalHost", 8080, None).unwrap();
            assert_eq!(found, vec![SocketAddr::from(([127, 0, 0, 1], 8080))]);
            resolver.addresses("localhost", 8080, None).unwrap();
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        resolver.addresses("localhost", 9090, None).unwrap();
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "another port, another entry"
        );
        let ip = resolver.addresses("[::1]", 443, None).unwrap();
        assert_eq!(ip, vec!["[::1]:443".parse().unwrap()]);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_lookup_that_hangs_costs_each_request_its_timeout_and_starts_one_thread() {
        let (lookup, calls) = counting(Duration::from_secs(3));
        let resolver = CachingResolver::new(lookup);
        let started = Instant::now();
        for _ in 0..5 {
            let error = resolver
                .addresses("slow.example", 443, Some(Duration::from_millis(50)))
                .unwrap_err();
            assert!(matches!(error, ureq::Error::Timeout(_)), "{error:?}");
        }
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "one lookup under way, shared"
        );
    }

    #[test]
    fn a_failed_lookup_is_not_kept() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let resolver = CachingResolver::new(Arc::new(move |_, _| {
            counted.fetch_add(1, Ordering::SeqCst);
            Err(io::Error::new(io::ErrorKind::NotFound, "no such host"))
        }));
        for _ in 0..2 {
            let error = resolver.addresses("nowhere.example", 80, None).unwrap_err();
            assert!(matches!(error, ureq::Error::HostNotFound), "{error:?}");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        let empty = CachingResolver::new(Arc::new(|_, _| Ok(Vec::new())));
        assert!(matches!(
            empty.addresses("empty.example", 80, None),
            Err(ureq::Error::HostNotFound)
        ));
        let broken = CachingResolver::new(Arc::new(|_, _| Err(io::Error::other("resolver broke"))));
        assert!(matches!(
            broken.addresses("broken.example", 80, None),
            Err(ureq::Error::Io(_))
        ));
    }
}
