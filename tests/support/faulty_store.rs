//! A memory store that fails on demand, the ways real stores fail: away (every step refused),
//! stalled (every step hangs until its caller's `until`, as a paused Redis does), saves
//! refused (a full disk), releases refused (the store gone between a save and the release), wiped (back to empty, as a Redis restarted without persistence), its
//! lease held by "another process", or changed by a hand of the test the moment a lease is
//! granted.
#![allow(dead_code)]

use peertube_session::store::{
    Lease, MemoryStore, Record, SessionStore, StoreError, StoreFault, Version,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct FaultyStore {
    inner: Mutex<Arc<MemoryStore>>,
    pub away: AtomicBool,
    pub stalled: AtomicBool,
    pub fail_saves: AtomicBool,
    pub lease_taken: AtomicBool,
    pub fail_releases: AtomicBool,
    /// Each step takes this long (milliseconds), as an async store over the network does: it
    /// waits without blocking, and a caller past its `until` drops it.
    pub step_delay_ms: AtomicU64,
    /// Steps tried (including the failed ones).
    pub steps: AtomicU64,
    /// Away until then, as after a restart (see [`away_for`](Self::away_for)).
    away_until: Mutex<Option<Instant>>,
    /// Done to the store once the next lease is granted, before its taker goes on.
    after_lease: Mutex<Option<AfterLease>>,
}

type AfterLease = Box<dyn FnOnce(&FaultyStore) + Send>;

impl FaultyStore {
    pub fn new() -> Arc<FaultyStore> {
        Arc::new(FaultyStore::default())
    }

    fn inner(&self) -> Arc<MemoryStore> {
        self.inner.lock().unwrap().clone()
    }

    /// Forgets everything: the record, its version, the lease.
    pub fn wipe(&self) {
        *self.inner.lock().unwrap() = Arc::new(MemoryStore::new());
    }

    /// Writes `record` over whatever the store holds, past every fault and lease (what a login
    /// of another process that did without the lease does).
    pub fn put(&self, record: Record) {
        let until = Instant::now() + Duration::from_secs(1);
        let inner = self.inner();
        let current = pollster::block_on(inner.version(until)).unwrap();
        pollster::block_on(inner.save(current, record, None, until)).unwrap();
    }

    /// Every step refused for `wait` from now, as by a store that restarts.
    pub fn away_for(&self, wait: Duration) {
        *self.away_until.lock().unwrap() = Some(Instant::now() + wait);
    }

    /// Once the next lease is granted, `act` is done to the store before the lease's taker
    /// gets it: what happens to a store between a client's taking the lease and its next step.
    pub fn after_next_lease(&self, act: impl FnOnce(&FaultyStore) + Send + 'static) {
        *self.after_lease.lock().unwrap() = Some(Box::new(act));
    }

    /// The record as it is now, read past every fault.
    pub fn record(&self) -> Record {
        pollster::block_on(self.inner().load(Instant::now() + Duration::from_secs(1))).unwrap()
    }

    /// The step's delay, if any, then [`check`](Self::check).
    async fn step(&self, until: Instant) -> Result<(), StoreError> {
        let delay = self.step_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            Delay::new(Duration::from_millis(delay)).await;
        }
        self.check(until)
    }

    fn check(&self, until: Instant) -> Result<(), StoreError> {
        self.steps.fetch_add(1, Ordering::Relaxed);
        let restarting = self
            .away_until
            .lock()
            .unwrap()
            .is_some_and(|until| Instant::now() < until);
        if restarting || self.away.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable(StoreFault::Refused, "store away"));
        }
        // As every networked store does (tests/redis_store.rs): a step asked for past its
        // caller's deadline is not sent.
        if Instant::now() >= until {
            return Err(StoreError::unavailable(
                StoreFault::TimedOut,
                "no time left for the store",
            ));
        }
        if self.stalled.load(Ordering::SeqCst) {
            // As a blocking store does: it keeps to `until` itself.
            std::thread::sleep(until.saturating_duration_since(Instant::now()));
            return Err(StoreError::unavailable(
                StoreFault::TimedOut,
                "store stalled",
            ));
        }
        Ok(())
    }
}

impl SessionStore for FaultyStore {
    async fn version(&self, until: Instant) -> Result<Version, StoreError> {
        self.step(until).await?;
        self.inner().version(until).await
    }

    async fn load(&self, until: Instant) -> Result<Record, StoreError> {
        self.step(until).await?;
        self.inner().load(until).await
    }

    async fn save(
        &self,
        expected: Version,
        record: Record,
        lease: Option<&Lease>,
        until: Instant,
    ) -> Result<Version, StoreError> {
        self.step(until).await?;
        if self.fail_saves.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable(StoreFault::Full, "disk full"));
        }
        self.inner().save(expected, record, lease, until).await
    }

    async fn try_lease(&self, ttl: Duration, until: Instant) -> Result<Option<Lease>, StoreError> {
        self.step(until).await?;
        if self.lease_taken.load(Ordering::SeqCst) {
            return Ok(None);
        }
        let lease = self.inner().try_lease(ttl, until).await?;
        if lease.is_some() {
            let act = self.after_lease.lock().unwrap().take();
            if let Some(act) = act {
                act(self);
            }
        }
        Ok(lease)
    }

    async fn release(&self, lease: Lease, until: Instant) -> Result<(), StoreError> {
        self.step(until).await?;
        if self.fail_releases.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable(StoreFault::Refused, "store away"));
        }
        self.inner().release(lease, until).await
    }
}

/// A future ready after `wait`, on any executor (a thread sleeps and wakes it).
struct Delay {
    wait: Duration,
    done: Arc<AtomicBool>,
    started: bool,
}

impl Delay {
    fn new(wait: Duration) -> Delay {
        Delay {
            wait,
            done: Arc::default(),
            started: false,
        }
    }
}

impl std::future::Future for Delay {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.done.load(Ordering::SeqCst) {
            return std::task::Poll::Ready(());
        }
        if !self.started {
            self.started = true;
            let (done, waker, wait) = (self.done.clone(), context.waker().clone(), self.wait);
            std::thread::spawn(move || {
                std::thread::sleep(wait);
                done.store(true, Ordering::SeqCst);
                waker.wake();
            });
        }
        std::task::Poll::Pending
    }
}
