//! Rate limits. Per meeting, on the endpoints that cost model time:
//! creating a call at OpenAI and retrying an analysis. For the API token
//! itself, on what fills the database: meetings and agents created per
//! minute (a leaked token cannot fill the disk in seconds). Past a limit
//! the answer is 429 with `Retry-After`; nothing is done. The limits are
//! per instance (several instances each allow their own share).

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
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

/// `per_minute` at once, refilled evenly over a minute.
pub fn per_minute(per_minute: u32) -> Limit {
    let per_minute = per_minute.max(1);
    Limit {
        burst: per_minute,
        every: Duration::from_secs(60) / per_minute,
    }
}

/// The limiters of one instance.
pub struct MeetingLimits {
    calls: DefaultKeyedRateLimiter<MeetingId>,
    retries: DefaultKeyedRateLimiter<MeetingId>,
    meetings: DefaultDirectRateLimiter,
    agents: DefaultDirectRateLimiter,
    clock: DefaultClock,
}

impl Default for MeetingLimits {
    fn default() -> Self {
        Self::with_creation(600, 600)
    }
}

impl MeetingLimits {
    pub fn new(calls: Limit, retries: Limit) -> Self {
        Self::with(calls, retries, per_minute(600), per_minute(600))
    }

    /// The default per-meeting limits, and `meetings` and `agents` created
    /// per minute.
    pub fn with_creation(meetings: u32, agents: u32) -> Self {
        Self::with(CALLS, RETRIES, per_minute(meetings), per_minute(agents))
    }

    fn with(calls: Limit, retries: Limit, meetings: Limit, agents: Limit) -> Self {
        Self {
            calls: RateLimiter::dashmap(calls.quota()),
            retries: RateLimiter::dashmap(retries.quota()),
            meetings: RateLimiter::direct(meetings.quota()),
            agents: RateLimiter::direct(agents.quota()),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one meeting creation from the instance's bucket.
    pub fn meeting_created(&self) -> Result<(), ApiError> {
        self.take_direct(&self.meetings, "meetings created")
    }

    /// Takes one agent creation from the instance's bucket.
    pub fn agent_created(&self) -> Result<(), ApiError> {
        self.take_direct(&self.agents, "agents created")
    }

    fn take_direct(
        &self,
        limiter: &DefaultDirectRateLimiter,
        what: &'static str,
    ) -> Result<(), ApiError> {
        limiter
            .check()
            .map_err(|not_until| self.refusal(not_until, format!("too many {what}")))
    }

    fn refusal(
        &self,
        not_until: governor::NotUntil<<DefaultClock as Clock>::Instant>,
        what: String,
    ) -> ApiError {
        let wait = not_until.wait_time_from(self.clock.now());
        // Whole seconds, rounded up: never earlier than allowed.
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        ApiError::TooManyRequests {
            message: format!("{what}: try again in {seconds} s"),
            retry_after: seconds.max(1),
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
            self.refusal(not_until, format!("too many {what} for this meeting"))
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

    #[test]
    fn meetings_and_agents_created_per_minute_are_bounded_apart() {
        let limits = MeetingLimits::with_creation(3, 1);
        for _ in 0..3 {
            assert!(limits.meeting_created().is_ok());
        }
        let Err(ApiError::TooManyRequests {
            retry_after,
            message,
        }) = limits.meeting_created()
        else {
            panic!("the fourth meeting in a minute is refused");
        };
        assert!((1..=20).contains(&retry_after), "{retry_after}");
        assert!(message.contains("too many meetings created"), "{message}");
        assert!(limits.agent_created().is_ok(), "agents have their own");
        assert!(limits.agent_created().is_err());
    }
}
