#!/usr/bin/env bash
# One INSERT ... SELECT of many rows (default 10 million) into a table with a BIGINT primary key,
# a TEXT and a DOUBLE PRECISION column, against PostgreSQL 15 with the same durability (fsync
# on). Each run starts from a freshly created table; reports the median of the runs.
# Usage: bench/insert_select.sh [rows, default 10000000] [runs, default 3]
source "$(dirname "$0")/lib.sh"
ROWS=${1:-10000000}
RUNS=${2:-3}
# No automatic flush: the timed statement is the same work in every run.
FLUSH_ROW_LIMIT=0 start_kalamdb
start_postgres
for db in kalam pg; do
  $db -c "CREATE SCHEMA bench"
done
INSERT="INSERT INTO bench.copy SELECT value, 'row ' || value, value * 0.5 FROM generate_series(1, $ROWS) AS g(value)"

timed_insert() {  # runner -> seconds for the INSERT, after checking what it wrote
  $1 -c "DROP TABLE IF EXISTS bench.copy" \
     -c "CREATE TABLE bench.copy (id BIGINT PRIMARY KEY, v TEXT NOT NULL, x DOUBLE PRECISION)" >/dev/null
  local start end
  start=$(date +%s.%N)
  $1 -c "$INSERT" >/dev/null
  end=$(date +%s.%N)
  local stored
  stored=$($1 -At -c "SELECT count(*), sum(id), min(v), CAST(max(x) * 2 AS BIGINT) FROM bench.copy")
  [ "$stored" = "$ROWS|$((ROWS * (ROWS + 1) / 2))|row 1|$ROWS" ] \
    || { echo "$1 stored $stored" >&2; exit 1; }
  echo "$end - $start" | bc -l
}

k=$(for _ in $(seq "$RUNS"); do timed_insert kalam; done | median)
p=$(for _ in $(seq "$RUNS"); do timed_insert pg; done | median)
printf '%-36s %12s %14s %8s\n' statement "KalamDB s" "PostgreSQL s" ratio
printf '%-36s %12.2f %14.2f %7.2fx\n' "INSERT ... SELECT of $ROWS rows" "$k" "$p" "$(echo "$p / $k" | bc -l)"
