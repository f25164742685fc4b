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
    sealed.extend(timeline.push(U, "Thanks.", 3_000, 3_400));
    assert_eq!(texts(&sealed), [(U, "Can you help me?")]);
    assert_eq!((sealed[0].start_ms, sealed[0].end_ms), (0, 1_300));
    sealed.extend(timeline.push(A, "Glad to help.", 4_000, 4_800));
    assert_eq!(
        texts(&sealed),
        [(U, "Can you help me?"), (A, "Of course I can.")]
    );
    assert!(timeline.take_late().is_empty());
}

#[test]
fn barge_in_splits_the_agents_speech_at_the_users_words() {
    let mut timeline = Timeline::default();
    let mut sealed = play(
        &mut timeline,
        &[
            (U, "Tell me a story.", 0, 1_000),
            (A, "Once upon", 1_500, 2_000),
            (A, " a time", 2_000, 2_500),
            (A, " there was", 2_500, 3_000),
            (A, " a king", 3_000, 3_500),
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
            (A, "Once upon a time"),
            (U, "Wait,"),
            (A, "there was"),
            (U, "stop."),
            (A, "a king Sorry."),
        ],
        "each side's words stay in timeline order; a line ends where the other side speaks"
    );
    let starts: Vec<u64> = sealed.iter().map(|r| r.start_ms).collect();
    assert!(starts.is_sorted(), "{starts:?}");
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

/// Whatever the arrival order (each side in its own order, the user up to
/// 3 s late), the lines are the runs of the whole timeline sorted by time,
/// sealed in that order, every fragment's text exactly once.
#[test]
fn any_arrival_order_within_the_lag_gives_the_timelines_runs() {
    for seed in 0..200 {
        let mut rng = StdRng::seed_from_u64(seed);
        // A conversation: alternating speakers, sometimes overlapping.
        let mut fragments: Vec<(Speaker, String, u64, u64)> = Vec::new();
        let mut clock = 0u64;
        for n in 0..30 {
            let speaker = if rng.random_bool(0.5) { U } else { A };
            let length = rng.random_range(100..800);
            fragments.push((speaker, format!("w{n} "), clock, clock + length));
            clock += rng.random_range(50..1_500);
        }
        // The arrival order: each side in order; the user's delayed.
        let mut arrivals: Vec<(u64, usize)> = fragments
            .iter()
            .enumerate()
            .map(|(i, (speaker, _, start, _))| {
                let delay = if *speaker == U {
                    rng.random_range(0..3_000)
                } else {
                    0
                };
                (start + delay, i)
            })
            .collect();
        arrivals.sort();
        // Keep each side's own order (a side's fragments follow its audio).
        let mut user_order: Vec<usize> = fragments
            .iter()
            .enumerate()
            .filter(|(_, f)| f.0 == U)
            .map(|(i, _)| i)
            .collect();
        user_order.reverse();
        let order: Vec<usize> = arrivals
            .iter()
            .map(|&(_, i)| {
                if fragments[i].0 == U {
                    user_order.pop().expect("a user fragment")
                } else {
                    i
                }
            })
            .collect();

        let mut timeline = Timeline::default();
        let mut lines = Vec::new();
        for i in order {
            let (speaker, text, start, end) = &fragments[i];
            lines.extend(timeline.push(*speaker, text, *start, *end));
        }
        lines.extend(timeline.flush());

        let mut expected: Vec<(Speaker, String)> = Vec::new();
        for (speaker, text, _, _) in &fragments {
            match expected.last_mut() {
                Some((last, joined)) if last == speaker => joined.push_str(text),
                _ => expected.push((*speaker, text.clone())),
            }
        }
        let expected: Vec<(Speaker, String)> = expected
            .into_iter()
            .map(|(s, t)| (s, t.trim().to_owned()))
            .collect();
        let got: Vec<(Speaker, String)> =
            lines.iter().map(|l| (l.speaker, l.text.clone())).collect();
        assert_eq!(got, expected, "seed {seed}");
        let late = timeline.take_late();
        assert!(late.is_empty(), "seed {seed}: {late:?}");
    }
}
