#!/usr/bin/env bash
# An incremental BACKUP against the full backup it builds on: time and archive size after 1% of
# the rows changed. The database is generated through SQL (bench.cold in Parquet segments,
# bench.hot in RocksDB, at least 1 GiB by default) and compacted once (VACUUM), as a database
# that has been running a while is; then 1% of the rows of both tables are updated (they stay
# in RocksDB until a flush) and incrementals are taken on the first full backup. Reports
# medians of the runs, the ratios, and checks the chain with `kalamdb verify-backup`.
# Usage: bench/incremental.sh [target GiB, default 1.0] [runs, default 3]
source "$(dirname "$0")/lib.sh"
TARGET_GIB=${1:-1.0}
RUNS=${2:-3}
FLUSH_ROW_LIMIT=0 start_kalamdb
OUT="$WORK/out"
mkdir -p "$OUT"
load_backup_data "$TARGET_GIB"
kalam -c "VACUUM bench.hot" -c "VACUUM bench.cold"

timed_job() {  # SQL that queues a job; prints the seconds until it completed
  local t0 job
  t0=$(now)
  job=$(kalam -At -c "$1" | cut -d'|' -f1)
  wait_job "$job" >/dev/null
  echo "$(now) - $t0" | bc
}

full_times=()
for i in $(seq "$RUNS"); do
  full_times+=("$(timed_job "BACKUP DATABASE TO '$OUT/full-$i.tar.gz'")")
done
rows=$(kalam -At -c "SELECT count(*) FROM bench.cold")
kalam -c "UPDATE bench.cold SET note = 'changed' WHERE id % 100 = 0" \
      -c "UPDATE bench.hot SET note = 'changed' WHERE id % 100 = 0"
inc_times=()
for i in $(seq "$RUNS"); do
  inc_times+=("$(timed_job "BACKUP DATABASE TO '$OUT/inc-$i.tar.gz' INCREMENTAL FROM '$OUT/full-1.tar.gz'")")
done
bin="${KALAMDB_BIN:-$CARGO_TARGET_DIR/release/kalamdb}"
"$bin" verify-backup "$OUT/inc-1.tar.gz" >/dev/null || { echo "verify-backup failed on the chain"; exit 1; }

# What the incremental stores itself (RocksDB files a compaction rewrote after the update, and
# the memtable flushed by the capture) against the whole database.
stored=$(kalam -At -c "SHOW BACKUP '$OUT/inc-1.tar.gz'" |
  awk -F'|' '{f += $9; b += $10; sf += $11; sb += $12} END {printf "%d of %d files, %d of %d bytes", sf, f, sb, b}')
full=$(printf '%s\n' "${full_times[@]}" | median)
inc=$(printf '%s\n' "${inc_times[@]}" | median)
full_size=$(stat -c %s "$OUT/full-1.tar.gz")
inc_size=$(stat -c %s "$OUT/inc-1.tar.gz")
echo "database: $(data_bytes) bytes, $rows rows in each table; 1% of them updated"
echo "the incremental stores $stored"
printf '%-22s %10s %14s\n' "" "seconds" "archive bytes"
printf '%-22s %10.2f %14d\n' "full backup" "$full" "$full_size"
printf '%-22s %10.2f %14d\n' "incremental (1%)" "$inc" "$inc_size"
printf '%-22s %10.3f %14.3f\n' "incremental / full" "$(echo "$inc / $full" | bc -l)" "$(echo "$inc_size / $full_size" | bc -l)"
