//! What the simulated model answers: deterministic, built from the prompt
//! the way a person skimming it would, so that summaries and notes read
//! like summaries and notes of the conversation they were given.
//!
//! The prompt's sections it reads (scribe's prompts, or anyone's written
//! the same way): `TRANSCRIPT:` (lines `Speaker: text`), `NOTES SO FAR:` /
//! `NOTES:` (earlier notes), `NEW LINES:` (a notes update), and for a
//! structured answer a line `BLUEPRINT: {"sessions":[...],"current":"..."}`.

use serde_json::Value;

/// How many sentences running notes keep at most (the oldest go first,
/// the opening one stays): notes stay a page however long the call.
const NOTES_SENTENCES: usize = 8;

/// How many points of the conversation a summary picks.
const SUMMARY_POINTS: usize = 5;

/// The answer to a request: `user` is its last user message.
pub fn answer(user: &str, wants_json: bool) -> String {
    if wants_json {
        blueprint_answer(user)
    } else if section(user, "NEW LINES").is_some() {
        notes_update(user)
    } else {
        summary(user)
    }
}

/// The text under `header` (a line `HEADER:` or `HEADER (...):`), up to
/// the next such header line.
fn section<'a>(user: &'a str, header: &str) -> Option<&'a str> {
    let mut start = None;
    let mut offset = 0;
    for line in user.split_inclusive('\n') {
        let bare = line.trim_end();
        let is_header = bare.ends_with(':')
            && bare.chars().next().is_some_and(|c| c.is_ascii_uppercase())
            && bare
                .split(['(', ':'])
                .next()
                .is_some_and(|h| h.trim() == h.trim().to_uppercase() && !h.trim().is_empty());
        match start {
            None if is_header && bare.starts_with(header) => start = Some(offset + line.len()),
            Some(from) if is_header => return Some(&user[from..offset]),
            _ => {}
        }
        offset += line.len();
    }
    start.map(|from| &user[from..])
}

/// `(speaker, text)` of every `Speaker: text` line of a section.
fn dialogue(text: &str) -> Vec<(&str, &str)> {
    text.lines()
        .filter_map(|l| l.split_once(": "))
        .filter(|(who, said)| !who.is_empty() && who.len() <= 40 && !said.trim().is_empty())
        .map(|(who, said)| (who.trim(), said.trim()))
        .collect()
}

/// The first sentence of `text`, at most about 30 words.
fn first_sentence(text: &str) -> String {
    let end = text
        .char_indices()
        .find(|&(i, c)| matches!(c, '.' | '?' | '!') && i > 10)
        .map_or(text.len(), |(i, c)| i + c.len_utf8());
    let words: Vec<&str> = text[..end].split_whitespace().take(30).collect();
    words.join(" ")
}

/// `count` indices spread evenly over `0..len`.
fn spread(len: usize, count: usize) -> Vec<usize> {
    if len == 0 {
        return Vec::new();
    }
    let count = count.min(len);
    let mut picked: Vec<usize> = (0..count)
        .map(|i| {
            if count == 1 {
                0
            } else {
                i * (len - 1) / (count - 1)
            }
        })
        .collect();
    picked.dedup();
    picked
}

/// The last sentence of `text`, at most about 30 words.
fn last_sentence(text: &str) -> String {
    let trimmed = text.trim_end_matches(['.', '?', '!', ' ']);
    let start = trimmed.rfind(['.', '?', '!']).map_or(0, |i| i + 1);
    first_sentence(text[start..].trim())
}

/// What a note quotes of a line: its first sentence (two when the first
/// is a word or two), at most 24 words; a quote never holds a sentence's
/// end, so notes split back into their sentences.
fn quote(text: &str) -> String {
    let mut sentences = text.split_inclusive(['.', '?', '!']).map(str::trim);
    let mut out = sentences.next().unwrap_or_default().to_owned();
    if out.split_whitespace().count() < 3
        && let Some(next) = sentences.next()
    {
        out = format!(
            "{}, {}",
            out.trim_end_matches(['.', '?', '!']),
            lowered(next)
        );
    }
    let words: Vec<&str> = out.split_whitespace().take(24).collect();
    words
        .join(" ")
        .trim_end_matches(['.', '?', '!', ','])
        .replace(['.', '?', '!'], ",")
}

