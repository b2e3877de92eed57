//! RFC 6238 TOTP as PeerTube uses it: SHA-1, 6 digits, 30-second steps, ±1 step accepted.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use std::time::{SystemTime, UNIX_EPOCH};

const STEP_SECS: u64 = 30;

/// The 6-digit code of a base32 TOTP secret (as shown in authenticator apps) at `time`. `None`
/// when the secret is not base32.
///
/// ```
/// use peertube_session::fake::totp;
/// use std::time::{Duration, UNIX_EPOCH};
///
/// // RFC 6238's SHA-1 test vector, cut to 6 digits.
/// let secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
/// assert_eq!(totp(secret, UNIX_EPOCH + Duration::from_secs(59)).as_deref(), Some("287082"));
/// ```
pub fn totp(secret_base32: &str, time: SystemTime) -> Option<String> {
    let key = base32_decode(secret_base32)?;
    Some(code_at(&key, step(time)))
}

/// Whether `code` is the code of the step at `time`, the one before, or the one after.
pub(crate) fn verify(key: &[u8], code: &str, time: SystemTime) -> bool {
    let now = step(time);
    [now.wrapping_sub(1), now, now.wrapping_add(1)]
        .into_iter()
        .any(|counter| code_at(key, counter) == code)
}

fn step(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) / STEP_SECS
}

fn code_at(key: &[u8], counter: u64) -> String {
    let Ok(mut mac) = <Hmac<Sha1> as KeyInit>::new_from_slice(key) else {
        // HMAC takes keys of any length; this branch is never taken.
        return String::new();
    };
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    format!("{:06}", binary % 1_000_000)
}

/// RFC 4648 base32 without padding requirements; case-insensitive, spaces ignored.
pub(crate) fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for c in text.chars().filter(|c| !c.is_whitespace() && *c != '=') {
        let value = match c.to_ascii_uppercase() {
            c @ 'A'..='Z' => c as u32 - 'A' as u32,
            c @ '2'..='7' => c as u32 - '2' as u32 + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    if out.is_empty() { None } else { Some(out) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc_6238_vectors() {
        let key = b"12345678901234567890";
        for (secs, code) in [
            (59, "287082"),
            (1111111109, "081804"),
            (1234567890, "005924"),
            (2000000000, "279037"),
        ] {
            assert_eq!(code_at(key, secs / 30), code);
        }
    }

    #[test]
    fn base32_round_trip_of_the_rfc_key() {
        assert_eq!(
            base32_decode("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap(),
            b"12345678901234567890"
        );
        assert_eq!(base32_decode("gezd gnbv"), base32_decode("GEZDGNBV"));
        assert!(base32_decode("not base32!").is_none());
    }

    #[test]
    fn one_step_either_side_is_accepted() {
        let key = b"12345678901234567890";
        let t = UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let previous = code_at(key, step(t) - 1);
        let next = code_at(key, step(t) + 1);
        let too_old = code_at(key, step(t) - 2);
        assert!(verify(key, &previous, t));
        assert!(verify(key, &next, t));
        assert!(!verify(key, &too_old, t));
    }
}
