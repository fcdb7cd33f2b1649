//! Foreign keys through real clients: racing writers never leave a row referring to a key
//! that is gone, cascades reach rows already flushed to segments, and checks inside
//! transaction blocks hold against what other sessions commit meanwhile.

mod common;

use common::{TestServer, run_job, sqlstate};

/// Rows of `child` whose `column` refers to no row of `parent`: the full consistency scan.
async fn orphans(client: &tokio_postgres::Client, child: &str, column: &str, parent: &str) -> i64 {
    client
        .query_one(
            &format!(
                "SELECT count(*) FROM {child} c WHERE c.{column} IS NOT NULL \
                 AND c.{column} NOT IN (SELECT id FROM {parent})"
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn eight_clients_racing_on_a_referenced_row_never_leave_an_orphan() {
    let server = TestServer::start();
    let setup = server.root().await;
    setup
        .batch_execute(
            "CREATE TABLE parents (id INT PRIMARY KEY); \
             CREATE TABLE kids (id INT PRIMARY KEY, parent INT REFERENCES parents); \
             INSERT INTO parents SELECT value FROM generate_series(1, 4) AS g(value)",
        )
        .await
        .unwrap();
    // Each round: four clients insert rows referring to parent 1 while four try to delete
    // it. Deletes and inserts are applied one at a time, so either a delete wins before any
    // insert (which then fails) or an insert lands first (and every delete fails).
    for round in 0..6i32 {
        setup
            .execute("INSERT INTO parents VALUES (1) ON CONFLICT DO NOTHING", &[])
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for client_no in 0..8i32 {
            let client = server.root().await;
            tasks.push(tokio::spawn(async move {
                let result = if client_no % 2 == 0 {
                    let id = round * 100 + client_no;
                    client
                        .execute("INSERT INTO kids VALUES ($1, 1)", &[&id])
                        .await
                } else {
                    client
                        .execute("DELETE FROM parents WHERE id = 1", &[])
                        .await
                };
                (client_no % 2 == 0, result.map_err(|e| sqlstate(&e)))
            }));
        }
        let (mut inserted, mut deleted) = (0, 0);
        for task in tasks {
            match task.await.unwrap() {
                (true, Ok(_)) => inserted += 1,
                (false, Ok(n)) => deleted += n,
                (_, Err(state)) => assert_eq!(state, "23503", "round {round}"),
            }
        }
        assert!(
            inserted == 0 || deleted == 0,
            "round {round}: {inserted} inserts and {deleted} deletes both succeeded"
        );
        assert_eq!(orphans(&setup, "kids", "parent", "parents").await, 0);
        // Free parent 1 for the next round.
        setup
            .batch_execute("DELETE FROM kids WHERE parent = 1")
            .await
            .unwrap();
    }
    // Blocks: each inserts a row referring to a parent another block deletes; the block
    // that commits second fails, whichever it is.
    let mut tasks = Vec::new();
    for client_no in 0..8i32 {
        let client = server.root().await;
        tasks.push(tokio::spawn(async move {
            let sql = if client_no % 2 == 0 {
                format!(
                    "BEGIN; INSERT INTO kids VALUES ({}, 2); COMMIT",
                    1000 + client_no
                )
            } else {
                "BEGIN; DELETE FROM parents WHERE id = 2; COMMIT".to_owned()
            };
            client.batch_execute(&sql).await.map_err(|e| sqlstate(&e))
        }));
    }
    for task in tasks {
        if let Err(state) = task.await.unwrap() {
            assert_eq!(state, "23503");
        }
    }
    assert_eq!(orphans(&setup, "kids", "parent", "parents").await, 0);
}

#[tokio::test]
async fn cascades_and_checks_reach_rows_flushed_to_segments() {
    let server = TestServer::start();
    let client = server.root().await;
    client
        .batch_execute(
            "CREATE TABLE teams (id INT PRIMARY KEY, name TEXT); \
             CREATE TABLE players (id INT PRIMARY KEY, team INT REFERENCES teams ON DELETE CASCADE ON UPDATE CASCADE); \
             CREATE TABLE badges (id INT PRIMARY KEY, player INT REFERENCES players ON DELETE SET NULL); \
             INSERT INTO teams SELECT value, 'team' || value FROM generate_series(1, 20) AS g(value); \
             INSERT INTO players SELECT value, value % 20 + 1 FROM generate_series(1, 2000) AS g(value); \
             INSERT INTO badges SELECT value, value FROM generate_series(1, 2000) AS g(value)",
        )
        .await
        .unwrap();
    for table in ["teams", "players", "badges"] {
        let (_, status, _) = run_job(&client, &format!("FLUSH TABLE {table}")).await;
        assert_eq!(status, "Completed", "{table}");
    }
    // Deleting a team cascades to its flushed players, and from them to their badges.
    client
        .batch_execute("DELETE FROM teams WHERE id = 3")
        .await
        .unwrap();
    let count = |sql: &'static str| {
        let client = &client;
        async move { client.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    assert_eq!(
        count("SELECT count(*) FROM players WHERE team = 3").await,
        0
    );
    assert_eq!(count("SELECT count(*) FROM players").await, 1900);
    assert_eq!(
        count("SELECT count(*) FROM badges WHERE player IS NULL").await,
        100
    );
    // A new key cascades to flushed rows too.
    client
        .batch_execute("UPDATE teams SET id = 300 WHERE id = 4")
        .await
        .unwrap();
    assert_eq!(
        count("SELECT count(*) FROM players WHERE team = 300").await,
        100
    );
    assert_eq!(
        count("SELECT count(*) FROM players WHERE team = 4").await,
        0
    );
    // A flushed row still refers to its key: the referenced row cannot go under NO ACTION.
    client
        .batch_execute(
            "CREATE TABLE fans (id INT PRIMARY KEY, team INT REFERENCES teams); \
             INSERT INTO fans VALUES (1, 5)",
        )
        .await
        .unwrap();
    let (_, status, _) = run_job(&client, "FLUSH TABLE fans").await;
    assert_eq!(status, "Completed");
    let err = client
        .batch_execute("DELETE FROM teams WHERE id = 5")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "23503");
    let err = client
        .execute("INSERT INTO fans VALUES (2, 999)", &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "23503");
    assert_eq!(orphans(&client, "players", "team", "teams").await, 0);
    assert_eq!(orphans(&client, "badges", "player", "players").await, 0);
    assert_eq!(orphans(&client, "fans", "team", "teams").await, 0);
}

#[tokio::test]
async fn a_block_that_refers_to_a_row_deleted_by_another_session_fails_at_commit() {
    let server = TestServer::start();
    let first = server.root().await;
    let second = server.root().await;
    first
        .batch_execute(
            "CREATE TABLE owners (id INT PRIMARY KEY); \
             CREATE TABLE pets (id INT PRIMARY KEY, owner INT REFERENCES owners); \
             INSERT INTO owners VALUES (1), (2)",
        )
        .await
        .unwrap();
    first
        .batch_execute("BEGIN; INSERT INTO pets VALUES (1, 1)")
        .await
        .unwrap();
    // The block's row is not committed: another session may delete the owner meanwhile.
    second
        .batch_execute("DELETE FROM owners WHERE id = 1")
        .await
        .unwrap();
    let err = first.batch_execute("COMMIT").await.unwrap_err();
    assert_eq!(sqlstate(&err), "23503");
    let pets: i64 = first
        .query_one("SELECT count(*) FROM pets", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(pets, 0);
    // And the other way round: the block deletes an owner another session's row refers to.
    first
        .batch_execute("BEGIN; DELETE FROM owners WHERE id = 2")
        .await
        .unwrap();
    second
        .batch_execute("INSERT INTO pets VALUES (2, 2)")
        .await
        .unwrap();
    let err = first.batch_execute("COMMIT").await.unwrap_err();
    assert_eq!(sqlstate(&err), "23503");
    assert_eq!(orphans(&first, "pets", "owner", "owners").await, 0);
}

#[tokio::test]
async fn a_cascade_that_breaks_a_check_on_flushed_rows_changes_nothing() {
    let mut server = TestServer::start();
    let client = server.root().await;
    client
        .batch_execute(
            "CREATE TABLE depots (id INT PRIMARY KEY); \
             CREATE TABLE crates (id INT PRIMARY KEY, depot INT REFERENCES depots ON UPDATE CASCADE, \
                CHECK (depot < 1000)); \
             INSERT INTO depots SELECT value FROM generate_series(1, 10) AS g(value); \
             INSERT INTO crates SELECT value, value % 10 + 1 FROM generate_series(1, 500) AS g(value)",
        )
        .await
        .unwrap();
    for table in ["depots", "crates"] {
        let (_, status, _) = run_job(&client, &format!("FLUSH TABLE {table}")).await;
        assert_eq!(status, "Completed", "{table}");
    }
    // Depot 4's fifty flushed crates would move to 4000, past their CHECK.
    let err = client
        .batch_execute("UPDATE depots SET id = 4000 WHERE id = 4")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "23514", "{err:?}");
    let unchanged = |client: tokio_postgres::Client| async move {
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM crates WHERE depot = 4), \
                        (SELECT count(*) FROM depots WHERE id = 4)",
                &[],
            )
            .await
            .unwrap();
        assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (50, 1));
    };
    unchanged(client).await;
    let client = server.root().await;
    // Within the CHECK the same cascade goes through.
    client
        .batch_execute("UPDATE depots SET id = 400 WHERE id = 4")
        .await
        .unwrap();
    let moved = |client: tokio_postgres::Client| async move {
        let row = client
            .query_one("SELECT count(*) FROM crates WHERE depot = 400", &[])
            .await
            .unwrap();
        assert_eq!(row.get::<_, i64>(0), 50);
        assert_eq!(orphans(&client, "crates", "depot", "depots").await, 0);
    };
    moved(client).await;
    server.restart();
    moved(server.root().await).await;
}
