#!/usr/bin/env python3
"""Deletes this crate's stale build artifacts from a shared cargo target directory.

Usage: prune-stale-builds.py BUILD_MESSAGES MANIFEST_PATH

BUILD_MESSAGES holds the JSON lines of `cargo test --no-run --message-format=json...`. Each change
of a dependency or of the toolchain gives this crate's artifacts new hashes, and cargo never
deletes the old set: another full set of test binaries (about 13 GiB) stayed behind each time,
until the disk filled. This deletes the artifacts of this crate's targets whose hashes the build
did not produce, and keeps only the newest incremental cache per target. Dependencies' artifacts
are shared between builds and left alone.
"""
import json, os, re, shutil, sys

messages, manifest = sys.argv[1:3]
names, current_hashes, profile_dirs, current_files = set(), set(), set(), set()
artifact = re.compile(r"^(?:lib)?([a-z0-9_]+)-([0-9a-f]{16})(?:\..*)?$")
for line in open(messages):
    message = json.loads(line) if line.startswith("{") else {}
    if message.get("reason") != "compiler-artifact":
        continue
    ours = message.get("manifest_path") == manifest
    if ours:
        names.add(message["target"]["name"].replace("-", "_"))
    for path in message["filenames"] + [message.get("executable") or ""]:
        found = artifact.match(os.path.basename(path))
        if found:
            # Every artifact of this build is current, a dependency named like a test included.
            current_hashes.add(found.group(2))
            if ours:
                profile_dirs.add(os.path.dirname(path))
        elif ours and os.path.exists(path):
            # An uplifted binary (target/debug/kalamdb) is a hard link to its hashed copy in deps/.
            current_files.add((os.stat(path).st_dev, os.stat(path).st_ino))
for deps in profile_dirs:
    for entry in os.listdir(deps):
        found = artifact.match(entry)
        stat = os.stat(os.path.join(deps, entry))
        if found and (stat.st_dev, stat.st_ino) in current_files:
            current_hashes.add(found.group(2))
freed = 0
for deps in profile_dirs:
    for entry in os.listdir(deps):
        found = artifact.match(entry)
        if found and found.group(1) in names and found.group(2) not in current_hashes:
            path = os.path.join(deps, entry)
            freed += os.path.getsize(path)
            os.remove(path)
    incremental = os.path.join(os.path.dirname(deps), "incremental")
    caches = {}
    for entry in os.listdir(incremental) if os.path.isdir(incremental) else []:
        name = entry.rsplit("-", 1)[0]
        if name in names:
            caches.setdefault(name, []).append(os.path.join(incremental, entry))
    for dirs in caches.values():
        dirs.sort(key=os.path.getmtime)
        for stale in dirs[:-1]:
            shutil.rmtree(stale, ignore_errors=True)
if freed:
    print(f"dev.sh: removed {freed >> 20} MiB of stale kalamdb build artifacts", file=sys.stderr)
