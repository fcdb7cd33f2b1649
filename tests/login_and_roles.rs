//! Authentication and authorization through a real client: SCRAM logins, uniform failures,
//! lockout, role checks, user management, and persistence of users across restarts.

mod common;

use common::{ROOT_PASSWORD, ServerOptions, TestServer, message, sqlstate};

#[tokio::test]
async fn root_logs_in_with_scram_and_runs_select_1() {
    let server = TestServer::start();
    let client = server.root().await;
    let row = client.query_one("SELECT 1", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 1);
}

#[tokio::test]
async fn wrong_password_and_unknown_user_fail_identically_with_28p01() {
    let server = TestServer::start();
    let wrong = server
        .connect("root", "nope")
        .await
        .expect_err("wrong password is refused");
    let unknown = server
        .connect("ghost", "nope")
        .await
        .expect_err("unknown user is refused");
    assert_eq!(sqlstate(&wrong), "28P01");
    assert_eq!(sqlstate(&unknown), "28P01");
    assert_eq!(
        message(&wrong),
        "password authentication failed for user \"root\""
    );
    assert_eq!(
        message(&unknown),
        "password authentication failed for user \"ghost\""
    );
}

#[tokio::test]
async fn repeated_failures_lock_the_user_out_for_a_while() {
    let server = TestServer::start_with(ServerOptions {
        max_failed_attempts: 3,
        lockout_seconds: 2,
        ..Default::default()
    });
    let root = server.root().await;
    root.batch_execute("CREATE USER alice WITH PASSWORD 'alice-pw'")
        .await
        .unwrap();
    for _ in 0..3 {
        assert!(server.connect("alice", "bad").await.is_err());
    }
    let locked = server
        .connect("alice", "alice-pw")
        .await
        .expect_err("locked out");
    assert_eq!(sqlstate(&locked), "28P01");
    assert!(server.log().contains("locked out"), "the lockout is logged");
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    server
        .connect("alice", "alice-pw")
        .await
        .expect("lockout expires");
}

#[tokio::test]
async fn statements_beyond_the_callers_role_are_refused_with_42501() {
    let server = TestServer::start();
    let root = server.root().await;
    root.batch_execute(
        "CREATE USER u WITH PASSWORD 'u-pw' ROLE user; CREATE USER s WITH PASSWORD 's-pw' ROLE service",
    )
    .await
    .unwrap();
    for (user, password) in [("u", "u-pw"), ("s", "s-pw")] {
        let client = server.connect(user, password).await.unwrap();
        let err = client
            .query("SELECT * FROM system.users", &[])
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&err), "42501", "{user}");
        assert!(
            message(&err).contains("requires the dba role"),
            "{}",
            message(&err)
        );
        let err = client
            .batch_execute("CREATE USER x WITH PASSWORD 'x'")
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&err), "42501");
        // The connection stays usable after a refusal.
        assert_eq!(
            client
                .query_one("SELECT 2", &[])
                .await
                .unwrap()
                .get::<_, i32>(0),
            2
        );
    }
}

#[tokio::test]
async fn a_dba_manages_users_but_cannot_touch_system_users() {
    let server = TestServer::start();
    let root = server.root().await;
    root.batch_execute("CREATE USER d WITH PASSWORD 'd-pw' ROLE dba")
        .await
        .unwrap();
    let dba = server.connect("d", "d-pw").await.unwrap();
    dba.batch_execute("CREATE USER e WITH PASSWORD 'e-pw' ROLE service")
        .await
        .unwrap();
    dba.batch_execute("ALTER USER e ROLE user").await.unwrap();
    let err = dba
        .batch_execute("ALTER USER root WITH PASSWORD 'hijack'")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501");
    let err = dba
        .batch_execute("CREATE USER god WITH PASSWORD 'x' ROLE system")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501");
    let err = dba
        .batch_execute("CREATE USER e WITH PASSWORD 'again'")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42710");
    dba.batch_execute("DROP USER e").await.unwrap();
    let err = dba.batch_execute("DROP USER e").await.unwrap_err();
    assert_eq!(sqlstate(&err), "42704");
    dba.batch_execute("DROP USER IF EXISTS e").await.unwrap();
    assert!(
        server.connect("e", "e-pw").await.is_err(),
        "a dropped user cannot log in"
    );
}

#[tokio::test]
async fn users_change_their_own_password_only() {
    let server = TestServer::start();
    let root = server.root().await;
    root.batch_execute("CREATE USER a WITH PASSWORD 'old'; CREATE USER b WITH PASSWORD 'b-pw'")
        .await
        .unwrap();
    let a = server.connect("a", "old").await.unwrap();
    a.batch_execute("ALTER USER a WITH PASSWORD 'new'")
        .await
        .unwrap();
    let err = a
        .batch_execute("ALTER USER b WITH PASSWORD 'mine'")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501");
    assert!(server.connect("a", "old").await.is_err());
    server.connect("a", "new").await.unwrap();
}

#[tokio::test]
async fn system_users_shows_roles_and_logins_but_no_secrets() {
    let server = TestServer::start();
    let root = server.root().await;
    root.batch_execute("CREATE USER ops WITH PASSWORD 'ops-pw' ROLE dba")
        .await
        .unwrap();
    // A login time is written just after the login (a login never waits for the store's
    // write lock), so it may take a moment to appear.
    let mut rows = Vec::new();
    for _ in 0..100 {
        rows = root
            .query("SELECT * FROM system.users ORDER BY user_id", &[])
            .await
            .unwrap();
        let root_login: Option<chrono::DateTime<chrono::Utc>> = rows[1].get("last_login_at");
        if root_login.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let columns: Vec<&str> = rows[0].columns().iter().map(|c| c.name()).collect();
    assert_eq!(
        columns,
        [
            "user_id",
            "role",
            "created_at",
            "updated_at",
            "last_login_at"
        ]
    );
    let users: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        users,
        [
            ("ops".into(), "dba".into()),
            ("root".into(), "system".into())
        ]
    );
    let root_login: Option<chrono::DateTime<chrono::Utc>> = rows[1].get("last_login_at");
    assert!(root_login.is_some(), "root's login is recorded");
    let ops_login: Option<chrono::DateTime<chrono::Utc>> = rows[0].get("last_login_at");
    assert!(ops_login.is_none());
}

#[tokio::test]
async fn users_and_passwords_survive_a_restart() {
    let mut server = TestServer::start();
    {
        let root = server.root().await;
        root.batch_execute("CREATE USER keeper WITH PASSWORD 'kept-secret-7f3a' ROLE service")
            .await
            .unwrap();
    }
    server.restart();
    let keeper = server
        .connect("keeper", "kept-secret-7f3a")
        .await
        .expect("user survives restart");
    keeper.query_one("SELECT 1", &[]).await.unwrap();
    let raw = std::fs::read_dir(server.data_path().join("rocksdb"))
        .unwrap()
        .filter_map(|e| std::fs::read(e.unwrap().path()).ok())
        .any(|bytes| bytes.windows(16).any(|w| w == b"kept-secret-7f3a"));
    assert!(!raw, "the password is never stored in plain text");
    let _ = ROOT_PASSWORD;
}
