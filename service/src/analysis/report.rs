//! What a model request tells the meeting's event log as it goes: the
//! analysis stages, the summary as the model writes it (`analysis_delta`,
//! a few a second at most), and the tokens each attempt used
//! (`model_usage`, also counted on `/metrics`).

use std::time::{Duration, Instant};

use scribe_actors::call_log::{CallEvent, Stage, Usage};
use scribe_actors::domain::AnalysisStage;
use scribe_actors::ports::LogFn;

use super::llm::Attempt;

/// Summary text is logged at most this often (each delta one log entry).
const DELTA_EVERY: Duration = Duration::from_millis(150);

/// Where the summary is in the answer the model writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SummaryIn {
    /// The answer is the summary.
    Text,
    /// The answer is a JSON object; the summary is this string field.
    Field(&'static str),
    /// The answer's text is not shown as it is written (notes).
    Hidden,
}

/// Turns one request's [`Attempt`]s into log entries.
pub struct Reporter<'a> {
    log: &'a LogFn<'a>,
    model: String,
    purpose: &'static str,
    summary: SummaryIn,
    /// This attempt's summary text: how many characters were logged, and
    /// the text known now.
    attempt: u32,
    logged: usize,
    known: String,
    last: Option<Instant>,
    /// Stages are logged (the analysis), or not (notes).
    stages: bool,
}

impl<'a> Reporter<'a> {
    pub fn new(log: &'a LogFn<'a>, model: &str, purpose: &'static str, summary: SummaryIn) -> Self {
        Self {
            log,
            model: model.to_owned(),
            purpose,
            summary,
            attempt: 0,
            logged: 0,
            known: String::new(),
            last: None,
            stages: summary != SummaryIn::Hidden,
        }
    }

    fn stage(&self, stage: Stage) {
        if self.stages {
            (self.log)(CallEvent::AnalysisStage(stage));
        }
    }

    /// Logs the summary text not logged yet.
    fn flush(&mut self) {
        let text: String = self.known.chars().skip(self.logged).collect();
        if text.is_empty() {
            return;
        }
        (self.log)(CallEvent::AnalysisDelta {
            attempt: self.attempt,
            offset: self.logged,
            text,
        });
        self.logged = self.known.chars().count();
        self.last = Some(Instant::now());
    }

    pub fn on(&mut self, event: Attempt) {
        match event {
            Attempt::Started { attempt } => {
                self.attempt = attempt;
                self.logged = 0;
                self.known.clear();
                self.last = None;
                self.stage(Stage {
                    attempt: Some(attempt),
                    ..Stage::new(AnalysisStage::LlmAttemptStarted)
                });
            }
            Attempt::Wrote { attempt, text } => {
                let known = match self.summary {
                    SummaryIn::Hidden => return,
                    SummaryIn::Text => Some(text),
                    SummaryIn::Field(name) => partial_string_field(&text, name),
                };
                let Some(known) = known else { return };
                self.attempt = attempt;
                self.known = known;
                if self.last.is_none_or(|at| at.elapsed() >= DELTA_EVERY) {
                    self.flush();
                }
            }
            Attempt::Used { attempt, usage } => {
                self.flush();
                for (kind, n) in [
                    ("prompt", usage.prompt),
                    ("cached", usage.cached),
                    ("completion", usage.completion),
                ] {
                    metrics::counter!(crate::metrics::LLM_TOKENS, "model" => self.model.clone(), "purpose" => self.purpose, "kind" => kind)
                        .increment(n);
                }
                metrics::counter!(crate::metrics::LLM_REQUESTS, "model" => self.model.clone(), "purpose" => self.purpose)
                    .increment(1);
                (self.log)(CallEvent::ModelUsage(Usage {
                    purpose: self.purpose.to_owned(),
                    model: self.model.clone(),
                    prompt_tokens: usage.prompt,
                    cached_tokens: usage.cached,
                    completion_tokens: usage.completion,
                    attempt: Some(attempt),
                }));
            }
            Attempt::Failed {
                attempt,
                error,
                detail,
                retry_in,
            } => {
                self.flush();
                // The provider's words go to the log; the meeting's event
                // log (public) gets scribe's.
                tracing::warn!(attempt, purpose = self.purpose, %detail, "model attempt failed");
                self.stage(Stage {
                    attempt: Some(attempt),
                    error: Some(error),
                    retry_in_ms: Some(retry_in.map(|d| d.as_millis() as u64)),
                    ..Stage::new(AnalysisStage::LlmAttemptFailed)
                });
            }
            Attempt::Succeeded { attempt } => {
                self.flush();
                self.stage(Stage {
                    attempt: Some(attempt),
                    ..Stage::new(AnalysisStage::AnswerReceived)
                });
            }
        }
    }
}

