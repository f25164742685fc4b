//! Every periodic statement of call ownership reads an index that holds
//! only the rows that matter, never a scan of `meetings` (issue 27): on a
//! table of 20,000 meetings, 1,000 of them live, each plan is read back and
//! printed (`--nocapture`; docs/instances.md shows them).

use scribe::store::leases::{
    BEAT, DECLARE_DEAD, ENDED_ELSEWHERE, FORGET_MEMBERS, OVER, OWNED, TAKE_HELD_POSTGRES,
    TAKE_HELD_SQLITE, TAKE_UNHELD_POSTGRES, TAKE_UNHELD_SQLITE,
};

use crate::helpers::{Backend, TestDb, each_backend};

/// 19,000 finished meetings (held once by 20 instances long gone) and
/// 1,000 live ones: 900 held by a live
/// member, 50 by a dead one, 50 by nobody; 20 of the live ones ended at
/// another instance.
const SEED_POSTGRES: &[&str] = &[
    "INSERT INTO agents (id, name, instructions, created_at) VALUES ('00000000-0000-0000-0000-000000000001', 'a', 'i', now())",
    "INSERT INTO members (instance, epoch, state, heartbeat_at, started_at) VALUES ('live', 1, 'live', now(), now()), ('gone', 1, 'dead', now(), now())",
    "INSERT INTO meetings (id, name, user_id, agent_id, status, started_at, created_at, updated_at, lease_owner, owner_epoch, end_requested_at) \
     SELECT gen_random_uuid(), 'm' || n, 'u', '00000000-0000-0000-0000-000000000001', \
       CASE WHEN n <= 19000 THEN 'completed' ELSE 'active' END, now(), now(), now(), \
       CASE WHEN n <= 19000 THEN 'old-' || (n % 20) WHEN n <= 19900 THEN 'live' WHEN n <= 19950 THEN 'gone' END, \
       CASE WHEN n <= 19950 THEN 1 END, \
       CASE WHEN n BETWEEN 19001 AND 19020 THEN now() END \
     FROM generate_series(1, 20000) AS n",
    "ANALYZE",
];

const SEED_SQLITE: &[&str] = &[
    "INSERT INTO agents (id, name, instructions, created_at) VALUES (X'00000000000000000000000000000001', 'a', 'i', '2026-01-01T00:00:00+00:00')",
    "INSERT INTO members (instance, epoch, state, heartbeat_at, started_at) VALUES ('live', 1, 'live', '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00'), ('gone', 1, 'dead', '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00')",
    "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 20000) \
     INSERT INTO meetings (id, name, user_id, agent_id, status, started_at, created_at, updated_at, lease_owner, owner_epoch, end_requested_at) \
     SELECT randomblob(16), 'm' || n, 'u', X'00000000000000000000000000000001', \
       CASE WHEN n <= 19000 THEN 'completed' ELSE 'active' END, '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00', \
       CASE WHEN n <= 19000 THEN 'old-' || (n % 20) WHEN n <= 19900 THEN 'live' WHEN n <= 19950 THEN 'gone' END, \
       CASE WHEN n <= 19950 THEN 1 END, \
       CASE WHEN n BETWEEN 19001 AND 19020 THEN '2026-01-01T00:00:00+00:00' END \
     FROM s",
    "ANALYZE",
];

/// Each periodic statement (and recovery's), with the index it must read
/// `meetings` through, when it reads `meetings`.
fn statements(backend: Backend) -> Vec<(&'static str, &'static str, Option<&'static str>)> {
    let (held, unheld) = match backend {
        Backend::Postgres => (TAKE_HELD_POSTGRES, TAKE_UNHELD_POSTGRES),
        Backend::Sqlite => (TAKE_HELD_SQLITE, TAKE_UNHELD_SQLITE),
    };
    vec![
        ("heartbeat (every 10 s)", BEAT, None),
        (
            "calls ended elsewhere (every 10 s)",
            ENDED_ELSEWHERE,
            Some("meetings_ended_elsewhere"),
        ),
        (
            "forget lives that are over (every 10 s)",
            FORGET_MEMBERS,
            Some("meetings_held"),
        ),
        ("declare dead (every second)", DECLARE_DEAD, None),
        ("lives that are over (every second)", OVER, None),
        (
            "take a dead member's calls (per member that is over)",
            held,
            Some("meetings_held"),
        ),
        (
            "take calls nobody took (every second)",
            unheld,
            Some("meetings_unheld"),
        ),
        ("a member's calls (recovery, not periodic)", OWNED, None),
    ]
}