/// `text` with its first letter in lower case (for a sentence joined to
/// another), unless it is "I" or a name-like word is all it has.
fn lowered(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(c) if !text.starts_with("I ") && !text.starts_with("I'") => {
            c.to_lowercase().chain(chars).collect()
        }
        _ => text.to_owned(),
    }
}

/// One sentence a note-taker would write about an exchange.
fn point(user: &str, agent_name: &str, agent: &str) -> String {
    format!(
        "The user said \"{}\" and {agent_name} replied \"{}\"",
        quote(user),
        quote(agent)
    )
}

/// The exchanges of a dialogue: each user line with the reply after it.
fn exchanges<'a>(lines: &[(&'a str, &'a str)]) -> (Option<&'a str>, Vec<(&'a str, &'a str)>) {
    let agent_name = lines
        .iter()
        .find(|(who, _)| *who != "User")
        .map(|(w, _)| *w);
    let mut pairs = Vec::new();
    let mut pending: Option<&str> = None;
    for (who, said) in lines {
        if *who == "User" {
            pending = Some(said);
        } else if let Some(user) = pending.take() {
            pairs.push((user, *said));
        }
    }
    (agent_name, pairs)
}

/// The sentences of earlier notes.
fn sentences(notes: &str) -> Vec<String> {
    let notes = notes.trim();
    if notes.is_empty() || notes.starts_with('(') {
        return Vec::new();
    }
    notes
        .split_inclusive(['.', '!', '?'])
        .map(str::trim)
        .filter(|s| s.len() > 1)
        .map(str::to_owned)
        .collect()
}

/// A notes update: the earlier notes, then a sentence or two about the new
/// lines; the oldest points go once the notes are long.
fn notes_update(user: &str) -> String {
    let mut notes = sentences(section(user, "NOTES SO FAR").unwrap_or_default());
    let lines = dialogue(section(user, "NEW LINES").unwrap_or_default());
    let (agent, pairs) = exchanges(&lines);
    let agent = agent.unwrap_or("The agent");
    let mut rest = &pairs[..];
    if notes.is_empty()
        && let Some(((first, _), later)) = pairs.split_first()
    {
        notes.push(format!("The user opened with \"{}\".", quote(first)));
        rest = later;
    }
    for i in spread(rest.len(), 2) {
        let (u, a) = rest[i];
        notes.push(format!(
            "{}.",
            point(u, agent, a).trim_end_matches(['.', '?', '!'])
        ));
    }
    if notes.len() > NOTES_SENTENCES {
        let drop = notes.len() - NOTES_SENTENCES;
        notes.drain(1..=drop);
    }
    if notes.is_empty() {
        "Nothing has been said yet.".to_owned()
    } else {
        notes.join(" ")
    }
}

/// A summary of a call: from its notes (if it has any) and its lines.
fn summary(user: &str) -> String {
    let notes = sentences(section(user, "NOTES").unwrap_or_default());
    let transcript = section(user, "TRANSCRIPT").unwrap_or(user);
    let lines = dialogue(transcript);
    let (agent, pairs) = exchanges(&lines);
    let agent = agent.unwrap_or("the agent");
    if notes.is_empty() && lines.is_empty() {
        return "An empty conversation: nothing was said.".to_owned();
    }
    let mut out: Vec<String> = Vec::new();
    // The notes' header says how many lines they stand for.
    let noted = user
        .lines()
        .find_map(|l| l.strip_prefix("NOTES (lines 1-"))
        .and_then(|l| l.split(')').next())
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0);
    let covered = pairs.len() + noted / 2;
    let covered = covered.max(1);
    out.push(format!(
        "In this session the user and {agent} went through about {covered} exchange{}.",
        if covered == 1 { "" } else { "s" }
    ));
    // From the notes, the opening and points spread over the call.
    let from_notes = if notes.is_empty() {
        0
    } else {
        SUMMARY_POINTS - 2
    };
    for i in spread(notes.len(), from_notes) {
        out.push(notes[i].clone());
    }
    let from_lines = SUMMARY_POINTS - from_notes.min(SUMMARY_POINTS);
    for i in spread(pairs.len(), from_lines.max(1)) {
        let (u, a) = pairs[i];
        out.push(format!(
            "{}.",
            point(u, agent, a).trim_end_matches(['.', '?', '!'])
        ));
    }
    if let Some((who, last)) = lines.last() {
        out.push(format!(
            "{who} closed the call with \"{}\".",
            quote(&last_sentence(last))
        ));
    }
    out.join(" ")
}

