#!/usr/bin/env python3
"""Builds damaged, foreign and hostile variants of a good KalamDB backup archive.

usage: hostile_archives.py GOOD.tar.gz OUT_DIR
       hostile_archives.py --repack GOOD.tar.gz DATA_DIR OUT.tar.gz

Each variant is written to OUT_DIR/<name>.tar.gz. Variants that add or change entries keep the
archive's pax global header and put their change before MANIFEST.json, so the restore meets
them as it would in a crafted attack rather than failing earlier for an unrelated reason.
"""
import hashlib
import io
import json
import os
import sys
import tarfile


def members(good):
    with tarfile.open(good, "r:gz") as src:
        headers = dict(src.pax_headers)
        out = []
        for m in src.getmembers():
            data = src.extractfile(m).read() if m.isfile() else None
            out.append((m, data))
        return headers, out


def write(path, headers, entries):
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT, pax_headers=headers) as dst:
        for info, data in entries:
            dst.addfile(info, io.BytesIO(data) if data is not None else None)


def file_entry(name, data, kind=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.mode = 0o644
    return info, (data if kind == tarfile.REGTYPE else None)


def before_manifest(entries, extra):
    body = [e for e in entries if e[0].name != "MANIFEST.json"]
    manifest = [e for e in entries if e[0].name == "MANIFEST.json"]
    return body + extra + manifest


def main():
    good, out_dir = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    raw = open(good, "rb").read()
    headers, entries = members(good)
    target = lambda name: os.path.join(out_dir, name + ".tar.gz")

    open(target("truncated"), "wb").write(raw[: len(raw) * 3 // 5])
    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 0x01
    open(target("flipped_byte"), "wb").write(bytes(flipped))
    open(target("not_gzip"), "wb").write(b"this is a plain text file, not an archive\n" * 20)
    open(target("empty"), "wb").write(b"")

    # The manifest body edited without resealing it.
    tampered = []
    for info, data in entries:
        if info.name == "MANIFEST.json":
            data = data.replace(b'"applied_seq": ', b'"applied_seq": 1', 1)
            info = tarfile.TarInfo(info.name)
            info.size = len(data)
            info.mode = 0o644
        tampered.append((info, data))
    write(target("manifest_tampered"), headers, tampered)

    # A data file whose bytes no longer match its SHA-256 (same size).
    changed, done = [], False
    for info, data in entries:
        if not done and info.isfile() and info.name.startswith("data/") and info.size > 0:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
            done = True
        changed.append((info, data))
    write(target("content_mismatch"), headers, changed)

    # A file the manifest lists is missing.
    victim = next(i.name for i, _ in entries if i.isfile() and i.name.startswith("data/storage/"))
    write(target("missing_file"), headers, [(i, d) for i, d in entries if i.name != victim])

    write(target("extra_file"), headers,
          before_manifest(entries, [file_entry("data/storage/extra.parquet", b"not listed")]))
    write(target("dotdot_entry"), headers,
          before_manifest(entries, [file_entry("data/storage/../../escaped.txt", b"escape")]))
    write(target("absolute_entry"), headers,
          before_manifest(entries, [file_entry("/tmp/kalamdb-absolute-entry.txt", b"abs")]))
    write(target("symlink_entry"), headers,
          before_manifest(entries, [file_entry("data/storage/link", b"", tarfile.SYMTYPE, "/etc/passwd")]))
    write(target("hardlink_entry"), headers,
          before_manifest(entries, [file_entry("data/storage/hard", b"", tarfile.LNKTYPE, "data/rocksdb/CURRENT")]))
    write(target("device_entry"), headers,
          before_manifest(entries, [file_entry("data/storage/dev", b"", tarfile.CHRTYPE)]))
    write(target("outside_layout"), headers,
          before_manifest(entries, [file_entry("data/elsewhere/x", b"x")]))

    # A header declaring far more data than any disk holds.
    write(target("huge_declared"), dict(headers, **{"KALAMDB.total_bytes": str(10**15)}), entries)

    # Header bombs: a few kilobytes of gzip declaring megabytes of pax records or of a GNU long
    # name, which a reader that buffers extended headers whole would hold in memory.
    bomb = file_entry("data/storage/bomb.parquet", b"x")
    bomb[0].pax_headers = {"comment": "a" * (16 << 20)}
    write(target("huge_pax_header"), headers, before_manifest(entries, [bomb]))
    write_with_gnu_entry(target("long_name_bomb"), headers, entries,
                         file_entry("data/storage/" + "n" * (16 << 20), b"x"))
    # A pax record that would silently give an entry another size than its header says.
    resized = file_entry("data/storage/resized.parquet", b"x")
    resized[0].pax_headers = {"size": "1"}
    write(target("pax_size_record"), headers, before_manifest(entries, [resized]))
    # Headers that understate what follows: one byte, one file.
    write(target("size_lie"), dict(headers, **{"KALAMDB.total_bytes": "1"}), entries)
    write(target("count_lie"), dict(headers, **{"KALAMDB.file_count": "1"}), entries)

    # A well-formed .tar.gz that some other program wrote: no KalamDB header, no manifest.
    with tarfile.open(target("foreign"), "w:gz", format=tarfile.GNU_FORMAT) as dst:
        for info, data in entries:
            if info.name.startswith("data/"):
                dst.addfile(info, io.BytesIO(data) if data is not None else None)


def write_with_gnu_entry(path, headers, entries, extra):
    """Like write, with `extra` in GNU format (a long name becomes an 'L' header)."""
    body = [e for e in entries if e[0].name != "MANIFEST.json"]
    manifest = [e for e in entries if e[0].name == "MANIFEST.json"]
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT, pax_headers=headers) as dst:
        for info, data in body:
            dst.addfile(info, io.BytesIO(data) if data is not None else None)
        dst.format = tarfile.GNU_FORMAT
        dst.addfile(extra[0], io.BytesIO(extra[1]))
        dst.format = tarfile.PAX_FORMAT
        for info, data in manifest:
            dst.addfile(info, io.BytesIO(data))


def canonical(body):
    """The serialization KalamDB seals: serde_json's pretty printer, which this matches."""
    return json.dumps(body, indent=2, ensure_ascii=False)


def repack(good, data_dir, out):
    """A correctly sealed archive of DATA_DIR (an extracted, then edited, `data/`): the attack
    of someone who can rewrite an archive and recompute its checksums, but holds no signing key."""
    headers, entries = members(good)
    old = json.loads(next(d for i, d in entries if i.name == "MANIFEST.json"))["manifest"]
    dirs, files = [], []
    for root, subdirs, names in os.walk(data_dir):
        subdirs.sort()
        rel = os.path.relpath(root, os.path.dirname(data_dir))
        dirs.append(rel)
        for name in sorted(names):
            full = os.path.join(root, name)
            files.append((os.path.join(rel, name), open(full, "rb").read()))
    listed = [{"path": p, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()} for p, d in files]
    manifest = dict(old, total_bytes=sum(len(d) for _, d in files), files=listed)
    sealed = {"manifest": manifest,
              "manifest_sha256": hashlib.sha256(canonical(manifest).encode()).hexdigest()}
    header = dict(headers, **{"KALAMDB.total_bytes": str(manifest["total_bytes"]),
                              "KALAMDB.file_count": str(len(files))})
    out_entries = []
    for d in dirs:
        info = tarfile.TarInfo(d + "/")
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        out_entries.append((info, None))
    out_entries += [file_entry(p, d) for p, d in files]
    out_entries.append(file_entry("MANIFEST.json", (canonical(sealed) + "\n").encode()))
    write(out, header, out_entries)


if __name__ == "__main__":
    if sys.argv[1] == "--repack":
        repack(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        main()
