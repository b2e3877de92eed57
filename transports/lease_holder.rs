//! Names for the holders of refresh leases in stores shared between processes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A name no other taker of a lease has: the process, the time, a counter. Not a secret: it
/// only has to differ between takers, so that one cannot give back another's lease.
pub(crate) fn holder_name() -> String {
    static TAKEN: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}-{nanos:x}-{}",
        std::process::id(),
        TAKEN.fetch_add(1, Ordering::Relaxed)
    )
}
