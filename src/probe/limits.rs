//! Caps on the connections probes open: in all, and to any one address, so that a storm of
//! scrapes cannot turn the exporter into a flood against a mail server.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
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
        }
    }

    /// The caps in force.
    pub fn limits(&self) -> ConnectionCaps {
        self.caps
    }

    /// Waits for leave to connect to `address`, until `deadline`.
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
        let acquired = timeout_at(deadline, semaphore.acquire_owned()).await;
        let Ok(Ok(address_permit)) = acquired else {
            self.forget_if_idle(address);
            return Err(NoSlot { address });
        };
        match timeout_at(deadline, self.total.clone().acquire_owned()).await {
            Ok(Ok(total_permit)) => Ok(Permit {
                limiter: self,
                address,
                _address_permit: Some(address_permit),
                _total_permit: total_permit,
            }),
            _ => {
                drop(address_permit);
                self.forget_if_idle(address);
                Err(NoSlot { address })
            }
        }
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
        assert_eq!(
            limiter.acquire(address(25), soon).await.err(),
            Some(NoSlot {
                address: address(25)
            })
        );
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
