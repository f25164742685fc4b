//! The actors' port contract (`scribe_actors::contract`) on the service's
//! store, on SQLite and on PostgreSQL: the same clauses the in-memory store
//! of the actor tests keeps.

use std::sync::Arc;

use async_trait::async_trait;
use scribe::domain::agent::NewAgent;
use scribe::domain::meeting::NewMeeting;
use scribe::store::{AttachedStart, SessionStart, Store, WebhookDelivery};
use scribe_actors::contract::{Fixture, Ports, run_all};
use scribe_actors::domain::{ChunkStatus, MeetingStatus, Transport, VoiceApi};
use scribe_actors::ids::MeetingId;

use crate::helpers::each_backend;

struct Sql(Store);

#[async_trait]
impl Fixture for Sql {
    fn ports(&self) -> Arc<dyn Ports> {
        Arc::new(self.0.clone())
    }

    async fn active_meeting(&self, api: VoiceApi, call: Option<(Transport, &str)>) -> MeetingId {
        let store = self.0.clone().starting_calls_on(api);
        let agent = store
            .insert_agent(NewAgent::parse("Coach", "Be brief.", None).expect("valid agent"))
            .await
            .expect("agent");
        let meeting = store
            .insert_meeting(NewMeeting::parse("Call", "u", agent.id, None).expect("valid"))
            .await
            .expect("meeting")
            .id;
        match call {
            Some((transport, call_id)) => {
                let started = store
                    .start_attached(meeting, transport, call_id)
                    .await
                    .expect("start");
                assert_eq!(started, AttachedStart::Started);
            }
            None => {
                let delivery = WebhookDelivery {
                    webhook_id: Some(format!("w-{meeting}")),
                    event_type: "call.session_started".into(),
                    call_cid: Some(format!("default:{meeting}")),
                    session_id: Some(format!("s-{meeting}")),
                };
                let started = store
                    .start_session(&delivery, meeting, Transport::OpenAi)
                    .await
                    .expect("start");
                assert_eq!(started, SessionStart::Started);
            }
        }
        meeting
    }

    async fn lines(&self, meeting: MeetingId) -> Vec<(i64, ChunkStatus, String)> {
        self.0
            .transcript(meeting)
            .await
            .expect("transcript")
            .into_iter()
            .map(|c| (c.sequence_number, c.status, c.text))
            .collect()
    }

    async fn status(&self, meeting: MeetingId) -> MeetingStatus {
        self.0
            .meeting(meeting)
            .await
            .expect("read")
            .expect("found")
            .status
    }
}

#[tokio::test]
async fn the_service_store_keeps_the_port_contract_on_each_backend() {
    each_backend(|_, url| async move {
        let store = crate::helpers::TestDb::store_at(&url).await;
        run_all(&Sql(store.clone())).await;
        store.close().await;
    })
    .await;
}
