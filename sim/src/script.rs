//! Scripted conversations for the simulated realtime peer, and the lines a
//! faithful transcript of them must contain.

use scribe_actors::domain::{ChunkStatus, Speaker};

/// When the user's transcription arrives relative to the agent's reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transcription {
    /// Right after the user's item, before the reply starts.
    Before,
    /// Halfway through the reply's transcript deltas.
    During,
    /// After the reply's `response.done`.
    After,
    /// A `...transcription.failed` after the reply.
    Failed,
    /// The first `words` words as transcription deltas before the reply,
    /// then a `...transcription.failed` after it: the line keeps the deltas.
    DeltasThenFailed { words: usize },
    /// Never sent: the session must end before the line can be known.
    Withheld,
}

/// How the agent's reply ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Its transcript `done`, then `response.done` `completed`.
    Completed,
    /// `words` words streamed, then `response.done` `cancelled`
    /// (`turn_detected`) with no transcript `done`; its output carries the
    /// first `output_words` words as the item's transcript, or no output.
    Cancelled {
        words: usize,
        output_words: Option<usize>,
    },
    /// `words` words streamed, then `response.done` `failed` with its error.
    Failed { words: usize },
    /// Completed, then the user barges in (`speech_started`) and the
    /// service truncates the reply where playback stopped
    /// (`conversation.item.truncated`).
    Truncated { audio_end_ms: u64 },
}

/// One exchange: the user speaks, the agent answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub user: String,
    pub transcription: Transcription,
    pub agent: Vec<String>,
    pub reply: Reply,
}

/// A step of a connection's script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Turn(Turn),
    /// A turn whose session expires mid-reply: `session_expired` after
    /// `words_before_expiry` words, then the socket closes. The user's
    /// transcription never arrives.
    ExpireMidReply {
        turn: Turn,
        words_before_expiry: usize,
    },
    /// A non-fatal `error` event; the socket stays open.
    Error {
        code: String,
        message: String,
    },
    /// A raw text frame, sent as is (garbage, oversized, unknown events).
    Raw(String),
    /// A WebSocket ping; the client's pongs are counted.
    Ping,
    /// A close frame with this code, then the connection ends.
    Close(u16),
    /// GPT-Live: `session.closed` with this reason (`remote_hangup`,
    /// `expired`, `content`, ...), then the connection ends. Realtime has no
    /// such event: a close 1000.
    SessionClosed(String),
    /// The TCP connection is dropped without a close frame.
    Abort,
    /// Stream's agent endpoint's refusal of a GA client, exactly as it is
    /// sent: `{"type":"server_error","code":"42","message":"Error:  code "}`
    /// (no nested `error`). The socket stays open.
    StreamRefusal,
    /// A named point that tests can wait for.
    Mark(String),
    /// Waits here until [`SimRealtime::open_gate`](super::realtime::SimRealtime::open_gate)
    /// opens the gate of this name.
    Gate(String),
    /// Nothing more: keep the socket open (answering client events) until
    /// the client closes it.
    Hold,
}

const TIMINGS: [Transcription; 3] = [
    Transcription::Before,
    Transcription::During,
    Transcription::After,
];

/// The mark a [`Script::for_call`] script reaches when it has said everything.
pub fn done_mark(meeting: &str) -> String {
    format!("done:{meeting}")
}

/// A stored transcript against what was said.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Said, and stored nowhere.
    pub lost: usize,
    /// Stored more lines than were said.
    pub duplicated: usize,
    /// Stored, but not at its place (numbered 1..n in order).
    pub misordered: usize,
}

/// Compares line by line: each said line in place, elsewhere (misordered)
/// or nowhere (lost); stored lines beyond what was said are duplicates.
pub fn compare(stored: &[scribe::store::StoredChunk], expected: &[SentLine]) -> Comparison {
    let same = |s: &scribe::store::StoredChunk, w: &SentLine| {
        s.text == w.text && s.speaker == Some(w.speaker) && s.status == w.status
    };
    let mut out = Comparison {
        duplicated: stored.len().saturating_sub(expected.len()),
        ..Comparison::default()
    };
    for (i, want) in expected.iter().enumerate() {
        let in_place = stored
            .get(i)
            .is_some_and(|s| s.sequence_number == i as i64 + 1 && same(s, want));
        if !in_place {
            if stored.iter().any(|s| same(s, want)) {
                out.misordered += 1;
            } else {
                out.lost += 1;
            }
        }
    }
    out
}

/// What a connection plays, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Script {
    pub steps: Vec<Step>,
}

/// A line the peer said, as a correct transcript must store it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentLine {
    pub speaker: Speaker,
    pub text: String,
    pub status: ChunkStatus,
}

impl Turn {
    /// A turn with generated, distinguishable text.
    pub fn numbered(call: &str, n: usize, transcription: Transcription) -> Self {
        Self {
            user: format!("{call} user line {n}"),
            transcription,
            agent: format!("{call} agent reply {n} with a few words")
                .split_inclusive(' ')
                .map(str::to_owned)
                .collect(),
            reply: Reply::Completed,
        }
    }

    /// A turn saying these words, the reply completed.
    pub fn said(user: String, agent: &str, transcription: Transcription) -> Self {
        Self {
            user,
            transcription,
            agent: agent.split_inclusive(' ').map(str::to_owned).collect(),
            reply: Reply::Completed,
        }
    }

    /// The `n`th exchange (from 0) of the scripted dialogue `label` picks
    /// ([`crate::dialogues::for_label`]).
    pub fn of_dialogue(label: &str, n: usize) -> Self {
        Self::of(crate::dialogues::for_label(label), n)
    }

