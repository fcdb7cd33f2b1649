#!/usr/bin/env bash
# Fetches PostgreSQL 15's own regression suite (src/test/regress: sql/, data/,
# parallel_schedule) from the Debian archive's source package of postgresql-15, verifies the
# tarball against the SHA-256 that Debian's source index lists, and unpacks those parts into a
# cache directory (printed on stdout). The repository holds only the list of files we run and
# the floor; the SQL itself is PostgreSQL's and is read from here.
# Usage: pg-compat/regress/fetch.sh [cache dir, default ~/.cache/kalamdb/pg-regress-15]
set -euo pipefail
CACHE=${1:-${KALAMDB_PG_REGRESS:-$HOME/.cache/kalamdb/pg-regress-15}}
if [ -f "$CACHE/sql/test_setup.sql" ] && [ -f "$CACHE/parallel_schedule" ]; then
  echo "$CACHE"; exit 0
fi
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT

# The first archive whose source index lists postgresql-15 wins: the point release, then the
# security updates (a point release moves older tarballs out of the pool).
for archive in "debian bookworm" "debian-security bookworm-security"; do
  set -- $archive
  base="http://deb.debian.org/$1"
  timeout 300 curl -fsS "$base/dists/$2/main/source/Sources.xz" | xz -d > "$WORK/Sources" || continue
  # Directory, tarball name and SHA-256 of postgresql-15's upstream tarball.
  read -r dir name sha < <(awk '
    /^Package: / { pkg = $2; in_sha = 0 }
    pkg == "postgresql-15" && /^Directory: / { dir = $2 }
    pkg == "postgresql-15" && /^Checksums-Sha256:/ { in_sha = 1; next }
    in_sha && /^ / { if ($3 ~ /orig\.tar/) { name = $3; sha = $1 } next }
    { in_sha = 0 }
    END { if (name != "") print dir, name, sha }' "$WORK/Sources") || true
  [ -n "${name:-}" ] || continue
  timeout 600 curl -fsS -o "$WORK/$name" "$base/$dir/$name" || continue
  echo "$sha  $WORK/$name" | sha256sum -c --quiet - || { echo "checksum mismatch for $name" >&2; exit 1; }
  mkdir -p "$WORK/src"
  tar -xf "$WORK/$name" -C "$WORK/src" --strip-components=4 --wildcards \
    '*/src/test/regress/sql/*' '*/src/test/regress/data/*' '*/src/test/regress/parallel_schedule'
  mkdir -p "$(dirname "$CACHE")"
  rm -rf "$CACHE"
  mv "$WORK/src" "$CACHE"
  echo "$name" > "$CACHE/SOURCE"
  echo "$CACHE"; exit 0
done
echo "postgresql-15's source is in neither Debian archive" >&2
exit 1
