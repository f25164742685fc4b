use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

const U: Speaker = Speaker::User;
const A: Speaker = Speaker::Agent;

fn texts(runs: &[TimedRun]) -> Vec<(Speaker, &str)> {
    runs.iter().map(|r| (r.speaker, r.text.as_str())).collect()
}

/// Pushes fragments in the order given; returns every line sealed, then
/// (after `flush`) the rest.
fn play(timeline: &mut Timeline, fragments: &[(Speaker, &str, u64, u64)]) -> Vec<TimedRun> {
    let mut sealed = Vec::new();
    for &(speaker, delta, start, end) in fragments {
        sealed.extend(timeline.push(speaker, delta, start, end));
    }
    sealed
}

#[test]
fn interleaved_turns_become_lines_in_timeline_order() {
    let mut timeline = Timeline::default();
    let sealed = play(
        &mut timeline,
        &[
            (U, "Hi", 0, 400),
            (U, " there.", 400, 900),
            (A, "Hello!", 1_200, 1_700),
            (A, " How can I help?", 1_700, 2_600),
            (U, "Plan", 3_000, 3_300),
            (U, " my week.", 3_300, 3_900),
            (A, "Sure.", 4_200, 4_600),
        ],
    );
    // A line is sealed once both sides are past the words that end it:
    // "Plan my week." could still grow until the user is heard past 4.2 s.
    assert_eq!(
        texts(&sealed),
        [(U, "Hi there."), (A, "Hello! How can I help?")]
    );
    assert_eq!((sealed[1].start_ms, sealed[1].end_ms), (1_200, 2_600));
    let rest = timeline.flush();
    assert_eq!(texts(&rest), [(U, "Plan my week."), (A, "Sure.")]);
    assert!(timeline.is_empty());
}

#[test]
fn a_user_fragment_that_arrives_after_the_agent_began_answering_joins_its_line_before_the_reply() {
    let mut timeline = Timeline::default();
    // The user's last words are transcribed late: the agent's first
    // fragments arrive before them.
    let mut sealed = play(
        &mut timeline,
        &[
            (U, "Can you", 0, 500),
            (A, "Of course", 1_500, 2_000),
            (A, " I can.", 2_000, 2_600),
        ],
    );
    assert!(
        sealed.is_empty(),
        "the user's line may still grow: nothing is numbered yet"
    );
    sealed.extend(timeline.push(U, " help me?", 600, 1_300));
    assert!(sealed.is_empty(), "still within the lag");
    // The user speaks again: their first line is settled; the reply waits
    // until the agent is heard past the user's new words.
    sealed.extend(timeline.push(U, "Thanks.", 3_100, 3_500));
    assert_eq!(texts(&sealed), [(U, "Can you help me?")]);
    assert_eq!((sealed[0].start_ms, sealed[0].end_ms), (0, 1_300));
    sealed.extend(timeline.push(A, "Glad to help.", 4_000, 4_800));
    assert_eq!(
        texts(&sealed),
        [(U, "Can you help me?"), (A, "Of course I can.")]
    );
    assert!(timeline.take_late().is_empty());
}

/// A barge-in: the user cuts in while the agent speaks, the agent's words
/// go on a moment under the user's, then stop. The agent's speech stays
/// one line, the user's words are theirs, starting inside it, and what the
/// agent says after them is a new line.
#[test]
fn a_barge_in_keeps_each_sides_words_together_and_the_users_line_inside_the_agents() {
    let mut timeline = Timeline::default();
    let mut sealed = play(
        &mut timeline,
        &[
            (U, "Tell me a story.", 0, 1_000),
            (A, "Once upon", 1_500, 2_000),
            (A, " a time", 2_000, 2_500),
            (A, " there was", 2_500, 2_700),
        ],
    );
    // The user cut in at 2.2 s; their words arrive after the agent's.
    sealed.extend(timeline.push(U, "Wait,", 2_200, 2_600));
    sealed.extend(timeline.push(U, " stop.", 2_600, 3_100));
    sealed.extend(timeline.push(A, " Sorry.", 4_000, 4_400));
    sealed.extend(timeline.flush());
    assert_eq!(
        texts(&sealed),
        [
            (U, "Tell me a story."),
            (A, "Once upon a time there was"),
            (U, "Wait, stop."),
            (A, "Sorry."),
        ]
    );
    let spans: Vec<(u64, u64)> = sealed.iter().map(|r| (r.start_ms, r.end_ms)).collect();
    assert_eq!(
        spans,
        [(0, 1_000), (1_500, 2_700), (2_200, 3_100), (4_000, 4_400)]
    );
    assert!(
        spans[2].0 < spans[1].1,
        "the user's line starts inside the agent's: the barge-in shows"
    );
}

