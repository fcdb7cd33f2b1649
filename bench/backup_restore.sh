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
command -v pigz >/dev/null || { echo "pigz is needed (apt-get install pigz)"; exit 1; }
FLUSH_ROW_LIMIT=0 start_kalamdb
OUT="$WORK/out"
mkdir -p "$OUT"
load_backup_data "$TARGET_GIB"
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
printf '%-44s %9.2f %12.1f %9s\n' "KalamDB BACKUP DATABASE (level ${BACKUP_LEVEL:-1})" "$kb" "$(echo "$ks / 1048576" | bc -l)" "1.00x"
printf '%-44s %9.2f %12.1f %8.2fx\n' "tar -czf (GNU tar + gzip -6)" "$tb" "$(echo "$ts / 1048576" | bc -l)" "$(echo "$tb / $kb" | bc -l)"
printf '%-44s %9.2f %12.1f %8.2fx\n' "tar -I pigz -cf" "$pb" "$(echo "$ps / 1048576" | bc -l)" "$(echo "$pb / $kb" | bc -l)"
printf 'archive size vs gzip -6: %+.1f%%; server RSS growth during backup: %s MiB\n' "$(echo "($ks - $ts) * 100 / $ts" | bc -l)" "$rss"
printf '%-44s %9.2f\n' "KalamDB RESTORE staging (verified, synced)" "$kr"
printf '%-44s %9.2f %12s %8.2fx\n' "tar -xzf of the same archive (+ sync)" "$ur" "" "$(echo "$ur / $kr" | bc -l)"
printf 'server RSS growth during restore staging: %s MiB\n' "$rrss"
