//! Prepared single-row INSERTs of parameters take a fast path that skips binding, planning and
//! reading the table's definition; the storage keeps tables' indexes and foreign keys between
//! writes. Both must stay invisible: every outcome equals the planned statement's, and DDL
//! from any session is seen by the next write.

mod common;

use common::side_by_side::{Params, contents, create_flushed_pair, on_both, same_outcome};
use common::{TestServer, sqlstate};

/// Prepares `sql` twice: on table `fast` as written, and on table `slow` with `RETURNING id`,
/// which the fast path leaves to the planner (the affected-row count is the same).
async fn prepare_pair(
    client: &tokio_postgres::Client,
    sql: &str,
) -> (tokio_postgres::Statement, tokio_postgres::Statement) {
    let fast = client.prepare(&sql.replace("{t}", "fast")).await.unwrap();
    let slow = format!("{} RETURNING id", sql.replace("{t}", "slow"));
    (fast, client.prepare(&slow).await.unwrap())
}

#[tokio::test]
async fn prepared_single_row_inserts_write_what_planned_ones_write() {
    let server = TestServer::start();
    let client = server.root().await;
    create_flushed_pair(&client).await;
    on_both(
        &client,
        "INSERT INTO {t} (id, v, n) VALUES (30, 'hot', 30); DELETE FROM {t} WHERE id = 3",
    )
    .await;
    let insert = prepare_pair(
        &client,
        "INSERT INTO {t} (id, v, n, code) VALUES ($1, $2, $3, $4)",
    )
    .await;
    let upsert = prepare_pair(
        &client,
        "INSERT INTO {t} VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
    )
    .await;
    let reordered = prepare_pair(
        &client,
        "INSERT INTO {t} (n, small, id) VALUES ($1, 7, $2) ON CONFLICT DO NOTHING",
    )
    .await;
    let text = |s: &str| Some(s.to_owned());
    let no_code: Option<String> = None;
    let no_n: Option<i32> = None;
    // A new key; a hot, a flushed and a deleted one; the constraints each in turn.
    let cases: [(Params<'_>, Result<u64, String>); 9] = [
        (&[&100i64, &text("new"), &1i32, &no_code], Ok(1)),
        (
            &[&30i64, &text("dup"), &1i32, &no_code],
            Err("23505".into()),
        ),
        (&[&5i64, &text("dup"), &1i32, &no_code], Err("23505".into())),
        (&[&3i64, &text("back"), &3i32, &no_code], Ok(1)),
        (
            &[&101i64, &text("x"), &-1i32, &no_code],
            Err("23514".into()),
        ),
        (&[&102i64, &text("x"), &no_n, &no_code], Err("23502".into())),
        (
            &[&103i64, &None::<String>, &1i32, &text("toolong")],
            Err("22001".into()),
        ),
        (&[&104i64, &text("x"), &1i32, &text("ab")], Ok(1)),
        (
            &[&105i64, &text("x"), &1i32, &text("ab")],
            Err("23505".into()),
        ),
    ];
    for (params, expected) in cases {
        assert_eq!(
            same_outcome(&client, (&insert.0, &insert.1), params).await,
            expected
        );
    }
    for (id, expected) in [(5i64, 0), (30, 0), (106, 1), (106, 0)] {
        let params: Params<'_> = &[&id, &text("upsert"), &6i32];
        assert_eq!(
            same_outcome(&client, (&upsert.0, &upsert.1), params).await,
            Ok(expected)
        );
    }
    for (id, expected) in [(107i64, 1), (107, 0), (1, 0)] {
        assert_eq!(
            same_outcome(&client, (&reordered.0, &reordered.1), &[&9i32, &id]).await,
            Ok(expected)
        );
    }
    // A constant that does not fit its column.
    for t in ["fast", "slow"] {
        let result = client
            .execute(
                &format!("INSERT INTO {t} (id, n, small) VALUES ($1, 1, 100000)"),
                &[&108i64],
            )
            .await;
        assert_eq!(result.map_err(|e| sqlstate(&e)), Err("22003".into()));
    }
    assert_eq!(
        contents(&client, "fast").await,
        contents(&client, "slow").await
    );
    // Inside a block: visible to the block only, a conflict with the block's own row, and
    // gone after ROLLBACK.
    client.batch_execute("BEGIN").await.unwrap();
    let params: Params<'_> = &[&200i64, &text("in block"), &2i32, &no_code];
    assert_eq!(
        same_outcome(&client, (&insert.0, &insert.1), params).await,
        Ok(1)
    );
    let upserted: Params<'_> = &[&200i64, &text("again"), &2i32];
    assert_eq!(
        same_outcome(&client, (&upsert.0, &upsert.1), upserted).await,
        Ok(0)
    );
    let other = server.root().await;
    let seen = other.query("SELECT 1 FROM fast WHERE id = 200", &[]);
    assert!(seen.await.unwrap().is_empty());
    client.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(
        same_outcome(&client, (&upsert.0, &upsert.1), upserted).await,
        Ok(1)
    );
    assert_eq!(
        contents(&client, "fast").await,
        contents(&client, "slow").await
    );
    // Definitions changed after Parse, by another session: a default for a column the
    // statement leaves out, then a new column with a default. Each is filled as the planned
    // statement fills it.
    let changes = [
        ("ALTER TABLE {t} ALTER COLUMN small SET DEFAULT 42", 300i64),
        ("ALTER TABLE {t} ADD COLUMN extra TEXT DEFAULT 'd'", 301),
    ];
    for (change, id) in changes {
        for t in ["fast", "slow"] {
            other
                .batch_execute(&change.replace("{t}", t))
                .await
                .unwrap();
        }
        let params: Params<'_> = &[&id, &text("altered"), &3i32, &no_code];
        assert_eq!(
            same_outcome(&client, (&insert.0, &insert.1), params).await,
            Ok(1)
        );
    }
    for t in ["fast", "slow"] {
        let rows = client
            .query(
                &format!("SELECT small, extra FROM {t} WHERE id >= 300 ORDER BY id"),
                &[],
            )
            .await
            .unwrap();
        let filled: Vec<(Option<i16>, Option<String>)> =
            rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        assert_eq!(
            filled,
            [(Some(42), text("d")), (Some(42), text("d"))],
            "{t}"
        );
    }
    assert_eq!(
        contents(&client, "fast").await,
        contents(&client, "slow").await
    );
}

/// A single-row `ON CONFLICT DO NOTHING` outside a transaction block is decided when it
/// commits instead of by a read before: it skips exactly the rows the checked path (the same
/// statement inside a block) skips, whether the key is new, hot, flushed, updated or deleted
/// after its flush, or deleted while hot; a conflict on another unique column stays an error.
#[tokio::test]
async fn single_row_do_nothing_decided_at_commit_skips_what_the_checked_path_skips() {
    let server = TestServer::start();
    let client = server.root().await;
    create_flushed_pair(&client).await;
    on_both(
        &client,
        "UPDATE {t} SET v = 'updated' WHERE id = 7; DELETE FROM {t} WHERE id = 3;
         INSERT INTO {t} (id, v, n, code) VALUES (30, 'hot', 30, 'ab'), (31, 'gone', 31, NULL);
         DELETE FROM {t} WHERE id = 31",
    )
    .await;
    let insert =
        "INSERT INTO {t} (id, v, n, code) VALUES ($1, 'new', 1, $2) ON CONFLICT (id) DO NOTHING";
    let at_commit = client
        .prepare(&insert.replace("{t}", "fast"))
        .await
        .unwrap();
    let checked = client
        .prepare(&insert.replace("{t}", "slow"))
        .await
        .unwrap();
    let no_code: Option<&str> = None;
    // Flushed, updated after flush, deleted after flush, hot, deleted while hot, new, new again,
    // then a new key whose code another row holds.
    let cases: [(i64, Option<&str>, Result<u64, String>); 8] = [
        (5, no_code, Ok(0)),
        (7, no_code, Ok(0)),
        (3, no_code, Ok(1)),
        (30, no_code, Ok(0)),
        (31, no_code, Ok(1)),
        (40, no_code, Ok(1)),
        (40, no_code, Ok(0)),
        (41, Some("ab"), Err("23505".into())),
    ];
    for (id, code, expected) in cases {
        let outcome = |r: Result<u64, tokio_postgres::Error>| r.map_err(|e| sqlstate(&e));
        let decided = outcome(client.execute(&at_commit, &[&id, &code]).await);
        client.batch_execute("BEGIN").await.unwrap();
        let in_block = match outcome(client.execute(&checked, &[&id, &code]).await) {
            Ok(rows) => outcome(client.batch_execute("COMMIT").await.map(|()| rows)),
            Err(state) => {
                client.batch_execute("ROLLBACK").await.unwrap();
                Err(state)
            }
        };
        assert_eq!((decided, in_block), (expected.clone(), expected), "id {id}");
    }
    assert_eq!(
        contents(&client, "fast").await,
        contents(&client, "slow").await
    );
}

/// Clients racing to insert the same keys with `ON CONFLICT DO NOTHING`, one row or two per
/// statement, never get a duplicate-key error, as in PostgreSQL: each key is written once and
/// every other attempt at it is skipped.
#[tokio::test]
async fn racing_do_nothing_inserts_write_each_key_once_and_skip_the_rest() {
    const KEYS: i64 = 200;
    const CLIENTS: usize = 4;
    let server = TestServer::start();
    let setup = server.root().await;
    setup
        .batch_execute("CREATE TABLE race (id BIGINT PRIMARY KEY, v TEXT)")
        .await
        .unwrap();
    let mut racers = tokio::task::JoinSet::new();
    for racer in 0..CLIENTS {
        let client = server.root().await;
        racers.spawn(async move {
            let one = client
                .prepare("INSERT INTO race VALUES ($1, 'one') ON CONFLICT (id) DO NOTHING")
                .await
                .unwrap();
            let two = client
                .prepare(
                    "INSERT INTO race VALUES ($1, 'two'), ($1 + 100000, 'two') ON CONFLICT (id) DO NOTHING",
                )
                .await
                .unwrap();
            let mut written = 0;
            for id in 1..=KEYS {
                let statement = if racer % 2 == 0 { &one } else { &two };
                written += client
                    .execute(statement, &[&id])
                    .await
                    .unwrap_or_else(|e| panic!("racer {racer}, key {id}: {e}"));
            }
            written
        });
    }
    let mut written = 0;
    while let Some(racer) = racers.join_next().await {
        written += racer.unwrap();
    }
    let stored: i64 = setup
        .query_one("SELECT count(*) FROM race", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!((written, stored), (2 * KEYS as u64, 2 * KEYS));
}

/// Clients racing to upsert the same emails under different ids, through the email's unique
/// constraint: each email is written once and every other attempt updates that row, none
/// fails with a unique violation (a row committed between a statement's check and its write
/// re-runs the statement, as for the primary key).
#[tokio::test]
async fn racing_upserts_through_a_unique_column_write_each_value_once_and_update_it_after() {
    const EMAILS: i64 = 150;
    const CLIENTS: i64 = 4;
    let server = TestServer::start();
    let setup = server.root().await;
    setup
        .batch_execute("CREATE TABLE signups (id BIGINT PRIMARY KEY, email TEXT UNIQUE, hits INT)")
        .await
        .unwrap();
    let mut racers = tokio::task::JoinSet::new();
    for racer in 0..CLIENTS {
        let client = server.root().await;
        racers.spawn(async move {
            let sql = if racer % 2 == 0 {
                "INSERT INTO signups VALUES ($1, $2, 1) ON CONFLICT (email) DO UPDATE SET hits = signups.hits + 1"
            } else {
                "INSERT INTO signups VALUES ($1, $2, 1), ($1 + 100000, $2 || '.two', 1) ON CONFLICT ON CONSTRAINT signups_email_key DO UPDATE SET hits = signups.hits + 1"
            };
            let upsert = client.prepare(sql).await.unwrap();
            let skip = client
                .prepare("INSERT INTO signups VALUES ($1, $2, 0) ON CONFLICT DO NOTHING")
                .await
                .unwrap();
            for n in 1..=EMAILS {
                let email = format!("user{n}@example.com");
                let id = racer * 1000 + n;
                for statement in [&upsert, &skip] {
                    client
                        .execute(statement, &[&id, &email])
                        .await
                        .unwrap_or_else(|e| panic!("racer {racer}, email {n}: {e}"));
                }
            }
        });
    }
    while let Some(racer) = racers.join_next().await {
        racer.unwrap();
    }
    let row = setup
        .query_one(
            "SELECT count(*), count(DISTINCT email), sum(hits) FROM signups",
            &[],
        )
        .await
        .unwrap();
    let (rows, emails, hits): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    // Every email (and every second racer's '.two' email) once; one hit per upsert of it.
    assert_eq!((rows, emails), (2 * EMAILS, 2 * EMAILS));
    assert_eq!(hits, CLIENTS * EMAILS + CLIENTS / 2 * EMAILS);
}

/// A prepared `ON CONFLICT DO NOTHING` without a target skips rows that meet any unique
/// constraint the table has when it runs, including one created after it was prepared.
#[tokio::test]
async fn prepared_do_nothing_skips_conflicts_on_unique_constraints_added_after_prepare() {
    let server = TestServer::start();
    let client = server.root().await;
    client
        .batch_execute("CREATE TABLE handles (id BIGINT PRIMARY KEY, handle TEXT)")
        .await
        .unwrap();
    let insert = client
        .prepare("INSERT INTO handles VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .await
        .unwrap();
    let mut written = Vec::new();
    for (id, handle) in [(1i64, "ann"), (2, "ann"), (1, "bob")] {
        written.push(client.execute(&insert, &[&id, &handle]).await.unwrap());
    }
    assert_eq!(written, [1, 1, 0], "only the primary key decides at first");
    client
        .batch_execute("DELETE FROM handles WHERE id = 2; CREATE UNIQUE INDEX handles_handle ON handles (handle)")
        .await
        .unwrap();
    written.clear();
    for (id, handle) in [(3i64, "ann"), (3, "cy"), (4, "cy"), (5, "dee")] {
        written.push(client.execute(&insert, &[&id, &handle]).await.unwrap());
    }
    assert_eq!(written, [0, 1, 0, 1], "the new unique index decides too");
    let by_target = client
        .prepare("INSERT INTO handles VALUES ($1, $2) ON CONFLICT (handle) DO NOTHING")
        .await
        .unwrap();
    assert_eq!(
        client.execute(&by_target, &[&6i64, &"ann"]).await.unwrap(),
        0
    );
    let other_key = client.execute(&by_target, &[&1i64, &"eve"]).await;
    assert_eq!(
        other_key.map_err(|e| sqlstate(&e)),
        Err("23505".into()),
        "the primary key is not an arbiter of ON CONFLICT (handle)"
    );
    let rows: Vec<(i64, String)> = client
        .query("SELECT id, handle FROM handles ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        rows,
        [(1, "ann".into()), (3, "cy".into()), (5, "dee".into())]
    );
}

/// An identity column declared GENERATED ALWAYS refuses a given value on the fast path too.
#[tokio::test]
async fn prepared_inserts_refuse_values_for_always_identity_columns() {
    let server = TestServer::start();
    let client = server.root().await;
    client
        .batch_execute(
            "CREATE TABLE ids (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v TEXT)",
        )
        .await
        .unwrap();
    let insert = client
        .prepare("INSERT INTO ids (id, v) VALUES ($1, $2)")
        .await
        .unwrap();
    let result = client.execute(&insert, &[&1i64, &"x"]).await;
    assert_eq!(result.map_err(|e| sqlstate(&e)), Err("428C9".into()));
    let by_default = client
        .prepare("INSERT INTO ids (v) VALUES ($1)")
        .await
        .unwrap();
    assert_eq!(client.execute(&by_default, &[&"y"]).await.unwrap(), 1);
    let row = client
        .query_one("SELECT id, v FROM ids", &[])
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, i64>(0), row.get::<_, String>(1)),
        (1, "y".into())
    );
}

/// Indexes and foreign keys created or dropped (by another session) between two executions
/// of one prepared INSERT govern the second: the storage forgets what it kept of a table's
/// constraints whenever the catalog changes.
#[tokio::test]
async fn row_writes_follow_constraints_created_and_dropped_between_them() {
    let server = TestServer::start();
    let client = server.root().await;
    let ddl = server.root().await;
    client
        .batch_execute(
            "CREATE TABLE owners (id INT PRIMARY KEY);
             INSERT INTO owners VALUES (1);
             CREATE TABLE pets (id INT PRIMARY KEY, owner INT, tag TEXT)",
        )
        .await
        .unwrap();
    let insert = client
        .prepare("INSERT INTO pets VALUES ($1, $2, $3)")
        .await
        .unwrap();
    let run = |id: i32, owner: i32, tag: &'static str| {
        let (client, insert) = (&client, &insert);
        async move {
            client
                .execute(insert, &[&id, &owner, &tag])
                .await
                .map_err(|e| sqlstate(&e))
        }
    };
    assert_eq!(run(1, 1, "a").await, Ok(1));
    assert_eq!(run(2, 9, "a").await, Ok(1));
    ddl.batch_execute("DELETE FROM pets WHERE id = 2; CREATE UNIQUE INDEX pets_tag ON pets (tag)")
        .await
        .unwrap();
    assert_eq!(run(3, 1, "a").await, Err("23505".into()));
    assert_eq!(run(3, 1, "b").await, Ok(1));
    ddl.batch_execute(
        "ALTER TABLE pets ADD CONSTRAINT pets_owner FOREIGN KEY (owner) REFERENCES owners",
    )
    .await
    .unwrap();
    assert_eq!(run(4, 9, "c").await, Err("23503".into()));
    assert_eq!(run(4, 1, "c").await, Ok(1));
    // The referenced side sees the new constraint too: its row is still referred to.
    let delete = client.execute("DELETE FROM owners WHERE id = 1", &[]).await;
    assert_eq!(delete.map_err(|e| sqlstate(&e)), Err("23503".into()));
    ddl.batch_execute("ALTER TABLE pets DROP CONSTRAINT pets_owner; DROP INDEX pets_tag")
        .await
        .unwrap();
    assert_eq!(run(5, 9, "a").await, Ok(1));
    let count = client
        .query_one("SELECT count(*) FROM pets", &[])
        .await
        .unwrap();
    assert_eq!(count.get::<_, i64>(0), 4);
}
