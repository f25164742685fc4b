use tokio::time::Instant;

use super::*;
use crate::domain::MeetingStatus;
use crate::fakes::store::MemoryStore;
use crate::fakes::user_line;

fn lines(from: i64, n: i64) -> Vec<Line> {
    (from..from + n)
        .map(|n| user_line(n, format!("line {n}")))
        .collect()
}

fn handoff(lines: Vec<Line>, high_water: Option<i64>) -> Handoff {
    Handoff {
        lines,
        high_water,
        ..Handoff::default()
    }
}

fn config(max_batch_lines: usize, max_delay_ms: u64, queue_capacity: usize) -> WriterConfig {
    WriterConfig {
        max_batch_lines,
        max_delay: Duration::from_millis(max_delay_ms),
        queue_capacity,
        lanes: 1,
    }
}

#[tokio::test(start_paused = true)]
async fn a_batch_closes_at_its_line_limit_without_waiting_for_the_delay() {
    let store = MemoryStore::new();
    let meetings: Vec<_> = (0..3)
        .map(|_| store.add_meeting(MeetingStatus::Active))
        .collect();
    let (writer, _task) = ChunkWriter::spawn(store.clone(), config(4, 1_000, 16));
    let start = Instant::now();
    for (n, meeting) in meetings.iter().enumerate() {
        writer
            .try_submit(*meeting, handoff(lines(1, 2), None))
            .unwrap_or_else(|_| panic!("submission {n} queued"));
    }
    let commits = store
        .wait_for("two batches", |m| {
            (m.commits.len() >= 2).then(|| m.commits.clone())
        })
        .await;
    // Two submissions fill the first batch: it is written at once.
    assert_eq!(commits[0].0, 4);
    assert_eq!(commits[0].1, start, "no delay before a full batch");
    // The last one waits for the delay, then goes alone.
    assert_eq!(commits[1].0, 2);
    assert_eq!(commits[1].1 - start, Duration::from_secs(1));
    let stored = store.read(|m| m.meeting(meetings[2]).lines.len());
    assert_eq!(stored, 2);
}

#[tokio::test(start_paused = true)]
async fn a_lone_line_waits_for_the_delay_then_is_written() {
    let store = MemoryStore::new();
    let meeting = store.add_meeting(MeetingStatus::Active);
    let (writer, _task) = ChunkWriter::spawn(store.clone(), config(500, 20, 16));
    writer
        .try_submit(meeting, handoff(lines(1, 1), Some(1)))
        .expect("queued");
    tokio::time::advance(Duration::from_millis(19)).await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(
        store.read(|m| m.commits.is_empty()),
        "nothing written before the delay"
    );
    tokio::time::advance(Duration::from_millis(1)).await;
    store
        .wait_for("the line", |m| (m.commits.len() == 1).then_some(()))
        .await;
    let (lines, high) = store.read(|m| {
        (
            m.meeting(meeting).lines.len(),
            m.meeting(meeting).top_number(),
        )
    });
    assert_eq!((lines, high), (1, 1));
}

/// Meetings of the two lanes: four whose uuid is even, four odd.
fn meetings_of_two_lanes(store: &MemoryStore) -> Vec<MeetingId> {
    let (mut even, mut odd) = (Vec::new(), Vec::new());
    while even.len() < 4 || odd.len() < 4 {
        let id = store.add_meeting(MeetingStatus::Active);
        let lane = if id.as_uuid().as_u128().is_multiple_of(2) {
            &mut even
        } else {
            &mut odd
        };
        if lane.len() < 4 {
            lane.push(id);
        }
    }
    even.into_iter().chain(odd).collect()
}

#[tokio::test(start_paused = true)]
async fn a_full_batch_goes_as_two_transactions_by_meeting_and_a_late_one_whole() {
    let store = MemoryStore::new();
    let meetings = meetings_of_two_lanes(&store);
    let two_lanes = WriterConfig {
        lanes: 2,
        ..config(16, 1_000, 64)
    };
    let (writer, _task) = ChunkWriter::spawn(store.clone(), two_lanes);
    // Eight meetings of two lines fill the batch: it goes at once, in
    // two transactions of one lane's four meetings each.
    for meeting in &meetings {
        writer
            .try_submit(*meeting, handoff(lines(1, 2), Some(3)))
            .expect("queued");
    }
    let commits = store
        .wait_for("both lanes", |m| {
            (m.commits.len() == 2).then(|| m.commits.clone())
        })
        .await;
    assert_eq!(commits.iter().map(|c| c.0).collect::<Vec<_>>(), [8, 8]);
    // Each meeting's lines and its mark (ahead of them) are stored.
    for meeting in &meetings {
        let (lines, mark) = store.read(|m| {
            let meeting = m.meeting(*meeting);
            (meeting.lines.len(), meeting.high_water)
        });
        assert_eq!((lines, mark), (2, 3));
    }
    // Two meetings, one per lane, with one line each: the delay closes
    // the batch before it is full, and it goes whole.
    for meeting in [meetings[0], meetings[7]] {
        writer
            .try_submit(meeting, handoff(lines(3, 1), None))
            .expect("queued");
    }
    writer.flush().await.expect("flushed");
    let commits = store.read(|m| m.commits.clone());
    assert_eq!(commits.len(), 3, "the short batch is one transaction");
    assert_eq!(commits[2].0, 2);
}

