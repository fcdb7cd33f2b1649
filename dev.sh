#!/usr/bin/env bash
# The README's two commands. `./dev.sh run` builds and starts a server on the embedded defaults;
# `./dev.sh test` runs every test. Each first installs what it needs and the machine lacks, on
# Debian or Ubuntu through apt: the build's system packages for both, the test tools (PostgreSQL
# 15, psql, Java with pgJDBC, node, the Python drivers, moto's S3 server) for `test`. `.ci/run` is
# `./dev.sh test`.
set -euo pipefail
cd "$(dirname "$0")"

usage() {
  cat <<'EOF'
usage: ./dev.sh run [kalamdb arguments]   build (release) and start the server
       ./dev.sh test [cargo test arguments] install the test tools if missing, run every test
       ./dev.sh deps [build|test]          only install what is missing
EOF
}

# One target directory shared by every clone on this machine: a second clone builds in seconds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kalamdb/target}"
CACHE="$HOME/.cache/kalamdb"
VENV="$CACHE/venv"

as_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "dev.sh: installing needs root: $*" >&2
    exit 1
  fi
}

# Installs the named Debian packages in one apt run.
apt_install() {
  (($#)) || return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "dev.sh: this machine lacks: $*; install them with its package manager" >&2
    exit 1
  fi
  echo "dev.sh: installing $*" >&2
  as_root env DEBIAN_FRONTEND=noninteractive timeout 600 apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq "$@"
}

build_deps() {
  local missing=()
  command -v cargo >/dev/null 2>&1 || {
    echo "dev.sh: cargo not found; install Rust with rustup (https://rustup.rs)" >&2
    exit 1
  }
  # librocksdb-sys generates its bindings with libclang and compiles RocksDB's C++.
  ldconfig -p 2>/dev/null | grep -q 'libclang[-.0-9]*\.so' || missing+=(libclang-dev)
  command -v c++ >/dev/null 2>&1 || missing+=(g++)
  command -v cc >/dev/null 2>&1 || missing+=(gcc)
  # tikv-jemalloc-sys builds jemalloc with its configure script and make.
  command -v make >/dev/null 2>&1 || missing+=(make)
  # isal-sys builds ISA-L (the backup's gzip encoder) with autotools and its x86 assembly with nasm.
  command -v nasm >/dev/null 2>&1 || missing+=(nasm)
  command -v autoreconf >/dev/null 2>&1 || missing+=(autoconf)
  command -v automake >/dev/null 2>&1 || missing+=(automake)
  command -v libtoolize >/dev/null 2>&1 || missing+=(libtool)
  apt_install "${missing[@]}"
}

test_deps() {
  local missing=()
  command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
  command -v pgbench >/dev/null 2>&1 || missing+=(postgresql-client)
  # pg-compat runs a throwaway PostgreSQL 15 from the server binaries `pg_config --bindir` names.
  [ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql-15)
  { command -v pg_config >/dev/null 2>&1 && pg_config --bindir >/dev/null 2>&1; } || missing+=(libpq-dev)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  [ -f /usr/share/java/postgresql.jar ] || missing+=(libpostgresql-jdbc-java)
  command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
  command -v node >/dev/null 2>&1 || missing+=(nodejs)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
  # pg-compat/regress/fetch.sh downloads and unpacks PostgreSQL's regression suite.
  command -v curl >/dev/null 2>&1 || missing+=(curl ca-certificates)
  command -v xz >/dev/null 2>&1 || missing+=(xz-utils)
  command -v bzip2 >/dev/null 2>&1 || missing+=(bzip2)
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3 python3-venv)
  # Each package once, in order.
  local unique=()
  for package in "${missing[@]}"; do
    [[ " ${unique[*]} " == *" $package "* ]] || unique+=("$package")
  done
  apt_install "${unique[@]}"

  # Python drivers in a virtual environment: Debian's own Python refuses pip installs (PEP 668).
  [ -x "$VENV/bin/python3" ] || timeout 300 python3 -m venv "$VENV"
  # moto[server]: the S3-compatible server the remote-backup tests start on 127.0.0.1.
  if ! "$VENV/bin/python3" -c 'import psycopg, asyncpg, sqlalchemy, alembic, django, moto.server' >/dev/null 2>&1; then
    timeout 600 "$VENV/bin/python3" -m pip install -q --disable-pip-version-check \
      "psycopg[binary]" asyncpg sqlalchemy alembic django "moto[server]"
  fi
  # node-postgres, pg-copy-streams and Knex, as pinned by the lock file.
  if [ ! -d pg-compat/drivers/node_modules ] || [ pg-compat/drivers/package-lock.json -nt pg-compat/drivers/node_modules ]; then
    (cd pg-compat/drivers && timeout 600 npm ci --no-audit --no-fund --silent)
  fi
}

command="${1:-}"
(($#)) && shift
case "$command" in
  run)
    build_deps
    exec cargo run --release -- "$@"
    ;;
  test)
    build_deps
    test_deps
    # The tests call `python3`; the one with the drivers comes first.
    export PATH="$VENV/bin:$PATH"
    build_messages="$(mktemp)"
    trap 'rm -f "$build_messages"' EXIT
    cargo test --all-targets --no-run --message-format=json-render-diagnostics "$@" >"$build_messages"
    # Cargo keeps every old set of this crate's test binaries; the shared target directory would fill the disk.
    python3 .ci/prune-stale-builds.py "$build_messages" "$PWD/Cargo.toml"
    cargo test --all-targets "$@"
    ;;
  deps)
    build_deps
    [ "${1:-test}" = build ] || test_deps
    ;;
  -h | --help | help)
    usage
    ;;
  *)
    usage >&2
    exit 2
    ;;
esac
