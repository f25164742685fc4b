//! GPT-Live's transcript: timed fragments on one session clock, turned into
//! lines. A fragment (`session.input_transcript.delta` for the user,
//! `session.output_transcript.delta` for the agent) has a `delta`, a
//! `start_ms` and an `end_ms`; there are no items, no predecessors and no
//! done event. Fragments come in steps of about 200 ms, and the two sides
//! overlap: near a turn's end the user's last fragments and the agent's
//! first ones carry the same `start_ms` and arrive interleaved, with
//! neither side stopping; in a barge-in the agent's speech goes on for a
//! moment under the user's.
//!
//! The rule (written once, in [`segment`]):
//!
//! - fragments are placed by `start_ms`; at an equal start the user's comes
//!   first (the user speaks, the agent answers), and one side's fragments
//!   keep their own order. Nothing depends on how the two sides' fragments
//!   interleave on arrival;
//! - a *line* is one speaker's turn. A fragment joins its speaker's current
//!   line unless the other side began a line since that line began *and*
//!   the fragment does not continue its speaker's speech (it starts more
//!   than [`CONTINUES_WITHIN_MS`] after the line's end). So a turn's tail
//!   that overlaps the other side's first words stays in its line, the
//!   other side's overlapping words make their own line, and a speaker who
//!   speaks again after the other side's words starts a new line. Silence
//!   alone never ends a line;
//! - lines are ordered by their first fragment, as fragments are; a
//!   barge-in shows as the user's line starting inside the agent's (its
//!   `start_ms` before the agent line's `end_ms`), the agent's next words
//!   after it a new line;
//! - each side's fragments follow its audio, so a side never sends a
//!   fragment that starts before its last one (its *frontier*). A side is
//!   also taken to have caught up once the other side is [`LAG_MS`] past it
//!   (the user's transcription lags the audio by less than that);
//! - a line is *sealed* (numbered, written) once nothing can change it any
//!   more: the other side has begun a later line, its own side is past
//!   that line's start and past its own end by more than
//!   [`CONTINUES_WITHIN_MS`], and the other side is past its last words.
//!   Lines are sealed in order, so numbers follow the lines' starts;
//! - a fragment that breaks its side's order or arrives later than the lag
//!   allows is never put before a sealed line: it is placed right after
//!   what is sealed and reported as late (a notice in the event log).

use crate::domain::Speaker;

/// How far (session milliseconds) one side's transcript may lag the
/// other's before the lagging side is taken to have caught up.
pub const LAG_MS: u64 = 5_000;

/// A fragment that starts within this long (session milliseconds) of its
/// speaker's line's end continues that line, whatever the other side said
/// meanwhile: two of GPT-Live's ~200 ms steps.
pub const CONTINUES_WITHIN_MS: u64 = 400;

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

impl Fragment {
    /// Where the fragment sorts: by start, the user first at a tie.
    fn key(&self) -> (u64, u8) {
        (self.start_ms, rank(self.speaker))
    }
}

/// The user's fragment sorts before the agent's at an equal start.
fn rank(speaker: Speaker) -> u8 {
    match speaker {
        Speaker::User => 0,
        Speaker::Agent => 1,
    }
}

fn side(speaker: Speaker) -> usize {
    usize::from(rank(speaker))
}

/// A fragment that arrived too late for its place on the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LateFragment {
    pub speaker: Speaker,
    pub start_ms: u64,
    /// Where it was placed instead: right after the sealed lines.
    pub placed_at_ms: u64,
}

/// A line as [`segment`] cuts it: its speaker, where it starts (its first
/// fragment's key), where its words end, and its fragments (indices into
/// the sorted fragments).
#[derive(Debug, Clone)]
struct Cut {
    speaker: Speaker,
    key: (u64, u8),
    end_ms: u64,
    fragments: Vec<usize>,
}

/// Cuts sorted fragments into lines, in order (the rule in the module
/// documentation). Lines come out ordered by their first fragment, and a
/// speaker's lines alternate with the other side's.
fn segment(fragments: &[Fragment]) -> Vec<Cut> {
    let mut cuts: Vec<Cut> = Vec::new();
    // Each side's latest line.
    let mut latest: [Option<usize>; 2] = [None, None];
    for (i, f) in fragments.iter().enumerate() {
        let (own, other) = (side(f.speaker), 1 - side(f.speaker));
        let joins = latest[own].is_some_and(|line| {
            let line = &cuts[line];
            let other_since = latest[other].is_some_and(|o| cuts[o].key > line.key);
            !other_since || f.start_ms <= line.end_ms + CONTINUES_WITHIN_MS
        });
        match latest[own] {
            Some(line) if joins => {
                let line = &mut cuts[line];
                line.end_ms = line.end_ms.max(f.end_ms);
                line.fragments.push(i);
            }
            _ => {
                latest[own] = Some(cuts.len());
                cuts.push(Cut {
                    speaker: f.speaker,
                    key: f.key(),
                    end_ms: f.end_ms,
                    fragments: vec![i],
                });
            }
        }
    }
    cuts
}

