//! Browser tests: the meeting page in headless Chromium (Debian's
//! `chromium` and `chromium-driver`, driven over WebDriver), through whole
//! calls on the simulated realtime peer and model. Each state is saved as a
//! screenshot under `target/screenshots/`.
//!
//! The screen is a phone's (390 x 844, emulated). The call test uses
//! Chromium's fake microphone and a real WebRTC connection (ICE over
//! loopback) to the simulated OpenAI. The page records any script error
//! in `window.__scribeErrors`; every test checks it stays empty.

#[path = "../support/harness.rs"]
mod helpers;
#[path = "../support/running.rs"]
mod running;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::wd::TimeoutConfiguration;
use fantoccini::{Client, ClientBuilder, Locator};
use scribe_actors::domain::VoiceApi;
use scribe_sim::llm::LlmFault;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use helpers::{TestApp, live_settings, spawn_app_with};
use running::{
    DEADLINE, coach_with_plan, end_call, gated_call, meeting_with, one_turn, sim, start_call,
    wait_for_lines,
};

/// A chromedriver of our own, stopped when dropped.
struct Browser {
    client: Client,
    _driver: tokio::process::Child,
}

/// Chromium's binary: `CHROME_BIN`, else Debian's or Ubuntu's.
fn chromium() -> String {
    std::env::var("CHROME_BIN").ok().unwrap_or_else(|| {
        ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .find(|path| std::path::Path::new(path).exists())
            .expect("Chromium is installed (run the tests with scripts/test, which installs it)")
            .to_owned()
    })
}

impl Browser {
    /// Starts chromedriver on a port of the system's choosing (`--port=0`;
    /// it prints the one it took) and opens a session.
    async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// As [`Browser::start`], with more Chromium flags.
    async fn start_with(extra: &[&str]) -> Self {
        let mut driver = tokio::process::Command::new("chromedriver")
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver runs (run the tests with scripts/test, which installs it)");
        let mut lines = BufReader::new(driver.stdout.take().expect("stdout")).lines();
        let port = tokio::time::timeout(DEADLINE, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.split("started successfully on port ").nth(1) {
                    return rest.trim_end_matches('.').parse::<u16>().ok();
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .expect("chromedriver says which port it listens on");
        // Whatever it prints later is read and dropped, so it never blocks.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let address = format!("127.0.0.1:{port}");
        let mut args = vec![
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
        ];
        args.extend_from_slice(extra);
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium(),
                "args": args,
                // A phone: 390 x 844 CSS pixels, touch, a mobile user agent.
                "mobileEmulation": {
                    "deviceMetrics": { "width": 390, "height": 844, "pixelRatio": 1.0, "touch": true }
                }
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://{address}"))
            .await
            .expect("a Chromium session");
        client
            .update_timeouts(TimeoutConfiguration::new(Some(DEADLINE), None, None))
            .await
            .expect("script timeout set");
        Self {
            client,
            _driver: driver,
        }
    }

    /// Opens the meeting's page.
    async fn open(&self, app: &TestApp, meeting: &str) {
        let url = app.url(&app.page_url(meeting).await);
        self.client.goto(&url).await.expect("the page loads");
    }

    async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .expect("script runs")
    }

    /// Waits until a JavaScript predicate holds: the page checks it now and
    /// on every change of its document (a MutationObserver), and answers
    /// when it is true; the script timeout is the deadline.
    async fn until(&self, what: &str, predicate: &str) {
        let script = format!(
            "const done = arguments[arguments.length - 1];
             const holds = () => {{ try {{ return Boolean({predicate}); }} catch (e) {{ return false; }} }};
             if (holds()) {{ done(true); return; }}
             const watch = new MutationObserver(() => {{
               if (holds()) {{ watch.disconnect(); done(true); }}
             }});
             watch.observe(document, {{ subtree: true, childList: true, attributes: true, characterData: true }});"
        );
        if let Err(error) = self.client.execute_async(&script, Vec::new()).await {
            let text = self.js("return document.body.innerText").await;
            panic!("{what}: not seen within {DEADLINE:?} ({error}); the page shows {text}");
        }
    }

    async fn click(&self, id: &str) {
        self.client
            .find(Locator::Id(id))
            .await
            .expect("element")
            .click()
            .await
            .expect("clicked");
    }

    async fn text(&self, id: &str) -> String {
        self.client
            .find(Locator::Id(id))
            .await
            .expect("element")
            .text()
            .await
            .expect("text")
    }

    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("target dir")
            .join("screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot folder");
        std::fs::write(dir.join(name), png).expect("screenshot saved");
    }

    /// No script error, and nothing wider than the phone's screen.
    async fn assert_healthy(&self) {
        assert_eq!(
            self.js("return window.__scribeErrors").await,
            json!([]),
            "script errors"
        );
        let wide = self
            .js("return document.documentElement.scrollWidth <= window.innerWidth")
            .await;
        assert_eq!(wide, json!(true), "the page scrolls sideways on a phone");
    }

    async fn close(self) {
        self.client.close().await.expect("session closed");
    }
}

async fn meeting(app: &TestApp) -> String {
    meeting_with(app, coach_with_plan(), "Weekly planning").await
}

