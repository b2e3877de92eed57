//! A runtime-free timer for the async driver and the hyper transport: one helper thread for the
//! process, woken only when a new deadline is earlier than every one it already waits for.
//!
//! Why not `futures-timer` (which this replaced): it wakes its helper thread on every timer
//! made and every timer dropped, which cost about 15 % of a whole session over loopback with two
//! timers per exchange (BENCHMARKS.md). Deadlines here are nearly always later than the ones
//! already set (a fixed timeout from "now"), so making one takes a lock and a heap push, and
//! dropping one takes nothing: the helper meets the dead entry when its time comes and skips it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

/// Dead entries are swept out of the heap once it holds more than this many and more than
/// `SWEEP_RATIO` times the live ones, so a burst of early-finished exchanges cannot grow it
/// without bound before their deadlines come.
const SWEEP_MIN: usize = 1024;
const SWEEP_RATIO: usize = 4;

/// A future that is ready at `at`. If the helper thread cannot be started, it is ready at once:
/// a bound that cannot be kept ends the work rather than letting it run unbounded.
pub(crate) struct Deadline {
    entry: Option<Arc<Entry>>,
    at: Instant,
}

struct Entry {
    /// `Some` until the deadline fires; then `None` forever. One lock for both, so a poll that
    /// stores its waker and the helper that fires cannot miss each other.
    waker: Mutex<Option<Option<Waker>>>,
}

struct Heap {
    due: BinaryHeap<Reverse<Due>>,
    /// What the helper sleeps until (`None`: nothing to wait for).
    sleeping_until: Option<Instant>,
}

/// An entry in the heap, ordered by its moment only (entries due together fire together, in
/// any order).
struct Due {
    at: Instant,
    entry: Weak<Entry>,
}

impl PartialEq for Due {
    // Mutation testing skips it: `Ord` needs it, but the heap only ever calls `cmp`.
    #[cfg_attr(test, mutants::skip)]
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at.cmp(&other.at)
    }
}

/// Whether the heap holds enough dead entries for a sweep to pay: amortised, each entry is
/// swept at most a few times.
// Mutation testing skips it: every variant of this test still keeps the heap bounded (a sweep
// drops it to the live entries); they differ only in how often the O(n) sweep runs, a cost
// and not a behaviour.
#[cfg_attr(test, mutants::skip)]
fn worth_sweeping(len: usize, live: usize) -> bool {
    len > SWEEP_MIN && len > live.saturating_mul(SWEEP_RATIO)
}

struct Shared {
    heap: Mutex<Heap>,
    wake_helper: Condvar,
    live: AtomicUsize,
}

fn shared() -> Option<&'static Shared> {
    static SHARED: OnceLock<Option<&'static Shared>> = OnceLock::new();
    *SHARED.get_or_init(|| {
        let shared: &'static Shared = Box::leak(Box::new(Shared {
            heap: Mutex::new(Heap {
                due: BinaryHeap::new(),
                sleeping_until: None,
            }),
            wake_helper: Condvar::new(),
            live: AtomicUsize::new(0),
        }));
        std::thread::Builder::new()
            .name("peertube-session-timer".into())
            .spawn(move || helper(shared))
            .ok()
            .map(|_| shared)
    })
}

/// A poisoned lock only means a waker panicked while the helper held it; the heap is still whole.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn helper(shared: &'static Shared) {
    let mut heap = lock(&shared.heap);
    loop {
        let now = Instant::now();
        let mut fired = Vec::new();
        while let Some(Reverse(due)) = heap.due.peek() {
            if due.at > now {
                break;
            }
            if let Some(Reverse(due)) = heap.due.pop()
                && let Some(entry) = due.entry.upgrade()
            {
                fired.push(entry);
            }
        }
        heap.sleeping_until = heap.due.peek().map(|Reverse(due)| due.at);
        if !fired.is_empty() {
            drop(heap);
            for entry in fired {
                let waker = lock(&entry.waker).take().flatten();
                if let Some(waker) = waker {
                    waker.wake();
                }
            }
            heap = lock(&shared.heap);
            continue;
        }
        heap = match heap.sleeping_until {
            Some(at) => {
                let wait = at.saturating_duration_since(now);
                shared
                    .wake_helper
                    .wait_timeout(heap, wait)
                    .map(|(guard, _)| guard)
                    .unwrap_or_else(|poisoned| poisoned.into_inner().0)
            }
            None => shared
                .wake_helper
                .wait(heap)
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        };
    }
}

