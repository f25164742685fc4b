//! Bounds on open event streams: per meeting, per client address and for
//! the whole server. Past any, opening a stream answers 503 with
//! `Retry-After` (and the refusal is logged at most once a minute per
//! meeting); a stream's slot is given back when it ends (reader gone,
//! meeting done, lifetime over, server stopping).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use scribe_actors::ids::MeetingId;

use super::ApiError;

/// The bounds.
#[derive(Debug, Clone, Copy)]
pub struct StreamBounds {
    pub total: usize,
    pub per_meeting: usize,
    /// Streams from one client address (loopback and private addresses
    /// only when `cap_private`, as for connections).
    pub per_address: usize,
    pub cap_private: bool,
    /// How long one stream stays open; then it ends and its reader
    /// reconnects with `Last-Event-ID`.
    pub lifetime: Duration,
}

impl Default for StreamBounds {
    fn default() -> Self {
        Self {
            total: 5_000,
            per_meeting: 20,
            per_address: 64,
            cap_private: false,
            lifetime: Duration::from_secs(1800),
        }
    }
}

/// How often a meeting's refused streams are logged, at most.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(60);

/// Seconds a refused reader is told to wait.
const RETRY_AFTER_SECS: u64 = 5;

/// The streams open now.
#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_meeting: HashMap<MeetingId, usize>,
    by_address: HashMap<IpAddr, usize>,
    /// When each meeting's refusals were last logged, and how many were
    /// refused since.
    refusals: HashMap<MeetingId, (Instant, u64)>,
}

/// Counts the open streams against their bounds.
#[derive(Debug)]
pub struct StreamLimits {
    bounds: StreamBounds,
    open: Mutex<Open>,
}

/// One open stream's place; dropping it gives the place back.
#[derive(Debug)]
pub struct StreamSlot {
    limits: Arc<StreamLimits>,
    meeting: MeetingId,
    address: Option<IpAddr>,
}

impl StreamLimits {
    pub fn new(bounds: StreamBounds) -> Arc<Self> {
        Arc::new(Self {
            bounds,
            open: Mutex::default(),
        })
    }

    /// How long one stream stays open.
    pub fn lifetime(&self) -> Duration {
        self.bounds.lifetime
    }

