#!/usr/bin/env bash
# What a running BACKUP DATABASE costs the clients. 16 clients run the mixed workload (80%
# point SELECT by primary key, 20% UPDATE of a random row by key; pgbench, prepared, fsync on)
# against a database of about 1 GiB, once without a backup and once while one runs (both while
# a session polls system.jobs as wait_job does: see poll_job). Reports
# the clients' throughput and p99 latency in both (while backing up: only the transactions
# that completed while the backup ran), and the backup's time on the idle server and under the
# load. Medians of RUNS runs. BACKUP_THREADS sets [backup] compression_threads (0: half the CPUs),
# BACKUP_RATE [backup] max_bytes_per_second (0: no limit).
# Usage: [BACKUP_THREADS=n] [BACKUP_RATE=bytes] bench/backup_under_load.sh [target GiB, default 1.0]
#        [runs, default 3]
source "$(dirname "$0")/lib.sh"
TARGET_GIB=${1:-1.0}
RUNS=${2:-3}
CLIENTS=16
ROWS=100000
FLUSH_ROW_LIMIT=0 start_kalamdb
if [ -n "${BACKUP_THREADS:-}${BACKUP_RATE:-}" ]; then
  # The settings are read at start: restart on the same data directory with them.
  kill "$KALAM_PID"; wait "$KALAM_PID" 2>/dev/null || true
  if [ -n "${BACKUP_THREADS:-}" ]; then
    sed -i "s/^compression_threads = .*/compression_threads = $BACKUP_THREADS/" "$WORK/server.toml"
  fi
  if [ -n "${BACKUP_RATE:-}" ]; then
    sed -i "s/^max_bytes_per_second = .*/max_bytes_per_second = $BACKUP_RATE/" "$WORK/server.toml"
  fi
  "${KALAMDB_BIN:-$CARGO_TARGET_DIR/release/kalamdb}" --config "$WORK/server.toml" 2>"$WORK/kalam.log" &
  KALAM_PID=$!
  for _ in $(seq 100); do kalam -c 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.1; done
fi
# Where the archives go: beside the data directory unless BACKUP_DIR names another place.
OUT="${BACKUP_DIR:-$WORK/out}"
mkdir -p "$OUT"
load_backup_data "$TARGET_GIB"
kalam -c "CREATE TABLE bench.kv (id BIGINT PRIMARY KEY, v TEXT NOT NULL)" \
      -c "INSERT INTO bench.kv SELECT value, 'value ' || value FROM generate_series(1, $ROWS) AS g(value)"
write_point_scripts "$ROWS"

# Starts a backup and waits for it; prints its start and end (epoch seconds) and its job id.
backup() {
  local t0 job
  t0=$(now)
  job=$(kalam -At -c "BACKUP DATABASE TO '$OUT/b.tar.gz'" | cut -d'|' -f1)
  wait_job "$job" >/dev/null
  echo "$t0 $(now) $job"
  rm -f "$OUT/b.tar.gz"
}

# What wait_job does while a backup runs, for $1 seconds without one: one session reading a
# job's status every 50 ms. Each of its statements holds a connection lane for about a
# millisecond, which the clients sharing that lane wait out (measured: 16 clients lost up to
# 0.3x of their p99 to it alone), so the runs without a backup carry it too and the ratios
# measure the backup.
poll_job() {
  printf "SELECT status FROM system.jobs WHERE job_id = '%s' \\watch 0.05\n" "$2" |
    timeout "$1" psql -X -q -At -h 127.0.0.1 -p "$KALAM_PORT" -U root -d kalamdb >/dev/null || true
}

# The mixed workload for $1 seconds, each transaction logged (client, number, latency in
# microseconds, script, completion epoch seconds and microseconds) under $WORK/log/.
mixed() {
  rm -rf "$WORK/log"
  mkdir -p "$WORK/log"
  pgbench -n -M prepared -c "$CLIENTS" -j 2 -T "$1" -l --log-prefix="$WORK/log/tx" \
    -h 127.0.0.1 -p "$KALAM_PORT" -U root -f "$WORK/select.sql@8" -f "$WORK/update.sql@2" kalamdb \
    > "$WORK/pgbench.out" 2>&1 || { cat "$WORK/pgbench.out"; exit 1; }
}

