//! The backup archive format (version 1): a gzip-compressed tar stream.
//!
//! 1. A pax global header (the archive's first entry; tar tools list nothing for it) declares
//!    `KALAMDB.format_version`, `KALAMDB.total_bytes` (the sum of every file's size, so a
//!    restore can check free disk before extracting) and `KALAMDB.file_count`.
//! 2. Directories and files under the spec's layout: `data/rocksdb/`, `data/storage/`,
//!    `data/snapshots/`, `data/streams/`, then `server.toml` when the server had one.
//! 3. `MANIFEST.json` last, so the archive is written in one pass: every file's path, size and
//!    SHA-256, and a SHA-256 of the manifest body itself (its seal). It sits in a gzip member
//!    of its own (see `members`), so it can be read without inflating the data.
//!
//! An incremental backup lists every file of the database but holds only those whose path,
//! size or SHA-256 differ from its base's manifest; the others name, by seal, the archive of
//! the chain that holds them.
//!
//! SHA-256 rather than CRC-32C: a backup leaves the machine, and a cryptographic digest also
//! detects deliberate tampering; with the CPU's SHA instructions (ring) it hashes at well over
//! a gigabyte per second, far faster than gzip, so it costs no wall time.

use serde::{Deserialize, Serialize};

pub const FORMAT_VERSION: u64 = 1;
pub const MANIFEST_NAME: &str = "MANIFEST.json";
pub const CONFIG_NAME: &str = "server.toml";
pub const DATA_ROOT: &str = "data";
/// The data directory's areas an archive holds, in the spec's order.
pub const LAYOUT: [&str; 4] = ["rocksdb", "storage", "snapshots", "streams"];

pub const PAX_FORMAT_VERSION: &str = "KALAMDB.format_version";
pub const PAX_TOTAL_BYTES: &str = "KALAMDB.total_bytes";
pub const PAX_FILE_COUNT: &str = "KALAMDB.file_count";

/// The longest entry path an archive may hold (PostgreSQL's MAXPGPATH is 1 KiB; ours are far
/// shorter), and so the largest GNU long-name header the reader accepts.
pub const MAX_PATH_BYTES: usize = 4096;
/// The largest pax header (global or per entry) the reader accepts.
pub const MAX_PAX_HEADER_BYTES: u64 = 64 * 1024;
/// The most components an entry path may have: `data/storage/<namespace>/<table>/<segment>` is 5.
pub const MAX_PATH_DEPTH: usize = 16;

/// A manifest larger than this is not a manifest of ours.
pub const MAX_MANIFEST_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    pub format_version: u64,
    pub kalamdb_version: String,
    pub created_at: String,
    pub job_id: String,
    /// The applied sequence number the backup captured.
    pub applied_seq: u64,
    pub checksum_algorithm: String,
    /// The bytes of the files this archive holds (for an incremental, fewer than it lists).
    pub total_bytes: u64,
    /// Every file of the database at the backup point.
    pub files: Vec<ManifestFile>,
    /// The id of the database backed up (absent in archives from before databases had ids).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_id: Option<String>,
    /// For an incremental backup: the archive it builds on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseArchive>,
}

/// The archive an incremental backup builds on, named by its manifest's seal; the path is
/// where it was when the incremental was taken.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BaseArchive {
    pub path: String,
    pub manifest_sha256: String,
    pub job_id: String,
    pub created_at: String,
}

/// The files and bytes a manifest lists under one area: `data/rocksdb`, `data/storage`,
/// ..., or a top-level file such as `server.toml`; `stored_*` count those this archive holds
/// (all of them, unless it is an incremental).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AreaTotal {
    pub area: String,
    pub files: usize,
    pub bytes: u64,
    pub stored_files: usize,
    pub stored_bytes: u64,
}

impl Manifest {
    /// Files and bytes per area, in the archive's order of areas (the spec's layout first).
    pub fn areas(&self) -> Vec<AreaTotal> {
        let mut totals: Vec<AreaTotal> = LAYOUT
            .iter()
            .map(|area| AreaTotal::empty(format!("{DATA_ROOT}/{area}")))
            .collect();
        for file in &self.files {
            let area = match file
                .path
                .strip_prefix(DATA_ROOT)
                .and_then(|p| p.strip_prefix('/'))
            {
                Some(rest) => format!("{DATA_ROOT}/{}", rest.split('/').next().unwrap_or("")),
                None => file.path.clone(),
            };
            let index = match totals.iter().position(|t| t.area == area) {
                Some(index) => index,
                None => {
                    totals.push(AreaTotal::empty(area));
                    totals.len() - 1
                }
            };
            let total = &mut totals[index];
            total.files += 1;
            total.bytes += file.size;
            if file.archive.is_none() {
                total.stored_files += 1;
                total.stored_bytes += file.size;
            }
        }
        totals
    }