#[tokio::test(start_paused = true)]
async fn only_a_mark_ahead_of_the_batchs_lines_is_written_as_a_mark() {
    let store = MemoryStore::new();
    let (covered, ahead, alone) = (
        store.add_meeting(MeetingStatus::Active),
        store.add_meeting(MeetingStatus::Active),
        store.add_meeting(MeetingStatus::Active),
    );
    let (writer, _task) = ChunkWriter::spawn(store.clone(), config(500, 20, 16));
    // Lines 1-3 with their numbers handed out one by one: the lines
    // store the top number themselves.
    for n in 1..=3 {
        writer
            .try_submit(covered, handoff(lines(n, 1), Some(n)))
            .expect("queued");
    }
    // Lines 1-2 while number 4 is already handed out (a turn being
    // spoken), and a number with no line at all.
    writer
        .try_submit(ahead, handoff(lines(1, 2), Some(4)))
        .expect("queued");
    writer
        .try_submit(alone, handoff(Vec::new(), Some(7)))
        .expect("queued");
    writer.flush().await.expect("flushed");
    let marks = store.read(|m| {
        [covered, ahead, alone].map(|id| {
            let meeting = m.meeting(id);
            (meeting.high_water, meeting.top_number())
        })
    });
    assert_eq!(marks, [(0, 3), (4, 4), (7, 7)]);
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_hands_lines_back_and_loses_none_of_them() {
    let store = MemoryStore::new();
    let meeting = store.add_meeting(MeetingStatus::Active);
    store.hold_writes();
    let (writer, _task) = ChunkWriter::spawn(store.clone(), config(1, 1, 2));
    // The writer takes one submission into a batch (and waits on the
    // stalled store), the queue holds two more, the fourth comes back.
    let mut refused = None;
    for n in 0..10 {
        let sent = lines(n + 1, 1);
        if let Err(Rejected(back)) = writer.try_submit(meeting, handoff(sent.clone(), Some(n + 1)))
        {
            assert_eq!(
                back,
                handoff(sent, Some(n + 1)),
                "the lines come back whole"
            );
            refused = Some((n + 1, back));
            break;
        }
        tokio::task::yield_now().await;
    }
    let (first_refused, back) = refused.expect("the queue filled up");
    assert_eq!(first_refused, 4, "one in the writer's hands, two queued");
    store.open_writes();
    writer.flush().await.expect("the queue drains");
    writer
        .try_submit(meeting, back)
        .unwrap_or_else(|_| panic!("room again"));
    writer.flush().await.expect("writer runs");
    let stored: Vec<i64> = store.read(|m| m.meeting(meeting).lines.keys().copied().collect());
    assert_eq!(stored, [1, 2, 3, 4]);
}

#[tokio::test(start_paused = true)]
async fn a_failed_write_is_retried_with_backoff_until_it_lands() {
    let store = MemoryStore::new();
    let meeting = store.add_meeting(MeetingStatus::Active);
    store.fail_writes(3);
    let (writer, _task) = ChunkWriter::spawn(store.clone(), config(500, 20, 16));
    let start = Instant::now();
    writer
        .try_submit(meeting, handoff(lines(1, 3), None))
        .expect("queued");
    writer.flush().await.expect("writer runs");
    let (attempts, stored) = store.read(|m| (m.write_attempts, m.meeting(meeting).lines.len()));
    assert_eq!((attempts, stored), (4, 3), "three failures, then the write");
    // The flush closes the batch at once; then 50 + 100 + 200 ms of backoff.
    assert_eq!(Instant::now() - start, Duration::from_millis(350));
}

#[tokio::test(start_paused = true)]
async fn event_log_entries_wait_for_room_without_blocking_the_caller() {
    let store = MemoryStore::new();
    let meeting = store.add_meeting(MeetingStatus::Active);
    store.hold_writes();
    let (writer, _task) = ChunkWriter::spawn(store.clone(), config(1, 1, 1));
    for n in 0..20 {
        writer.log(
            meeting,
            crate::call_log::CallEvent::RealtimeError(crate::call_log::RealtimeError {
                error: Some(format!("error {n}")),
                ..Default::default()
            }),
        );
    }
    store.open_writes();
    writer.flush().await.expect("writer runs");
    store
        .wait_for("every entry", |m| {
            (m.meeting(meeting).events.len() == 20).then_some(())
        })
        .await;
}
