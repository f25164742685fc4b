//! The analysis itself and the running notes: prompts, the structured
//! blueprint answer and its validation, on top of [`LlmClient`].

use async_trait::async_trait;
use scribe_actors::call_log::purpose;
use scribe_actors::domain::Speaker;
use scribe_actors::ports::{
    AnalysisError, AnalysisInput, AnalysisResult, Analyzer, LogFn, NextSession, NotesInput,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::llm::{AnswerFormat, LlmClient};
use super::report::{Reporter, SummaryIn};

const SUMMARY_SYSTEM: &str = "You are an expert summarizer. You write readable, concise, simple content \
    summaries of meeting transcripts. Summarize what was discussed, what was decided and what comes next.";

const BLUEPRINT_SYSTEM: &str = "You analyse one session of a multi-session plan. Answer with a JSON object \
    with exactly these fields: \"progressSummary\" (string: what this session achieved), \"updatedProgress\" \
    (array with one entry per plan session, in plan order: {\"session_name\": string, \"status\": \
    \"not_started\" | \"in_progress\" | \"completed\", \"notes\": string}), \"nextSessionPrompt\" (string: \
    instructions for the agent in the next session).";

pub struct LlmAnalyzer {
    llm: LlmClient,
}

impl LlmAnalyzer {
    pub fn new(llm: LlmClient) -> Self {
        Self { llm }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct BlueprintAnswer {
    progress_summary: String,
    updated_progress: Vec<SessionProgress>,
    next_session_prompt: String,
}

#[derive(Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct SessionProgress {
    session_name: String,
    status: String,
    notes: String,
}

/// The strict JSON schema of a blueprint answer (Structured Outputs: every
/// property required, no others), the plan's sessions as the only names.
pub fn blueprint_schema(sessions: &[String]) -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["progressSummary", "updatedProgress", "nextSessionPrompt"],
        "properties": {
            "progressSummary": { "type": "string", "description": "What this session achieved." },
            "updatedProgress": {
                "type": "array",
                "description": "One entry per plan session, in plan order.",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["session_name", "status", "notes"],
                    "properties": {
                        "session_name": { "type": "string", "enum": sessions },
                        "status": { "type": "string", "enum": ["not_started", "in_progress", "completed"] },
                        "notes": { "type": "string" },
                    },
                },
            },
            "nextSessionPrompt": { "type": "string", "description": "Instructions for the agent in the next session." },
        },
    })
}

/// Checks a blueprint answer against the plan's sessions.
pub fn validate_blueprint_answer(
    text: &str,
    sessions: &[String],
) -> Result<AnalysisResult, String> {
    let answer: BlueprintAnswer =
        serde_json::from_str(text).map_err(|e| format!("not the JSON asked for: {e}"))?;
    let names: Vec<&str> = answer
        .updated_progress
        .iter()
        .map(|p| p.session_name.as_str())
        .collect();
    if names != sessions.iter().map(String::as_str).collect::<Vec<_>>() {
        return Err(format!(
            "updatedProgress lists {names:?}, the plan has {sessions:?}"
        ));
    }
    if let Some(bad) = answer.updated_progress.iter().find(|p| {
        !matches!(
            p.status.as_str(),
            "not_started" | "in_progress" | "completed"
        )
    }) {
        return Err(format!(
            "session `{}` has status `{}`",
            bad.session_name, bad.status
        ));
    }
    let next = answer
        .updated_progress
        .iter()
        .find(|p| p.status != "completed")
        .map(|p| NextSession {
            name: p.session_name.clone(),
            prompt: answer.next_session_prompt.clone(),
        });
    Ok(AnalysisResult::Blueprint {
        summary: answer.progress_summary,
        progress: serde_json::to_value(&answer.updated_progress).map_err(|e| e.to_string())?,
        next,
    })
}

/// A transcript line as the prompt shows it: `User: ...` or
/// `<agent name>: ...`; lines without text (lost, failed) are left out.
fn prompt_line(speaker: Option<Speaker>, text: &str, agent_name: &str) -> Option<String> {
    match speaker {
        Some(Speaker::User) if !text.is_empty() => Some(format!("User: {text}")),
        Some(Speaker::Agent) if !text.is_empty() => Some(format!("{agent_name}: {text}")),
        _ => None,
    }
}