    /// Takes a place for a stream of `meeting` read from `address`, or
    /// refuses with 503.
    pub fn open(
        self: &Arc<Self>,
        meeting: MeetingId,
        address: Option<IpAddr>,
    ) -> Result<StreamSlot, ApiError> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let of_meeting = open.by_meeting.get(&meeting).copied().unwrap_or(0);
        // The address counts when it is capped at all.
        let address = address.filter(|a| super::serve::is_capped(*a, self.bounds.cap_private));
        let of_address = address
            .and_then(|a| open.by_address.get(&a).copied())
            .unwrap_or(0);
        let refusal = if open.total >= self.bounds.total {
            Some(format!(
                "the server has {} event streams open, its limit: try again shortly",
                self.bounds.total
            ))
        } else if of_meeting >= self.bounds.per_meeting {
            Some(format!(
                "this meeting has {} event streams open, its limit: try again shortly",
                self.bounds.per_meeting
            ))
        } else if of_address >= self.bounds.per_address {
            Some(format!(
                "this client has {} event streams open, its limit: try again shortly",
                self.bounds.per_address
            ))
        } else {
            None
        };
        if let Some(message) = refusal {
            Self::log_refusal(&mut open, meeting, &message);
            return Err(ApiError::Busy {
                message,
                retry_after: RETRY_AFTER_SECS,
            });
        }
        open.total += 1;
        *open.by_meeting.entry(meeting).or_default() += 1;
        if let Some(address) = address {
            *open.by_address.entry(address).or_default() += 1;
        }
        Ok(StreamSlot {
            limits: self.clone(),
            meeting,
            address,
        })
    }

    /// Logs a refusal, at most once a minute per meeting (with how many
    /// were refused since the last line).
    fn log_refusal(open: &mut Open, meeting: MeetingId, message: &str) {
        let now = Instant::now();
        if open.refusals.len() > 10_000 {
            open.refusals
                .retain(|_, (at, _)| now.duration_since(*at) < REFUSAL_LOG_EVERY);
        }
        match open.refusals.get_mut(&meeting) {
            Some((at, since)) if now.duration_since(*at) < REFUSAL_LOG_EVERY => {
                *since += 1;
            }
            entry => {
                let unlogged = entry.map_or(0, |(_, since)| *since);
                open.refusals.insert(meeting, (now, 0));
                tracing::warn!(%meeting, refused_since_last = unlogged, "event stream refused: {message}");
            }
        }
    }

    /// Refusals of `meeting` counted but not logged yet (for tests).
    pub fn unlogged_refusals(&self, meeting: MeetingId) -> u64 {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .refusals
            .get(&meeting)
            .map_or(0, |(_, since)| *since)
    }

    /// Streams open now, in all.
    pub fn open_now(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self
            .limits
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.by_meeting.get_mut(&self.meeting) {
            *count -= 1;
            if *count == 0 {
                open.by_meeting.remove(&self.meeting);
            }
        }
        if let Some(address) = self.address
            && let Some(count) = open.by_address.get_mut(&address)
        {
            *count -= 1;
            if *count == 0 {
                open.by_address.remove(&address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_bounded_per_meeting_and_in_all_and_given_back() {
        let limits = StreamLimits::new(StreamBounds {
            total: 3,
            per_meeting: 2,
            ..StreamBounds::default()
        });
        let (a, b) = (MeetingId::new(), MeetingId::new());
        let first = limits.open(a, None).expect("1st of a");
        let _second = limits.open(a, None).expect("2nd of a");
        assert!(matches!(
            limits.open(a, None),
            Err(ApiError::Busy { retry_after: 5, .. })
        ));
        let _third = limits.open(b, None).expect("1st of b");
        let Err(ApiError::Busy { message, .. }) = limits.open(b, None) else {
            panic!("the server is full");
        };
        assert!(message.contains("the server has 3"), "{message}");
        drop(first);
        assert_eq!(limits.open_now(), 2);
        let _again = limits.open(a, None).expect("a place was given back");
    }

    #[test]
    fn one_client_address_has_its_own_bound_and_a_flood_of_refusals_is_logged_once() {
        let public: IpAddr = "203.0.113.7".parse().expect("ip");
        let other: IpAddr = "203.0.113.8".parse().expect("ip");
        let private: IpAddr = "10.0.0.5".parse().expect("ip");
        let limits = StreamLimits::new(StreamBounds {
            per_address: 2,
            ..StreamBounds::default()
        });
        let meeting = MeetingId::new();
        let _one = limits.open(meeting, Some(public)).expect("1st");
        let two = limits.open(meeting, Some(public)).expect("2nd");
        let Err(ApiError::Busy { message, .. }) = limits.open(meeting, Some(public)) else {
            panic!("the address is at its bound");
        };
        assert!(message.contains("this client has 2"), "{message}");
        let _elsewhere = limits.open(meeting, Some(other)).expect("another client");
        // A load balancer's address is not capped unless asked.
        let _lb: Vec<_> = (0..5)
            .map(|_| limits.open(meeting, Some(private)).expect("private"))
            .collect();
        // 100 more refusals: counted, not logged (the first one was).
        for _ in 0..100 {
            assert!(limits.open(meeting, Some(public)).is_err());
        }
        assert_eq!(limits.unlogged_refusals(meeting), 100);
        drop(two);
        let _again = limits.open(meeting, Some(public)).expect("given back");

        let strict = StreamLimits::new(StreamBounds {
            per_address: 1,
            cap_private: true,
            ..StreamBounds::default()
        });
        let _held = strict.open(meeting, Some(private)).expect("1st");
        assert!(
            strict.open(meeting, Some(private)).is_err(),
            "capped when asked"
        );
    }
}
