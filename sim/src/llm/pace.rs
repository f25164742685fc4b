//! How long the simulated model takes, and how it streams.
//!
//! A real model reads the prompt before it writes (time to first token
//! grows with the prompt), then writes at its output rate; with
//! `stream: true` the words arrive as they are written, as
//! `chat.completion.chunk` Server-Sent Events ending in `data: [DONE]`, the
//! usage in a last chunk with no choices when `stream_options.include_usage`
//! asks for it. [`Pace::Fixed`] keeps the old behaviour for tests: the
//! whole answer after a fixed delay, whatever the prompt.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hasher};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};

/// A model's costs in time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyModel {
    /// Time to the first token for a prompt of about 1,000 tokens
    /// (request overhead and reading those tokens included).
    pub first_token: Duration,
    /// Prompt tokens read per second beyond the first 1,000 (cached
    /// tokens are not read again).
    pub prompt_tokens_per_sec: f64,
    /// Output tokens written per second.
    pub output_tokens_per_sec: f64,
}

impl LatencyModel {
    /// A current small model through OpenAI's API (see the README's
    /// "Analysis latency" for the published figures these come from).
    pub const SMALL: Self = Self {
        first_token: Duration::from_millis(700),
        prompt_tokens_per_sec: 20_000.0,
        output_tokens_per_sec: 70.0,
    };

    /// Time until the first token for a prompt of `tokens` tokens, of which
    /// `cached` were read before.
    pub fn reading(&self, tokens: u64, cached: u64) -> Duration {
        let extra = tokens.saturating_sub(cached).saturating_sub(1_000) as f64;
        self.first_token + secs(extra / self.prompt_tokens_per_sec.max(1.0))
    }

    /// Time to write `tokens` output tokens.
    pub fn writing(&self, tokens: u64) -> Duration {
        secs(tokens as f64 / self.output_tokens_per_sec.max(1.0))
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.clamp(0.0, 3_600.0))
}

/// How the simulated model spends time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// The whole answer after this long, whatever the prompt.
    Fixed(Duration),
    /// As a real model: reading, then writing, each by its length.
    Model(LatencyModel),
}

/// Tokens in `text` as OpenAI's rule of thumb counts them (about four
/// characters a token).
pub fn tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// `text` cut the way a model emits it: about a token a piece (a word with
/// its leading space; long words in pieces of at most four characters).
pub fn pieces(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        let starts_word = c.is_whitespace() && !current.trim().is_empty();
        if starts_word || current.chars().count() >= 4 && !current.ends_with(' ') {
            out.push(std::mem::take(&mut current));
        }
        current.push(c);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Prompt caching as OpenAI documents it: a prompt's first 1,024 tokens and
/// then each further 128 are cached once seen; a later prompt with the same
/// prefix reads that prefix from the cache.
#[derive(Default)]
pub struct PromptCache {
    seen: Mutex<HashSet<u64>>,
}

/// Entries the cache holds before it forgets everything.
const CACHE_ENTRIES: usize = 200_000;

impl PromptCache {
    /// The tokens of `prompt` found cached (0, 1,024, 1,152, ...); the
    /// prompt's prefixes are cached from now on.
    pub fn read(&self, prompt: &str) -> u64 {
        let chars: Vec<char> = prompt.chars().collect();
        let mut hasher = DefaultHasher::new();
        let mut marks = Vec::new();
        let mut at = 0;
        let mut boundary = 1_024 * 4;
        while boundary <= chars.len() {
            for c in &chars[at..boundary] {
                hasher.write_u32(u32::from(*c));
            }
            marks.push(((boundary / 4) as u64, hasher.finish()));
            at = boundary;
            boundary += 128 * 4;
        }
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let cached = marks
            .iter()
            .take_while(|(_, h)| seen.contains(h))
            .last()
            .map_or(0, |(t, _)| *t);
        if seen.len() + marks.len() > CACHE_ENTRIES {
            seen.clear();
        }
        seen.extend(marks.iter().map(|(_, h)| *h));
        cached
    }
}

/// The usage object of an answer.
pub fn usage(prompt: u64, cached: u64, completion: u64) -> Value {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": { "cached_tokens": cached, "audio_tokens": 0 },
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0
        }
    })
}

/// What one streamed answer is made of.
pub struct Chunks {
    pub id: String,
    pub created: i64,
    pub model: Value,
    /// Whether every chunk carries `usage` (null until the last).
    pub include_usage: bool,
}

impl Chunks {
    fn chunk(&self, choices: Value, usage: Option<Value>) -> Value {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        });
        if self.include_usage {
            chunk["usage"] = usage.unwrap_or(Value::Null);
        }
        chunk
    }

    /// The first chunk: the role.
    pub fn role(&self) -> Value {
        self.delta(json!({ "role": "assistant", "content": "", "refusal": null }))
    }

    /// A piece of the content.
    pub fn content(&self, text: &str) -> Value {
        self.delta(json!({ "content": text }))
    }

    /// A piece of a refusal.
    pub fn refusal(&self, text: &str) -> Value {
        self.delta(json!({ "refusal": text }))
    }

    fn delta(&self, delta: Value) -> Value {
        self.chunk(
            json!([{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": null }]),
            None,
        )
    }

    /// The last chunk of the choice: why it finished.
    pub fn finish(&self, reason: &str) -> Value {
        self.chunk(
            json!([{ "index": 0, "delta": {}, "logprobs": null, "finish_reason": reason }]),
            None,
        )
    }

    /// The usage chunk: no choices.
    pub fn usage(&self, usage: Value) -> Value {
        self.chunk(json!([]), Some(usage))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_put_the_text_back_together() {
        let text = "Let's add a half and a third: five sixths, extraordinarily.";
        let cut = pieces(text);
        assert_eq!(cut.concat(), text);
        assert!(cut.iter().all(|p| p.chars().count() <= 5), "{cut:?}");
        assert!(cut.len() as u64 >= tokens(text) / 2);
    }

    #[test]
    fn time_grows_with_the_prompt_and_the_answer() {
        let m = LatencyModel::SMALL;
        assert_eq!(m.reading(800, 0), m.first_token);
        assert!(m.reading(21_000, 0) > m.reading(1_000, 0) + Duration::from_millis(900));
        assert_eq!(m.reading(21_000, 20_000), m.first_token);
        assert_eq!(m.writing(140), Duration::from_secs(2));
    }

    #[test]
    fn a_repeated_prefix_is_read_from_the_cache() {
        let cache = PromptCache::default();
        let long = "word ".repeat(1_500); // 7,500 characters: 1,875 tokens
        assert_eq!(cache.read(&long), 0);
        assert_eq!(cache.read(&format!("{long} and more")), 1_792);
        assert_eq!(cache.read("short"), 0);
        assert_eq!(cache.read(&format!("x{long}")), 0);
    }
}