fn joined(lines: Vec<String>, empty: &str) -> String {
    if lines.is_empty() {
        empty.to_owned()
    } else {
        lines.join("\n")
    }
}

/// The conversation as the analysis reads it: the notes (when there are
/// any) and the transcript after them.
fn conversation(input: &AnalysisInput) -> String {
    let lines: Vec<String> = input
        .lines
        .iter()
        .filter_map(|(speaker, text)| prompt_line(*speaker, text, &input.agent_name))
        .collect();
    match &input.notes {
        None => format!(
            "TRANSCRIPT:\n{}",
            joined(lines, "(the transcript is empty)")
        ),
        Some(notes) => format!(
            "NOTES (lines 1-{k}):\n{}\nTRANSCRIPT (after line {k}):\n{}",
            notes.text,
            joined(lines, "(nothing after the notes)"),
            k = notes.through_line
        ),
    }
}

const NOTES_SYSTEM: &str = "You keep running notes of a live conversation between a user and an AI agent. \
    Rewrite the notes so far to also cover the new lines: what the user wants, what was explained or \
    decided, open questions. Plain prose, at most 200 words, oldest details condensed first.";

/// The notes request: the notes so far and the lines after them.
fn notes_prompt(input: &NotesInput) -> String {
    let (first, last) = (
        input.lines.first().map_or(0, |l| l.0),
        input.lines.last().map_or(0, |l| l.0),
    );
    let lines: Vec<String> = input
        .lines
        .iter()
        .filter_map(|(_, speaker, text)| prompt_line(*speaker, text, &input.agent_name))
        .collect();
    let (through, notes) = input
        .notes
        .as_ref()
        .map_or((0, "(none yet)"), |n| (n.through_line, n.text.as_str()));
    format!(
        "Meeting: {}\nNOTES SO FAR (lines 1-{through}):\n{notes}\nNEW LINES ({first}-{last}):\n{}",
        input.meeting_name,
        joined(lines, "(no words)")
    )
}

#[async_trait]
impl Analyzer for LlmAnalyzer {
    async fn analyze(
        &self,
        input: &AnalysisInput,
        log: &LogFn<'_>,
    ) -> Result<AnalysisResult, AnalysisError> {
        let conversation = conversation(input);
        let sessions: Option<Vec<String>> = input.blueprint.as_ref().and_then(|b| {
            b["sessions"].as_array().map(|s| {
                s.iter()
                    .filter_map(|x| x["session_name"].as_str().map(str::to_owned))
                    .collect()
            })
        });
        let model = self.llm.model();
        match (&input.blueprint, sessions) {
            (Some(blueprint), Some(sessions)) if !sessions.is_empty() => {
                let plan =
                    json!({ "sessions": blueprint["sessions"], "current": input.meeting_name });
                let user = format!(
                    "BLUEPRINT: {plan}\nPROGRESS SO FAR: {}\nThis session: {}\n{conversation}",
                    input.progress.clone().unwrap_or(Value::Null),
                    input.meeting_name
                );
                let format = AnswerFormat::Json {
                    name: "blueprint_progress",
                    schema: blueprint_schema(&sessions),
                };
                let mut reporter = Reporter::new(
                    log,
                    model,
                    purpose::ANALYSIS,
                    SummaryIn::Field("progressSummary"),
                );
                self.llm
                    .complete(
                        BLUEPRINT_SYSTEM,
                        &user,
                        &format,
                        |t| validate_blueprint_answer(t, &sessions),
                        |a| reporter.on(a),
                    )
                    .await
                    .map_err(AnalysisError::from)
            }
            _ => {
                let user = format!("Meeting: {}\n{conversation}", input.meeting_name);
                let mut reporter = Reporter::new(log, model, purpose::ANALYSIS, SummaryIn::Text);
                self.llm
                    .complete(
                        SUMMARY_SYSTEM,
                        &user,
                        &AnswerFormat::Text,
                        |t| {
                            let t = t.trim();
                            if t.is_empty() {
                                Err("the summary is empty".to_owned())
                            } else {
                                Ok(AnalysisResult::Summary {
                                    summary: t.to_owned(),
                                })
                            }
                        },
                        |a| reporter.on(a),
                    )
                    .await
                    .map_err(AnalysisError::from)
            }
        }
    }