/// As recorded from GPT-Live: ~200 ms steps, the user's last fragments and
/// the agent's first ones with the same `start_ms`, arriving interleaved.
/// Two turns, two lines (today's cut at every change of speaker made six).
#[test]
fn a_turns_overlapping_end_stays_one_line_a_side() {
    let fragments = [
        (U, "So what", 4_400, 4_600),
        (U, " do you", 4_600, 4_800),
        (U, " think", 4_800, 5_000),
        (A, "Well,", 5_000, 5_200),
        (U, " about", 5_000, 5_200),
        (A, " I", 5_200, 5_400),
        (U, " it?", 5_200, 5_400),
        (A, " think", 5_400, 5_600),
        (A, " it works.", 5_600, 5_800),
    ];
    let mut timeline = Timeline::default();
    let mut lines = play(&mut timeline, &fragments);
    lines.extend(timeline.flush());
    assert_eq!(
        texts(&lines),
        [
            (U, "So what do you think about it?"),
            (A, "Well, I think it works.")
        ]
    );
    assert_eq!((lines[0].start_ms, lines[0].end_ms), (4_400, 5_400));
    assert_eq!((lines[1].start_ms, lines[1].end_ms), (5_000, 5_800));
}

/// Two lines starting at the same moment: the user's first, whichever
/// arrived first.
#[test]
fn lines_starting_together_put_the_user_first_whatever_arrived_first() {
    for order in [[0, 1], [1, 0]] {
        let both = [(A, "Hello.", 1_000, 1_400), (U, "Hi.", 1_000, 1_300)];
        let mut timeline = Timeline::default();
        let mut lines = Vec::new();
        for i in order {
            let (speaker, text, start, end) = both[i];
            lines.extend(timeline.push(speaker, text, start, end));
        }
        lines.extend(timeline.flush());
        assert_eq!(texts(&lines), [(U, "Hi."), (A, "Hello.")], "{order:?}");
    }
}

#[test]
fn silence_never_ends_a_line_the_other_side_speaking_does() {
    let mut timeline = Timeline::default();
    let mut sealed = play(
        &mut timeline,
        &[
            (A, "Good morning.", 0, 1_000),
            (A, "Are you there?", 60_000, 61_000),
            (A, "Hello?", 180_000, 180_500),
        ],
    );
    assert!(sealed.is_empty(), "the user never spoke: the line goes on");
    sealed.extend(timeline.push(U, "Yes, sorry.", 200_000, 201_000));
    assert!(
        sealed.is_empty(),
        "the agent may still be finishing words said before 200 s"
    );
    sealed.extend(timeline.push(A, "Great.", 202_000, 202_500));
    assert_eq!(
        texts(&sealed),
        [(A, "Good morning.Are you there?Hello?")],
        "one speaker's speech is one line, however long the pauses"
    );
    assert_eq!((sealed[0].start_ms, sealed[0].end_ms), (0, 180_500));
    let rest = timeline.flush();
    assert_eq!(texts(&rest), [(U, "Yes, sorry."), (A, "Great.")]);
}

#[test]
fn a_fragment_later_than_the_lag_is_placed_after_the_sealed_lines_and_reported() {
    let mut timeline = Timeline::default();
    let mut sealed = play(
        &mut timeline,
        &[
            (U, "One.", 0, 500),
            (A, "Two.", 1_000, 1_500),
            (U, "Three.", 2_000, 2_500),
            (A, "Four.", 9_000, 9_500),
        ],
    );
    assert_eq!(texts(&sealed), [(U, "One."), (A, "Two.")]);
    // Words of the agent's from 1.6 s arrive now, out of the agent's own
    // order and after "Two." was sealed.
    sealed.extend(timeline.push(A, "Late.", 1_600, 1_800));
    let late = timeline.take_late();
    assert_eq!(
        late,
        [LateFragment {
            speaker: A,
            start_ms: 1_600,
            placed_at_ms: 9_000
        }]
    );
    sealed.extend(timeline.flush());
    assert_eq!(
        texts(&sealed[2..]),
        [(U, "Three."), (A, "Four.Late.")],
        "kept, never put before a numbered line"
    );
}

