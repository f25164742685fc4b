//! The real `scribe` binary, started in an empty folder as a user would.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::expect_json;

const SECRET_MARKERS: [&str; 4] = [
    "sk-marker-openai-key",
    "marker-stream-secret",
    "marker-admin-token-0123456789abcdef0123",
    "marker-stream-key",
];

fn scribe(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scribe"));
    cmd.current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("SCRIBE_API_TOKEN")
        .env_remove("SCRIBE_LISTEN")
        .env("RUST_LOG", "debug")
        .env("OPENAI_API_KEY", SECRET_MARKERS[0])
        .env("STREAM_API_SECRET", SECRET_MARKERS[1])
        .env("SCRIBE_ADMIN_TOKEN", SECRET_MARKERS[2])
        .env("STREAM_API_KEY", SECRET_MARKERS[3])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Everything the child writes on stderr, once it exits.
pub(crate) fn collect_stderr(child: &mut Child) -> tokio::task::JoinHandle<String> {
    let mut stderr = child.stderr.take().expect("piped stderr");
    tokio::spawn(async move {
        let mut all = String::new();
        let _ = stderr.read_to_string(&mut all).await;
        all
    })
}

/// Reads stdout lines until the listening line, collecting them.
pub(crate) async fn read_until_listening(
    child: &mut Child,
    stdout_seen: &mut Vec<String>,
) -> String {
    read_until(
        child,
        "scribe listening on ",
        Duration::from_secs(60),
        stdout_seen,
    )
    .await
}

/// Reads the child's stdout until a line starts with `prefix` and returns
/// the rest of that line; keeps draining stdout afterwards so the child
/// never blocks on a full pipe.
async fn read_until(
    child: &mut Child,
    prefix: &str,
    deadline: Duration,
    stdout_seen: &mut Vec<String>,
) -> String {
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let found = tokio::time::timeout(deadline, async {
        while let Some(line) = lines.next_line().await.expect("stdout readable") {
            stdout_seen.push(line.clone());
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.to_owned();
            }
        }
        panic!("scribe exited before printing {prefix:?}; stdout: {stdout_seen:?}");
    })
    .await
    .unwrap_or_else(|_| panic!("scribe prints {prefix:?} within {deadline:?}"));
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    found
}

#[tokio::test]
async fn serve_in_an_empty_folder_creates_the_database_prints_a_token_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let mut child = scribe(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .spawn()
        .expect("scribe starts");
    let stderr_task = collect_stderr(&mut child);
    let mut stdout_seen = Vec::new();
    let address = read_until_listening(&mut child, &mut stdout_seen).await;
    assert!(
        dir.path().join("scribe.db").exists(),
        "scribe.db created in the working folder"
    );

    let token_lines: Vec<&String> = stdout_seen
        .iter()
        .filter(|l| l.contains("API token for this run"))
        .collect();
    assert_eq!(token_lines.len(), 1, "token printed once: {stdout_seen:?}");
    let token = token_lines[0].rsplit(' ').next().expect("token").to_owned();
    assert_eq!(token.len(), 64);

    let client = reqwest::Client::new();
    let health = client
        .get(format!("{address}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), StatusCode::OK);
    let agent = client
        .post(format!("{address}/api/agents"))
        .bearer_auth(&token)
        .json(&json!({ "name": "Coach", "instructions": "Help." }))
        .send()
        .await
        .expect("create agent");
    expect_json(agent, StatusCode::CREATED).await;

    let pid = child.id().expect("running").to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("kill runs");
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exits within 30 s of SIGTERM")
        .expect("wait");
    assert!(status.success(), "graceful exit, got {status}");
    let stderr = stderr_task.await.expect("stderr collected");
    assert!(stderr.contains("sigterm received"), "stderr: {stderr}");
    for marker in SECRET_MARKERS {
        assert!(!stderr.contains(marker), "secret {marker} in logs");
        assert!(
            !stdout_seen.iter().any(|l| l.contains(marker)),
            "secret {marker} on stdout"
        );
    }
    assert!(
        !stderr.contains(&token),
        "the generated token went into the logs"
    );
}

#[tokio::test]
async fn demo_runs_calls_end_to_end_and_reports_no_loss() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let output = scribe(dir.path())
        .env_remove("RUST_LOG")
        .args(["demo", "--calls", "3", "--turns", "2", "--pace", "0"])
        .output()
        .await
        .expect("scribe runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // One report per call path: Stream, SIP (OpenAI's webhook), WebRTC
    // (the demo's own WebRTC caller).
    for path in ["stream", "sip", "webrtc"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("path") && l.trim_end().ends_with(path)),
            "no report for {path}: {stdout}"
        );
    }
    let clean = stdout
        .matches("lost / duplicated / misordered          0/0/0")
        .count();
    assert_eq!(clean, 3, "{stdout}");
    let completed = stdout
        .lines()
        .filter(|l| l.starts_with("completed") && l.trim_end().ends_with(" 3"))
        .count();
    assert_eq!(completed, 3, "{stdout}");
    // The first call is the tutoring dialogue with Maya; its summary tells
    // that conversation.
    assert!(
        stdout
            .contains("summary: In this session the user and Maya went through about 2 exchanges."),
        "{stdout}"
    );
    assert!(stdout.contains("User: Hi Maya, it's Sam."), "{stdout}");
}