/// The value of the string field `name` of a JSON object being written
/// (`text` is its beginning): as much of it as is written, unescaped;
/// `None` before the field's value begins.
pub fn partial_string_field(text: &str, name: &str) -> Option<String> {
    let key = format!("\"{name}\"");
    let after_key = &text[text.find(&key)? + key.len()..];
    let after_colon = after_key.trim_start().strip_prefix(':')?.trim_start();
    let mut chars = after_colon.strip_prefix('"')?.chars();
    let mut out = String::new();
    while let Some(c) = chars.next() {
        match c {
            '"' => break,
            '\\' => {
                let escaped = match chars.next() {
                    None => break,
                    Some('n') => '\n',
                    Some('t') => '\t',
                    Some('r') => '\r',
                    Some('b') => '\u{8}',
                    Some('f') => '\u{c}',
                    Some('u') => match unicode_escape(&mut chars) {
                        Some(c) => c,
                        // Not whole yet (or not a character): shown once
                        // the rest is written.
                        None => break,
                    },
                    Some(other) => other,
                };
                out.push(escaped);
            }
            c => out.push(c),
        }
    }
    Some(out)
}

/// The character of a `\uXXXX` escape (its `\u` read), a surrogate pair's
/// two halves joined; `None` while the escape is not whole, or when it is
/// not a character.
fn unicode_escape(chars: &mut std::str::Chars<'_>) -> Option<char> {
    let hex = |chars: &mut std::str::Chars<'_>| {
        let digits: String = chars.by_ref().take(4).collect();
        (digits.len() == 4)
            .then(|| u32::from_str_radix(&digits, 16).ok())
            .flatten()
    };
    let first = hex(chars)?;
    if !(0xD800..0xDC00).contains(&first) {
        return char::from_u32(first);
    }
    // A high surrogate: its low half must follow.
    if chars.next()? != '\\' || chars.next()? != 'u' {
        return None;
    }
    let second = hex(chars)?;
    if !(0xDC00..0xE000).contains(&second) {
        return None;
    }
    char::from_u32(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_is_read_as_far_as_it_is_written() {
        let whole = r#"{"progressSummary":"She said \"ok\",\nthen \u00e9t\u00e9 \ud83d\ude00 ok.","updatedProgress":[]}"#;
        assert_eq!(
            partial_string_field(whole, "progressSummary").as_deref(),
            Some("She said \"ok\",\nthen été \u{1F600} ok.")
        );
        assert_eq!(
            partial_string_field(r#"{"progressSumm"#, "progressSummary"),
            None
        );
        assert_eq!(
            partial_string_field(r#"{"progressSummary": "She"#, "progressSummary").as_deref(),
            Some("She")
        );
        assert_eq!(
            partial_string_field(r#"{"progressSummary":"a\"#, "progressSummary").as_deref(),
            Some("a")
        );
        assert_eq!(
            partial_string_field(r#"{"progressSummary":"a\u00"#, "progressSummary").as_deref(),
            Some("a")
        );
        // Every prefix of the answer reads as a prefix of the whole value.
        let value = partial_string_field(whole, "progressSummary").expect("whole");
        for end in (0..=whole.len()).filter(|e| whole.is_char_boundary(*e)) {
            let part = partial_string_field(&whole[..end], "progressSummary").unwrap_or_default();
            assert!(value.starts_with(&part), "{end}: {part:?}");
        }
    }

    #[test]
    fn deltas_follow_the_text_and_start_again_with_each_attempt() {
        let logged = std::sync::Mutex::new(Vec::new());
        let log = |e: CallEvent| logged.lock().expect("lock").push(e);
        let mut reporter = Reporter::new(&log, "m", "analysis", SummaryIn::Text);
        reporter.on(Attempt::Started { attempt: 1 });
        reporter.on(Attempt::Wrote {
            attempt: 1,
            text: "Hel".into(),
        });
        // Within the pause: kept until the next flush.
        reporter.on(Attempt::Wrote {
            attempt: 1,
            text: "Hello".into(),
        });
        reporter.on(Attempt::Failed {
            attempt: 1,
            error: "broke off".into(),
            detail: "reset".into(),
            retry_in: None,
        });
        reporter.on(Attempt::Started { attempt: 2 });
        reporter.on(Attempt::Wrote {
            attempt: 2,
            text: "Hi".into(),
        });
        reporter.on(Attempt::Used {
            attempt: 2,
            usage: super::super::llm::TokenUsage {
                prompt: 9,
                cached: 0,
                completion: 1,
            },
        });
        let deltas: Vec<(u32, usize, String)> = logged
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|e| match e {
                CallEvent::AnalysisDelta {
                    attempt,
                    offset,
                    text,
                } => Some((*attempt, *offset, text.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            deltas,
            vec![
                (1, 0, "Hel".to_owned()),
                (1, 3, "lo".to_owned()),
                (2, 0, "Hi".to_owned())
            ]
        );
    }
}
