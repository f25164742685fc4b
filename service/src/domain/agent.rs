//! Agents: the persona that runs calls, with an optional multi-session
//! blueprint.

use chrono::{DateTime, Utc};
use scribe_actors::ids::AgentId;
use serde::{Deserialize, Serialize};

use super::phone::PhoneNumber;
use super::{ValidationError, required_text};

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_INSTRUCTIONS_CHARS: usize = 20_000;
pub const MAX_BLUEPRINT_SESSIONS: usize = 100;
pub const MAX_GOALS_PER_SESSION: usize = 50;
pub const MAX_GOAL_CHARS: usize = 1_000;

/// A plan spread over several sessions (meetings) with the same agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Blueprint {
    #[schema(schema_with = sessions_schema)]
    #[serde(deserialize_with = "super::object::each")]
    pub sessions: Vec<BlueprintSession>,
}

/// One session of a blueprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BlueprintSession {
    /// Not blank; unique within the blueprint.
    #[schema(schema_with = session_name_schema)]
    pub session_name: String,
    /// Each not blank, at most 1,000 characters.
    #[schema(schema_with = goals_schema)]
    pub goals: Vec<String>,
}

fn sessions_schema() -> utoipa::openapi::Array {
    utoipa::openapi::ArrayBuilder::new()
        .items(utoipa::openapi::Ref::from_schema_name("BlueprintSession"))
        .min_items(Some(1))
        .max_items(Some(MAX_BLUEPRINT_SESSIONS))
        .build()
}

fn session_name_schema() -> utoipa::openapi::Object {
    super::text_schema(MAX_NAME_CHARS)
}

/// Goals as the API takes them: at most 50, each not blank and at most
/// 1,000 characters.
fn goals_schema() -> utoipa::openapi::Array {
    utoipa::openapi::ArrayBuilder::new()
        .items(super::text_schema(MAX_GOAL_CHARS))
        .max_items(Some(MAX_GOALS_PER_SESSION))
        .build()
}

impl Blueprint {
    /// Checks the blueprint's shape and returns it with names and goals trimmed.
    pub fn validated(self) -> Result<Self, ValidationError> {
        if self.sessions.is_empty() {
            return Err(ValidationError(
                "`blueprint.sessions` must list at least one session".into(),
            ));
        }
        if self.sessions.len() > MAX_BLUEPRINT_SESSIONS {
            return Err(ValidationError(format!(
                "`blueprint.sessions` has {} sessions; the limit is {MAX_BLUEPRINT_SESSIONS}",
                self.sessions.len()
            )));
        }
        let mut sessions = Vec::with_capacity(self.sessions.len());
        for (i, session) in self.sessions.into_iter().enumerate() {
            let name = required_text(
                &format!("blueprint.sessions[{i}].session_name"),
                &session.session_name,
                MAX_NAME_CHARS,
            )?;
            if sessions
                .iter()
                .any(|s: &BlueprintSession| s.session_name == name)
            {
                return Err(ValidationError(format!(
                    "`blueprint.sessions[{i}].session_name` repeats `{name}`; session names must be unique"
                )));
            }
            if session.goals.len() > MAX_GOALS_PER_SESSION {
                return Err(ValidationError(format!(
                    "`blueprint.sessions[{i}].goals` has {} goals; the limit is {MAX_GOALS_PER_SESSION}",
                    session.goals.len()
                )));
            }
            let goals = session
                .goals
                .iter()
                .enumerate()
                .map(|(j, goal)| {
                    required_text(
                        &format!("blueprint.sessions[{i}].goals[{j}]"),
                        goal,
                        MAX_GOAL_CHARS,
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            sessions.push(BlueprintSession {
                session_name: name,
                goals,
            });
        }
        Ok(Self { sessions })
    }
}

/// An agent as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Agent {
    pub id: AgentId,
    pub name: String,
    pub instructions: String,
    pub blueprint: Option<Blueprint>,
    /// The numbers whose SIP calls reach this agent.
    pub phone_numbers: Vec<PhoneNumber>,
    pub created_at: DateTime<Utc>,
    /// Set on a tombstone: the agent was deleted (never served).
    #[serde(skip)]
    pub deleted_at: Option<DateTime<Utc>>,
}

/// An agent that passed validation and may be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAgent {
    pub name: String,
    pub instructions: String,
    pub blueprint: Option<Blueprint>,
    pub phone_numbers: Vec<PhoneNumber>,
}

/// Numbers one agent may list at most.
pub const MAX_PHONE_NUMBERS: usize = 20;

impl NewAgent {
    pub fn parse(
        name: &str,
        instructions: &str,
        blueprint: Option<Blueprint>,
    ) -> Result<Self, ValidationError> {
        Ok(Self {
            name: required_text("name", name, MAX_NAME_CHARS)?,
            instructions: required_text("instructions", instructions, MAX_INSTRUCTIONS_CHARS)?,
            blueprint: blueprint.map(Blueprint::validated).transpose()?,
            phone_numbers: Vec::new(),
        })
    }

