#!/usr/bin/env bash
# COPY FROM STDIN of a CSV file and COPY TO STDOUT, through psql's \copy, against KalamDB and
# PostgreSQL 15 (both durable, fsync on), and how much KalamDB's resident memory grows while
# loading (peak RSS during the load minus RSS before it).
# Usage: bench/copy.sh [rows, default 10000000] [runs, default 3]
FLUSH_ROW_LIMIT=${FLUSH_ROW_LIMIT:-1000000}
source "$(dirname "$0")/lib.sh"
ROWS=${1:-10000000}
RUNS=${2:-3}

start_kalamdb
start_postgres
# id, a number, a short text and a date: a typical fact-table row (about 40 bytes of CSV).
awk -v n="$ROWS" 'BEGIN { for (i = 1; i <= n; i++) printf "%d,%d,\"name %d\",2026-%02d-%02d\n", i, i % 1000, i, i % 12 + 1, i % 28 + 1 }' \
  > "$WORK/rows.csv"
[ "$(id -u)" = 0 ] && chown postgres "$WORK/rows.csv"

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$KALAM_PID/status"; }
peak_kib() { awk '/^VmHWM/ {print $2}' "/proc/$KALAM_PID/status"; }

seconds() {  # command...: wall seconds of one run
  local start end
  start=$(date +%s.%N)
  "$@" >/dev/null
  end=$(date +%s.%N)
  echo "$end - $start" | bc -l
}

create() {  # db run
  $1 -c "DROP TABLE IF EXISTS bench.copy_rows_$2" \
     -c "CREATE TABLE bench.copy_rows_$2 (id BIGINT PRIMARY KEY, n INT NOT NULL, name TEXT, day DATE)"
}

for db in kalam pg; do $db -c "CREATE SCHEMA bench"; done
load_k=(); load_p=(); out_k=(); out_p=(); settled_k=(); settled_p=(); growth=()
for run in $(seq "$RUNS"); do
  create kalam "$run"; create pg "$run"
  before=$(rss_kib)
  # VmHWM is the process's peak; a fresh peak needs the peak reset, which /proc allows.
  echo 5 > "/proc/$KALAM_PID/clear_refs" 2>/dev/null || true
  load_k+=("$(seconds kalam -c "\\copy bench.copy_rows_$run FROM '$WORK/rows.csv' WITH (FORMAT csv)")")
  growth+=("$(( ($(peak_kib) - before) / 1024 ))")
  load_p+=("$(seconds pg -c "\\copy bench.copy_rows_$run FROM '$WORK/rows.csv' WITH (FORMAT csv)")")
  out_k+=("$(seconds kalam -c "\\copy bench.copy_rows_$run TO '/dev/null' WITH (FORMAT csv)")")
  out_p+=("$(seconds pg -c "\\copy bench.copy_rows_$run TO '/dev/null' WITH (FORMAT csv)")")
  # The same unload once KalamDB's background flushes of the load have finished (the rows then
  # sit in Parquet segments): what a later export costs, where the first one shares the machine
  # with the flush.
  for _ in $(seq 1200); do
    [ "$(kalam -At -c "SELECT count(*) FROM system.jobs WHERE job_type = 'flush' AND status IN ('Queued', 'Running')")" = 0 ] && break
    sleep 0.5
  done
  settled_k+=("$(seconds kalam -c "\\copy bench.copy_rows_$run TO '/dev/null' WITH (FORMAT csv)")")
  settled_p+=("$(seconds pg -c "\\copy bench.copy_rows_$run TO '/dev/null' WITH (FORMAT csv)")")
  [ "$(kalam -At -c "SELECT count(*) FROM bench.copy_rows_$run")" = "$ROWS" ] || { echo "KalamDB lost rows"; exit 1; }
done

med() { printf '%s\n' "$@" | median; }
printf '%-34s %12s %14s %8s\n' workload "KalamDB s" "PostgreSQL s" "ratio"
printf '%-34s %12.1f %14.1f %8.2f\n' "COPY FROM STDIN ($ROWS CSV rows)" "$(med "${load_k[@]}")" "$(med "${load_p[@]}")" \
  "$(echo "$(med "${load_p[@]}") / $(med "${load_k[@]}")" | bc -l)"
printf '%-34s %12.1f %14.1f %8.2f\n' "COPY TO STDOUT ($ROWS rows)" "$(med "${out_k[@]}")" "$(med "${out_p[@]}")" \
  "$(echo "$(med "${out_p[@]}") / $(med "${out_k[@]}")" | bc -l)"
printf '%-34s %12.1f %14.1f %8.2f\n' "COPY TO STDOUT, flushes settled" "$(med "${settled_k[@]}")" "$(med "${settled_p[@]}")" \
  "$(echo "$(med "${settled_p[@]}") / $(med "${settled_k[@]}")" | bc -l)"
echo "KalamDB RSS growth during the load (MiB, median): $(med "${growth[@]}")"
