//! Per-meeting rate limits on the endpoints that cost model time: creating
//! a call at OpenAI and retrying an analysis. Past the limit the answer is
//! 429 with `Retry-After`; nothing is done. The limits are per instance
//! (several instances each allow their own share).

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use scribe_actors::ids::MeetingId;

use super::ApiError;

/// Calls created for one meeting: 3 at once, then one every 20 s.
pub const CALLS: Limit = Limit {
    burst: 3,
    every: Duration::from_secs(20),
};

/// Analysis retries of one meeting: 3 at once, then one a minute.
pub const RETRIES: Limit = Limit {
    burst: 3,
    every: Duration::from_secs(60),
};

/// A token bucket: `burst` requests at once, refilled one every `every`.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub burst: u32,
    pub every: Duration,
}

impl Limit {
    fn quota(self) -> Quota {
        Quota::with_period(self.every)
            .expect("a limit's period is not zero")
            .allow_burst(NonZeroU32::new(self.burst).unwrap_or(NonZeroU32::MIN))
    }
}

/// Above this many meetings tracked, buckets that are full again are
/// dropped (they would allow the same as a new one).
const TRACKED: usize = 10_000;

/// The limiters of one instance.
pub struct MeetingLimits {
    calls: DefaultKeyedRateLimiter<MeetingId>,
    retries: DefaultKeyedRateLimiter<MeetingId>,
    clock: DefaultClock,
}

impl Default for MeetingLimits {
    fn default() -> Self {
        Self::new(CALLS, RETRIES)
    }
}

impl MeetingLimits {
    pub fn new(calls: Limit, retries: Limit) -> Self {
        Self {
            calls: RateLimiter::dashmap(calls.quota()),
            retries: RateLimiter::dashmap(retries.quota()),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one call creation from the meeting's bucket, or says when the
    /// next one is allowed.
    pub fn call(&self, meeting: MeetingId) -> Result<(), ApiError> {
        self.take(&self.calls, meeting, "calls")
    }

    /// Takes one analysis retry from the meeting's bucket.
    pub fn retry(&self, meeting: MeetingId) -> Result<(), ApiError> {
        self.take(&self.retries, meeting, "retries")
    }

    fn take(
        &self,
        limiter: &DefaultKeyedRateLimiter<MeetingId>,
        meeting: MeetingId,
        what: &'static str,
    ) -> Result<(), ApiError> {
        if limiter.len() > TRACKED {
            limiter.retain_recent();
        }
        limiter.check_key(&meeting).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            // Whole seconds, rounded up: never earlier than allowed.
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            ApiError::TooManyRequests {
                message: format!("too many {what} for this meeting: try again in {seconds} s"),
                retry_after: seconds.max(1),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_meeting_has_its_own_bucket_and_a_refusal_says_when_to_come_back() {
        let limits = MeetingLimits::new(
            Limit {
                burst: 2,
                every: Duration::from_secs(30),
            },
            RETRIES,
        );
        let (one, two) = (MeetingId::new(), MeetingId::new());
        assert!(limits.call(one).is_ok());
        assert!(limits.call(one).is_ok());
        let Err(ApiError::TooManyRequests { retry_after, .. }) = limits.call(one) else {
            panic!("the third call in a row is refused");
        };
        assert!((29..=30).contains(&retry_after), "{retry_after}");
        assert!(limits.call(two).is_ok(), "another meeting is not affected");
        assert!(
            limits.retry(one).is_ok(),
            "retries have a bucket of their own"
        );
    }
}
