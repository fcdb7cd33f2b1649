//! Scheduled backups (`[[backup.schedule]]`): when a schedule runs next, whether a run was
//! missed while the server was down, what its archives are called, and which of them its
//! retention removes once a newer one is verified.
//!
//! A schedule keeps no state of its own. Its past is read back from what it left: the backup
//! jobs recorded with its name in `system.jobs`, and the archives in its directory, whose
//! names carry the UTC second they were taken (`<name>-20261201T030000Z.tar.gz`) and so sort
//! by age.

use std::path::{Path, PathBuf};

use chrono::{DateTime, SubsecRound, TimeZone, Utc};

use crate::config::BackupSchedule;
use crate::jobs::{JobContext, JobError, JobResult};
use crate::storage::JobRecord;

use super::{BackupParameters, SigningKey};

/// The UTC time in an archive's name.
const NAME_TIME_FORMAT: &str = "%Y%m%dT%H%M%SZ";
const ARCHIVE_SUFFIX: &str = ".tar.gz";

/// A parsed `[[backup.schedule]]`.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub config: BackupSchedule,
    cron: croner::Cron,
}

/// One of a schedule's archives, found in its directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledArchive {
    pub path: PathBuf,
    pub taken_at: DateTime<Utc>,
}

impl Schedule {
    /// Parses the entry's cron expression (the config was validated, so this fails only for
    /// entries that bypassed it).
    pub fn new(config: &BackupSchedule) -> Result<Schedule, String> {
        let cron = config
            .cron
            .parse::<croner::Cron>()
            .map_err(|e| format!("cron = {:?}: {e}", config.cron))?;
        Ok(Schedule {
            config: config.clone(),
            cron,
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The first time the expression matches strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&after, false).ok()
    }

    /// Whether the expression matched between the last run and `now`: a run the server missed.
    pub fn missed(&self, last_run: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        self.next_after(last_run).is_some_and(|due| due <= now)
    }

    /// Where a run taken at `at` writes its archive.
    pub fn archive_path(&self, at: DateTime<Utc>) -> PathBuf {
        self.config.directory.join(format!(
            "{}-{}{ARCHIVE_SUFFIX}",
            self.config.name,
            at.trunc_subsecs(0).format(NAME_TIME_FORMAT)
        ))
    }

    /// The time in `file_name` when it names one of this schedule's archives.
    fn taken_at(&self, file_name: &str) -> Option<DateTime<Utc>> {
        let stamp = file_name
            .strip_prefix(self.config.name.as_str())?
            .strip_prefix('-')?
            .strip_suffix(ARCHIVE_SUFFIX)?;
        let naive = chrono::NaiveDateTime::parse_from_str(stamp, NAME_TIME_FORMAT).ok()?;
        // Only the exact form this module writes: another schedule named `<name>-x` cannot
        // produce a stamp that parses, and a stray suffix makes the name foreign.
        (naive.format(NAME_TIME_FORMAT).to_string() == stamp).then(|| Utc.from_utc_datetime(&naive))
    }

    /// This schedule's archives in its directory, oldest first. Partial archives, other
    /// schedules' archives and any other file are not its own and are never listed.
    pub fn archives(&self) -> std::io::Result<Vec<ScheduledArchive>> {
        let mut archives = Vec::new();
        for entry in std::fs::read_dir(&self.config.directory)? {
            let entry = entry?;
            let Some(taken_at) = entry.file_name().to_str().and_then(|n| self.taken_at(n)) else {
                continue;
            };
            if entry.file_type()?.is_file() {
                archives.push(ScheduledArchive {
                    path: entry.path(),
                    taken_at,
                });
            }
        }
        archives.sort_by_key(|a| a.taken_at);
        Ok(archives)
    }

    /// The archives retention removes once `newest` (completed and verified) exists: of those
    /// taken before it, every one that is neither among the newest `keep_last` (counting
    /// `newest`) nor younger than `keep_days`. With neither setting, none.
    pub fn expired(
        &self,
        archives: &[ScheduledArchive],
        newest: &Path,
        now: DateTime<Utc>,
    ) -> Vec<PathBuf> {
        // By name: the job's path has its directory's symlinks resolved, the listing has not.
        let Some(newest) = archives
            .iter()
            .find(|a| a.path.file_name() == newest.file_name())
        else {
            return Vec::new();
        };
        let (keep_last, keep_days) = (self.config.keep_last, self.config.keep_days);
        if keep_last.is_none() && keep_days.is_none() {
            return Vec::new();
        }
        let older: Vec<&ScheduledArchive> = archives
            .iter()
            .filter(|a| a.taken_at < newest.taken_at)
            .collect();
        // `newest` is one of the kept; the rest of keep_last go to the youngest older ones.
        let kept_by_count = keep_last.map_or(0, |n| n.saturating_sub(1));
        let counted_from = older.len().saturating_sub(kept_by_count);
        older
            .iter()
            .enumerate()
            .filter(|(index, archive)| {
                let by_count = keep_last.is_some() && *index >= counted_from;
                let by_age = keep_days.is_some_and(|days| {
                    now.signed_duration_since(archive.taken_at)
                        < chrono::Duration::days(days.min(i64::MAX as u64 / 86_400) as i64)
                });
                !by_count && !by_age
            })
            .map(|(_, archive)| archive.path.clone())
            .collect()
    }
}

impl Schedule {
    /// After a run published `archive`: reads it back with every check a restore makes, then
    /// deletes the archives the retention no longer keeps. Returns what it did, for the job's
    /// message. A failed check fails the job and removes nothing.
    pub(super) fn verify_and_prune(
        &self,
        ctx: &JobContext,
        archive: &Path,
        key: Option<&SigningKey>,
    ) -> JobResult<String> {
        ctx.progress_saying(
            ctx.store.job(&ctx.job_id)?.map_or(0, |job| job.bytes_done),
            None,
            format!("verifying {}", archive.display()),
        )?;
        let checked = super::verify_archive(&archive.into(), key).map_err(|e| {
            JobError::Failed(format!(
                "the new archive {} failed verification, so no older archive was removed: {e}",
                archive.display()
            ))
        })?;
        let listing_failed = |e: std::io::Error| {
            JobError::Failed(format!(
                "listing {} for retention: {e}",
                self.config.directory.display()
            ))
        };
        let archives = self.archives().map_err(listing_failed)?;
        let mut removed = Vec::new();
        for path in self.expired(&archives, archive, Utc::now()) {
            match std::fs::remove_file(&path) {
                Ok(()) => removed.push(
                    path.file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned(),
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(file = %path.display(), "removing an expired scheduled backup: {e}")
                }
            }
        }
        if !removed.is_empty() {
            super::fsync_dir(&self.config.directory).map_err(listing_failed)?;
        }
        let verified = format!(
            "verified ({} files match the manifest)",
            checked.manifest.files.len()
        );
        Ok(if removed.is_empty() {
            format!("{verified}; schedule {} removed no archive", self.name())
        } else {
            tracing::info!(schedule = self.name(), removed = ?removed, "removed expired scheduled backups");
            format!(
                "{verified}; schedule {} removed {} older archive(s): {}",
                self.name(),
                removed.len(),
                removed.join(", ")
            )
        })
    }
}

/// The schedule a backup job ran for, from its recorded parameters.
pub fn schedule_of(job: &JobRecord) -> Option<String> {
    if job.job_type != super::BackupJob::JOB_TYPE {
        return None;
    }
    serde_json::from_str::<BackupParameters>(&job.parameters)
        .ok()?
        .schedule
}

/// The most recent backup job of the schedule `name` among `jobs`.
pub fn last_job<'a>(jobs: &'a [JobRecord], name: &str) -> Option<&'a JobRecord> {
    jobs.iter()
        .filter(|job| schedule_of(job).as_deref() == Some(name))
        .max_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then(a.job_id.cmp(&b.job_id))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(cron: &str, keep_last: Option<usize>, keep_days: Option<u64>) -> Schedule {
        Schedule::new(&BackupSchedule {
            name: "nightly".into(),
            cron: cron.into(),
            directory: PathBuf::from("/b"),
            keep_last,
            keep_days,
        })
        .unwrap()
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn archives(s: &Schedule, times: &[&str]) -> Vec<ScheduledArchive> {
        times
            .iter()
            .map(|t| ScheduledArchive {
                path: s.archive_path(at(t)),
                taken_at: at(t),
            })
            .collect()
    }

    #[test]
    fn archive_names_sort_by_time_and_parse_back_only_for_their_own_schedule() {
        let s = schedule("0 3 * * *", None, None);
        let path = s.archive_path(at("2026-12-01T03:00:00.123456Z"));
        assert_eq!(path, PathBuf::from("/b/nightly-20261201T030000Z.tar.gz"));
        assert_eq!(
            s.taken_at("nightly-20261201T030000Z.tar.gz"),
            Some(at("2026-12-01T03:00:00Z"))
        );
        for foreign in [
            "nightly-20261201T030000Z.tar.gz.partial",
            "nightly-x-20261201T030000Z.tar.gz",
            "nightlyx-20261201T030000Z.tar.gz",
            "weekly-20261201T030000Z.tar.gz",
            "nightly-2026121T030000Z.tar.gz",
            "nightly.tar.gz",
        ] {
            assert_eq!(s.taken_at(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn five_field_and_seconds_expressions_give_their_next_times_in_utc() {
        let daily = schedule("0 3 * * *", None, None);
        assert_eq!(
            daily.next_after(at("2026-12-01T03:00:00Z")),
            Some(at("2026-12-02T03:00:00Z"))
        );
        let every_two_seconds = schedule("*/2 * * * * *", None, None);
        assert_eq!(
            every_two_seconds.next_after(at("2026-12-01T03:00:01.5Z")),
            Some(at("2026-12-01T03:00:02Z"))
        );
    }

    #[test]
    fn a_run_is_missed_only_when_the_expression_matched_since_the_last_one() {
        let s = schedule("0 3 * * *", None, None);
        let last = at("2026-12-01T03:00:00Z");
        assert!(!s.missed(last, at("2026-12-02T02:59:59Z")));
        assert!(s.missed(last, at("2026-12-02T03:00:00Z")));
        assert!(s.missed(last, at("2026-12-09T12:00:00Z")));
    }

    #[test]
    fn keep_last_keeps_the_newest_n_counting_the_new_archive() {
        let s = schedule("0 3 * * *", Some(2), None);
        let all = archives(
            &s,
            &[
                "2026-12-01T03:00:00Z",
                "2026-12-02T03:00:00Z",
                "2026-12-03T03:00:00Z",
                "2026-12-04T03:00:00Z",
            ],
        );
        let expired = s.expired(&all, &all[3].path, at("2026-12-04T03:01:00Z"));
        assert_eq!(expired, vec![all[0].path.clone(), all[1].path.clone()]);
    }

    #[test]
    fn keep_days_and_keep_last_together_keep_the_union() {
        let s = schedule("0 3 * * *", Some(1), Some(2));
        let all = archives(
            &s,
            &[
                "2026-12-01T03:00:00Z",
                "2026-12-03T03:00:00Z",
                "2026-12-04T03:00:00Z",
            ],
        );
        let expired = s.expired(&all, &all[2].path, at("2026-12-04T03:01:00Z"));
        assert_eq!(expired, vec![all[0].path.clone()]);
    }

    #[test]
    fn nothing_newer_than_the_verified_archive_and_nothing_without_retention_is_removed() {
        let s = schedule("0 3 * * *", Some(1), None);
        let all = archives(&s, &["2026-12-01T03:00:00Z", "2026-12-02T03:00:00Z"]);
        // Verified the older one: the newer is never a candidate.
        assert!(
            s.expired(&all, &all[0].path, at("2026-12-05T00:00:00Z"))
                .is_empty()
        );
        let keep_all = schedule("0 3 * * *", None, None);
        assert!(
            keep_all
                .expired(&all, &all[1].path, at("2026-12-05T00:00:00Z"))
                .is_empty()
        );
    }
}
