//! The analysis LLM client against the simulated chat-completions server:
//! one retry policy (no nested retries), backoff, `Retry-After`, attempt
//! timeouts, and answers that do not validate counting as failed attempts.

use std::time::Duration;

use scribe::analysis::llm::{AnswerFormat, Attempt, LlmClient, LlmFailure, RetryPolicy};
use scribe_sim::llm::{LatencyModel, LlmFault, Pace, SimLlm};
use serde_json::{Value, json};

async fn sim() -> SimLlm {
    SimLlm::start(([127, 0, 0, 1], 0).into(), Duration::ZERO)
        .await
        .expect("sim llm starts")
}

fn client(sim: &SimLlm, attempt_timeout: Duration) -> LlmClient {
    let policy = RetryPolicy {
        attempts: 3,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        attempt_timeout,
        max_retry_after: Duration::from_secs(5),
    };
    LlmClient::new(
        &sim.base_url(),
        Some(&"sk-sim".into()),
        "gpt-6-luna",
        policy,
    )
}

const PLAN: &str = r#"BLUEPRINT: {"sessions":[{"session_name":"Intro","goals":["meet"]},{"session_name":"Plan","goals":[]}],"current":"Intro"}"#;

fn as_json(text: &str) -> Result<Value, String> {
    serde_json::from_str::<Value>(text).map_err(|e| e.to_string())
}

/// An attempt's start or end (what it wrote and used aside).
fn lifecycle(attempts: &mut Vec<Attempt>, a: Attempt) {
    if !matches!(a, Attempt::Wrote { .. } | Attempt::Used { .. }) {
        attempts.push(a);
    }
}

async fn run(client: &LlmClient, json: bool) -> (Result<Value, LlmFailure>, Vec<Attempt>) {
    let mut attempts = Vec::new();
    let user = format!("{PLAN}\nTRANSCRIPT:\nUser: hello\nCoach: hi there");
    let result = if json {
        let format = AnswerFormat::Json {
            name: "blueprint_progress",
            schema: scribe::analysis::analyzer::blueprint_schema(&["Intro".into(), "Plan".into()]),
        };
        client
            .complete("analyse", &user, &format, as_json, |a| {
                lifecycle(&mut attempts, a)
            })
            .await
    } else {
        client
            .complete(
                "summarize",
                &user,
                &AnswerFormat::Text,
                |t| Ok(Value::String(t.to_owned())),
                |a| lifecycle(&mut attempts, a),
            )
            .await
    };
    (result, attempts)
}

