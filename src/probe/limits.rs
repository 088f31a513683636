//! Caps on the connections probes open: in all, and to any one address, so that a storm of
//! scrapes cannot turn the exporter into a flood against a mail server.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio::time::{Instant, timeout_at};

/// How many connections probes may hold open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionCaps {
    /// Connections in all.
    pub total: usize,
    /// Connections to one address and port.
    pub per_address: usize,
}

impl Default for ConnectionCaps {
    fn default() -> Self {
        ConnectionCaps {
            total: 512,
            per_address: 16,
        }
    }
}

/// Hands out connection permits within [`ConnectionCaps`].
#[derive(Debug)]
pub struct Limiter {
    /// The caps in force.
    caps: ConnectionCaps,
    /// Connections in all.
    total: Arc<Semaphore>,
    /// Connections to each address that has a connection or a waiter now (idle ones are dropped).
    per_address: Mutex<HashMap<SocketAddr, Arc<Semaphore>>>,
    /// Connections that had to wait for a slot, since start.
    waits: AtomicU64,
}

/// No connection slot came free for an address before the probe's deadline: the exporter's own
/// caps held the probe back, which says nothing about the destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoSlot {
    /// The address and port the probe waited to connect to.
    pub address: SocketAddr,
}

/// Leave to hold one connection open; released on drop.
#[derive(Debug)]
pub struct Permit<'a> {
    /// The limiter that granted it, to forget the address once idle.
    limiter: &'a Limiter,
    /// The address and port the connection goes to.
    address: SocketAddr,
    /// The share of the address's cap; taken first on drop.
    _address_permit: Option<OwnedSemaphorePermit>,
    /// The share of the total cap.
    _total_permit: OwnedSemaphorePermit,
}

impl Limiter {
    /// A limiter enforcing `caps` (each at least 1).
    pub fn new(caps: ConnectionCaps) -> Self {
        let caps = ConnectionCaps {
            total: caps.total.max(1),
            per_address: caps.per_address.max(1),
        };
        Limiter {
            caps,
            total: Arc::new(Semaphore::new(caps.total)),
            per_address: Mutex::new(HashMap::new()),
            waits: AtomicU64::new(0),
        }
    }

    /// How many connections had to wait for a slot, since start (those that got none are
    /// counted per connector by the exporter, as probes that did not run).
    pub fn slot_waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }

    /// The caps in force.
    pub fn limits(&self) -> ConnectionCaps {
        self.caps
    }

    /// Waits for leave to connect to `address`, until `deadline`. A wait is counted
    /// ([`Limiter::slot_waits`]).
    pub async fn acquire(
        &self,
        address: SocketAddr,
        deadline: Instant,
    ) -> Result<Permit<'_>, NoSlot> {
        let semaphore = self
            .lock()
            .entry(address)
            .or_insert_with(|| Arc::new(Semaphore::new(self.caps.per_address)))
            .clone();
        let mut waited = false;
        let Some(address_permit) = self.wait_for(semaphore, deadline, &mut waited).await else {
            self.forget_if_idle(address);
            return Err(NoSlot { address });
        };
        match self
            .wait_for(self.total.clone(), deadline, &mut waited)
            .await
        {
            Some(total_permit) => Ok(Permit {
                limiter: self,
                address,
                _address_permit: Some(address_permit),
                _total_permit: total_permit,
            }),
            None => {
                drop(address_permit);
                self.forget_if_idle(address);
                Err(NoSlot { address })
            }
        }
    }

    /// A permit of `semaphore` by `deadline`: at once when one is free, else after waiting
    /// (counted once per connection in `waited`), or `None`.
    async fn wait_for(
        &self,
        semaphore: Arc<Semaphore>,
        deadline: Instant,
        waited: &mut bool,
    ) -> Option<OwnedSemaphorePermit> {
        match semaphore.clone().try_acquire_owned() {
            Ok(permit) => return Some(permit),
            Err(TryAcquireError::Closed) => return None,
            Err(TryAcquireError::NoPermits) => {}
        }
        if !std::mem::replace(waited, true) {
            self.waits.fetch_add(1, Ordering::Relaxed);
        }
        let permit = timeout_at(deadline, semaphore.acquire_owned()).await;
        permit.ok().and_then(Result::ok)
    }

    /// Removes the semaphore of `address` when nobody holds or waits for it.
    fn forget_if_idle(&self, address: SocketAddr) {
        let mut map = self.lock();
        if let Some(semaphore) = map.get(&address)
            && Arc::strong_count(semaphore) == 1
            && semaphore.available_permits() == self.caps.per_address
        {
            map.remove(&address);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Arc<Semaphore>>> {
        self.per_address
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many addresses have a semaphore now (for tests: idle ones must not pile up).
    pub fn tracked_addresses(&self) -> usize {
        self.lock().len()
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        // Release this address's permit first, then see whether its semaphore is idle.
        self._address_permit.take();
        self.limiter.forget_if_idle(self.address);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn address(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[tokio::test]
    async fn one_address_gets_at_most_its_share() {
        let limiter = Limiter::new(ConnectionCaps {
            total: 10,
            per_address: 2,
        });
        let soon = Instant::now() + Duration::from_millis(50);
        let a = limiter.acquire(address(25), soon).await;
        let b = limiter.acquire(address(25), soon).await;
        assert!(a.is_ok() && b.is_ok());
        assert_eq!(limiter.slot_waits(), 0);
        assert_eq!(
            limiter.acquire(address(25), soon).await.err(),
            Some(NoSlot {
                address: address(25)
            })
        );
        assert_eq!(limiter.slot_waits(), 1);
        // Another address is not held up.
        assert!(limiter.acquire(address(26), soon).await.is_ok());
        drop(a);
        let later = Instant::now() + Duration::from_millis(50);
        assert!(limiter.acquire(address(25), later).await.is_ok());
    }

    #[tokio::test]
    async fn the_total_caps_every_address_together() {
        let limiter = Limiter::new(ConnectionCaps {
            total: 2,
            per_address: 5,
        });
        let soon = Instant::now() + Duration::from_millis(50);
        let _a = limiter.acquire(address(1), soon).await.expect("first");
        let _b = limiter.acquire(address(2), soon).await.expect("second");
        assert!(limiter.acquire(address(3), soon).await.is_err());
    }

    #[tokio::test]
    async fn a_wait_that_ends_with_a_slot_is_counted_once() {
        let limiter = Arc::new(Limiter::new(ConnectionCaps {
            total: 1,
            per_address: 5,
        }));
        let later = Instant::now() + Duration::from_secs(20);
        let held = limiter.acquire(address(1), later).await;
        assert!(held.is_ok());
        let waiting = tokio::spawn({
            let limiter = limiter.clone();
            async move { limiter.acquire(address(2), later).await.is_ok() }
        });
        while limiter.slot_waits() == 0 {
            tokio::task::yield_now().await;
        }
        drop(held);
        assert!(waiting.await.expect("task"));
        assert_eq!(limiter.slot_waits(), 1);
    }

    #[tokio::test]
    async fn idle_addresses_are_forgotten() {
        let limiter = Limiter::new(ConnectionCaps::default());
        let soon = Instant::now() + Duration::from_millis(50);
        for port in 1..100 {
            let permit = limiter.acquire(address(port), soon).await;
            assert!(permit.is_ok());
        }
        assert_eq!(limiter.tracked_addresses(), 0);
    }
}