/// A structured blueprint answer: it completes every session up to and
/// including `current`; `progressSummary` first, as the schema orders it.
fn blueprint_answer(user: &str) -> String {
    let plan: Value = user
        .lines()
        .find_map(|l| l.strip_prefix("BLUEPRINT: "))
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or(Value::Null);
    let sessions: Vec<String> = plan["sessions"]
        .as_array()
        .map(|s| {
            s.iter()
                .filter_map(|x| x["session_name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let current = plan["current"].as_str().unwrap_or_default();
    let done_through = sessions.iter().position(|s| s == current);
    let progress: Vec<String> = sessions
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let (status, notes) = match done_through {
                Some(d) if i < d => ("completed", "Covered in an earlier session.".to_owned()),
                Some(d) if i == d => ("completed", format!("Covered in this session: {current}.")),
                _ => ("not_started", "Not yet covered.".to_owned()),
            };
            // Keys in the schema's order, as Structured Outputs writes them.
            format!(
                "{{\"session_name\":{},\"status\":\"{status}\",\"notes\":{}}}",
                Value::String(name.clone()),
                Value::String(notes)
            )
        })
        .collect();
    let next = done_through
        .and_then(|d| sessions.get(d + 1))
        .map_or_else(String::new, |n| {
            format!(
                "Start the session on {n}. Recap what the user achieved in {current} in one or two sentences, then build on it."
            )
        });
    // serde_json keeps insertion order only with preserve_order; write the
    // object by hand so the keys come in the schema's order.
    format!(
        "{{\"progressSummary\":{},\"updatedProgress\":[{}],\"nextSessionPrompt\":{}}}",
        Value::String(summary(user)),
        progress.join(","),
        Value::String(next)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CALL: &str = "Meeting: Fractions\nTRANSCRIPT:\nUser: Hi, I want to practise fractions today.\n\
        Tutor: Great. Let's start with adding a half and a third. What do you get?\n\
        User: Is it two fifths?\nTutor: Not quite. Find a common denominator first, which is six.\n\
        User: Oh, so five sixths.\nTutor: Exactly right. See you next week.\n";

    #[test]
    fn a_summary_quotes_the_conversation_it_was_given() {
        let s = answer(CALL, false);
        assert!(s.contains("Tutor"), "{s}");
        assert!(s.contains("practise fractions"), "{s}");
        assert!(
            s.contains("Tutor closed the call with \"See you next week\"."),
            "{s}"
        );
        assert_eq!(
            answer("TRANSCRIPT:\n", false),
            "An empty conversation: nothing was said."
        );
    }

    #[test]
    fn a_quote_is_a_sentence_and_never_ends_one() {
        assert_eq!(
            quote("It's easier, honestly. For multiplying you need none."),
            "It's easier, honestly"
        );
        assert_eq!(
            quote("Um, 12? Because 3 times 4 is 12."),
            "Um, 12, because 3 times 4 is 12"
        );
        assert_eq!(quote("Yes. I think so."), "Yes, I think so");
    }

    #[test]
    fn notes_keep_the_opening_and_stay_bounded() {
        let mut notes = String::new();
        for round in 0..40 {
            let user = format!(
                "Meeting: x\nNOTES SO FAR (lines 1-{}):\n{notes}\nNEW LINES ({}-{}):\nUser: Point {round} is here.\nCoach: Noted point {round} well.\n",
                round * 2,
                round * 2 + 1,
                round * 2 + 2
            );
            notes = answer(&user, false);
        }
        assert!(
            notes.starts_with("The user opened with \"Point 0 is here\"."),
            "{notes}"
        );
        assert!(notes.contains("Point 39"), "{notes}");
        assert!(sentences(&notes).len() <= NOTES_SENTENCES, "{notes}");
    }

    #[test]
    fn a_blueprint_answer_puts_the_summary_first() {
        let user = format!(
            "BLUEPRINT: {}\n{CALL}",
            json!({"sessions":[{"session_name":"Intro"},{"session_name":"Plan"}],"current":"Intro"})
        );
        let text = answer(&user, true);
        assert!(text.starts_with("{\"progressSummary\":\""), "{text}");
        let v: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["updatedProgress"][0]["status"], "completed");
        assert_eq!(v["updatedProgress"][1]["status"], "not_started");
        assert!(
            v["nextSessionPrompt"]
                .as_str()
                .is_some_and(|p| p.contains("Plan"))
        );
    }
}
