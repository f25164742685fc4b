//! GPT-Live's lines in the conversation: fragments go onto the session's
//! [`Timeline`]; each line it seals gets the next number and is ready to be
//! written, with its place on the session clock (`start_ms`, `end_ms`).
//!
//! - `session.closed`: every pending fragment becomes a line (`completed`:
//!   the session finalized its transcript).
//! - A session that ends without it (a dropped socket, a replaced
//!   session): pending fragments become `partial` lines; an owned session's
//!   successor starts its own clock.
//! - An attached session re-attached after a drop continues on the same
//!   clock. What was said while scribe was away is gone (GPT-Live cannot
//!   give fragments back): the first fragment after the drop records the
//!   gap, its session-time range and the lines on either side. No line is
//!   made up.

use chrono::{DateTime, Utc};

use super::timeline::{TimedRun, Timeline};
use super::{ChunkStatus, Conversation, Line, Notice};
use crate::voice::event::ServerEvent;

/// How long without a fragment counts as a pause between turns.
const QUIET: chrono::TimeDelta = chrono::TimeDelta::milliseconds(1_500);

/// One GPT-Live session's transcript state.
#[derive(Debug, Default)]
pub struct Timed {
    timeline: Timeline,
    /// The sideband went away: where the session clock was (the latest
    /// fragment end heard), until the first fragment after it.
    away: Option<Away>,
    /// When the last fragment was read.
    last_fragment: Option<DateTime<Utc>>,
    /// The session sent `session.closed`: its transcript is final.
    closed: bool,
}

#[derive(Debug, Clone, Copy)]
struct Away {
    from_ms: Option<u64>,
}

impl Timed {
    /// The sideband went away with the session clock at `reached_ms`
    /// (`None`: nothing was heard yet, so nothing can have been missed).
    pub fn away_from(&mut self, reached_ms: Option<u64>) {
        if self.away.is_none() && reached_ms.is_some() {
            self.away = Some(Away {
                from_ms: reached_ms,
            });
        }
    }
}

impl Conversation {
    /// An attached GPT-Live call picked up after scribe was away (a
    /// restart, a takeover): its last stored line ended at `last_end_ms`.
    pub fn resumed_timed(&mut self, last_end_ms: Option<i64>) {
        self.timed.away = Some(Away {
            from_ms: last_end_ms.and_then(|ms| u64::try_from(ms).ok()),
        });
    }

    /// The latest moment of the session clock heard so far.
    pub(super) fn timeline_reached(&self) -> Option<u64> {
        self.timed.timeline.reached_ms()
    }

    /// GPT-Live has no turn events: nobody is speaking when no fragment
    /// arrived for [`QUIET`].
    pub(super) fn timed_quiet(&self, now: DateTime<Utc>) -> bool {
        self.timed.last_fragment.is_none_or(|at| now - at >= QUIET)
    }

    /// GPT-Live: the session sent `session.closed`.
    pub fn live_closed(&self) -> bool {
        self.timed.closed
    }

    /// GPT-Live fragments waiting to be sealed into lines.
    pub fn pending_fragments(&self) -> usize {
        self.timed.timeline.pending()
    }

    /// When the last GPT-Live fragment was read (`None`: none yet).
    pub fn last_fragment_at(&self) -> Option<DateTime<Utc>> {
        self.timed.last_fragment
    }

    pub(super) fn apply_timed(&mut self, event: &ServerEvent, now: DateTime<Utc>) {
        match event {
            ServerEvent::LiveFragment {
                speaker,
                delta,
                start_ms,
                end_ms,
            } => {
                if let Some(away) = self.timed.away.take() {
                    let after = (self.next_sequence > 1).then_some(self.next_sequence - 1);
                    self.notices.push(Notice::TimedGap {
                        after,
                        before: self.next_sequence,
                        from: self.detached_at,
                        to: now,
                        from_ms: away.from_ms,
                        to_ms: *start_ms,
                    });
                }
                self.timed.last_fragment = Some(now);
                let runs = self
                    .timed
                    .timeline
                    .push(*speaker, delta, *start_ms, *end_ms);
                for late in self.timed.timeline.take_late() {
                    self.notices.push(Notice::LateFragment {
                        speaker: late.speaker,
                        start_ms: late.start_ms,
                        placed_at_ms: late.placed_at_ms,
                    });
                }
                for run in runs {
                    self.emit_timed(run, ChunkStatus::Completed, now);
                }
            }
            ServerEvent::LiveClosed { .. } => {
                self.timed.closed = true;
                for run in self.timed.timeline.flush() {
                    self.emit_timed(run, ChunkStatus::Completed, now);
                }
            }
            _ => {}
        }
    }

    /// The session ended without `session.closed`: what is pending becomes
    /// `partial` lines. An owned session's successor has its own clock.
    pub(super) fn end_timed(&mut self) {
        let now = Utc::now();
        for run in self.timed.timeline.flush() {
            self.emit_timed(run, ChunkStatus::Partial, now);
        }
        if !self.attached {
            self.timed.timeline.restart_clock();
            self.timed.away = None;
        }
    }

    fn emit_timed(&mut self, run: TimedRun, status: ChunkStatus, now: DateTime<Utc>) {
        if run.text.is_empty() {
            return;
        }
        let sequence_number = self.reserve();
        self.ready.push(Line {
            sequence_number,
            speaker: run.speaker,
            text: run.text,
            status,
            item_id: None,
            timestamp: now,
            start_ms: i64::try_from(run.start_ms).ok(),
            end_ms: i64::try_from(run.end_ms).ok(),
            ready_at: std::time::Instant::now(),
        });
    }
}