impl Deadline {
    /// Ready at `at` (at once if `at` has passed).
    pub(crate) fn at(at: Instant) -> Self {
        if at <= Instant::now() {
            return Deadline { entry: None, at };
        }
        let Some(shared) = shared() else {
            return Deadline { entry: None, at };
        };
        let entry = Arc::new(Entry {
            waker: Mutex::new(Some(None)),
        });
        let live = shared.live.fetch_add(1, Ordering::Relaxed) + 1;
        let mut heap = lock(&shared.heap);
        if worth_sweeping(heap.due.len(), live) {
            heap.due.retain(|Reverse(due)| due.entry.strong_count() > 0);
        }
        heap.due.push(Reverse(Due {
            at,
            entry: Arc::downgrade(&entry),
        }));
        let earlier = heap.sleeping_until.is_none_or(|until| at < until);
        if earlier {
            heap.sleeping_until = Some(at);
            drop(heap);
            shared.wake_helper.notify_one();
        }
        Deadline {
            entry: Some(entry),
            at,
        }
    }
}

impl Future for Deadline {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(entry) = &self.entry else {
            return Poll::Ready(());
        };
        let mut slot = lock(&entry.waker);
        match slot.as_mut() {
            None => Poll::Ready(()),
            // The helper may run late under load; the clock decides, not only its wake-up.
            Some(_) if Instant::now() >= self.at => Poll::Ready(()),
            Some(waker) => {
                match waker {
                    Some(known) if known.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        if self.entry.take().is_some()
            && let Some(shared) = shared()
        {
            shared.live.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fires_in_order_of_deadline_not_of_making() {
        let start = Instant::now();
        let late = Deadline::at(start + Duration::from_millis(300));
        let early = Deadline::at(start + Duration::from_millis(30));
        pollster::block_on(early);
        let after_early = start.elapsed();
        assert!(after_early >= Duration::from_millis(30));
        assert!(after_early < Duration::from_millis(300), "{after_early:?}");
        pollster::block_on(late);
        assert!(start.elapsed() >= Duration::from_millis(300));
    }

    #[test]
    fn an_earlier_deadline_made_later_still_fires_first() {
        let start = Instant::now();
        let early = Deadline::at(start + Duration::from_millis(30));
        let late = Deadline::at(start + Duration::from_millis(400));
        pollster::block_on(early);
        assert!(
            start.elapsed() < Duration::from_millis(400),
            "{:?}",
            start.elapsed()
        );
        drop(late);
    }

    /// A waker that counts its wakes.
    struct Count(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn the_last_waker_to_poll_is_the_one_woken() {
        let first = Arc::new(Count(AtomicUsize::new(0)));
        let second = Arc::new(Count(AtomicUsize::new(0)));
        let mut deadline = Box::pin(Deadline::at(Instant::now() + Duration::from_millis(30)));
        let waker = Waker::from(first.clone());
        assert!(
            deadline
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        let waker = Waker::from(second.clone());
        assert!(
            deadline
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        let start = Instant::now();
        while second.0.load(Ordering::SeqCst) == 0 && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_passed_deadline_is_ready_at_once() {
        let deadline = Deadline::at(Instant::now());
        assert!(deadline.entry.is_none());
        pollster::block_on(deadline);
    }

    #[test]
    fn a_sweep_keeps_the_deadlines_still_awaited() {
        let soon = Deadline::at(Instant::now() + Duration::from_secs(60));
        let far = Instant::now() + Duration::from_secs(3600);
        for _ in 0..(SWEEP_MIN * SWEEP_RATIO * 3) {
            drop(Deadline::at(far));
        }
        let ours = soon.entry.as_ref().expect("a future deadline has an entry");
        let heap = lock(&shared().expect("helper thread").heap);
        let kept = heap
            .due
            .iter()
            .any(|Reverse(due)| due.entry.upgrade().is_some_and(|e| Arc::ptr_eq(&e, ours)));
        assert!(kept, "a sweep dropped a deadline that is still awaited");
    }

    #[test]
    fn dropped_deadlines_are_swept_not_kept_until_due() {
        let far = Instant::now() + Duration::from_secs(3600);
        for _ in 0..(SWEEP_MIN * SWEEP_RATIO * 3) {
            drop(Deadline::at(far));
        }
        let held = Deadline::at(far);
        let len = lock(&shared().expect("helper thread").heap).due.len();
        // Other tests share the heap, so only an upper bound holds: swept, not 12 288 deep.
        assert!(len <= SWEEP_MIN * SWEEP_RATIO + 64, "{len}");
        drop(held);
    }
}
