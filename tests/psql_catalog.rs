//! psql's own catalog commands against KalamDB: `\dt`, `\d`, `\du`, `\dn`, `\l`.

mod common;

use common::TestServer;

fn psql(server: &TestServer, command: &str) -> String {
    let out = common::psql(server, &["-c", command]);
    assert!(
        out.status.success(),
        "psql {command} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn lines_containing<'a>(text: &'a str, needle: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.contains(needle)).collect()
}

#[tokio::test]
async fn psql_describes_tables_users_namespaces_and_the_database() {
    let server = TestServer::start();
    let client = server.root().await;
    client
        .batch_execute(
            "CREATE NAMESPACE app; \
             CREATE TABLE app.orders (id BIGINT PRIMARY KEY, customer TEXT NOT NULL, total DOUBLE PRECISION, placed DATE, \
             code VARCHAR(12) NOT NULL DEFAULT 'new', amount NUMERIC(10,2)); \
             CREATE TABLE app.lines (order_id BIGINT, line INT, PRIMARY KEY (order_id, line)); \
             CREATE USER analyst WITH PASSWORD 'a-pw' ROLE dba",
        )
        .await
        .unwrap();

    let tables = psql(&server, r"\dt app.*");
    let row = lines_containing(&tables, "orders");
    assert_eq!(row.len(), 1, "{tables}");
    assert!(
        row[0].contains("app") && row[0].contains("table"),
        "{tables}"
    );

    let described = psql(&server, r"\d app.orders");
    assert!(described.contains(r#"Table "app.orders""#), "{described}");
    for (column, ty) in [
        ("id", "bigint"),
        ("customer", "text"),
        ("total", "double precision"),
        ("placed", "date"),
        ("code", "character varying(12)"),
        ("amount", "numeric(10,2)"),
    ] {
        let line = lines_containing(&described, &format!(" {column} "));
        assert_eq!(line.len(), 1, "{column} in {described}");
        assert!(line[0].contains(ty), "{column} is {ty}: {described}");
    }
    assert!(
        lines_containing(&described, " customer ")[0].contains("not null"),
        "{described}"
    );
    let code = lines_containing(&described, " code ");
    assert!(
        code[0].contains("not null") && code[0].contains("'new'"),
        "code's default: {described}"
    );
    assert!(
        described.contains("Indexes:")
            && described.contains(r#""orders_pkey" PRIMARY KEY, btree (id)"#),
        "{described}"
    );
    let lines = psql(&server, r"\d app.lines");
    assert!(
        lines.contains(r#""lines_pkey" PRIMARY KEY, btree (order_id, line)"#),
        "{lines}"
    );
    let index = psql(&server, r"\d app.lines_pkey");
    for expected in [
        r#"Index "app.lines_pkey""#,
        r#"primary key, btree, for table "app.lines""#,
    ] {
        assert!(index.contains(expected), "{expected} in {index}");
    }
    let key_columns: Vec<&str> = index
        .lines()
        .filter(|l| l.contains("| yes"))
        .map(|l| l.split('|').next().unwrap().trim())
        .collect();
    assert_eq!(key_columns, ["order_id", "line"], "{index}");
    let indexes = psql(&server, r"\di app.*");
    let row = lines_containing(&indexes, "orders_pkey");
    assert!(
        row.len() == 1 && row[0].contains("index") && row[0].contains("orders"),
        "{indexes}"
    );

    // Sizes: a table's rows, psql's \dt+ and \l+, and pg_size_pretty as PostgreSQL prints.
    client
        .batch_execute("INSERT INTO app.orders (id, customer) SELECT value, 'c' || value FROM generate_series(1, 2000) AS g(value)")
        .await
        .unwrap();
    let row = client
        .query_one(
            "SELECT pg_table_size('app.orders'::regclass), pg_table_size('app.lines'::regclass), \
             pg_database_size('kalamdb'), pg_size_pretty(CAST(20971520 AS BIGINT))",
            &[],
        )
        .await
        .unwrap();
    let (orders, lines, database): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert!(orders > 2000 * 8, "2000 rows take more than {orders} bytes");
    assert_eq!(lines, 0, "an empty table");
    assert!(database >= orders, "{database} < {orders}");
    assert_eq!(row.get::<_, String>(3), "20 MB");
    let sized = psql(&server, r"\dt+ app.*");
    let orders_line = lines_containing(&sized, "orders");
    assert!(
        orders_line.len() == 1 && orders_line[0].contains(" kB"),
        "orders' size in kB: {sized}"
    );
    assert!(
        lines_containing(&sized, " lines ")[0].contains("0 bytes"),
        "{sized}"
    );
    let databases = psql(&server, r"\l+");
    assert!(
        lines_containing(&databases, "kalamdb")[0].contains(" kB"),
        "{databases}"
    );

    let users = psql(&server, r"\du");
    assert!(
        users.contains("root") && users.contains("analyst"),
        "{users}"
    );

    let namespaces = psql(&server, r"\dn");
    assert!(
        namespaces.contains("app") && namespaces.contains("public"),
        "{namespaces}"
    );

    let databases = psql(&server, r"\l");
    assert!(databases.contains("kalamdb"), "{databases}");
    assert!(
        !databases.contains("postgres"),
        "only kalamdb is listed: {databases}"
    );
}

#[tokio::test]
async fn psql_lists_sequences_and_shows_serial_and_identity_columns() {
    let server = TestServer::start();
    let client = server.root().await;
    client
        .batch_execute(
            "CREATE NAMESPACE app; \
             CREATE TABLE app.tickets (id SERIAL PRIMARY KEY, title TEXT); \
             CREATE TABLE app.events (id BIGINT GENERATED ALWAYS AS IDENTITY, what TEXT); \
             CREATE SEQUENCE app.invoice_no START 1000",
        )
        .await
        .unwrap();

    let listed = psql(&server, r"\ds app.*");
    for name in ["tickets_id_seq", "events_id_seq", "invoice_no"] {
        let row = lines_containing(&listed, name);
        assert_eq!(row.len(), 1, "{name} in {listed}");
        assert!(
            row[0].contains("app") && row[0].contains("sequence"),
            "{listed}"
        );
    }

    let tickets = psql(&server, r"\d app.tickets");
    let id = lines_containing(&tickets, " id ");
    assert_eq!(id.len(), 1, "{tickets}");
    assert!(
        id[0].contains("not null") && id[0].contains("nextval('app.tickets_id_seq'::regclass)"),
        "{tickets}"
    );

    let events = psql(&server, r"\d app.events");
    let id = lines_containing(&events, " id ");
    assert_eq!(id.len(), 1, "{events}");
    assert!(id[0].contains("generated always as identity"), "{events}");

    let parameters = psql(
        &server,
        "SELECT s.seqstart, s.seqincrement, s.seqmax FROM pg_catalog.pg_sequence s \
         JOIN pg_catalog.pg_class c ON c.oid = s.seqrelid WHERE c.relname = 'invoice_no'",
    );
    assert!(
        parameters.contains("1000") && parameters.contains("9223372036854775807"),
        "{parameters}"
    );
}

#[tokio::test]
async fn comments_show_in_psql_dt_plus_and_col_description() {
    let server = TestServer::start();
    let client = server.root().await;
    client
        .batch_execute(
            "CREATE TABLE public.notes (id INT PRIMARY KEY, body TEXT); \
             COMMENT ON TABLE public.notes IS 'meeting notes'; \
             COMMENT ON COLUMN public.notes.body IS 'what was said'",
        )
        .await
        .unwrap();
    let listed = psql(&server, r"\dt+ public.notes");
    assert!(listed.contains("meeting notes"), "{listed}");
    let column = psql(
        &server,
        "SELECT col_description(c.oid, a.attnum) FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid \
         WHERE c.relname = 'notes' AND a.attname = 'body'",
    );
    assert!(column.contains("what was said"), "{column}");
}

#[tokio::test]
async fn psql_lists_views_and_shows_their_definition() {
    let server = TestServer::start();
    let client = server.root().await;
    client
        .batch_execute(
            "CREATE NAMESPACE app; \
             CREATE TABLE app.orders (id INT PRIMARY KEY, customer TEXT, amount INT); \
             CREATE VIEW app.big_orders AS SELECT id, customer FROM app.orders WHERE amount > 10",
        )
        .await
        .unwrap();

    let listed = psql(&server, r"\dv app.*");
    let row = lines_containing(&listed, "big_orders");
    assert_eq!(row.len(), 1, "{listed}");
    assert!(
        row[0].contains("app") && row[0].contains("view"),
        "{listed}"
    );
    assert!(!listed.contains("table"), "only views: {listed}");

    let described = psql(&server, r"\d+ app.big_orders");
    assert!(
        described.contains(r#"View "app.big_orders""#),
        "{described}"
    );
    let customer = lines_containing(&described, " customer ");
    assert!(customer[0].contains("text"), "{described}");
    assert!(described.contains("View definition:"), "{described}");
    assert!(described.contains("amount > 10"), "{described}");

    // `\d+` of a table reads the same storage options.
    let table = psql(&server, r"\d+ app.orders");
    assert!(table.contains(r#"Table "app.orders""#), "{table}");
}

#[tokio::test]
async fn psql_lists_indexes_and_shows_indexes_and_constraints_of_a_table() {
    let server = TestServer::start();
    let client = server.root().await;
    client
        .batch_execute(
            "CREATE NAMESPACE shop; \
             CREATE TABLE shop.items (id INT PRIMARY KEY, sku TEXT UNIQUE, price INT CHECK (price > 0), kind TEXT); \
             CREATE INDEX items_kind_price ON shop.items (kind, price)",
        )
        .await
        .unwrap();

    let listed = psql(&server, r"\di shop.*");
    for index in ["items_pkey", "items_sku_key", "items_kind_price"] {
        let row = lines_containing(&listed, index);
        assert_eq!(row.len(), 1, "{listed}");
        assert!(
            row[0].contains("index") && row[0].contains("items"),
            "{listed}"
        );
    }

    let described = psql(&server, r"\d shop.items");
    assert!(described.contains("Indexes:"), "{described}");
    assert!(
        described.contains(r#""items_pkey" PRIMARY KEY, btree (id)"#),
        "{described}"
    );
    assert!(
        described.contains(r#""items_sku_key" UNIQUE CONSTRAINT, btree (sku)"#),
        "{described}"
    );
    assert!(
        described.contains(r#""items_kind_price" btree (kind, price)"#),
        "{described}"
    );
    assert!(described.contains("Check constraints:"), "{described}");
    assert!(
        described.contains(r#""items_price_check" CHECK (price > 0)"#),
        "{described}"
    );

    // An index described on its own lists its columns.
    let index = psql(&server, r"\d shop.items_kind_price");
    assert!(index.contains("kind"), "{index}");
    assert!(index.contains("price"), "{index}");
}

#[tokio::test]
async fn psql_shows_foreign_keys_and_the_tables_that_refer_to_a_table() {
    let server = TestServer::start();
    let client = server.root().await;
    client
        .batch_execute(
            "CREATE TABLE owners (id INT PRIMARY KEY); \
             CREATE TABLE pets (id INT PRIMARY KEY, owner INT REFERENCES owners ON DELETE CASCADE)",
        )
        .await
        .unwrap();
    let pets = psql(&server, r"\d pets");
    assert!(pets.contains("Foreign-key constraints:"), "{pets}");
    assert!(
        pets.contains(
            r#""pets_owner_fkey" FOREIGN KEY (owner) REFERENCES owners(id) ON DELETE CASCADE"#
        ),
        "{pets}"
    );
    let owners = psql(&server, r"\d owners");
    assert!(owners.contains("Referenced by:"), "{owners}");
    assert!(
        owners.contains(r#"TABLE "pets" CONSTRAINT "pets_owner_fkey" FOREIGN KEY (owner)"#),
        "{owners}"
    );
}

/// The OIDs of every kind of object, read in one session, by name.
async fn catalog_oids(client: &tokio_postgres::Client) -> Vec<(String, i64)> {
    let rows = client
        .query(
            "SELECT n.nspname || '.' || c.relname, CAST(c.oid AS BIGINT) FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname IN ('app', 'public') \
             UNION ALL SELECT 'namespace ' || nspname, CAST(oid AS BIGINT) FROM pg_catalog.pg_namespace \
             WHERE nspname IN ('app', 'public', 'pg_catalog') \
             UNION ALL SELECT 'constraint ' || conname, CAST(oid AS BIGINT) FROM pg_catalog.pg_constraint \
             WHERE conname IN ('orders_pkey', 'orders_customer_fkey') \
             ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

#[tokio::test]
async fn an_oid_names_the_same_object_in_every_session_and_after_a_restart() {
    let mut server = TestServer::start();
    let setup = server.root().await;
    setup
        .batch_execute(
            "CREATE NAMESPACE app; \
             CREATE TABLE app.customers (id INT PRIMARY KEY, name TEXT); \
             CREATE TABLE app.orders (id INT PRIMARY KEY, customer INT REFERENCES app.customers, total REAL); \
             CREATE INDEX orders_total ON app.orders (total); \
             CREATE SEQUENCE app.order_numbers; \
             CREATE VIEW app.big_orders AS SELECT * FROM app.orders WHERE total > 100; \
             CREATE TABLE public.notes (body TEXT)",
        )
        .await
        .unwrap();

    // A session that has only looked at the catalog in another order.
    let other = server.root().await;
    other
        .query(
            "SELECT * FROM pg_catalog.pg_class WHERE relname = 'notes'",
            &[],
        )
        .await
        .unwrap();
    let first = catalog_oids(&setup).await;
    assert_eq!(catalog_oids(&other).await, first);
    assert!(first.len() >= 10, "{first:?}");
    let oid_of = |name: &str| first.iter().find(|(n, _)| n == name).unwrap().1;
    assert_eq!(oid_of("namespace pg_catalog"), 11);
    assert_eq!(oid_of("namespace public"), 2200);
    let distinct: std::collections::HashSet<i64> = first.iter().map(|(_, oid)| *oid).collect();
    assert_eq!(distinct.len(), first.len(), "OIDs are unique: {first:?}");
    // User objects are numbered from PostgreSQL's first normal OID.
    assert!(oid_of("app.orders") > 16384 && oid_of("app.order_numbers") > 16384);

    // The OID one session read gives that table's columns in another.
    let orders = oid_of("app.orders");
    let columns = |rows: Vec<tokio_postgres::Row>| -> Vec<String> {
        rows.iter().map(|r| r.get::<_, String>(0)).collect()
    };
    let by_oid = format!(
        "SELECT attname::text FROM pg_catalog.pg_attribute \
         WHERE attrelid = {orders} AND attnum > 0 ORDER BY attnum"
    );
    assert_eq!(
        columns(other.query(&by_oid, &[]).await.unwrap()),
        ["id", "customer", "total"]
    );
    assert_eq!(
        other
            .query_one("SELECT CAST('app.orders'::regclass AS BIGINT)", &[])
            .await
            .unwrap()
            .get::<_, i64>(0),
        orders
    );

    // A new object takes the next OID and changes no other.
    setup
        .batch_execute("CREATE TABLE app.later (x INT)")
        .await
        .unwrap();
    let after_ddl = catalog_oids(&other).await;
    assert!(
        first.iter().all(|entry| after_ddl.contains(entry)),
        "{after_ddl:?}"
    );

    server.restart();
    let client = server.root().await;
    assert_eq!(catalog_oids(&client).await, after_ddl);
    assert_eq!(
        columns(client.query(&by_oid, &[]).await.unwrap()),
        ["id", "customer", "total"]
    );
}

#[tokio::test]
async fn psql_lists_schemas_privileges_and_only_the_tables_the_search_path_reaches() {
    let server = TestServer::start();
    let client = server.root().await;
    client
        .batch_execute(
            "CREATE NAMESPACE app; CREATE TABLE app.hidden (id INT); CREATE TABLE shown (id INT)",
        )
        .await
        .unwrap();

    let schemas = psql(&server, r"\dn+");
    for schema in ["app", "public"] {
        assert_eq!(lines_containing(&schemas, schema).len(), 1, "{schemas}");
    }
    let privileges = psql(&server, r"\dp");
    assert_eq!(
        lines_containing(&privileges, "shown").len(),
        1,
        "{privileges}"
    );
    assert!(
        lines_containing(&privileges, "hidden").is_empty(),
        "{privileges}"
    );

    // `\dt` lists what an unqualified name reaches; another namespace's tables by pattern.
    let tables = psql(&server, r"\dt");
    assert_eq!(lines_containing(&tables, "shown").len(), 1, "{tables}");
    assert!(lines_containing(&tables, "hidden").is_empty(), "{tables}");
    let app = psql(&server, r"\dt app.*");
    assert_eq!(lines_containing(&app, "hidden").len(), 1, "{app}");

    // Operators and conversions all live in pg_catalog: the commands run and list none of ours.
    for command in [r"\do", r"\dc", r"\df"] {
        psql(&server, command);
    }
    // A built-in function's signatures, as PostgreSQL lists them.
    let functions = psql(&server, r"\df lower");
    let rows: Vec<Vec<&str>> = lines_containing(&functions, "lower")
        .iter()
        .map(|line| line.split('|').map(str::trim).collect())
        .collect();
    for expected in [
        ["pg_catalog", "lower", "text", "text", "func"],
        ["pg_catalog", "lower", "anyelement", "anyrange", "func"],
    ] {
        assert!(rows.iter().any(|row| row == &expected), "{functions}");
    }
}

/// With `FETCH_COUNT` set, psql reads a query's result through a cursor (`DECLARE
/// _psql_cursor NO SCROLL CURSOR FOR ...`, then `FETCH FORWARD n`), as many users' .psqlrc does.
#[tokio::test]
async fn psql_with_fetch_count_reads_a_result_through_a_cursor() {
    let server = TestServer::start();
    let out = common::psql(
        &server,
        &[
            "-At",
            "-v",
            "FETCH_COUNT=3",
            "-c",
            "SELECT g, g * g FROM generate_series(1, 8) AS t(g) ORDER BY g",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected: Vec<String> = (1..=8).map(|g| format!("{g}|{}", g * g)).collect();
    assert_eq!(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .collect::<Vec<_>>(),
        expected
    );
}