/// Binds a statement's parameters: the member taking (`live`, 1), the
/// time, the batch; then the time before which a call nobody took is
/// taken, or the member that is over (`gone`, 1). The same for both
/// backends' query types.
macro_rules! bind_params {
    ($query:expr, $sql:expr, $now:expr) => {
        match ($sql, params($sql)) {
            (DECLARE_DEAD, _) => $query.bind($now),
            (_, 2) => $query.bind("live").bind(1_i64),
            (BEAT, _) => $query.bind("live").bind(1_i64).bind($now),
            (_, 0) => $query,
            (_, 5) => $query
                .bind("live")
                .bind(1_i64)
                .bind($now)
                .bind(500_i64)
                .bind($now),
            (_, _) => $query
                .bind("live")
                .bind(1_i64)
                .bind($now)
                .bind(500_i64)
                .bind("gone")
                .bind(1_i64),
        }
    };
}

#[tokio::test]
async fn every_periodic_ownership_statement_reads_an_index_not_the_table() {
    each_backend(|backend, url| async move {
        // The store's migrations make the schema.
        drop(TestDb::store_at(&url).await);
        let now = chrono::Utc::now();
        let plans: Vec<(&str, String)> = match backend {
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(&url).await.expect("connect");
                for sql in SEED_POSTGRES {
                    sqlx::query(*sql).execute(&pool).await.expect("seed");
                }
                let mut plans = Vec::new();
                for (name, sql, _) in statements(backend) {
                    let explain = format!("EXPLAIN {sql}");
                    let mut query = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(explain));
                    query = bind_params!(query, sql, now);
                    let lines = query.fetch_all(&pool).await.expect("explain");
                    plans.push((name, lines.join("\n")));
                }
                pool.close().await;
                plans
            }
            Backend::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&url).await.expect("connect");
                for sql in SEED_SQLITE {
                    sqlx::query(*sql).execute(&pool).await.expect("seed");
                }
                let mut plans = Vec::new();
                for (name, sql, _) in statements(backend) {
                    let explain = format!("EXPLAIN QUERY PLAN {sql}");
                    let mut query =
                        sqlx::query_as::<_, (i64, i64, i64, String)>(sqlx::AssertSqlSafe(explain));
                    query = bind_params!(query, sql, now);
                    let rows = query.fetch_all(&pool).await.expect("explain");
                    let lines: Vec<String> = rows.into_iter().map(|r| r.3).collect();
                    plans.push((name, lines.join("\n")));
                }
                pool.close().await;
                plans
            }
        };
        for ((name, plan), (_, _, index)) in plans.iter().zip(statements(backend)) {
            println!("--- {backend:?}: {name}\n{plan}");
            if let Some(index) = index {
                assert!(
                    plan.contains(index),
                    "{backend:?}: `{name}` does not read {index}:\n{plan}"
                );
            }
            let scans_meetings = match backend {
                Backend::Postgres => plan.contains("Seq Scan on meetings"),
                // SQLite says SCAN for a full pass, SEARCH for an index probe.
                Backend::Sqlite => plan.lines().any(|l| {
                    l.contains("SCAN meetings")
                        || l.contains("SCAN m ")
                        || l.trim_end().ends_with("SCAN m")
                }),
            };
            assert!(
                !scans_meetings,
                "{backend:?}: `{name}` scans the meetings table:\n{plan}"
            );
        }
    })
    .await;
}

/// How many parameters a statement takes.
fn params(sql: &str) -> usize {
    (1..=6).filter(|n| sql.contains(&format!("${n}"))).count()
}
