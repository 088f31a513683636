//! `rate_limit`: a token bucket over every request, as the exporter-toolkit's (Go's
//! `rate.NewLimiter(rate.Every(interval), burst)`): it starts full with `burst` tokens, gains one
//! every `interval` up to `burst`, and a request that finds it empty is answered 429.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// The settings of `rate_limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// One more request is allowed every `interval`.
    pub interval: Duration,
    /// Requests allowed at once, after a quiet time (at least 1).
    pub burst: u32,
}

/// The token bucket of one [`RateLimit`].
#[derive(Debug)]
pub(super) struct TokenBucket {
    /// Its settings.
    limit: RateLimit,
    /// The tokens in the bucket (a fraction is a token on its way) and when they were counted.
    tokens: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    /// A full bucket.
    pub(super) fn new(limit: RateLimit) -> Self {
        TokenBucket {
            limit,
            tokens: Mutex::new((f64::from(limit.burst), Instant::now())),
        }
    }

    /// Its settings.
    pub(super) fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Takes a token at `now`; `false` when none is left.
    pub(super) fn take(&self, now: Instant) -> bool {
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        let (count, counted_at) = *tokens;
        let gained = now.saturating_duration_since(counted_at).as_secs_f64()
            / self.limit.interval.as_secs_f64();
        let count = (count + gained).min(f64::from(self.limit.burst));
        if count >= 1.0 {
            *tokens = (count - 1.0, now);
            true
        } else {
            *tokens = (count, now);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_burst_then_one_per_interval() {
        let bucket = TokenBucket::new(RateLimit {
            interval: Duration::from_secs(1),
            burst: 3,
        });
        let start = Instant::now();
        assert!((0..3).all(|_| bucket.take(start)));
        assert!(!bucket.take(start));
        // Half an interval brings half a token: not enough.
        assert!(!bucket.take(start + Duration::from_millis(500)));
        assert!(bucket.take(start + Duration::from_millis(1000)));
        assert!(!bucket.take(start + Duration::from_millis(1000)));
        // A long quiet time refills to the burst, no further.
        let later = start + Duration::from_secs(60);
        assert!((0..3).all(|_| bucket.take(later)));
        assert!(!bucket.take(later));
    }
}
