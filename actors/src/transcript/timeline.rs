//! GPT-Live's transcript: timed fragments on one session clock, turned into
//! lines. A fragment (`session.input_transcript.delta` for the user,
//! `session.output_transcript.delta` for the agent) has a `delta`, a
//! `start_ms` and an `end_ms`; there are no items, no predecessors and no
//! done event, and the two sides interleave (barge-in; the user's
//! transcription lags the audio).
//!
//! The rule:
//!
//! - fragments are placed by `start_ms` (ties: in arrival order);
//! - a *line* is a run of one speaker's consecutive fragments in that
//!   order: it ends where the other side's first fragment after it starts,
//!   or when the session closes. Silence alone never ends a line;
//! - each side's fragments follow its audio, so a side never sends a
//!   fragment that starts before its last one (its *frontier*). A side is
//!   also taken to have caught up once the other side is [`LAG_MS`] past it
//!   (the user's transcription lags the audio by less than that);
//! - a line is *sealed* (numbered, written) once both sides' frontiers are
//!   past the other side's fragment that ends it: no fragment can arrive
//!   any more that would join the line or land before it. Lines are sealed
//!   in order, so numbers follow `start_ms` and a number is never given to
//!   a line whose place can still change;
//! - a fragment that breaks its side's order or arrives later than the lag
//!   allows is never put before a sealed line: it is placed right after
//!   what is sealed and reported as late (a notice in the event log).

use crate::domain::Speaker;

/// How far (session milliseconds) one side's transcript may lag the
/// other's before the lagging side is taken to have caught up.
pub const LAG_MS: u64 = 5_000;

/// One line cut from the timeline, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedRun {
    pub speaker: Speaker,
    pub text: String,
    pub start_ms: u64,
    pub end_ms: u64,
}

#[derive(Debug, Clone)]
struct Fragment {
    speaker: Speaker,
    text: String,
    start_ms: u64,
    end_ms: u64,
}

/// A fragment that arrived too late for its place on the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LateFragment {
    pub speaker: Speaker,
    pub start_ms: u64,
    /// Where it was placed instead: right after the sealed lines.
    pub placed_at_ms: u64,
}

/// The fragments of one session not sealed into lines yet.
#[derive(Debug, Default)]
pub struct Timeline {
    /// In `start_ms` order, ties in arrival order.
    pending: Vec<Fragment>,
    user_frontier: Option<u64>,
    agent_frontier: Option<u64>,
    /// The start of the last sealed fragment: nothing is placed before it.
    sealed_from: Option<u64>,
    /// The latest end of a sealed fragment.
    sealed_until: Option<u64>,
    late: Vec<LateFragment>,
}

fn index(speaker: Speaker) -> bool {
    speaker == Speaker::User
}

impl Timeline {
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Fragments waiting to be sealed.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The latest moment of the session clock any fragment reached.
    pub fn reached_ms(&self) -> Option<u64> {
        let pending = self.pending.iter().map(|f| f.end_ms).max();
        pending.max(self.sealed_until)
    }

    /// Late fragments reported since the last call.
    pub fn take_late(&mut self) -> Vec<LateFragment> {
        std::mem::take(&mut self.late)
    }

    fn frontier(&self, speaker: Speaker) -> Option<u64> {
        if index(speaker) {
            self.user_frontier
        } else {
            self.agent_frontier
        }
    }

    /// Places a fragment and returns the lines it sealed, in order.
    pub fn push(
        &mut self,
        speaker: Speaker,
        delta: &str,
        start_ms: u64,
        end_ms: u64,
    ) -> Vec<TimedRun> {
        let end_ms = end_ms.max(start_ms);
        let floor = self.sealed_from.unwrap_or(0);
        let behind_own = self.frontier(speaker).is_some_and(|f| start_ms < f);
        let placed = if start_ms < floor || behind_own {
            // Never before a sealed line; after its own side's last fragment.
            let placed = start_ms.max(floor).max(self.frontier(speaker).unwrap_or(0));
            self.late.push(LateFragment {
                speaker,
                start_ms,
                placed_at_ms: placed,
            });
            placed
        } else {
            start_ms
        };
        let at = self.pending.partition_point(|f| f.start_ms <= placed);
        self.pending.insert(
            at,
            Fragment {
                speaker,
                text: delta.to_owned(),
                start_ms: placed,
                end_ms: end_ms.max(placed),
            },
        );
        let frontier = if index(speaker) {
            &mut self.user_frontier
        } else {
            &mut self.agent_frontier
        };
        *frontier = Some(frontier.unwrap_or(0).max(placed));
        self.seal()
    }

    /// The point before which no fragment can arrive any more, when both
    /// sides have spoken (each side's frontier, or the other side's less
    /// the lag when that is later).
    fn watermark(&self) -> Option<u64> {
        let (user, agent) = (self.user_frontier?, self.agent_frontier?);
        let user = user.max(agent.saturating_sub(LAG_MS));
        let agent = agent.max(user.saturating_sub(LAG_MS));
        Some(user.min(agent))
    }

    fn seal(&mut self) -> Vec<TimedRun> {
        let mut sealed = Vec::new();
        let Some(watermark) = self.watermark() else {
            return sealed;
        };
        while let Some(first) = self.pending.first() {
            let speaker = first.speaker;
            let Some(end) = self.pending.iter().position(|f| f.speaker != speaker) else {
                break;
            };
            if self.pending[end].start_ms > watermark {
                break;
            }
            let run: Vec<Fragment> = self.pending.drain(..end).collect();
            sealed.push(self.join(run));
        }
        sealed
    }

    /// The session is over (closed, dropped or replaced): every pending
    /// fragment becomes a line, in order.
    pub fn flush(&mut self) -> Vec<TimedRun> {
        let mut runs = Vec::new();
        while let Some(first) = self.pending.first() {
            let speaker = first.speaker;
            let end = self
                .pending
                .iter()
                .position(|f| f.speaker != speaker)
                .unwrap_or(self.pending.len());
            let run = self.pending.drain(..end).collect();
            runs.push(self.join(run));
        }
        runs
    }

    /// One line from a run of fragments, noting how far sealing reached.
    fn join(&mut self, run: Vec<Fragment>) -> TimedRun {
        let speaker = run[0].speaker;
        let start_ms = run[0].start_ms;
        let end_ms = run.iter().map(|f| f.end_ms).max().unwrap_or(start_ms);
        let last_start = run.last().map_or(start_ms, |f| f.start_ms);
        self.sealed_from = Some(self.sealed_from.unwrap_or(0).max(last_start));
        self.sealed_until = Some(self.sealed_until.unwrap_or(0).max(end_ms));
        let mut text = String::new();
        for fragment in &run {
            super::push_bounded(&mut text, &fragment.text);
        }
        TimedRun {
            speaker,
            text: text.trim().to_owned(),
            start_ms,
            end_ms,
        }
    }

    /// A new session starts its own clock: forget the old one's.
    pub fn restart_clock(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests;