/// A conversation as GPT-Live transcribes it: turns of ~200 ms fragments,
/// alternating speakers, each turn's start overlapping the end of the one
/// before by up to 400 ms (the other side's tail) or following it after a
/// pause; a speaker's next turn comes after the other side's words.
/// Fragments (speaker, text, start, end) and the turns they make.
type Conversation = (Vec<(Speaker, String, u64, u64)>, Vec<(Speaker, String)>);

fn conversation(rng: &mut StdRng) -> Conversation {
    let mut fragments = Vec::new();
    let mut turns = Vec::new();
    let mut ends: [u64; 2] = [0, 0];
    let (mut previous_start, mut previous_end) = (0u64, 0u64);
    let mut speaker = if rng.random_bool(0.5) { U } else { A };
    for turn in 0..12 {
        let own = usize::from(speaker == A);
        let overlap = if turn > 0 && rng.random_bool(0.6) {
            rng.random_range(0..=400)
        } else {
            0
        };
        let pause = if overlap == 0 {
            rng.random_range(0..1_500)
        } else {
            0
        };
        // A speaker's turns are more than CONTINUES_WITHIN_MS apart.
        let start = (previous_end.saturating_sub(overlap) + pause)
            .max(ends[own] + CONTINUES_WITHIN_MS + 1)
            .max(if turn == 0 { 0 } else { previous_start + 1 });
        let steps = rng.random_range(1..8u64);
        let mut words = String::new();
        for step in 0..steps {
            let at = start + step * 200;
            let word = format!(" t{turn}w{step}");
            words.push_str(&word);
            fragments.push((speaker, word, at, at + 200));
        }
        (previous_start, previous_end) = (start, start + steps * 200);
        ends[own] = previous_end;
        turns.push((speaker, words.trim().to_owned()));
        speaker = if speaker == U { A } else { U };
    }
    (fragments, turns)
}

/// Whatever the arrival order (each side in its own order, either side up
/// to 3 s behind the other), each turn is one line, the lines are the
/// turns in order, every fragment's text exactly once, nothing late.
#[test]
fn any_interleaving_of_the_same_fragments_gives_the_same_lines() {
    for seed in 0..300 {
        let mut rng = StdRng::seed_from_u64(seed);
        let (fragments, turns) = conversation(&mut rng);
        let lagging = if rng.random_bool(0.5) { U } else { A };
        // The arrival order: each side in its own order, one side delayed.
        let mut arrivals: Vec<(u64, usize)> = fragments
            .iter()
            .enumerate()
            .map(|(i, (speaker, _, start, _))| {
                let delay = if *speaker == lagging {
                    rng.random_range(0..3_000)
                } else {
                    rng.random_range(0..100)
                };
                (start + delay, i)
            })
            .collect();
        arrivals.sort();
        let mut queues: [Vec<usize>; 2] = [Vec::new(), Vec::new()];
        for (i, f) in fragments.iter().enumerate().rev() {
            queues[usize::from(f.0 == A)].push(i);
        }
        let order: Vec<usize> = arrivals
            .iter()
            .map(|&(_, i)| {
                queues[usize::from(fragments[i].0 == A)]
                    .pop()
                    .expect("a fragment")
            })
            .collect();

        let mut timeline = Timeline::default();
        let mut lines = Vec::new();
        for i in order {
            let (speaker, text, start, end) = &fragments[i];
            lines.extend(timeline.push(*speaker, text, *start, *end));
        }
        lines.extend(timeline.flush());
        let got: Vec<(Speaker, String)> =
            lines.iter().map(|l| (l.speaker, l.text.clone())).collect();
        assert_eq!(got, turns, "seed {seed}");
        let starts: Vec<(u64, bool)> = lines.iter().map(|l| (l.start_ms, l.speaker == A)).collect();
        assert!(starts.is_sorted(), "seed {seed}: {starts:?}");
        let late = timeline.take_late();
        assert!(late.is_empty(), "seed {seed}: {late:?}");
    }
}