# Transactions per second and p99 latency (ms) of those completing between two epoch times.
window() {
  cat "$WORK"/log/tx* \
    | awk -v from="$1" -v to="$2" '{t = $5 + $6 / 1e6; if (t >= from && t < to) print $3 / 1000}' \
    | sort -g \
    | awk -v span="$(echo "$2 - $1" | bc -l)" \
        '{a[NR] = $1} END {i = int(NR * 0.99); if (i < 1) i = 1; printf "%.0f %.2f\n", NR / span, a[i]}'
}

idle=()
for _ in $(seq "$RUNS"); do
  read -r t0 t1 job < <(backup)
  idle+=("$(echo "$t1 - $t0" | bc -l)")
done
idle_s=$(printf '%s\n' "${idle[@]}" | median)
# Long enough that the clients outlast a backup three times slower than on the idle server.
duration=$(echo "$idle_s * 3 + 10" | bc -l | cut -d. -f1)

base_tps=() base_p99=() load_tps=() load_p99=() after_tps=() after_p99=() busy=()
for _ in $(seq "$RUNS"); do
  start=$(now)
  poll_job "$duration" "$job" &
  poller=$!
  mixed "$duration"
  wait "$poller"
  # The first and last seconds hold connection set-up and the clients' staggered stop.
  read -r tps p99 < <(window "$(echo "$start + 2" | bc -l)" "$(echo "$start + $duration - 1" | bc -l)")
  base_tps+=("$tps") base_p99+=("$p99")

  start=$(now)
  mixed "$duration" &
  clients=$!
  sleep 3
  read -r t0 t1 _ < <(backup)
  wait "$clients"
  end=$(echo "$start + $duration - 1" | bc -l)
  if (( $(echo "$t1 > $end" | bc -l) )); then
    echo "the backup outlasted the clients: figures cover the part they overlapped" >&2
    t1=$end
  fi
  read -r tps p99 < <(window "$t0" "$t1")
  load_tps+=("$tps") load_p99+=("$p99")
  busy+=("$(echo "$t1 - $t0" | bc -l)")
  # The clients after the backup ended: what it left behind (its capture flushed the memtables).
  if (( $(echo "$end - $t1 > 3" | bc -l) )); then
    read -r tps p99 < <(window "$(echo "$t1 + 0.5" | bc -l)" "$end")
    after_tps+=("$tps") after_p99+=("$p99")
  fi
done

bt=$(printf '%s\n' "${base_tps[@]}" | median); bp=$(printf '%s\n' "${base_p99[@]}" | median)
lt=$(printf '%s\n' "${load_tps[@]}" | median); lp=$(printf '%s\n' "${load_p99[@]}" | median)
busy_s=$(printf '%s\n' "${busy[@]}" | median)
echo
printf 'data directory: %.2f GiB; %s clients; medians of %s runs\n' "$(echo "$(data_bytes) / 1073741824" | bc -l)" "$CLIENTS" "$RUNS"
printf '%-34s %14s %14s %8s %s\n' "" "no backup" "backup running" ratio target
printf '%-34s %14.0f %14.0f %8.2f %s\n' "client throughput (tps)" "$bt" "$lt" "$(echo "$lt / $bt" | bc -l)" ">= 0.70"
printf '%-34s %14.2f %14.2f %8.2f %s\n' "client p99 latency (ms)" "$bp" "$lp" "$(echo "$lp / $bp" | bc -l)" "<= 1.50"
printf '%-34s %14.2f %14.2f %8.2f %s\n' "backup time (s): idle / under load" "$idle_s" "$busy_s" "$(echo "$busy_s / $idle_s" | bc -l)" "<= 1.50"
if [ "${#after_tps[@]}" -gt 0 ]; then
  at=$(printf '%s\n' "${after_tps[@]}" | median); ap=$(printf '%s\n' "${after_p99[@]}" | median)
  printf 'after the backup (%s of %s runs): %.0f tps (%.2fx), p99 %.2f ms (%.2fx)\n' "${#after_tps[@]}" "$RUNS" \
    "$at" "$(echo "$at / $bt" | bc -l)" "$ap" "$(echo "$ap / $bp" | bc -l)"
fi
