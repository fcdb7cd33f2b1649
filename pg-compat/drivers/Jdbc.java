// pgJDBC against a running KalamDB: connection start-up, prepared statements, COPY through
// CopyManager, and the DatabaseMetaData calls BI tools make (getTables, getColumns,
// getPrimaryKeys).
import java.sql.*;
import java.util.*;

public class Jdbc {
    static int passed = 0, failed = 0;

    interface Check { void run() throws Exception; }

    static void check(String name, Check check) {
        try { check.run(); passed++; System.out.println("ok: " + name); }
        catch (Throwable e) { failed++; System.out.println("FAILED: " + name + ": " + e); }
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + System.getenv("KALAMDB_PORT") + "/kalamdb";
        try (Connection conn = DriverManager.getConnection(url, "root", System.getenv("KALAMDB_PASSWORD"))) {
            check("prepared statements round trip", () -> {
                try (Statement st = conn.createStatement()) {
                    st.execute("CREATE NAMESPACE IF NOT EXISTS drivers");
                    st.execute("CREATE TABLE drivers.jdbc (id BIGINT PRIMARY KEY, name VARCHAR(20) NOT NULL, price NUMERIC(8,2), ok BOOLEAN)");
                }
                try (PreparedStatement ps = conn.prepareStatement("INSERT INTO drivers.jdbc VALUES (?, ?, ?, ?)")) {
                    ps.setLong(1, 7); ps.setString(2, "seven"); ps.setBigDecimal(3, new java.math.BigDecimal("7.70")); ps.setBoolean(4, true);
                    if (ps.executeUpdate() != 1) throw new AssertionError("update count");
                }
                try (PreparedStatement ps = conn.prepareStatement("SELECT name, price, ok FROM drivers.jdbc WHERE id = ?")) {
                    ps.setLong(1, 7);
                    try (ResultSet rs = ps.executeQuery()) {
                        if (!rs.next()) throw new AssertionError("no row");
                        if (!rs.getString(1).equals("seven")) throw new AssertionError(rs.getString(1));
                        if (rs.getBigDecimal(2).compareTo(new java.math.BigDecimal("7.70")) != 0) throw new AssertionError(rs.getBigDecimal(2).toString());
                        if (!rs.getBoolean(3)) throw new AssertionError("ok");
                    }
                }
            });
            check("a prepared insert of every type runs well past the prepare threshold", () -> {
                try (Statement st = conn.createStatement()) {
                    st.execute("CREATE TABLE drivers.jdbc_types (id BIGINT PRIMARY KEY, name TEXT, score DOUBLE PRECISION, ok BOOLEAN, at TIMESTAMP,"
                        + " small SMALLINT, mid INTEGER, real_v REAL, price NUMERIC(10,3), day DATE, bytes BYTEA, tag UUID)");
                }
                java.sql.Timestamp at = java.sql.Timestamp.valueOf("2026-11-30 12:34:56.789");
                // pgJDBC switches to a named server-side statement from the fifth execution.
                try (PreparedStatement ps = conn.prepareStatement("INSERT INTO drivers.jdbc_types VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")) {
                    for (int i = 1; i <= 20; i++) {
                        ps.setLong(1, i); ps.setString(2, "n" + i); ps.setDouble(3, i / 4.0); ps.setBoolean(4, i % 2 == 0);
                        ps.setTimestamp(5, at); ps.setShort(6, (short) i); ps.setInt(7, i * 1000); ps.setFloat(8, i / 2.0f);
                        ps.setBigDecimal(9, new java.math.BigDecimal(i + ".125")); ps.setDate(10, java.sql.Date.valueOf("2026-12-0" + (1 + i % 9)));
                        ps.setBytes(11, new byte[] {(byte) i, 0, (byte) 255});
                        ps.setObject(12, java.util.UUID.fromString("00000000-0000-0000-0000-0000000000" + String.format("%02d", i)));
                        if (ps.executeUpdate() != 1) throw new AssertionError("update count at execution " + i);
                    }
                }
                try (PreparedStatement ps = conn.prepareStatement("SELECT name, score, ok, at, small, mid, real_v, price, day, bytes, tag FROM drivers.jdbc_types WHERE id = ?")) {
                    for (int i = 1; i <= 20; i++) {
                        ps.setLong(1, i);
                        try (ResultSet rs = ps.executeQuery()) {
                            if (!rs.next()) throw new AssertionError("no row " + i);
                            String got = rs.getString(1) + "|" + rs.getDouble(2) + "|" + rs.getBoolean(3) + "|" + rs.getTimestamp(4) + "|" + rs.getShort(5)
                                + "|" + rs.getInt(6) + "|" + rs.getFloat(7) + "|" + rs.getBigDecimal(8) + "|" + rs.getDate(9) + "|" + Arrays.toString(rs.getBytes(10))
                                + "|" + rs.getObject(11);
                            String want = "n" + i + "|" + (i / 4.0) + "|" + (i % 2 == 0) + "|" + at + "|" + i + "|" + (i * 1000) + "|" + (i / 2.0f)
                                + "|" + i + ".125|2026-12-0" + (1 + i % 9) + "|" + Arrays.toString(new byte[] {(byte) i, 0, (byte) 255})
                                + "|00000000-0000-0000-0000-0000000000" + String.format("%02d", i);
                            if (!got.equals(want)) throw new AssertionError("row " + i + ": " + got + " != " + want);
                        }
                    }
                }
            });
            check("DatabaseMetaData describes tables, columns and keys", () -> {
                DatabaseMetaData meta = conn.getMetaData();
                List<String> tables = new ArrayList<>();
                try (ResultSet rs = meta.getTables(null, "drivers", "%", new String[] {"TABLE"})) {
                    while (rs.next()) tables.add(rs.getString("TABLE_NAME"));
                }
                if (!tables.contains("jdbc")) throw new AssertionError("tables: " + tables);
                List<String> columns = new ArrayList<>();
                try (ResultSet rs = meta.getColumns(null, "drivers", "jdbc", "%")) {
                    while (rs.next()) {
                        columns.add(rs.getString("COLUMN_NAME") + ":" + rs.getString("TYPE_NAME") + "("
                            + rs.getInt("COLUMN_SIZE") + "," + rs.getInt("DECIMAL_DIGITS") + ")"
                            + rs.getString("IS_NULLABLE"));
                    }
                }
                if (!columns.equals(List.of("id:int8(19,0)NO", "name:varchar(20,0)NO", "price:numeric(8,2)YES", "ok:bool(1,0)YES")))
                    throw new AssertionError("columns: " + columns);
                List<String> keys = new ArrayList<>();
                try (ResultSet rs = meta.getPrimaryKeys(null, "drivers", "jdbc")) {
                    while (rs.next()) {
                        keys.add(rs.getString("TABLE_SCHEM") + "." + rs.getString("TABLE_NAME") + "."
                            + rs.getString("COLUMN_NAME") + "#" + rs.getShort("KEY_SEQ") + "@" + rs.getString("PK_NAME"));
                    }
                }
                if (!keys.equals(List.of("drivers.jdbc.id#1@jdbc_pkey"))) throw new AssertionError("primary keys: " + keys);
            });
            check("CopyManager copies in and out, and a bad row loads nothing", () -> {
                try (Statement st = conn.createStatement()) {
                    st.execute("CREATE TABLE drivers.jdbc_copy (id BIGINT PRIMARY KEY, name TEXT, at DATE)");
                }
                org.postgresql.copy.CopyManager copy = conn.unwrap(org.postgresql.PGConnection.class).getCopyAPI();
                long loaded = copy.copyIn("COPY drivers.jdbc_copy FROM STDIN WITH (FORMAT csv)",
                    new java.io.StringReader("1,one,2026-01-01\n2,\"t,wo\",\n"));
                if (loaded != 2) throw new AssertionError("copyIn count " + loaded);
                try {
                    copy.copyIn("COPY drivers.jdbc_copy FROM STDIN", new java.io.StringReader("3\tthree\t\\N\nx\tbad\t\\N\n"));
                    throw new AssertionError("a bad row was accepted");
                } catch (SQLException e) {
                    if (!"22P02".equals(e.getSQLState())) throw e;
                }
                java.io.StringWriter out = new java.io.StringWriter();
                long written = copy.copyOut("COPY (SELECT * FROM drivers.jdbc_copy ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER)", out);
                if (written != 2) throw new AssertionError("copyOut count " + written);
                if (!out.toString().equals("id,name,at\n1,one,2026-01-01\n2,\"t,wo\",\n"))
                    throw new AssertionError("copyOut: " + out);
            });
        }
        System.out.println(passed + " passed, " + failed + " failed");
        System.exit(failed == 0 ? 0 : 1);
    }
}
