#!/usr/bin/env bash
# Lookup by an indexed non-key column on 1 million rows: pgbench, prepared protocol, 8 clients,
# against KalamDB and PostgreSQL 15, each with a secondary index on the column (CREATE INDEX
# after the load, so KalamDB builds it with its job). Runs twice on KalamDB: while its rows are
# hot (RocksDB), then after FLUSH TABLE (Parquet); PostgreSQL's stay in its heap throughout.
# A third workload reads a range of 10 rows through the index.
# Usage: bench/index_lookup.sh [seconds per run, default 15] [runs, default 3]
FLUSH_ROW_LIMIT=100000000  # no automatic flush: the hot figures are of hot rows
source "$(dirname "$0")/lib.sh"
SECONDS_PER_RUN=${1:-15}
RUNS=${2:-3}
ROWS=1000000

start_kalamdb
start_postgres
for db in kalam pg; do
  $db -c "CREATE SCHEMA bench" \
      -c "CREATE TABLE bench.accounts (id BIGINT PRIMARY KEY, code BIGINT NOT NULL, balance INT NOT NULL)"
done
kalam -c "INSERT INTO bench.accounts SELECT value, value * 7 + 3, value % 1000 FROM generate_series(1, $ROWS) AS g(value)"
pg -c "INSERT INTO bench.accounts SELECT g, g * 7 + 3, g % 1000 FROM generate_series(1, $ROWS) AS g"
for db in kalam pg; do
  $db -c "CREATE UNIQUE INDEX accounts_code ON bench.accounts (code)" -c "CREATE INDEX accounts_balance ON bench.accounts (balance, id)"
done
pg -c "VACUUM ANALYZE bench.accounts"
kalam -At -c "SELECT message FROM system.jobs WHERE job_type = 'index_build' ORDER BY created_at"

cat > "$WORK/lookup.sql" <<SQL
\set n random(1, $ROWS)
\set code :n * 7 + 3
SELECT id, balance FROM bench.accounts WHERE code = :code;
SQL
cat > "$WORK/range.sql" <<SQL
\set b random(0, 999)
\set low random(1, $((ROWS - 10000)))
\set high :low + 9999
SELECT id FROM bench.accounts WHERE balance = :b AND id BETWEEN :low AND :high;
SQL

tps() {  # port workload database
  pgbench -n -M prepared -c 8 -j 2 -T "$SECONDS_PER_RUN" -h 127.0.0.1 -p "$1" -U root -f "$WORK/$2.sql" "$3" 2>&1 \
    | awk '/^tps = / {print $3}'
}

run() {  # label workload
  k=$(for _ in $(seq "$RUNS"); do tps "$KALAM_PORT" "$2" kalamdb; done | median)
  p=$(for _ in $(seq "$RUNS"); do tps "$PG_PORT" "$2" postgres; done | median)
  printf '%-30s %14.0f %14.0f %8.2f\n' "$1" "$k" "$p" "$(echo "$k / $p" | bc -l)"
}

printf '%-30s %14s %14s %8s\n' workload "KalamDB tps" "PostgreSQL tps" ratio
run "indexed lookup" lookup
run "indexed range (10 rows)" range
kalam -c "FLUSH TABLE bench.accounts" >/dev/null
wait_for_jobs
run "indexed lookup (flushed)" lookup
run "indexed range (flushed)" range