#[tokio::test]
async fn migrate_creates_a_missing_sqlite_file() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join("other.db");
    let output = scribe(dir.path())
        .args([
            "migrate",
            "--database-url",
            &format!("sqlite://{}", path.display()),
        ])
        .output()
        .await
        .expect("scribe runs");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "migrations applied"
    );
    assert!(path.exists());
}

#[tokio::test]
async fn an_unsupported_database_url_fails_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let output = scribe(dir.path())
        .args(["migrate", "--database-url", "mysql://app:hunter2@db/x"])
        .output()
        .await
        .expect("scribe runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unsupported database URL"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[tokio::test]
async fn help_explains_every_flag_and_env_name() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_scribe"))
        .args(["serve", "--help"])
        .output()
        .expect("scribe runs");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for name in [
        "--listen",
        "SCRIBE_LISTEN",
        "--database-url",
        "DATABASE_URL",
        "--realtime-url",
        "SCRIBE_REALTIME_URL",
        "OPENAI_API_KEY",
        "--openai-base-url",
        "OPENAI_BASE_URL",
        "--analysis-model",
        "SCRIBE_ANALYSIS_MODEL",
        "STREAM_API_KEY",
        "STREAM_API_SECRET",
        "SCRIBE_API_TOKEN",
        "SCRIBE_ADMIN_TOKEN",
        "--simulate",
        "SCRIBE_SIMULATE",
        "SCRIBE_CHAOS",
    ] {
        assert!(
            help.contains(name),
            "--help does not mention {name}:\n{help}"
        );
    }
}

#[tokio::test]
async fn a_short_api_token_is_refused_at_startup_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let output = scribe(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("SCRIBE_API_TOKEN", "dev-token")
        .output()
        .await
        .expect("scribe runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("SCRIBE_API_TOKEN is 9 characters long; it must be at least 32"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("dev-token"),
        "the token is not echoed: {stderr}"
    );
    assert!(
        !dir.path().join("scribe.db").exists(),
        "refused before anything was created"
    );
}

#[tokio::test]
async fn the_demo_keeps_serving_with_serve_so_its_links_open_until_sigterm() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let mut child = scribe(dir.path())
        .env_remove("RUST_LOG")
        .args([
            "demo", "--calls", "1", "--turns", "1", "--pace", "0", "--path", "stream", "--serve",
        ])
        .spawn()
        .expect("scribe runs");
    let mut seen = Vec::new();
    let url = read_until(
        &mut child,
        "Open this first: ",
        Duration::from_secs(120),
        &mut seen,
    )
    .await;
    // The link opens: the meeting's page, with its transcript reachable.
    let page = reqwest::get(&url).await.expect("the page answers");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    // The link carries the page's key; the id alone opens nothing.
    let (page_path, key) = url.split_once("?key=").expect("the link carries its key");
    let id = page_path.rsplit('/').next().expect("meeting id");
    assert!(html.contains(id), "the page is the meeting's");
    let bare = reqwest::get(page_path)
        .await
        .expect("the bare page answers");
    assert_eq!(bare.status(), StatusCode::NOT_FOUND);
    let status = reqwest::get(format!(
        "{}/status?key={key}",
        page_path.replace("/meetings/", "/api/meetings/")
    ))
    .await
    .expect("status answers");
    assert_eq!(
        expect_json(status, StatusCode::OK).await["status"],
        "completed"
    );
    // Still serving after the report; SIGTERM stops it cleanly.
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().expect("pid").to_string()])
        .status()
        .await
        .expect("kill runs");
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exits within 30 s of SIGTERM")
        .expect("exit status");
    assert!(status.success(), "{status:?}");
}