/// Lets a gated call's second turn play, and waits until the page shows it
/// and the peer has spoken it.
async fn second_turn(browser: &Browser, peer: &scribe_sim::realtime::SimRealtime) {
    peer.open_gate("second");
    browser
        .until(
            "the second turn",
            "document.getElementById('line-4') !== null",
        )
        .await;
    assert!(peer.wait_for_mark("spoken", DEADLINE).await);
}

const VISIBLE: fn(&str) -> String = |id| format!("!document.getElementById('{id}').hidden");

/// One call watched from the page: lines appear while it runs, the progress
/// view at call end and then the results, all without a reload.
#[tokio::test]
async fn the_page_shows_a_call_live_then_its_progress_then_its_results() {
    let db = helpers::TestDb::create(helpers::Backend::Sqlite).await;
    // A first call, completed before the page opens, gives the estimate its
    // history; only the watched call waits at the gate.
    let earlier: std::sync::Arc<std::sync::Mutex<Option<String>>> = Default::default();
    let first = earlier.clone();
    let peer = sim(move |c| {
        if *first.lock().expect("lock") == c.meeting {
            one_turn()
        } else {
            gated_call()
        }
    })
    .await;
    let realtime = peer.url();
    let app = spawn_app_with(&db.url, |s| live_settings(s, &realtime)).await;
    let warm_up = meeting(&app).await;
    *earlier.lock().expect("lock") = Some(warm_up.clone());
    let call = start_call(&app, &warm_up).await;
    assert!(peer.wait_for_mark("spoken", DEADLINE).await);
    wait_for_lines(&app.store, &warm_up, 2).await;
    end_call(&app, &call).await;
    running::wait_for_status(
        &app.store,
        &warm_up,
        scribe_actors::domain::MeetingStatus::Completed,
    )
    .await;
    // A model slow enough that the progress view is there to see.
    app.llm
        .push_faults([LlmFault::Stall(Duration::from_millis(2500))]);
    let meeting = meeting(&app).await;
    let browser = Browser::start().await;
    browser.open(&app, &meeting).await;
    browser
        .until(
            "waiting status",
            "document.body.dataset.status === 'upcoming'",
        )
        .await;

    let call = start_call(&app, &meeting).await;
    browser
        .until(
            "the first two lines",
            "document.getElementById('line-2') !== null",
        )
        .await;
    assert_eq!(
        browser.js("return document.body.dataset.status").await,
        json!("active")
    );
    assert!(browser.text("line-1").await.contains("call user line 1"));
    assert!(browser.text("line-2").await.contains("call agent reply 1"));
    browser.screenshot("1-live-call.png").await;

    second_turn(&browser, &peer).await;
    wait_for_lines(&app.store, &meeting, 4).await;
    end_call(&app, &call).await;
    browser
        .until("the progress view", &VISIBLE("progress"))
        .await;
    browser
        .until(
            "a real stage",
            "document.querySelectorAll('#stages li').length > 0",
        )
        .await;
    browser
        .until(
            "the elapsed time and the estimate from history",
            "document.getElementById('elapsed').textContent.includes('usual')",
        )
        .await;
    browser.screenshot("2-processing.png").await;

    browser.until("the results", &VISIBLE("results")).await;
    assert!(!browser.text("summary").await.is_empty());
    let sessions = browser
        .js("return [...document.querySelectorAll('#plan-sessions li')].map(li => li.textContent)")
        .await;
    assert_eq!(sessions.as_array().map(Vec::len), Some(2), "{sessions}");
    let next = browser
        .js("return document.getElementById('next-link').getAttribute('href')")
        .await;
    assert!(
        next.as_str()
            .is_some_and(|h| h.starts_with("/meetings/") && h.contains("?key=")),
        "the next meeting's link carries its key: {next}"
    );
    let lines = browser
        .js("return document.querySelectorAll('#transcript li').length")
        .await;
    assert_eq!(lines, json!(4));
    assert_eq!(
        browser
            .js("return document.getElementById('progress').hidden")
            .await,
        json!(true),
        "the progress view gives way to the results"
    );
    browser.assert_healthy().await;
    browser.screenshot("3-completed.png").await;

    // A second visit to a completed meeting shows the same at once.
    browser.client.refresh().await.expect("reload");
    browser
        .until("the results again", &VISIBLE("results"))
        .await;
    let lines = browser
        .js("return document.querySelectorAll('#transcript li').length")
        .await;
    assert_eq!(lines, json!(4));
    browser.close().await;
    app.stop().await.expect("stopped");
    db.destroy().await;
}