    /// The files this archive holds itself.
    pub fn stored_files(&self) -> impl Iterator<Item = &ManifestFile> {
        self.files.iter().filter(|f| f.archive.is_none())
    }

    /// The SHA-256 of the manifest's canonical serialization: what names the archive in a
    /// chain of incrementals.
    pub fn seal(&self) -> String {
        sha256_hex(canonical(self).as_bytes())
    }
}

impl AreaTotal {
    fn empty(area: String) -> AreaTotal {
        AreaTotal {
            area,
            files: 0,
            bytes: 0,
            stored_files: 0,
            stored_bytes: 0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ManifestFile {
    pub path: String,
    pub size: u64,
    pub sha256: String,
    /// In an incremental backup, the seal of the archive of its chain that holds this file
    /// unchanged; absent when this archive holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<String>,
}

/// A sealed document: the body and the SHA-256 of its canonical serialization (the pretty
/// JSON serde_json writes for it, which is exactly the text inside the file).
#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    manifest: T,
    manifest_sha256: String,
    /// HMAC-SHA-256 of the same serialization under `[backup] signing_key`, when one is set.
    /// The digest above only detects damage (anyone can recompute it); this shows the archive
    /// was written by a server holding the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    manifest_hmac_sha256: Option<String>,
}

/// `[backup] signing_key`, ready to sign and verify manifests.
#[derive(Clone)]
pub struct SigningKey(ring::hmac::Key);

impl SigningKey {
    pub fn new(secret: &[u8]) -> SigningKey {
        SigningKey(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret))
    }

    fn sign(&self, canonical: &[u8]) -> String {
        hex::encode(ring::hmac::sign(&self.0, canonical))
    }

    /// Constant-time comparison, so timing reveals nothing about the expected tag.
    fn verifies(&self, canonical: &[u8], tag_hex: &str) -> bool {
        hex::decode(tag_hex).is_ok_and(|tag| ring::hmac::verify(&self.0, canonical, &tag).is_ok())
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(<secret>)")
    }
}

/// What a manifest's signature says about where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signature {
    /// Signed with the key the reader holds.
    Verified,
    /// Signed, but the reader holds no key to check it with.
    Unchecked,
    /// Not signed.
    Absent,
}