    /// The same agent reached by `numbers` (E.164, each once).
    pub fn with_phone_numbers(mut self, numbers: &[String]) -> Result<Self, ValidationError> {
        if numbers.len() > MAX_PHONE_NUMBERS {
            return Err(ValidationError(format!(
                "`phone_numbers` lists {} numbers; the limit is {MAX_PHONE_NUMBERS}",
                numbers.len()
            )));
        }
        let mut parsed: Vec<PhoneNumber> = Vec::with_capacity(numbers.len());
        for (i, number) in numbers.iter().enumerate() {
            let number = PhoneNumber::parse(&format!("phone_numbers[{i}]"), number)?;
            if parsed.contains(&number) {
                return Err(ValidationError(format!(
                    "`phone_numbers[{i}]` repeats {number}"
                )));
            }
            parsed.push(number);
        }
        self.phone_numbers = parsed;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(name: &str, goals: &[&str]) -> BlueprintSession {
        BlueprintSession {
            session_name: name.into(),
            goals: goals.iter().map(|g| (*g).into()).collect(),
        }
    }

    #[test]
    fn trims_and_accepts_a_well_formed_agent() {
        let agent = NewAgent::parse(
            "  Coach ",
            "Be kind.",
            Some(Blueprint {
                sessions: vec![session(" Intro ", &[" Get to know "]), session("Plan", &[])],
            }),
        )
        .expect("valid");
        assert_eq!(agent.name, "Coach");
        let blueprint = agent.blueprint.expect("kept");
        assert_eq!(blueprint.sessions[0].session_name, "Intro");
        assert_eq!(blueprint.sessions[0].goals, ["Get to know"]);
    }

    #[test]
    fn names_the_offending_field() {
        let err = NewAgent::parse("", "x", None).expect_err("empty name");
        assert_eq!(err.0, "`name` must not be empty");

        let err = NewAgent::parse(
            "a",
            "b",
            Some(Blueprint {
                sessions: vec![session("One", &["ok", "  "])],
            }),
        )
        .expect_err("blank goal");
        assert_eq!(err.0, "`blueprint.sessions[0].goals[1]` must not be empty");

        let err = NewAgent::parse("a", "b", Some(Blueprint { sessions: vec![] }))
            .expect_err("no sessions");
        assert!(err.0.contains("at least one session"), "{err}");

        let err = NewAgent::parse(
            "a",
            "b",
            Some(Blueprint {
                sessions: vec![session("One", &[]), session("One ", &[])],
            }),
        )
        .expect_err("duplicate names");
        assert!(err.0.contains("must be unique"), "{err}");
    }

    #[test]
    fn rejects_overlong_text() {
        let long = "x".repeat(MAX_NAME_CHARS + 1);
        let err = NewAgent::parse(&long, "b", None).expect_err("too long");
        assert_eq!(err.0, "`name` is 201 characters long; the limit is 200");
    }
}
