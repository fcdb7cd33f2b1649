//! Every role against every privileged statement, each cell asserted: what `user`, `service`,
//! `dba` and `system` logins may do, the `system.*` tables read through every part of a
//! statement, and sessions whose user is demoted or dropped while connected.

mod common;

use common::{TestServer, message, sqlstate};
use tokio_postgres::Client;

const ROLES: [&str; 4] = ["user", "service", "dba", "system"];

/// Allowed from this role upwards (an index into [`ROLES`]); `None`: refused to every role.
fn allowed(from: &str) -> Option<usize> {
    ROLES.iter().position(|r| *r == from)
}

/// Runs `sql` and returns its SQLSTATE, or "ok".
async fn outcome(client: &Client, sql: &str) -> String {
    match client.batch_execute(sql).await {
        Ok(()) => "ok".into(),
        Err(e) => {
            let code = sqlstate(&e);
            assert_ne!(code, "XX000", "{sql}: {}", message(&e));
            code
        }
    }
}

async fn login_per_role(server: &TestServer, root: &Client) -> Vec<Client> {
    let mut clients = Vec::new();
    for role in ROLES {
        root.batch_execute(&format!(
            "CREATE USER login_{role} WITH PASSWORD '{role}-secret' ROLE {role}"
        ))
        .await
        .unwrap();
        clients.push(
            server
                .connect(&format!("login_{role}"), &format!("{role}-secret"))
                .await
                .unwrap(),
        );
    }
    clients
}