    /// The `n`th exchange (from 0) of `dialogue`.
    pub fn of(dialogue: &crate::dialogues::Dialogue, n: usize) -> Self {
        let (user, agent) = crate::dialogues::exchange(dialogue, n);
        Self::said(user, &agent, TIMINGS[n % TIMINGS.len()])
    }

    /// The same turn, its reply ending as `reply` says.
    pub fn ending(self, reply: Reply) -> Self {
        Self { reply, ..self }
    }

    /// The user's words, as transcription deltas split them.
    pub fn user_words(&self) -> Vec<&str> {
        self.user.split_inclusive(' ').collect()
    }

    /// The user line a faithful transcript holds for this turn.
    fn user_line(&self) -> SentLine {
        let (text, status) = match self.transcription {
            Transcription::Failed | Transcription::Withheld => {
                (String::new(), ChunkStatus::TranscriptionFailed)
            }
            Transcription::DeltasThenFailed { words } => {
                let said = self.user_words()[..words.min(self.user_words().len())].concat();
                match said.trim() {
                    "" => (String::new(), ChunkStatus::TranscriptionFailed),
                    text => (text.to_owned(), ChunkStatus::Partial),
                }
            }
            Transcription::Before | Transcription::During | Transcription::After => {
                (self.user.clone(), ChunkStatus::Completed)
            }
        };
        SentLine {
            speaker: Speaker::User,
            text,
            status,
        }
    }

    /// The agent line a faithful transcript holds for this turn.
    fn agent_line(&self) -> SentLine {
        let words = |n: usize| self.agent[..n.min(self.agent.len())].concat();
        let (text, status) = match self.reply {
            Reply::Completed => (self.agent.concat(), ChunkStatus::Completed),
            Reply::Cancelled {
                words: streamed,
                output_words,
            } => (
                words(output_words.unwrap_or(streamed)),
                ChunkStatus::Interrupted,
            ),
            Reply::Failed { words: streamed } => (words(streamed), ChunkStatus::Interrupted),
            Reply::Truncated { .. } => (self.agent.concat(), ChunkStatus::Interrupted),
        };
        SentLine {
            speaker: Speaker::Agent,
            text,
            status,
        }
    }
}

impl Script {
    /// A connection that says nothing and stays open.
    pub fn hold() -> Self {
        Self {
            steps: vec![Step::Hold],
        }
    }

    /// `turns` exchanges cycling through every transcription timing, then `Hold`.
    pub fn conversation(call: &str, turns: usize) -> Self {
        let mut steps: Vec<Step> = (0..turns)
            .map(|n| Step::Turn(Turn::of_dialogue(call, n)))
            .collect();
        steps.push(Step::Hold);
        Self { steps }
    }

    /// One driven call's conversation: `turns` exchanges of a scripted
    /// dialogue (a tutoring, a coaching or a language session, chosen by
    /// the meeting), cycling through every transcription timing, then
    /// [`done_mark`] for the driver.
    pub fn for_call(meeting: &str, turns: usize) -> Self {
        Self::for_dialogue(meeting, crate::dialogues::for_label(meeting), turns)
    }

    /// [`Script::for_call`] playing `dialogue`.
    pub fn for_dialogue(
        meeting: &str,
        dialogue: &crate::dialogues::Dialogue,
        turns: usize,
    ) -> Self {
        let mut steps: Vec<Step> = (0..turns)
            .map(|n| Step::Turn(Turn::of(dialogue, n)))
            .collect();
        steps.push(Step::Mark(done_mark(meeting)));
        steps.push(Step::Hold);
        Self { steps }
    }

    /// The lines this script puts in a GPT-Live transcript: every word
    /// said, each side's consecutive words one line (GPT-Live has no
    /// transcription failures and no cut-off marks), in timeline order.
    pub fn expected_live_lines(&self) -> Vec<SentLine> {
        let mut lines: Vec<SentLine> = Vec::new();
        let mut push = |speaker: Speaker, text: String| {
            let text = text.trim().to_owned();
            if text.is_empty() {
                return;
            }
            match lines.last_mut() {
                Some(last) if last.speaker == speaker => {
                    last.text = format!("{} {text}", last.text);
                }
                _ => lines.push(SentLine {
                    speaker,
                    text,
                    status: ChunkStatus::Completed,
                }),
            }
        };
        for step in &self.steps {
            let (turn, cut) = match step {
                Step::Turn(turn) => (turn, None),
                Step::ExpireMidReply {
                    turn,
                    words_before_expiry,
                } => (turn, Some(*words_before_expiry)),
                _ => continue,
            };
            let said = cut
                .unwrap_or(match turn.reply {
                    Reply::Cancelled { words, .. } | Reply::Failed { words } => words,
                    Reply::Completed | Reply::Truncated { .. } => turn.agent.len(),
                })
                .min(turn.agent.len());
            push(Speaker::User, turn.user.clone());
            push(Speaker::Agent, turn.agent[..said].concat());
        }
        lines
    }

    /// The lines this script puts in a transcript, in conversation order.
    pub fn expected_lines(&self) -> Vec<SentLine> {
        let mut lines = Vec::new();
        for step in &self.steps {
            match step {
                Step::Turn(turn) => {
                    lines.push(turn.user_line());
                    lines.push(turn.agent_line());
                }
                Step::ExpireMidReply {
                    turn,
                    words_before_expiry,
                } => {
                    lines.push(SentLine {
                        speaker: Speaker::User,
                        text: String::new(),
                        status: ChunkStatus::TranscriptionFailed,
                    });
                    lines.push(SentLine {
                        speaker: Speaker::Agent,
                        text: turn.agent[..(*words_before_expiry).min(turn.agent.len())].concat(),
                        status: ChunkStatus::Partial,
                    });
                }
                _ => {}
            }
        }
        lines
    }
}
