//! What the clients and the transports share: the default timeout and the clock type.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The default timeout of one whole exchange (connect, send, receive the whole answer).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a driver reads the time. The core never reads it; drivers do, through this, so tests
/// can give them a fixed or fake clock.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;
