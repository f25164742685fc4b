//! Lease news between instances on PostgreSQL (`LISTEN/NOTIFY`): an end
//! recorded for a call another instance holds, and leases freed by an
//! instance that stops. Each instance listens on one channel and keeps
//! what is addressed to it. A notification is a wake-up, never the record:
//! the database row says the same, and the lease renewal reads it whenever
//! a notification is missed (the listening connection lost and back).

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::{DateTime, Utc};
use scribe_actors::ids::MeetingId;
use scribe_actors::ports::LeaseNews;
use serde::Deserialize;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::mpsc;

use super::pool::{Pool, Store};

/// The channel every instance listens on.
pub const CHANNEL: &str = "scribe_leases";

/// What a notification on [`CHANNEL`] carries, as the database writes it.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Notice {
    End {
        owner: String,
        meeting: uuid::Uuid,
        at: DateTime<Utc>,
    },
    Released {
        owner: String,
    },
    /// A call `owner` holds was deleted: its actor stops, nothing finalized.
    Deleted {
        owner: String,
        meeting: uuid::Uuid,
    },
}

/// The payload that says `owner` freed its leases.
pub fn released(owner: &str) -> String {
    serde_json::json!({ "kind": "released", "owner": owner }).to_string()
}

/// The owner a deletion is addressed to when nobody holds the call (an
/// analysis may run anywhere): every instance.
pub const EVERYONE: &str = "*";

/// The payload that says the call `owner` holds was deleted.
pub fn deleted(owner: &str, meeting: MeetingId) -> String {
    serde_json::json!({ "kind": "deleted", "owner": owner, "meeting": meeting.as_uuid() })
        .to_string()
}

/// The news in `payload` for `me`: an end of a call `me` holds, or leases
/// another instance freed. Nothing for news of others or a payload that is
/// not ours (logged: the durable record still carries it).
fn news_for(me: &str, payload: &str) -> Option<LeaseNews> {
    match serde_json::from_str::<Notice>(payload) {
        Ok(Notice::End { owner, meeting, at }) if owner == me => Some(LeaseNews::EndRequested {
            meeting: MeetingId::from_uuid(meeting),
            at,
        }),
        Ok(Notice::Released { owner }) if owner != me => Some(LeaseNews::Released),
        Ok(Notice::Deleted { owner, meeting }) if owner == me || owner == EVERYONE => {
            Some(LeaseNews::Deleted {
                meeting: MeetingId::from_uuid(meeting),
            })
        }
        Ok(_) => None,
        Err(error) => {
            tracing::warn!(%error, payload, "a lease notification scribe cannot read; ignored");
            None
        }
    }
}

impl Store {
    /// Lease news for `owner` as other instances make it: on PostgreSQL, a
    /// task with a connection of its own listens until the receiver is
    /// dropped. `None` on SQLite (one machine; the renewal carries it).
    pub fn lease_news(&self, owner: &str) -> Option<mpsc::Receiver<LeaseNews>> {
        let Pool::Postgres(pool) = &self.pool else {
            return None;
        };
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(listen(pool.clone(), owner.to_owned(), tx));
        Some(rx)
    }
}

async fn connect(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Listens for `owner`'s news and sends it to `tx`, reconnecting (with a
/// growing pause) whenever the connection fails; after each (re)connection
/// it sends [`LeaseNews::Missed`], since nothing was heard meanwhile.
async fn listen(pool: PgPool, owner: String, tx: mpsc::Sender<LeaseNews>) {
    let mut pauses = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .build();
    loop {
        let connected = tokio::select! {
            () = tx.closed() => return,
            connected = connect(&pool) => connected,
        };
        let mut listener = match connected {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "not listening for lease news; the lease renewal carries it meanwhile");
                let pause = pauses.next().unwrap_or(Duration::from_secs(5));
                tokio::select! {
                    () = tx.closed() => return,
                    () = tokio::time::sleep(pause) => continue,
                }
            }
        };
        tracing::debug!(%owner, "listening for lease news");
        if tx.send(LeaseNews::Missed).await.is_err() {
            return;
        }
        loop {
            let received = tokio::select! {
                () = tx.closed() => return,
                received = listener.try_recv() => received,
            };
            let news = match received {
                Ok(Some(notification)) => news_for(&owner, notification.payload()),
                // The connection was lost and is open again.
                Ok(None) => Some(LeaseNews::Missed),
                Err(error) => {
                    tracing::warn!(%error, "lease news interrupted; listening again");
                    break;
                }
            };
            if let Some(news) = news
                && tx.send(news).await.is_err()
            {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_instance_keeps_the_news_addressed_to_it() {
        let meeting = uuid::Uuid::new_v4();
        let end = format!(
            r#"{{"kind" : "end", "owner" : "a", "meeting" : "{meeting}", "at" : "2026-11-30T11:23:31.440196+00:00"}}"#
        );
        assert_eq!(
            news_for("a", &end),
            Some(LeaseNews::EndRequested {
                meeting: MeetingId::from_uuid(meeting),
                at: "2026-11-30T11:23:31.440196Z".parse().expect("time"),
            })
        );
        assert_eq!(news_for("b", &end), None, "another instance's call");
        assert_eq!(news_for("b", &released("a")), Some(LeaseNews::Released));
        assert_eq!(news_for("a", &released("a")), None, "its own release");
        let id = MeetingId::from_uuid(meeting);
        assert_eq!(
            news_for("a", &deleted("a", id)),
            Some(LeaseNews::Deleted { meeting: id })
        );
        assert_eq!(news_for("b", &deleted("a", id)), None, "another's call");
        assert_eq!(
            news_for("b", &deleted(EVERYONE, id)),
            Some(LeaseNews::Deleted { meeting: id }),
            "nobody held it: its analysis may run anywhere"
        );
        assert_eq!(news_for("a", "not json"), None);
        assert_eq!(news_for("a", r#"{"kind":"end","owner":"a"}"#), None);
    }
}
