#!/usr/bin/env bash
# How query time and server memory grow with the table. One table (id, k, x) grows through
# the given sizes (1, 10 and 50 million rows by default; flushed to Parquet in KalamDB, after
# VACUUM ANALYZE in PostgreSQL 15); at each size: the GROUP BY of aggregate.sh and a filtered
# scan (median of 5 runs each, the servers alternating), then KalamDB's resident memory idle,
# at its peak while 8 clients run the GROUP BY for 10 s, and with 500 idle connections open.
# Usage: bench/scaling.sh [sizes, default "1000000 10000000 50000000"]
source "$(dirname "$0")/lib.sh"
SIZES=${1:-"1000000 10000000 50000000"}
CHUNK=1000000
IDLE_CONNECTIONS=500
FLUSH_ROW_LIMIT=0 start_kalamdb
# Room for the idle connections (and the clients of the bench itself).
kill "$KALAM_PID"; wait "$KALAM_PID" 2>/dev/null || true
sed -i "s/^max_connections = .*/max_connections = $((IDLE_CONNECTIONS + 20))/" "$WORK/server.toml"
"${KALAMDB_BIN:-$CARGO_TARGET_DIR/release/kalamdb}" --config "$WORK/server.toml" 2>"$WORK/kalam.log" &
KALAM_PID=$!
for _ in $(seq 100); do kalam -c 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.1; done
start_postgres
for db in kalam pg; do
  $db -c "CREATE SCHEMA bench" -c "CREATE TABLE bench.facts (id BIGINT PRIMARY KEY, k INTEGER NOT NULL, x BIGINT NOT NULL)"
done
printf '\\sleep 20 s\n' > "$WORK/idle.sql"

GROUP_BY="SELECT k, count(*), sum(x) FROM bench.facts GROUP BY k"
echo "$GROUP_BY;" > "$WORK/group_by.sql"
FILTERED="SELECT count(*), max(id) FROM bench.facts WHERE k = 42 AND x % 5 = 1"
time_query() {  # runner query -> milliseconds
  $1 -c '\timing on' -c "$2" | awk '/^Time: / {print $2}' | tail -1
}
median_ms() {  # query -> "kalamdb_ms postgres_ms", runs alternating between the servers
  : >"$WORK/kalam.ms"; : >"$WORK/pg.ms"
  for _ in 1 2 3 4 5; do
    time_query kalam "$1" >>"$WORK/kalam.ms"
    time_query pg "$1" >>"$WORK/pg.ms"
  done
  echo "$(median <"$WORK/kalam.ms") $(median <"$WORK/pg.ms")"
}
# Peak RSS (MiB) of KalamDB while a command runs, sampled every 50 ms.
peak_rss_while() {
  local peak=0 rss
  "$@" >/dev/null 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    rss=$(rss_kib); ((rss > peak)) && peak=$rss
    sleep 0.05
  done
  wait "$pid" || true
  echo $((peak / 1024))
}

loaded=0
printf '%-10s %-10s %12s %12s %8s %10s %10s %10s\n' rows query "KalamDB ms" "PG ms" speedup "RSS idle" "8 busy" "500 idle"
for size in $SIZES; do
  for ((start = loaded + 1; start <= size; start += CHUNK)); do
    end=$((start + CHUNK - 1)); ((end > size)) && end=$size
    kalam -c "INSERT INTO bench.facts SELECT value, CAST(value % 100 AS INT), value * 3 FROM generate_series($start, $end) AS g(value)"
    pg -c "INSERT INTO bench.facts SELECT g, g % 100, g * 3 FROM generate_series($start, $end) AS g"
  done
  loaded=$size
  kalam -c "FLUSH TABLE bench.facts" >/dev/null
  wait_for_jobs
  pg -c "VACUUM ANALYZE bench.facts"
  for query in "$GROUP_BY" "$FILTERED"; do
    diff <(kalam -At -c "$query ORDER BY 1") <(pg -At -c "$query ORDER BY 1") >/dev/null \
      || { echo "answers differ: $query"; exit 1; }
  done
  read -r kg pg_g < <(median_ms "$GROUP_BY")
  read -r kf pg_f < <(median_ms "$FILTERED")
  idle_rss=$(( $(rss_kib) / 1024 ))
  busy_rss=$(peak_rss_while pgbench -n -M prepared -c 8 -j 2 -T 10 -h 127.0.0.1 -p "$KALAM_PORT" -U root -f "$WORK/group_by.sql" kalamdb)
  idle_conn_rss=$(peak_rss_while pgbench -n -c "$IDLE_CONNECTIONS" -j 2 -t 1 -h 127.0.0.1 -p "$KALAM_PORT" -U root -f "$WORK/idle.sql" kalamdb)
  printf '%-10s %-10s %12.1f %12.1f %7.2fx %10s %10s %10s\n' "$size" "GROUP BY" "$kg" "$pg_g" "$(echo "$pg_g / $kg" | bc -l)" "$idle_rss" "$busy_rss" "$idle_conn_rss"
  printf '%-10s %-10s %12.1f %12.1f %7.2fx\n' "$size" "filtered" "$kf" "$pg_f" "$(echo "$pg_f / $kf" | bc -l)"
done
