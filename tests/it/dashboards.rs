//! The Grafana dashboard and the Prometheus alert rules in `ops/` read
//! only what scribe serves: every metric name they use is on a running
//! server's `/metrics` after one call, its analysis and a retention sweep
//! (and so is every name the book's metrics and alerts pages use).
//! (`promtool check rules` and `promtool test rules` check the rules
//! themselves: `scripts/check_alerts`, run by CI.)

use std::collections::BTreeSet;
use std::time::Duration;

use scribe::retention::Retention;
use scribe_actors::domain::MeetingStatus;
use scribe_sim::realtime::{SimRealtime, SimRealtimeConfig};
use scribe_sim::script::{Script, Step, Transcription, Turn};

use crate::helpers::{each_backend, live_settings, spawn_app_with};
use crate::running::{eventually, run_call, wait_for_status};

/// What names metrics: the dashboard, the rules, and the book's pages
/// about them.
const USERS: [&str; 4] = [
    "ops/grafana/scribe.json",
    "ops/prometheus/scribe-alerts.yml",
    "docs/alerts.md",
    "docs/metrics.md",
];

/// Every `scribe_*` name in `text`.
fn names(text: &str) -> BTreeSet<String> {
    let pattern = regex::Regex::new(r"\bscribe_[a-z0-9_]+").expect("pattern");
    pattern
        .find_iter(text)
        .map(|m| m.as_str().to_owned())
        .collect()
}

/// The metric names of a Prometheus text exposition: its series' names,
/// and the families its `# TYPE` lines declare (a histogram's own name).
fn served(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter_map(|line| match line.strip_prefix("# TYPE ") {
            Some(declared) => declared.split(' ').next(),
            None if line.starts_with('#') || line.trim().is_empty() => None,
            None => line.split(['{', ' ']).next(),
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_dashboard_and_the_rules_name_metrics() {
    for file in [USERS[0], USERS[1], USERS[3]] {
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(names(&text).len() > 10, "{file} names scribe's metrics");
    }
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(USERS[0]).expect("dashboard"))
            .expect("the dashboard is JSON");
    assert!(
        dashboard["panels"]
            .as_array()
            .is_some_and(|p| !p.is_empty())
    );
}

#[tokio::test]
async fn every_metric_the_dashboard_and_the_alerts_name_is_on_metrics() {
    let mut used = BTreeSet::new();
    for file in USERS {
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{file}: {e}"));
        used.extend(names(&text));
    }
    each_backend(|_, url| {
        let used = used.clone();
        async move {
            let script = Script {
                steps: vec![
                    Step::Turn(Turn::numbered("ops", 1, Transcription::Before)),
                    Step::Mark("done".into()),
                    Step::Hold,
                ],
            };
            let lines = script.expected_lines().len();
            let peer = SimRealtime::start(
                ([127, 0, 0, 1], 0).into(),
                SimRealtimeConfig::scripted(move |_| script.clone()),
            )
            .await
            .expect("sim starts");
            let realtime = peer.url();
            let app = spawn_app_with(&url, |s| {
                live_settings(s, &realtime);
                s.retention = Some(Retention {
                    keep: Duration::from_secs(3600),
                    every: Duration::from_millis(50),
                });
            })
            .await;
            let (meeting, _) = run_call(&app, &peer, "done", lines).await;
            wait_for_status(&app.store, &meeting, MeetingStatus::Completed).await;
            let exposition = eventually("a sweep, an analysis and a probe on /metrics", || async {
                let text = app.get("/metrics").await.text().await.ok()?;
                let names = served(&text);
                [
                    "scribe_retention_sweep_seconds_bucket",
                    "scribe_analysis_duration_seconds_bucket",
                    "scribe_meetings",
                ]
                .iter()
                .all(|n| names.contains(*n))
                .then_some(text)
            })
            .await;
            let served = served(&exposition);
            let missing: Vec<&String> = used.iter().filter(|n| !served.contains(*n)).collect();
            assert!(
                missing.is_empty(),
                "named by ops/ or the book but not on /metrics: {missing:?}"
            );
            app.stop().await.expect("clean stop");
        }
    })
    .await;
}