/// The fragments of one session not sealed into lines yet.
#[derive(Debug, Default)]
pub struct Timeline {
    /// Sorted by [`Fragment::key`]; one side's ties in arrival order.
    pending: Vec<Fragment>,
    /// Each side's frontier: the start of its latest fragment.
    frontier: [Option<u64>; 2],
    /// The start of the last sealed fragment: nothing is placed before it.
    sealed_from: Option<u64>,
    /// The latest end of a sealed fragment.
    sealed_until: Option<u64>,
    late: Vec<LateFragment>,
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
        let own = self.frontier[side(speaker)];
        let behind_own = own.is_some_and(|f| start_ms < f);
        let placed = if start_ms < floor || behind_own {
            // Never before a sealed line; after its own side's last fragment.
            let placed = start_ms.max(floor).max(own.unwrap_or(0));
            self.late.push(LateFragment {
                speaker,
                start_ms,
                placed_at_ms: placed,
            });
            placed
        } else {
            start_ms
        };
        let fragment = Fragment {
            speaker,
            text: delta.to_owned(),
            start_ms: placed,
            end_ms: end_ms.max(placed),
        };
        let key = fragment.key();
        let at = self.pending.partition_point(|f| f.key() <= key);
        self.pending.insert(at, fragment);
        let frontier = &mut self.frontier[side(speaker)];
        *frontier = Some(frontier.unwrap_or(0).max(placed));
        self.seal()
    }

    /// The point before which no fragment can arrive any more, on each
    /// side, when both sides have spoken (its frontier, or the other
    /// side's less the lag when that is later).
    fn caught_up(&self) -> Option<[u64; 2]> {
        let [user, agent] = [self.frontier[0]?, self.frontier[1]?];
        Some([
            user.max(agent.saturating_sub(LAG_MS)),
            agent.max(user.saturating_sub(LAG_MS)),
        ])
    }

    fn seal(&mut self) -> Vec<TimedRun> {
        let mut sealed = Vec::new();
        let Some(caught_up) = self.caught_up() else {
            return sealed;
        };
        loop {
            let cuts = segment(&self.pending);
            let (Some(first), Some(next)) = (cuts.first(), cuts.get(1)) else {
                break;
            };
            let (own, other) = (side(first.speaker), 1 - side(first.speaker));
            let last = first.fragments.last().map(|&i| self.pending[i].key());
            // Every later fragment of its speaker comes after the other
            // side's next line and does not continue it (so it starts a new
            // line), and none of the other side's can land among its words.
            let done = caught_up[own] > first.end_ms + CONTINUES_WITHIN_MS
                && (caught_up[own], rank(first.speaker)) > next.key
                && last.is_some_and(|last| (caught_up[other], 1 - rank(first.speaker)) > last);
            if !done {
                break;
            }
            let first = first.clone();
            sealed.push(self.take(&first));
        }
        sealed
    }

    /// The session is over (closed, dropped or replaced): every pending
    /// fragment becomes a line, in order.
    pub fn flush(&mut self) -> Vec<TimedRun> {
        let cuts = segment(&self.pending);
        let runs = cuts.iter().map(|cut| self.join(cut)).collect();
        self.pending.clear();
        runs
    }

    /// Removes a line's fragments from those pending and returns it.
    fn take(&mut self, cut: &Cut) -> TimedRun {
        let run = self.join(cut);
        let mut index = 0;
        self.pending.retain(|_| {
            let keep = !cut.fragments.contains(&index);
            index += 1;
            keep
        });
        run
    }

    /// One line from its fragments, noting how far sealing reached.
    fn join(&mut self, cut: &Cut) -> TimedRun {
        let start_ms = cut.key.0;
        let mut text = String::new();
        let mut last_start = start_ms;
        for &i in &cut.fragments {
            let fragment = &self.pending[i];
            super::push_bounded(&mut text, &fragment.text);
            last_start = fragment.start_ms;
        }
        self.sealed_from = Some(self.sealed_from.unwrap_or(0).max(last_start));
        self.sealed_until = Some(self.sealed_until.unwrap_or(0).max(cut.end_ms));
        TimedRun {
            speaker: cut.speaker,
            text: text.trim().to_owned(),
            start_ms,
            end_ms: cut.end_ms,
        }
    }

    /// A new session starts its own clock: forget the old one's.
    pub fn restart_clock(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests;
