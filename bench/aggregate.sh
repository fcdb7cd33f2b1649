#!/usr/bin/env bash
# SELECT k, count(*), sum(x) ... GROUP BY k over 10 million rows, flushed to Parquet in KalamDB,
# against PostgreSQL 15 (after VACUUM ANALYZE). Reports the median of 5 timed runs each, taken
# alternately.
# Usage: bench/aggregate.sh [rows, default 10000000]
source "$(dirname "$0")/lib.sh"
ROWS=${1:-10000000}
CHUNK=1000000
FLUSH_ROW_LIMIT=0 start_kalamdb
start_postgres
for db in kalam pg; do
  $db -c "CREATE SCHEMA bench" -c "CREATE TABLE bench.facts (id BIGINT PRIMARY KEY, k INTEGER NOT NULL, x BIGINT NOT NULL)"
done
load_start=$(date +%s.%N)
for ((start = 1; start <= ROWS; start += CHUNK)); do
  end=$((start + CHUNK - 1)); ((end > ROWS)) && end=$ROWS
  kalam -c "INSERT INTO bench.facts SELECT value, CAST(value % 100 AS INT), value * 3 FROM generate_series($start, $end) AS g(value)"
done
kalam -c "FLUSH TABLE bench.facts" >/dev/null
wait_for_jobs
echo "KalamDB load + flush: $(echo "$(date +%s.%N) - $load_start" | bc) s"
load_start=$(date +%s.%N)
pg -c "INSERT INTO bench.facts SELECT g, g % 100, g * 3 FROM generate_series(1, $ROWS) AS g" -c "VACUUM ANALYZE bench.facts"
echo "PostgreSQL load + vacuum: $(echo "$(date +%s.%N) - $load_start" | bc) s"

QUERY="SELECT k, count(*), sum(x) FROM bench.facts GROUP BY k"
time_query() {  # runner -> milliseconds
  $1 -c '\timing on' -c "$QUERY" | awk '/^Time: / {print $2}' | tail -1
}
# Same answer from both before timing anything.
diff <(kalam -At -c "$QUERY ORDER BY k") <(pg -At -c "$QUERY ORDER BY k") >/dev/null || { echo "answers differ"; exit 1; }
# Runs alternate between the servers, so that a slow stretch of the machine (or KalamDB's
# background compaction after the load) weighs on both alike.
: >"$WORK/kalam.ms"; : >"$WORK/pg.ms"
for _ in 1 2 3 4 5; do
  time_query kalam >>"$WORK/kalam.ms"
  time_query pg >>"$WORK/pg.ms"
done
k=$(median <"$WORK/kalam.ms")
p=$(median <"$WORK/pg.ms")
printf '%-34s %12s %12s %10s\n' query "KalamDB ms" "PostgreSQL ms" speedup
printf '%-34s %12.1f %12.1f %9.2fx\n' "GROUP BY over $ROWS rows" "$k" "$p" "$(echo "$p / $k" | bc -l)"
