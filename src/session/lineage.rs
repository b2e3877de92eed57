//! Where a token pair comes from: which login, how many refreshes since. Processes sharing a
//! session compare lineages to tell a newer pair from an older one without comparing secrets.

use serde::{Deserialize, Serialize};

/// The ancestry of a token pair: the login it descends from and the refreshes since.
///
/// PeerTube's refresh grant kills the pair it was given and hands out the next one, so pairs of
/// one login form a line: the pair with more refreshes is the live one, and every pair before
/// it is dead on the server. Between two logins, the later one is the current one (a login is
/// a deliberate act): later in the store's history of logins (each one made through a store
/// counts one more than the last it knew of), then by the server's clock. A session store
/// keeps the lineage of the pair it holds, so that a process
/// whose copy of the store fell behind (its save failed, the store was wiped or restored) can
/// tell which of two pairs to keep.
///
/// The ids are fingerprints of refresh tokens (64-bit FNV-1a): every process computes the same
/// ones from the same pair, and a fingerprint does not give the token back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Lineage {
    /// The fingerprint of the login's first refresh token: which login this pair descends from.
    pub login: u64,
    /// When that login was answered, in whole seconds since the Unix epoch (the server's time
    /// where the driver knows it).
    pub logged_in_at: u64,
    /// Refreshes between the login and this pair.
    pub refreshes: u64,
    /// The fingerprint of this pair's refresh token.
    pub pair: u64,
    /// The login's place in the history of logins through a store: one more than the last one
    /// the client that made it knew of (0 for a login made without a store's history).
    #[serde(default)]
    pub generation: u64,
}

impl Lineage {
    /// The lineage of the pair a login answered with (`refresh_token` is its refresh token).
    pub fn of_login(refresh_token: &str, logged_in_at: u64) -> Lineage {
        let id = fingerprint(refresh_token);
        Lineage {
            login: id,
            logged_in_at,
            refreshes: 0,
            pair: id,
            generation: 0,
        }
    }

    /// The lineage of the pair a refresh of this one answered with.
    pub fn refreshed(self, refresh_token: &str) -> Lineage {
        Lineage {
            refreshes: self.refreshes.saturating_add(1),
            pair: fingerprint(refresh_token),
            ..self
        }
    }

    /// Whether a pair of this lineage replaces one of `other`'s: a later pair of the same login,
    /// or any pair of a later login (later in the store's history, then by the server's clock,
    /// then, for logins in the same second that neither knew of, by fingerprint: the same
    /// answer everywhere).
    pub fn supersedes(&self, other: &Lineage) -> bool {
        if self.login == other.login {
            self.refreshes > other.refreshes
        } else {
            let key = |l: &Lineage| (l.generation, l.logged_in_at, l.login);
            key(self) > key(other)
        }
    }

    /// Whether both pairs came from refreshing one same pair: two processes refreshed it at
    /// once, and the server, which does not lock, answered both.
    pub fn is_sibling_of(&self, other: &Lineage) -> bool {
        self.login == other.login && self.refreshes == other.refreshes && self.pair != other.pair
    }
}

/// 64-bit FNV-1a: stable across processes, platforms and compiler versions, unlike std's
/// hasher, and enough to tell pairs apart (it is not a security boundary: the record beside it
/// holds the tokens themselves).
pub(crate) fn fingerprint(token: &str) -> u64 {
    token.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_fnv1a_as_published() {
        // The reference values of the FNV test suite.
        assert_eq!(fingerprint(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fingerprint("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fingerprint("foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn a_later_pair_or_a_later_login_supersedes() {
        let login = Lineage::of_login("r0", 100);
        let first = login.refreshed("r1");
        let second = first.refreshed("r2");
        assert_eq!((first.refreshes, second.refreshes), (1, 2));
        assert_eq!(second.login, login.login);
        assert!(second.supersedes(&first) && first.supersedes(&login));
        assert!(!first.supersedes(&second) && !first.supersedes(&first));

        let later = Lineage::of_login("other", 101);
        assert!(later.supersedes(&second) && !second.supersedes(&later));
        // A login later in the store's history wins whatever the clocks say.
        let next = Lineage {
            generation: 1,
            ..Lineage::of_login("next", 99)
        };
        assert!(next.supersedes(&later) && !later.supersedes(&next));
        assert_eq!(next.refreshed("n1").generation, 1);
        // Logins answered in the same second: the fingerprint decides, the same way everywhere.
        let twin = Lineage::of_login("twin", 100);
        assert!(twin.supersedes(&login) != login.supersedes(&twin));
    }

    #[test]
    fn siblings_share_a_login_and_a_refresh_count_but_not_the_pair() {
        let base = Lineage::of_login("r0", 100);
        let one = base.refreshed("r1");
        let other = base.refreshed("r1-bis");
        assert!(one.is_sibling_of(&other) && other.is_sibling_of(&one));
        assert!(!one.is_sibling_of(&one));
        assert!(!one.is_sibling_of(&base));
        assert!(!one.is_sibling_of(&Lineage::of_login("r1", 100)));
        assert!(!one.supersedes(&other) && !other.supersedes(&one));
    }
}
