#!/usr/bin/env bash
# BACKUP DATABASE against GNU tar + gzip -6 and tar + pigz of the same data directory, and
# RESTORE DATABASE staging (with full checksum verification) against `tar -xzf` of the same
# archive. The data directory is generated through SQL: flushed Parquet segments plus hot rows
# in RocksDB, at least 1 GiB by default. Reports medians of 3 runs, archive sizes, and the
# server's resident memory growth while each job runs (sampled every 50 ms).
# All inputs are in the page cache for every contender (they were just written or read).
# Usage: [BACKUP_LEVEL=n] bench/backup_restore.sh [target GiB, default 1.1] [runs, default 3]
source "$(dirname "$0")/lib.sh"
TARGET_GIB=${1:-1.1}
RUNS=${2:-3}
CHUNK=500000
command -v pigz >/dev/null || { echo "pigz is needed (apt-get install pigz)"; exit 1; }
FLUSH_ROW_LIMIT=0 start_kalamdb
DATA="$WORK/kalam"
OUT="$WORK/out"
mkdir -p "$OUT"

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

kalam -c "CREATE NAMESPACE bench" \
      -c "CREATE TABLE bench.cold (id BIGINT PRIMARY KEY, k INT NOT NULL, x DOUBLE PRECISION, note TEXT)" \
      -c "CREATE TABLE bench.hot (id BIGINT PRIMARY KEY, k INT NOT NULL, x DOUBLE PRECISION, note TEXT)"
target=$(echo "$TARGET_GIB * 1073741824 / 1" | bc)
start=1
load_start=$(now)
# Alternate: a chunk that is flushed to Parquet, then a chunk that stays hot in RocksDB.
while (( $(data_bytes) < target )); do
  end=$((start + CHUNK - 1))
  for table in cold hot; do
    kalam -c "INSERT INTO bench.$table SELECT value, CAST(value % 1000 AS INT), value * 0.25, \
              md5(CAST(value AS TEXT)) || ' ' || md5(CAST(value * 7 AS TEXT)) || ' row ' || CAST(value AS TEXT) \
              FROM generate_series($start, $end) AS g(value)"
  done
  job=$(kalam -At -c "FLUSH TABLE bench.cold" | cut -d'|' -f1)
  wait_job "$job" >/dev/null
  start=$((end + 1))
done
rows=$((start - 1))
echo "generated $(data_bytes) bytes ($rows rows in each of bench.cold [Parquet] and bench.hot [RocksDB]) in $(echo "$(now) - $load_start" | bc) s"
du -sh "$DATA/rocksdb" "$DATA/storage"

backup_times=() ; backup_rss=()
for i in $(seq "$RUNS"); do
  base=$(rss_kib)
  t0=$(now)
  job=$(kalam -At -c "BACKUP DATABASE TO '$OUT/kalam-$i.tar.gz'" | cut -d'|' -f1)
  peak=$(wait_job "$job")
  backup_times+=("$(echo "$(now) - $t0" | bc)")
  backup_rss+=("$(( (peak - base) / 1024 ))")
done
tar_times=() ; pigz_times=()
for i in $(seq "$RUNS"); do
  t0=$(now); tar -C "$DATA" -czf "$OUT/gnu-$i.tar.gz" rocksdb storage snapshots streams
  tar_times+=("$(echo "$(now) - $t0" | bc)")
  t0=$(now); tar -C "$DATA" -I pigz -cf "$OUT/pigz-$i.tar.gz" rocksdb storage snapshots streams
  pigz_times+=("$(echo "$(now) - $t0" | bc)")
done
kb=$(printf '%s\n' "${backup_times[@]}" | median)
tb=$(printf '%s\n' "${tar_times[@]}" | median)
pb=$(printf '%s\n' "${pigz_times[@]}" | median)
rss=$(printf '%s\n' "${backup_rss[@]}" | median)
ks=$(stat -c %s "$OUT/kalam-1.tar.gz"); ts=$(stat -c %s "$OUT/gnu-1.tar.gz"); ps=$(stat -c %s "$OUT/pigz-1.tar.gz")
"$CARGO_TARGET_DIR/release/kalamdb" verify-backup "$OUT/kalam-1.tar.gz" >/dev/null || { echo "verify-backup failed"; exit 1; }

restore_times=() ; restore_rss=() ; untar_times=()
pending="${DATA}_restore_pending"
for i in $(seq "$RUNS"); do
  rm -rf "$pending"
  base=$(rss_kib)
  t0=$(now)
  job=$(kalam -At -c "RESTORE DATABASE FROM '$OUT/kalam-1.tar.gz'" | cut -d'|' -f1)
  peak=$(wait_job "$job")
  restore_times+=("$(echo "$(now) - $t0" | bc)")
  restore_rss+=("$(( (peak - base) / 1024 ))")
  rm -rf "$OUT/untar"; mkdir -p "$OUT/untar"; sync
  t0=$(now); tar -xzf "$OUT/kalam-1.tar.gz" -C "$OUT/untar"; sync
  untar_times+=("$(echo "$(now) - $t0" | bc)")
done
rm -rf "$pending"
kr=$(printf '%s\n' "${restore_times[@]}" | median)
ur=$(printf '%s\n' "${untar_times[@]}" | median)
rrss=$(printf '%s\n' "${restore_rss[@]}" | median)

gib=$(echo "scale=2; $(data_bytes) / 1073741824" | bc)
echo
echo "data directory: $gib GiB; medians of $RUNS runs"
printf '%-44s %9s %12s %9s\n' "" "seconds" "archive MiB" "vs this"
printf '%-44s %9.2f %12.1f %9s\n' "KalamDB BACKUP DATABASE (level ${BACKUP_LEVEL:-3})" "$kb" "$(echo "$ks / 1048576" | bc -l)" "1.00x"
printf '%-44s %9.2f %12.1f %8.2fx\n' "tar -czf (GNU tar + gzip -6)" "$tb" "$(echo "$ts / 1048576" | bc -l)" "$(echo "$tb / $kb" | bc -l)"
printf '%-44s %9.2f %12.1f %8.2fx\n' "tar -I pigz -cf" "$pb" "$(echo "$ps / 1048576" | bc -l)" "$(echo "$pb / $kb" | bc -l)"
printf 'archive size vs gzip -6: %+.1f%%; server RSS growth during backup: %s MiB\n' "$(echo "($ks - $ts) * 100 / $ts" | bc -l)" "$rss"
printf '%-44s %9.2f\n' "KalamDB RESTORE staging (verified, synced)" "$kr"
printf '%-44s %9.2f %12s %8.2fx\n' "tar -xzf of the same archive (+ sync)" "$ur" "" "$(echo "$ur / $kr" | bc -l)"
printf 'server RSS growth during restore staging: %s MiB\n' "$rrss"