fn failed_attempts(attempts: &[Attempt]) -> Vec<String> {
    attempts
        .iter()
        .filter_map(|a| match a {
            Attempt::Failed { error, .. } => Some(error.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_blueprint_answer_and_a_summary_come_back_on_the_first_attempt() {
    let sim = sim().await;
    let client = client(&sim, Duration::from_secs(10));
    let (answer, attempts) = run(&client, true).await;
    let answer = answer.expect("an answer");
    assert_eq!(answer["updatedProgress"][0]["status"], "completed");
    assert_eq!(answer["updatedProgress"][1]["status"], "not_started");
    assert!(
        answer["nextSessionPrompt"]
            .as_str()
            .expect("prompt")
            .contains("Plan")
    );
    assert_eq!(
        attempts,
        [
            Attempt::Started { attempt: 1 },
            Attempt::Succeeded { attempt: 1 }
        ]
    );
    // Only what every current chat model takes: a developer message,
    // Structured Outputs (strict), no `max_tokens`, `temperature`, `stop`.
    let request = &sim.requests()[0].body;
    assert_eq!(request["model"], "gpt-6-luna");
    assert_eq!(request["messages"][0]["role"], "developer");
    assert_eq!(request["messages"][1]["role"], "user");
    assert_eq!(request["response_format"]["type"], "json_schema");
    assert_eq!(
        request["response_format"]["json_schema"]["name"],
        "blueprint_progress"
    );
    assert_eq!(request["response_format"]["json_schema"]["strict"], true);
    let keys: Vec<&String> = request.as_object().expect("an object").keys().collect();
    assert_eq!(
        keys,
        [
            "messages",
            "model",
            "response_format",
            "stream",
            "stream_options"
        ],
        "nothing else is sent"
    );
    assert_eq!(request["stream"], true);
    assert_eq!(request["stream_options"], json!({ "include_usage": true }));
    let (summary, _) = run(&client, false).await;
    assert!(
        summary
            .expect("summary")
            .as_str()
            .expect("text")
            .contains("Coach replied \"hi there\"")
    );
}

/// What one request reported as it streamed: the texts written, the usage.
async fn streamed(sim: &SimLlm) -> (Result<Value, LlmFailure>, Vec<Attempt>, Vec<(u32, String)>) {
    let client = client(sim, Duration::from_secs(10));
    let (mut attempts, mut wrote, mut used) = (Vec::new(), Vec::new(), Vec::new());
    let user = "Meeting: x\nTRANSCRIPT:\nUser: I would like to practise fractions today.\nCoach: Great, let us add a half and a third, which makes five sixths.";
    let result = client
        .complete(
            "summarize",
            user,
            &AnswerFormat::Text,
            |t| Ok(Value::String(t.to_owned())),
            |a| match a {
                Attempt::Wrote { attempt, text } => wrote.push((attempt, text)),
                Attempt::Used { usage, .. } => used.push(usage),
                a => attempts.push(a),
            },
        )
        .await;
    assert_eq!(used.len(), 1, "one usage chunk per whole answer: {used:?}");
    assert!(used[0].prompt > 20 && used[0].completion > 10, "{used:?}");
    (result, attempts, wrote)
}

#[tokio::test]
async fn the_answer_streams_as_it_is_written_with_its_usage() {
    let model = LatencyModel {
        first_token: Duration::from_millis(20),
        prompt_tokens_per_sec: 100_000.0,
        output_tokens_per_sec: 1_000.0,
    };
    let sim = SimLlm::start_paced(([127, 0, 0, 1], 0).into(), Pace::Model(model))
        .await
        .expect("sim llm starts");
    let (result, _, wrote) = streamed(&sim).await;
    let answer = result.expect("an answer");
    let answer = answer.as_str().expect("text");
    // Several growing prefixes, the last the whole answer.
    assert!(wrote.len() >= 3, "{wrote:?}");
    assert!(
        wrote
            .windows(2)
            .all(|w| w[1].1.starts_with(&w[0].1) && w[1].1.len() > w[0].1.len())
    );
    assert_eq!(wrote.last().map(|w| w.1.as_str()), Some(answer));
}

#[tokio::test]
async fn a_stream_cut_off_mid_answer_is_retried_and_never_the_result() {
    let sim = sim().await;
    sim.push_faults([LlmFault::Severed]);
    let (result, attempts, wrote) = streamed(&sim).await;
    let answer = result.expect("the second attempt's answer");
    assert_eq!(
        failed_attempts(&attempts),
        ["the answer's stream broke off"],
        "{attempts:?}"
    );
    assert_eq!(attempts.last(), Some(&Attempt::Succeeded { attempt: 2 }));
    // The first attempt wrote half; the result is the second's whole answer.
    let first = wrote.iter().rfind(|w| w.0 == 1).expect("attempt 1 wrote");
    assert!(first.1.len() < answer.as_str().expect("text").len());
    assert!(answer.as_str().expect("text").starts_with(&first.1));
}

#[tokio::test]
async fn server_errors_are_retried_by_one_policy_only() {
    let sim = sim().await;
    sim.push_faults([LlmFault::ServerError, LlmFault::ServerError]);
    let (answer, attempts) = run(&client(&sim, Duration::from_secs(10)), true).await;
    assert!(answer.is_ok());
    assert_eq!(failed_attempts(&attempts).len(), 2);
    assert_eq!(
        sim.requests().len(),
        3,
        "exactly one request per attempt: no nested retries"
    );
}

#[tokio::test]
async fn all_attempts_failing_gives_a_readable_error() {
    let sim = sim().await;
    sim.push_faults([
        LlmFault::ServerError,
        LlmFault::ServerError,
        LlmFault::ServerError,
    ]);
    let (answer, attempts) = run(&client(&sim, Duration::from_secs(10)), true).await;
    let failure = answer.expect_err("three failures");
    assert_eq!(failure.attempts, 3);
    assert_eq!(
        failure.to_string(),
        "the analysis model failed 3 attempt(s); last error: the model answered HTTP 500"
    );
    assert!(
        failure.last_detail.contains("simulated server error"),
        "the provider's words are kept aside: {}",
        failure.last_detail
    );
    assert_eq!(sim.requests().len(), 3);
    let Some(Attempt::Failed { retry_in, .. }) = attempts.last() else {
        panic!("last attempt failed: {attempts:?}");
    };
    assert_eq!(*retry_in, None, "no retry after the last attempt");
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let sim = sim().await;
    sim.push_faults([LlmFault::RateLimited {
        retry_after_secs: 1,
    }]);
    let (answer, attempts) = run(&client(&sim, Duration::from_secs(10)), true).await;
    assert!(answer.is_ok());
    assert!(
        matches!(attempts[1], Attempt::Failed { retry_in: Some(d), .. } if d >= Duration::from_secs(1)),
        "{attempts:?}"
    );
    let seen = sim.requests();
    assert!(
        seen[1].at.duration_since(seen[0].at) >= Duration::from_secs(1),
        "waited as told"
    );
}

#[tokio::test]
async fn a_stalled_attempt_times_out_and_the_next_one_answers() {
    let sim = sim().await;
    sim.push_faults([LlmFault::Stall(Duration::from_secs(5))]);
    let (answer, attempts) = run(&client(&sim, Duration::from_millis(300)), true).await;
    assert!(answer.is_ok());
    let failed = failed_attempts(&attempts);
    assert_eq!(failed.len(), 1);
    assert!(failed[0].contains("no answer within"), "{failed:?}");
}

#[tokio::test]
async fn an_answer_that_does_not_validate_is_a_failed_attempt() {
    let sim = sim().await;
    sim.push_faults([LlmFault::NotJson]);
    let (answer, attempts) = run(&client(&sim, Duration::from_secs(10)), true).await;
    assert!(answer.is_ok());
    let failed = failed_attempts(&attempts);
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0].starts_with("answer did not validate"),
        "{failed:?}"
    );
}

/// What a current (reasoning) chat model refuses, as OpenAI answers it: the
/// simulator refuses it too, so a request scribe stopped sending would fail.
#[tokio::test]
async fn parameters_current_chat_models_refuse_are_refused() {
    let sim = sim().await;
    let http = reqwest::Client::new();
    let base =
        serde_json::json!({"model":"gpt-6-luna","messages":[{"role":"user","content":"hi"}]});
    for (extra, param) in [
        (serde_json::json!({"max_tokens": 100}), "max_tokens"),
        (serde_json::json!({"temperature": 0.2}), "temperature"),
        (serde_json::json!({"stop": ["\n"]}), "stop"),
        (
            serde_json::json!({"response_format":{"type":"json_schema","json_schema":{"name":"x","strict":true,"schema":{"type":"object","properties":{"a":{"type":"string"}}}}}}),
            "response_format.json_schema.schema",
        ),
    ] {
        let mut body = base.clone();
        for (k, v) in extra.as_object().expect("object") {
            body[k] = v.clone();
        }
        let answer = http
            .post(format!("{}/chat/completions", sim.base_url()))
            .json(&body)
            .send()
            .await
            .expect("sent");
        assert_eq!(answer.status(), reqwest::StatusCode::BAD_REQUEST, "{param}");
        let error: Value = answer.json().await.expect("json");
        assert_eq!(error["error"]["param"], param);
    }
}

/// An answer cut off at the output limit, or a refusal, is never a result.
#[tokio::test]
async fn a_cut_off_answer_or_a_refusal_is_a_failed_attempt() {
    for (fault, error) in [
        (
            LlmFault::CutOff,
            "the answer was cut off at the model's output limit",
        ),
        (LlmFault::Refusal, "the model refused to answer"),
    ] {
        let sim = sim().await;
        sim.push_faults([fault]);
        let client = client(&sim, Duration::from_secs(10));
        let (answer, attempts) = run(&client, true).await;
        let failure = answer.expect_err("no result");
        assert_eq!(failure.last_error, error);
        assert_eq!(failed_attempts(&attempts), [error], "not retried");
    }
}