impl Signature {
    /// The word SHOW BACKUP and job messages use.
    pub fn as_str(self) -> &'static str {
        match self {
            Signature::Verified => "verified",
            Signature::Unchecked => "unchecked",
            Signature::Absent => "none",
        }
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

fn canonical<T: Serialize>(body: &T) -> String {
    serde_json::to_string_pretty(body).expect("manifest serializes")
}

/// Serializes `body` together with the SHA-256 of its canonical serialization.
pub fn seal<T: Serialize>(body: &T) -> Vec<u8> {
    seal_signed(body, None)
}

/// [`seal`], and with `key` an HMAC-SHA-256 of the same serialization.
pub fn seal_signed<T: Serialize>(body: &T, key: Option<&SigningKey>) -> Vec<u8> {
    let canonical = canonical(body);
    let envelope = Envelope {
        manifest_sha256: sha256_hex(canonical.as_bytes()),
        manifest_hmac_sha256: key.map(|key| key.sign(canonical.as_bytes())),
        manifest: body,
    };
    let mut out = serde_json::to_vec_pretty(&envelope).expect("envelope serializes");
    out.push(b'\n');
    out
}

/// Parses the body and checks it against the envelope's checksum. Any change to the body
/// (a value, a field added or removed) changes its canonical serialization and fails.
pub fn unseal<T: Serialize + for<'de> Deserialize<'de>>(
    bytes: &[u8],
    what: &str,
) -> Result<T, String> {
    unseal_signed(bytes, what, None).map(|(body, _)| body)
}

/// [`unseal`], and checks the signature: with `key`, an unsigned document or one signed with
/// another key is refused.
pub fn unseal_signed<T: Serialize + for<'de> Deserialize<'de>>(
    bytes: &[u8],
    what: &str,
    key: Option<&SigningKey>,
) -> Result<(T, Signature), String> {
    let envelope: Envelope<serde_json::Value> =
        serde_json::from_slice(bytes).map_err(|e| format!("{what} is not valid JSON: {e}"))?;
    let body: T = serde_json::from_value(envelope.manifest.clone())
        .map_err(|e| format!("{what} is malformed: {e}"))?;
    // Fields the reader does not know would be dropped by the typed round trip: hash the
    // document as written too, so they cannot be slipped in either.
    let canonical = canonical(&body);
    let actual = sha256_hex(canonical.as_bytes());
    if actual != envelope.manifest_sha256
        || serde_json::to_value(&body).ok() != Some(envelope.manifest)
    {
        return Err(format!(
            "{what} checksum mismatch: it declares {} but its body hashes to {actual}",
            envelope.manifest_sha256
        ));
    }
    let signature = match (key, &envelope.manifest_hmac_sha256) {
        (None, None) => Signature::Absent,
        (None, Some(_)) => Signature::Unchecked,
        (Some(_), None) => {
            return Err(format!(
                "{what} is not signed, but [backup] signing_key is set: only archives signed with that key are accepted"
            ));
        }
        (Some(key), Some(tag)) if key.verifies(canonical.as_bytes(), tag) => Signature::Verified,
        (Some(_), Some(_)) => {
            return Err(format!(
                "{what} is signed with another key than [backup] signing_key (or was altered and re-signed without it)"
            ));
        }
    };
    Ok((body, signature))
}

/// The body of a pax global header holding `records`.
pub fn pax_records(records: &[(&str, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in records {
        // Each record is "<length> <key>=<value>\n", the length counting its own digits.
        let rest = key.len() + value.len() + 3;
        let mut len = rest + 1;
        while len.to_string().len() + rest != len {
            len += 1;
        }
        out.extend_from_slice(format!("{len} {key}={value}\n").as_bytes());
    }
    out
}

/// Where an archive entry belongs once its path has been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    Manifest,
    Config,
    /// `data/` itself.
    DataRoot,
    /// A path under `data/<area>/...`, given relative to the data directory.
    Data(String),
}

impl Place {
    /// Checks an entry's path against the layout: relative, only normal components, and under
    /// one of the spec's areas. Returns why it is refused otherwise.
    pub fn of(path: &[u8]) -> Result<Place, String> {
        if path.len() > MAX_PATH_BYTES {
            return Err(format!(
                "entry path of {} bytes is longer than the {MAX_PATH_BYTES} allowed",
                path.len()
            ));
        }
        let text = std::str::from_utf8(path).map_err(|_| {
            format!(
                "entry {:?} has a path that is not UTF-8",
                String::from_utf8_lossy(path)
            )
        })?;
        if text.starts_with('/') || text.starts_with('\\') || text.contains(":\\") {
            return Err(format!("entry '{text}' has an absolute path"));
        }
        if text.contains('\0') || text.contains('\\') {
            return Err(format!(
                "entry '{text}' has a path with a NUL byte or backslash"
            ));
        }
        let trimmed = text.strip_suffix('/').unwrap_or(text);
        let parts: Vec<&str> = trimmed.split('/').collect();
        if parts.contains(&"..") {
            return Err(format!("entry '{text}' escapes the archive with '..'"));
        }
        if parts.len() > MAX_PATH_DEPTH {
            return Err(format!(
                "entry '{text}' is nested deeper than {MAX_PATH_DEPTH} directories"
            ));
        }
        if parts.iter().any(|p| p.is_empty() || *p == ".") {
            return Err(format!("entry '{text}' has an empty or '.' path component"));
        }
        match parts.as_slice() {
            [MANIFEST_NAME] => Ok(Place::Manifest),
            [CONFIG_NAME] => Ok(Place::Config),
            [DATA_ROOT] => Ok(Place::DataRoot),
            [DATA_ROOT, area, ..] if LAYOUT.contains(area) => Ok(Place::Data(parts[1..].join("/"))),
            _ => Err(format!(
                "entry '{text}' is outside the backup layout (data/rocksdb, data/storage, data/snapshots, data/streams, server.toml, MANIFEST.json)"
            )),
        }
    }

    /// The path of this place inside the archive.
    pub fn archive_path(&self) -> String {
        match self {
            Place::Manifest => MANIFEST_NAME.into(),
            Place::Config => CONFIG_NAME.into(),
            Place::DataRoot => DATA_ROOT.into(),
            Place::Data(relative) => format!("{DATA_ROOT}/{relative}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_lengths_count_themselves() {
        let body = pax_records(&[("KALAMDB.total_bytes", "123456".into()), ("a", "b".into())]);
        let text = String::from_utf8(body).unwrap();
        for line in text.split_inclusive('\n') {
            let (len, _) = line.split_once(' ').unwrap();
            assert_eq!(len.parse::<usize>().unwrap(), line.len(), "{line:?}");
        }
        let parsed: Vec<(String, String)> = tar::PaxExtensions::new(text.as_bytes())
            .map(|e| {
                let e = e.unwrap();
                (e.key().unwrap().to_owned(), e.value().unwrap().to_owned())
            })
            .collect();
        assert_eq!(parsed[0], ("KALAMDB.total_bytes".into(), "123456".into()));
    }

    #[test]
    fn sealed_manifests_detect_any_change() {
        let manifest = Manifest {
            format_version: 1,
            kalamdb_version: "0.1.0".into(),
            created_at: "now".into(),
            job_id: "BK-1".into(),
            applied_seq: 7,
            checksum_algorithm: "sha256".into(),
            total_bytes: 3,
            files: vec![ManifestFile {
                path: "data/rocksdb/CURRENT".into(),
                size: 3,
                sha256: sha256_hex(b"abc"),
                archive: None,
            }],
            database_id: None,
            base: None,
        };
        let sealed = seal(&manifest);
        assert_eq!(unseal::<Manifest>(&sealed, "manifest").unwrap(), manifest);
        let tampered = String::from_utf8(sealed)
            .unwrap()
            .replace("\"size\": 3", "\"size\": 4");
        let err = unseal::<Manifest>(tampered.as_bytes(), "manifest").unwrap_err();
        assert!(err.contains("checksum mismatch"), "{err}");
    }

    #[test]
    fn signed_manifests_verify_only_under_their_key() {
        let body = serde_json::json!({"files": 3});
        let key = SigningKey::new(b"0123456789abcdef0123456789abcdef");
        let other = SigningKey::new(b"fedcba9876543210fedcba9876543210");
        let signed = seal_signed(&body, Some(&key));
        let unsigned = seal(&body);
        let read = |bytes: &[u8], key| unseal_signed::<serde_json::Value>(bytes, "m", key);
        assert_eq!(read(&signed, Some(&key)).unwrap().1, Signature::Verified);
        assert_eq!(read(&signed, None).unwrap().1, Signature::Unchecked);
        assert_eq!(read(&unsigned, None).unwrap().1, Signature::Absent);
        let err = read(&signed, Some(&other)).unwrap_err();
        assert!(err.contains("another key"), "{err}");
        let err = read(&unsigned, Some(&key)).unwrap_err();
        assert!(err.contains("not signed"), "{err}");
        // Re-sealing a changed body without the key cannot carry a valid tag over.
        let text = String::from_utf8(signed).unwrap();
        let tag_line = text
            .lines()
            .find(|l| l.contains("manifest_hmac_sha256"))
            .unwrap();
        let forged = String::from_utf8(seal(&serde_json::json!({"files": 4}))).unwrap();
        let forged = forged.replacen(
            "{\n",
            &format!("{{\n{}\n", tag_line.trim_end_matches(',').to_owned() + ","),
            1,
        );
        assert!(read(forged.as_bytes(), Some(&key)).is_err());
    }

    #[test]
    fn entry_paths_outside_the_layout_are_refused() {
        assert_eq!(
            Place::of(b"data/rocksdb/CURRENT"),
            Ok(Place::Data("rocksdb/CURRENT".into()))
        );
        assert_eq!(Place::of(b"data/"), Ok(Place::DataRoot));
        assert_eq!(Place::of(b"MANIFEST.json"), Ok(Place::Manifest));
        for bad in [
            &b"/etc/passwd"[..],
            b"../x",
            b"data/rocksdb/../../x",
            b"data/other/x",
            b"data/./rocksdb/x",
            b"notes.txt",
            b"C:\\x",
        ] {
            assert!(Place::of(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
