//! Bounds on open event streams: per meeting and for the whole server.
//! Past either, opening a stream answers 503 with `Retry-After`; a stream's
//! slot is given back when it ends (reader gone, meeting done, server
//! stopping).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use scribe_actors::ids::MeetingId;

use super::ApiError;

/// The bounds.
#[derive(Debug, Clone, Copy)]
pub struct StreamBounds {
    pub total: usize,
    pub per_meeting: usize,
}

impl Default for StreamBounds {
    fn default() -> Self {
        Self {
            total: 5_000,
            per_meeting: 20,
        }
    }
}

/// Seconds a refused reader is told to wait.
const RETRY_AFTER_SECS: u64 = 5;

/// The streams open now.
#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_meeting: HashMap<MeetingId, usize>,
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
}

impl StreamLimits {
    pub fn new(bounds: StreamBounds) -> Arc<Self> {
        Arc::new(Self {
            bounds,
            open: Mutex::default(),
        })
    }

    /// Takes a place for a stream of `meeting`, or refuses with 503.
    pub fn open(self: &Arc<Self>, meeting: MeetingId) -> Result<StreamSlot, ApiError> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let of_meeting = open.by_meeting.get(&meeting).copied().unwrap_or(0);
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
        } else {
            None
        };
        if let Some(message) = refusal {
            return Err(ApiError::Busy {
                message,
                retry_after: RETRY_AFTER_SECS,
            });
        }
        open.total += 1;
        *open.by_meeting.entry(meeting).or_default() += 1;
        Ok(StreamSlot {
            limits: self.clone(),
            meeting,
        })
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
        });
        let (a, b) = (MeetingId::new(), MeetingId::new());
        let first = limits.open(a).expect("1st of a");
        let _second = limits.open(a).expect("2nd of a");
        assert!(matches!(
            limits.open(a),
            Err(ApiError::Busy { retry_after: 5, .. })
        ));
        let _third = limits.open(b).expect("1st of b");
        let Err(ApiError::Busy { message, .. }) = limits.open(b) else {
            panic!("the server is full");
        };
        assert!(message.contains("the server has 3"), "{message}");
        drop(first);
        assert_eq!(limits.open_now(), 2);
        let _again = limits.open(a).expect("a place was given back");
    }
}
