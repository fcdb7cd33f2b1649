# Shared helpers for the benchmarks: start a release KalamDB and a throwaway PostgreSQL 15 on
# free ports in a temporary directory, both durable (fsync on), and stop them on exit.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$(mktemp -d /tmp/kalamdb-bench.XXXXXX)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kalamdb/target}"
PGBIN="$(pg_config --bindir)"
KALAM_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
CLUSTER_PIDS=()
export PGPASSWORD=bench-password
KALAM_PID=""

as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

cleanup() {
  stop_cluster
  if [ -n "$KALAM_PID" ]; then
    kill "$KALAM_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$KALAM_PID" 2>/dev/null || break; sleep 0.1; done
  fi
  as_postgres "$PGBIN/pg_ctl" -D "$WORK/pg" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The binary to run: KALAMDB_BIN, one built elsewhere (an older commit, for before/after
# figures), or this tree's release build.
kalamdb_bin() {
  if [ -n "${KALAMDB_BIN:-}" ]; then
    echo "$KALAMDB_BIN"
  else
    (cd "$ROOT" && cargo build --release --quiet)
    echo "$CARGO_TARGET_DIR/release/kalamdb"
  fi
}

# The shipped server.toml with the benches' settings, for port $1 and data path $2.
# FLUSH_ROW_LIMIT, BACKUP_LEVEL and LANES set [flush] row_limit, [backup] compression_level and
# [server] lanes (for before/after figures without a rebuild).
kalamdb_config() {
  sed -e "s/^port = 5432/port = $1/" \
      -e "s#^data_path = .*#data_path = \"$2\"#" \
      -e "s/^root_password = .*/root_password = \"$PGPASSWORD\"/" \
      -e "s/^level = .*/level = \"warn\"/" \
      -e "s/^row_limit = .*/row_limit = ${FLUSH_ROW_LIMIT:-1000000}/" \
      -e "${BACKUP_LEVEL:+s/^compression_level = .*/compression_level = $BACKUP_LEVEL/}" \
      -e "${LANES:+s/^lanes = .*/lanes = $LANES/}" \
      "$ROOT/server.toml"
}

start_kalamdb() {
  local bin
  bin=$(kalamdb_bin)
  kalamdb_config "$KALAM_PORT" "$WORK/kalam" > "$WORK/server.toml"
  "$bin" --config "$WORK/server.toml" 2>"$WORK/kalam.log" &
  KALAM_PID=$!
  for _ in $(seq 100); do
    psql -X -q -h 127.0.0.1 -p "$KALAM_PORT" -U root -d kalamdb -c 'SELECT 1' >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "KalamDB did not start:"; cat "$WORK/kalam.log"; exit 1
}

start_postgres() {
  mkdir -p "$WORK/pg"
  [ "$(id -u)" = 0 ] && chown -R postgres "$WORK"
  as_postgres "$PGBIN/initdb" -A trust -U root -E UTF8 --locale=C -D "$WORK/pg" >/dev/null
  as_postgres "$PGBIN/pg_ctl" -w -D "$WORK/pg" -l "$WORK/pg.log" \
    -o "-p $PG_PORT -k $WORK -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on -c shared_buffers=1GB -c max_wal_size=4GB" \
    start >/dev/null
}

kalam() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$KALAM_PORT" -U root -d kalamdb "$@"; }
pg() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U root -d postgres "$@"; }

# Median of the numbers on standard input.
median() { sort -g | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# Waits until KalamDB has no queued or running job (at most 10 minutes).
wait_for_jobs() {
  for _ in $(seq 1200); do
    kalam -At -c "SELECT count(*) FROM system.jobs WHERE status IN ('Queued', 'Running')" | grep -qx 0 && return
    sleep 0.5
  done
  echo "KalamDB jobs did not finish within 10 minutes" >&2
  exit 1
}

# --- A data directory of a given size, and waiting for a job (backup benches) ---

DATA="$WORK/kalam"
data_bytes() { du -sb "$DATA/rocksdb" "$DATA/storage" "$DATA/snapshots" "$DATA/streams" | awk '{s += $1} END {print s}'; }
now() { date +%s.%N; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$KALAM_PID/status"; }

# Waits for a job; prints the peak RSS (KiB) seen meanwhile. One psql session polls with
# \watch: starting a client (and authenticating) every 50 ms would take a fifth of this
# 2-core machine's CPU from the server while it runs the job being timed.
wait_job() {
  local id=$1 peak=0 rss status key value
  exec {watch}< <(printf "SELECT status FROM system.jobs WHERE job_id = '%s' \\watch 0.05\n" "$id" |
    timeout 3600 psql -X -q -At -h 127.0.0.1 -p "$KALAM_PORT" -U root -d kalamdb)
  while read -r -u "$watch" status; do
    while read -r key value _; do
      [ "$key" = VmRSS: ] && rss=$value
    done < "/proc/$KALAM_PID/status"
    ((rss > peak)) && peak=$rss
    case $status in
      Completed) break ;;
      Failed|Cancelled) echo "job $id: $(kalam -At -c "SELECT message FROM system.jobs WHERE job_id = '$id'")" >&2; exit 1 ;;
    esac
  done
  # Closing the pipe ends the watching psql at its next line.
  exec {watch}<&-
  [ "$status" = Completed ] || { echo "job $id did not finish within an hour" >&2; exit 1; }
  echo "$peak"
}

# Fills KalamDB (started with FLUSH_ROW_LIMIT=0) through SQL until its data directory holds
# $1 GiB: chunks of 500,000 rows alternately flushed to Parquet (bench.cold) and left hot in
# RocksDB (bench.hot).
load_backup_data() {
  local target start end job load_start chunk=500000
  kalam -c "CREATE NAMESPACE bench" \
        -c "CREATE TABLE bench.cold (id BIGINT PRIMARY KEY, k INT NOT NULL, x DOUBLE PRECISION, note TEXT)" \
        -c "CREATE TABLE bench.hot (id BIGINT PRIMARY KEY, k INT NOT NULL, x DOUBLE PRECISION, note TEXT)"
  target=$(echo "$1 * 1073741824 / 1" | bc)
  start=1
  load_start=$(now)
  while (( $(data_bytes) < target )); do
    end=$((start + chunk - 1))
    for table in cold hot; do
      kalam -c "INSERT INTO bench.$table SELECT value, CAST(value % 1000 AS INT), value * 0.25, \
                md5(CAST(value AS TEXT)) || ' ' || md5(CAST(value * 7 AS TEXT)) || ' row ' || CAST(value AS TEXT) \
                FROM generate_series($start, $end) AS g(value)"
    done
    job=$(kalam -At -c "FLUSH TABLE bench.cold" | cut -d'|' -f1)
    wait_job "$job" >/dev/null
    start=$((end + 1))
  done
  echo "generated $(data_bytes) bytes ($((start - 1)) rows in each of bench.cold [Parquet] and bench.hot [RocksDB]) in $(echo "$(now) - $load_start" | bc) s"
}

# pgbench scripts over bench.kv (ids 1..$1): select.sql reads a random row by key, update.sql
# rewrites one; "-f select.sql@8 -f update.sql@2" is the mixed workload.
write_point_scripts() {
  printf '\\set id random(1, %s)\nSELECT v FROM bench.kv WHERE id = :id;\n' "$1" > "$WORK/select.sql"
  printf "\\\\set id random(1, %s)\nUPDATE bench.kv SET v = 'updated' WHERE id = :id;\n" "$1" > "$WORK/update.sql"
  # Single-row INSERTs of random new keys, far above the loaded ones.
  printf "\\\\set id random(1000000, 9000000000)\nINSERT INTO bench.kv VALUES (:id, 'inserted') ON CONFLICT (id) DO NOTHING;\n" > "$WORK/insert.sql"
}

# --- A three-node cluster on this machine (cluster benches) ---

# Starts three nodes of one cluster with binary $1, data under $WORK/$2-n<i>, and waits until
# each serves clients; sets CLUSTER_PORTS, CLUSTER_PIDS and CLUSTER_LEADER (1 to 3).
start_cluster() {
  local bin=$1 name=$2 rafts=() i j
  CLUSTER_PORTS=() CLUSTER_PIDS=() CLUSTER_LEADER=""
  for i in 1 2 3; do CLUSTER_PORTS+=("$(free_port)"); rafts+=("$(free_port)"); done
  for i in 1 2 3; do
    local config="$WORK/$name-n$i.toml"
    kalamdb_config "${CLUSTER_PORTS[i-1]}" "$WORK/$name-n$i" > "$config"
    printf '\n[cluster]\nnode_id = %s\nraft_address = "127.0.0.1:%s"\n' "$i" "${rafts[i-1]}" >> "$config"
    for j in 1 2 3; do
      [ "$i" = "$j" ] && continue
      printf '[[cluster.peer]]\nnode_id = %s\nraft_address = "127.0.0.1:%s"\n' "$j" "${rafts[j-1]}" >> "$config"
    done
    "$bin" --config "$config" 2>"$WORK/$name-n$i.log" &
    CLUSTER_PIDS+=($!)
  done
  for i in 1 2 3; do
    for _ in $(seq 300); do cluster_node "$i" -c 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.1; done
    cluster_node "$i" -c 'SELECT 1' >/dev/null || { echo "node $i did not start:"; cat "$WORK/$name-n$i.log"; exit 1; }
  done
  for i in 1 2 3; do
    [ "$(cluster_node "$i" -At -c "SELECT role FROM system.cluster WHERE is_local")" = leader ] && CLUSTER_LEADER=$i
  done
  [ -n "$CLUSTER_LEADER" ] || { echo "no node leads" >&2; exit 1; }
}

cluster_node() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "${CLUSTER_PORTS[$1-1]}" -U root -d kalamdb "${@:2}"; }

stop_cluster() {
  local pid
  for pid in "${CLUSTER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${CLUSTER_PIDS[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
  CLUSTER_PIDS=()
}