/// A failing analysis shows its error; "Try again" (with the page's own
/// capability, no API token) runs it again and the results appear.
/// A stream ends at its lifetime (here 1 s) and the page reconnects with
/// `Last-Event-ID`: every line shows once, none is missed, nothing else
/// on the page changes.
#[tokio::test]
async fn the_page_reconnects_when_a_stream_ends_at_its_lifetime_without_a_gap() {
    let db = helpers::TestDb::create(helpers::Backend::Sqlite).await;
    let peer = sim(|_| gated_call()).await;
    let realtime = peer.url();
    let app = spawn_app_with(&db.url, |s| {
        live_settings(s, &realtime);
        s.http.stream_lifetime = Duration::from_secs(1);
    })
    .await;
    let meeting = meeting(&app).await;
    let browser = Browser::start().await;
    browser.open(&app, &meeting).await;
    let call = start_call(&app, &meeting).await;
    browser
        .until(
            "the first two lines",
            "document.getElementById('line-2') !== null",
        )
        .await;
    // Two reconnects later, the second turn.
    browser
        .until(
            "two reconnects",
            "Number(document.body.dataset.streams || 0) >= 3",
        )
        .await;
    second_turn(&browser, &peer).await;
    let lines = browser
        .js("return [...document.querySelectorAll('#transcript li')].map(li => li.id)")
        .await;
    assert_eq!(
        lines,
        json!(["line-1", "line-2", "line-3", "line-4"]),
        "each line once, in order"
    );
    end_call(&app, &call).await;
    browser.until("the results", &VISIBLE("results")).await;
    app.stop().await.expect("stopped");
    db.destroy().await;
}

#[tokio::test]
async fn a_failed_analysis_shows_its_error_and_try_again_completes_it() {
    let db = helpers::TestDb::create(helpers::Backend::Sqlite).await;
    let peer = sim(|_| one_turn()).await;
    let realtime = peer.url();
    let app = spawn_app_with(&db.url, |s| {
        live_settings(s, &realtime);
        s.analysis_policy.attempts = 1;
    })
    .await;
    app.llm.push_faults([LlmFault::ServerError]);
    let meeting = meeting(&app).await;
    let call = start_call(&app, &meeting).await;
    assert!(peer.wait_for_mark("spoken", DEADLINE).await);
    wait_for_lines(&app.store, &meeting, 2).await;
    end_call(&app, &call).await;

    let browser = Browser::start().await;
    browser.open(&app, &meeting).await;
    browser.until("the failure", &VISIBLE("failure")).await;
    let error = browser.text("error").await;
    assert!(
        error.contains("the analysis model failed 1 attempt(s)"),
        "{error}"
    );
    let label = browser.text("retry").await;
    assert_eq!(label, "Try again");
    browser.assert_healthy().await;
    browser.screenshot("4-failed.png").await;

    browser.click("retry").await;
    browser
        .until("the results after retrying", &VISIBLE("results"))
        .await;
    assert!(!browser.text("summary").await.is_empty());
    assert_eq!(
        browser.js("return document.body.dataset.status").await,
        json!("completed")
    );
    browser.assert_healthy().await;
    browser.screenshot("5-retried.png").await;
    browser.close().await;
    app.stop().await.expect("stopped");
    db.destroy().await;
}

/// A call whose realtime session is misconfigured says so on its page at
/// once, and a reply the user cut off is marked as such in the transcript.
#[tokio::test]
async fn a_session_problem_and_a_cut_off_reply_show_on_the_page() {
    use scribe_sim::realtime::{SimRealtime, SimRealtimeConfig};
    use scribe_sim::script::{Reply, Script, Step, Transcription, Turn};
    let db = helpers::TestDb::create(helpers::Backend::Sqlite).await;
    let turn = Turn::numbered("call", 1, Transcription::Before)
        .ending(Reply::Truncated { audio_end_ms: 1200 });
    let peer = SimRealtime::start(
        ([127, 0, 0, 1], 0).into(),
        SimRealtimeConfig {
            reject_session_update: Some("session.audio.input.transcription.model".into()),
            ..SimRealtimeConfig::scripted(move |_| Script {
                steps: vec![
                    Step::Turn(turn.clone()),
                    Step::Mark("spoken".into()),
                    Step::Hold,
                ],
            })
        },
    )
    .await
    .expect("sim starts");
    let realtime = peer.url();
    let app = spawn_app_with(&db.url, |s| live_settings(s, &realtime)).await;
    let meeting = meeting(&app).await;
    let browser = Browser::start().await;
    browser.open(&app, &meeting).await;
    browser
        .until(
            "waiting status",
            "document.body.dataset.status === 'upcoming'",
        )
        .await;
    let call = start_call(&app, &meeting).await;
    browser.until("the problem", &VISIBLE("problem")).await;
    let problem = browser.text("problem-text").await;
    assert!(
        problem.contains("refused scribe's session settings")
            && problem.contains("session.audio.input.transcription.model"),
        "{problem}"
    );
    browser
        .until(
            "the reply marked as cut off",
            "document.querySelector('#line-2 .mark') !== null",
        )
        .await;
    assert!(browser.text("line-2").await.ends_with("(interrupted)"));
    browser.assert_healthy().await;
    browser.screenshot("6-session-problem.png").await;
    assert!(peer.wait_for_mark("spoken", DEADLINE).await);
    end_call(&app, &call).await;
    browser
        .until(
            "the banner gone once the call ended",
            "document.getElementById('problem').hidden",
        )
        .await;
    browser.close().await;
    app.stop().await.expect("stopped");
    db.destroy().await;
}

mod calls;
mod deletion;
mod results;
