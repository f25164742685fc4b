//! Retention: finished meetings older than `SCRIBE_RETENTION_DAYS` are
//! deleted by a background sweep in batches, one instance at a time. The
//! sweep takes "now" from its caller: the tests pass a later one.

use std::time::Duration;

use chrono::Utc;
use scribe::retention::{Retention, sweep};
use scribe::store::DELETE_AT_ONCE;

use super::*;
use crate::helpers::TestDb;
use crate::running::eventually;

/// An agent with nothing but a name and instructions.
pub async fn agent(store: &Store) -> scribe_actors::ids::AgentId {
    store
        .insert_agent(scribe::domain::agent::NewAgent {
            name: "A".into(),
            instructions: "Hi.".into(),
            blueprint: None,
            phone_numbers: Vec::new(),
        })
        .await
        .expect("agent")
        .id
}

async fn cancelled(store: &Store, agent: scribe_actors::ids::AgentId) -> MeetingId {
    let new = scribe::domain::meeting::NewMeeting::parse("Old", "u", agent, None).expect("valid");
    let meeting = store.insert_meeting(new).await.expect("stored").id;
    store
        .cancel_meeting(meeting, "called off", None)
        .await
        .expect("cancelled");
    meeting
}

#[tokio::test]
async fn meetings_past_retention_are_deleted_in_batches_and_the_rest_kept() {
    each_backend(|_, url| async move {
        let store = TestDb::store_at(&url).await;
        let agent = agent(&store).await;
        let old: Vec<MeetingId> = futures::future::join_all(
            (0..DELETE_AT_ONCE * 2 + 5).map(|_| cancelled(&store, agent)),
        )
        .await;
        let upcoming = store
            .insert_meeting(
                scribe::domain::meeting::NewMeeting::parse("Soon", "u", agent, None)
                    .expect("valid"),
            )
            .await
            .expect("stored")
            .id;
        let live = store
            .insert_meeting(
                scribe::domain::meeting::NewMeeting::parse("Now", "u", agent, None).expect("valid"),
            )
            .await
            .expect("stored")
            .id;
        crate::running::force_active(&store, live).await;
        let thirty = Retention::days(30);
        let now = Utc::now();
        assert!(
            sweep(&store, &thirty, now + chrono::Duration::days(29), None)
                .await
                .expect("sweeps")
                .is_empty()
        );
        let erased = sweep(&store, &thirty, now + chrono::Duration::days(31), None)
            .await
            .expect("sweeps");
        let mut gone: Vec<MeetingId> = erased.iter().map(|e| e.meeting).collect();
        gone.sort();
        let mut want = old.clone();
        want.sort();
        assert_eq!(gone, want, "every finished one, over three batches");
        for meeting in &old {
            let stone = store
                .meeting(*meeting)
                .await
                .expect("query")
                .expect("tombstone");
            assert!(stone.deleted_at.is_some());
            assert_eq!(
                store.rows_of(*meeting).await.expect("rows"),
                RowsOf::default()
            );
        }
        for kept in [upcoming, live] {
            assert!(
                store
                    .meeting(kept)
                    .await
                    .expect("query")
                    .expect("row")
                    .deleted_at
                    .is_none()
            );
        }
        assert!(
            sweep(&store, &thirty, now + chrono::Duration::days(400), None)
                .await
                .expect("sweeps")
                .is_empty(),
            "a live call and one to come never age out"
        );
    })
    .await;
}

#[tokio::test]
async fn the_sweep_is_held_by_one_instance_at_a_time() {
    each_backend(|_, url| async move {
        let store = TestDb::store_at(&url).await;
        let now = Utc::now();
        let period = chrono::Duration::minutes(10);
        assert!(
            store
                .claim_upkeep("retention", "a", now + period)
                .await
                .expect("claims")
        );
        assert!(
            !store
                .claim_upkeep("retention", "b", now + period)
                .await
                .expect("claims"),
            "a holds it"
        );
        assert!(
            store
                .claim_upkeep("retention", "a", now + period)
                .await
                .expect("claims"),
            "a again"
        );
        assert!(
            store
                .claim_upkeep("other-job", "b", now + period)
                .await
                .expect("claims"),
            "another job"
        );
        // a's claim lapses: b takes it.
        assert!(
            store
                .claim_upkeep("retention", "a", now - chrono::Duration::seconds(1))
                .await
                .expect("claims")
        );
        assert!(
            store
                .claim_upkeep("retention", "b", now + period)
                .await
                .expect("claims")
        );
        assert!(
            !store
                .claim_upkeep("retention", "a", now + period)
                .await
                .expect("claims")
        );
    })
    .await;
}

#[tokio::test]
async fn the_background_sweep_deletes_what_ages_out_and_counts_it_on_metrics() {
    each_backend(|_, url| async move {
        let app = crate::helpers::spawn_app_with(&url, |s| {
            s.retention = Some(Retention {
                keep: Duration::ZERO,
                every: Duration::from_millis(50),
            });
        })
        .await;
        let agent = app
            .create_agent(json!({ "name": "A", "instructions": "Hi." }))
            .await;
        let agent_id: scribe_actors::ids::AgentId =
            agent["id"].as_str().expect("id").parse().expect("id");
        let old = cancelled(&app.store, agent_id).await;
        let upcoming = app
            .create_meeting(agent["id"].as_str().expect("id"), "u")
            .await["id"]
            .as_str()
            .expect("id")
            .to_owned();
        let old = old.to_string();
        eventually("the sweep to delete the finished meeting", || async {
            (app.get_authed(&format!("/api/meetings/{old}"))
                .await
                .status()
                == StatusCode::GONE)
                .then_some(())
        })
        .await;
        assert_eq!(rows(&app.store, &old).await, RowsOf::default());
        expect_json(
            app.get_authed(&format!("/api/meetings/{upcoming}")).await,
            StatusCode::OK,
        )
        .await;
        let metrics = app.get("/metrics").await.text().await.expect("metrics");
        assert!(
            metrics.contains("scribe_meetings_deleted_total{by=\"retention\"}"),
            "{metrics}"
        );
        assert!(
            metrics.contains("scribe_retention_sweeps_total{outcome=\"swept\"}"),
            "{metrics}"
        );
        assert!(
            metrics.contains("scribe_retention_sweep_seconds"),
            "{metrics}"
        );
        app.stop().await.expect("clean stop");
    })
    .await;
}