#[tokio::test]
async fn each_role_may_run_exactly_its_statements() {
    let server = TestServer::start();
    let root = server.root().await;
    let out = tempfile::tempdir().unwrap();
    root.batch_execute(
        "CREATE NAMESPACE app;
         CREATE TABLE app.notes (id INT PRIMARY KEY, v TEXT);
         INSERT INTO app.notes VALUES (1, 'one')",
    )
    .await
    .unwrap();
    let archive = out.path().join("for-restore.tar.gz");
    let (_, status, msg) = common::run_job(
        &root,
        &format!("BACKUP DATABASE TO '{}'", archive.display()),
    )
    .await;
    assert_eq!(status, "Completed", "{msg}");
    for role in ROLES {
        root.batch_execute(&format!(
            "CREATE USER victim_{role} WITH PASSWORD 'v' ROLE user;
             CREATE USER renamed_{role} WITH PASSWORD 'v' ROLE user"
        ))
        .await
        .unwrap();
    }
    let clients = login_per_role(&server, &root).await;

    // (statement with {r} for the role's name, the lowest role allowed to run it)
    let matrix: Vec<(String, Option<usize>)> = vec![
        ("CREATE NAMESPACE ns_{r}".into(), allowed("dba")),
        ("CREATE TABLE app.t_{r} (id INT PRIMARY KEY)".into(), allowed("service")),
        ("INSERT INTO app.notes VALUES ((SELECT 10), '{r}')".into(), allowed("user")),
        ("UPDATE app.notes SET v = '{r}' WHERE id = 1".into(), allowed("user")),
        ("DELETE FROM app.notes WHERE v = 'nobody-{r}'".into(), allowed("user")),
        ("SELECT * FROM app.notes".into(), allowed("user")),
        ("SELECT user_id FROM system.users".into(), allowed("dba")),
        ("SELECT job_id FROM kalamdb.system.jobs".into(), allowed("dba")),
        ("WITH u AS (SELECT user_id FROM system.users) SELECT count(*) FROM u".into(), allowed("dba")),
        ("SELECT * FROM app.notes WHERE v IN (SELECT user_id FROM system.users)".into(), allowed("dba")),
        ("INSERT INTO app.notes SELECT 1000 + count(*), '{r}' FROM system.users".into(), allowed("dba")),
        ("UPDATE app.notes SET v = (SELECT max(job_id) FROM system.jobs) WHERE id = 1".into(), allowed("dba")),
        ("DELETE FROM app.notes WHERE EXISTS (SELECT 1 FROM system.users) AND id = -1".into(), allowed("dba")),
        ("INSERT INTO app.notes VALUES (2000, 'x') ON CONFLICT (id) DO UPDATE SET v = (SELECT max(user_id) FROM system.users)".into(), allowed("dba")),
        ("UPDATE app.notes SET v = v WHERE id = 1 RETURNING (SELECT count(*) FROM system.users)".into(), allowed("dba")),
        ("FLUSH TABLE app.notes".into(), allowed("dba")),
        ("KILL JOB 'FL-does-not-exist'".into(), allowed("dba")),
        (format!("BACKUP DATABASE TO '{}/{{r}}.tar.gz'", out.path().display()), allowed("dba")),
        (format!("RESTORE DATABASE FROM '{}'", archive.display()), allowed("dba")),
        ("CLUSTER SNAPSHOT".into(), allowed("dba")),
        ("CREATE USER new_{r} WITH PASSWORD 'p' ROLE user".into(), allowed("dba")),
        ("CREATE USER new_dba_{r} WITH PASSWORD 'p' ROLE dba".into(), allowed("dba")),
        ("CREATE USER new_system_{r} WITH PASSWORD 'p' ROLE system".into(), allowed("system")),
        ("ALTER USER renamed_{r} WITH PASSWORD 'changed'".into(), allowed("dba")),
        ("ALTER USER login_{r} WITH PASSWORD '{r}-secret'".into(), allowed("user")),
        ("ALTER USER login_{r} ROLE system".into(), allowed("system")),
        ("ALTER USER root WITH PASSWORD 'taken-over'".into(), allowed("system")),
        ("DROP USER victim_{r}".into(), allowed("dba")),
    ];
    let mut failures = Vec::new();
    for (template, lowest) in &matrix {
        for (index, (role, client)) in ROLES.iter().zip(&clients).enumerate() {
            let sql = template.replace("{r}", role);
            let got = outcome(client, &sql).await;
            // Allowed statements may still fail for their own reasons (a missing job is
            // 42704), never for the role.
            let ok = match lowest {
                Some(lowest) if index >= *lowest => got != "42501",
                _ => got == "42501",
            };
            if !ok {
                failures.push(format!("{role}: {sql} -> {got}"));
            }
        }
        // Each cell starts from the same search_path.
        for client in &clients {
            client.batch_execute("RESET search_path").await.unwrap();
        }
    }
    assert!(
        failures.is_empty(),
        "cells that disagree:\n{}",
        failures.join("\n")
    );
    // search_path never reaches the system schema: its tables are named in full or not at all.
    for client in &clients {
        let got = outcome(
            client,
            "SET search_path = system, public; SELECT user_id FROM users",
        )
        .await;
        assert_eq!(got, "42P01");
        client.batch_execute("RESET search_path").await.unwrap();
    }
    // The cells that must succeed did: one sample of each kind, checked through root.
    let rows = root
        .query(
            "SELECT user_id FROM system.users WHERE user_id LIKE 'new_%' ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    let created: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(
        created,
        [
            "new_dba",
            "new_dba_dba",
            "new_dba_system",
            "new_system",
            "new_system_system"
        ]
    );
    let rows = root
        .query(
            "SELECT user_id FROM system.users WHERE user_id LIKE 'victim_%' ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    let left: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(left, ["victim_service", "victim_user"]);
}

#[tokio::test]
async fn a_demoted_or_dropped_user_loses_rights_at_the_next_statement() {
    let server = TestServer::start();
    let root = server.root().await;
    root.batch_execute(
        "CREATE USER ada WITH PASSWORD 'ada-secret' ROLE dba;
         CREATE USER bo WITH PASSWORD 'bo-secret' ROLE user;
         CREATE TABLE notes (id INT PRIMARY KEY)",
    )
    .await
    .unwrap();
    let ada = server.connect("ada", "ada-secret").await.unwrap();
    let bo = server.connect("bo", "bo-secret").await.unwrap();
    // A prepared statement is checked again when it runs, not only when it was parsed.
    let read_users = ada
        .prepare("SELECT user_id FROM system.users")
        .await
        .unwrap();
    ada.query(&read_users, &[]).await.unwrap();
    bo.batch_execute("INSERT INTO notes VALUES (1)")
        .await
        .unwrap();

    root.batch_execute("ALTER USER ada ROLE user; DROP USER bo")
        .await
        .unwrap();
    let err = ada.query(&read_users, &[]).await.unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "{}", message(&err));
    assert_eq!(
        outcome(&ada, "SELECT user_id FROM system.users").await,
        "42501"
    );
    assert_eq!(outcome(&ada, "CREATE NAMESPACE later").await, "42501");
    assert_eq!(outcome(&ada, "SELECT count(*) FROM notes").await, "ok");
    for sql in [
        "SELECT 1",
        "INSERT INTO notes VALUES (2)",
        "SELECT * FROM notes",
    ] {
        let err = bo.batch_execute(sql).await.unwrap_err();
        assert_eq!(sqlstate(&err), "28000", "{sql}");
        assert_eq!(
            message(&err),
            "role \"bo\" was dropped: this session can no longer run statements"
        );
    }
    let rows = root.query("SELECT id FROM notes", &[]).await.unwrap();
    assert_eq!(rows.len(), 1, "the dropped user's INSERT wrote nothing");
    // Promotion works the same way, at once.
    root.batch_execute("ALTER USER ada ROLE dba").await.unwrap();
    ada.query(&read_users, &[]).await.unwrap();
}