    async fn take_notes(
        &self,
        input: &NotesInput,
        log: &LogFn<'_>,
    ) -> Result<String, AnalysisError> {
        let mut reporter = Reporter::new(log, self.llm.model(), purpose::NOTES, SummaryIn::Hidden);
        self.llm
            .complete(
                NOTES_SYSTEM,
                &notes_prompt(input),
                &AnswerFormat::Text,
                |t| {
                    let t = t.trim();
                    if t.is_empty() {
                        Err("the notes are empty".to_owned())
                    } else {
                        Ok(t.to_owned())
                    }
                },
                |a| reporter.on(a),
            )
            .await
            .map_err(AnalysisError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Vec<String> {
        vec!["Intro".into(), "Plan".into()]
    }

    #[test]
    fn a_valid_answer_names_the_next_session() {
        let text = r#"{"progressSummary":"ok","updatedProgress":[{"session_name":"Intro","status":"completed","notes":""},{"session_name":"Plan","status":"not_started","notes":""}],"nextSessionPrompt":"Go on."}"#;
        let AnalysisResult::Blueprint { next, .. } =
            validate_blueprint_answer(text, &plan()).expect("valid")
        else {
            panic!("blueprint result");
        };
        assert_eq!(
            next,
            Some(NextSession {
                name: "Plan".into(),
                prompt: "Go on.".into()
            })
        );
    }

    #[test]
    fn answers_that_do_not_fit_the_plan_are_refused() {
        let missing = r#"{"progressSummary":"ok","updatedProgress":[{"session_name":"Intro","status":"completed","notes":""}],"nextSessionPrompt":""}"#;
        assert!(
            validate_blueprint_answer(missing, &plan())
                .expect_err("one session missing")
                .contains("updatedProgress lists")
        );
        let bad_status = r#"{"progressSummary":"ok","updatedProgress":[{"session_name":"Intro","status":"done","notes":""},{"session_name":"Plan","status":"not_started","notes":""}],"nextSessionPrompt":""}"#;
        assert!(
            validate_blueprint_answer(bad_status, &plan())
                .expect_err("bad status")
                .contains("status `done`")
        );
        let extra =
            r#"{"progressSummary":"ok","updatedProgress":[],"nextSessionPrompt":"","mood":"good"}"#;
        assert!(validate_blueprint_answer(extra, &plan()).is_err());
        assert!(validate_blueprint_answer("Sure! It went well.", &plan()).is_err());
    }

    /// What Structured Outputs' strict mode requires of a schema: every
    /// object closed, every property required.
    #[test]
    fn the_blueprint_schema_is_strict() {
        fn check(schema: &Value) {
            if schema["type"] == "object" {
                assert_eq!(schema["additionalProperties"], false, "{schema}");
                let mut required: Vec<&str> = schema["required"]
                    .as_array()
                    .expect("required")
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                let mut properties: Vec<&str> = schema["properties"]
                    .as_object()
                    .expect("properties")
                    .keys()
                    .map(String::as_str)
                    .collect();
                required.sort_unstable();
                properties.sort_unstable();
                assert_eq!(required, properties, "{schema}");
                schema["properties"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .for_each(|(_, p)| check(p));
            }
            if schema["type"] == "array" {
                check(&schema["items"]);
            }
        }
        let schema = blueprint_schema(&plan());
        check(&schema);
        assert_eq!(
            schema["properties"]["updatedProgress"]["items"]["properties"]["session_name"]["enum"],
            json!(["Intro", "Plan"])
        );
    }

    #[test]
    fn all_sessions_completed_means_no_next_session() {
        let text = r#"{"progressSummary":"ok","updatedProgress":[{"session_name":"Intro","status":"completed","notes":""},{"session_name":"Plan","status":"completed","notes":""}],"nextSessionPrompt":""}"#;
        let AnalysisResult::Blueprint { next, .. } =
            validate_blueprint_answer(text, &plan()).expect("valid")
        else {
            panic!("blueprint result");
        };
        assert_eq!(next, None);
    }
}
