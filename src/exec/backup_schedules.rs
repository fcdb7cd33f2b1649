//! Runs the `[[backup.schedule]]` entries and shows them as `system.backup_schedules`.
//!
//! Each due run is submitted as an ordinary BACKUP job (watched, killed and listed like any
//! other), never while the schedule's previous run is still queued or running. A run the
//! schedule missed while the server was down runs once at start. Directories are held to the
//! path rules when the node starts: a refused one stops the start, naming its entry.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use datafusion::arrow::array::{ArrayRef, Int64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::Result;

use super::system_tables::{SystemTable, texts, timestamp_type, timestamps};
use super::{Engine, ExecError, ExecResult};
use crate::backup::{PathPolicy, PathUse, Schedule, check_path, last_scheduled_job};
use crate::config::Config;
use crate::sql::ArchivePath;
use crate::storage::Store;

/// The scheduler wakes at least this often, so a clock set back or forward is noticed.
const LONGEST_SLEEP: Duration = Duration::from_secs(60);
/// `system.jobs.created_by` of scheduled runs.
const SCHEDULER: &str = "scheduler";

/// The config's schedules, each directory checked against the path rules.
pub(super) fn checked_schedules(store: &Store, config: &Config) -> ExecResult<Vec<Schedule>> {
    let policy = PathPolicy {
        data_dir: store.dir().root(),
        allowed_dirs: &config.backup.allowed_dirs,
    };
    config
        .backup
        .schedule
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            let key = format!("[[backup.schedule]] #{} ({:?})", index + 1, entry.name);
            let schedule = Schedule::new(entry)
                .map_err(|e| ExecError::InvalidParameterValue(format!("{key}: {e}")))?;
            // The rules for a backup target, on an archive name the schedule would write.
            let probe = schedule.archive_path(Utc::now());
            check_path(
                &probe.to_string_lossy(),
                true,
                PathUse::ScheduledTarget,
                &policy,
            )
            .map_err(|e| {
                ExecError::InvalidParameterValue(format!(
                    "{key} directory = {:?}: {e}",
                    entry.directory
                ))
            })?;
            Ok(schedule)
        })
        .collect()
}

impl Engine {
    /// Runs the schedules until the task is aborted at shutdown.
    pub async fn run_backup_schedules(self: Arc<Self>) {
        let schedules = self.schedules.clone();
        if schedules.is_empty() {
            return;
        }
        let now = Utc::now();
        let mut due: Vec<Option<DateTime<Utc>>> = schedules
            .iter()
            .map(|schedule| match self.last_run(schedule) {
                Some(last) if schedule.missed(last, now) => {
                    tracing::info!(
                        schedule = schedule.name(),
                        last_run = %last,
                        "a scheduled backup was missed while the server was down; running it now"
                    );
                    Some(now)
                }
                _ => schedule.next_after(now),
            })
            .collect();
        loop {
            let now = Utc::now();
            for (schedule, due) in schedules.iter().zip(due.iter_mut()) {
                if due.is_some_and(|at| at <= now) {
                    self.start_scheduled_backup(schedule, now);
                    *due = schedule.next_after(now);
                }
            }
            let wait = due
                .iter()
                .flatten()
                .min()
                .and_then(|at| (*at - now).to_std().ok())
                .unwrap_or(LONGEST_SLEEP)
                .min(LONGEST_SLEEP);
            tokio::time::sleep(wait).await;
        }
    }

    /// When the schedule last ran: its newest job, or its newest archive, whichever is later.
    fn last_run(&self, schedule: &Schedule) -> Option<DateTime<Utc>> {
        let from_jobs = self.store().jobs().ok().and_then(|jobs| {
            last_scheduled_job(&jobs, schedule.name())
                .and_then(|job| Utc.timestamp_micros(job.created_at).single())
        });
        let from_archives = schedule
            .archives()
            .ok()
            .and_then(|archives| archives.last().map(|a| a.taken_at));
        from_jobs.max(from_archives)
    }

    fn start_scheduled_backup(&self, schedule: &Schedule, now: DateTime<Utc>) {
        let name = schedule.name();
        if let Ok(jobs) = self.store().jobs()
            && let Some(previous) = last_scheduled_job(&jobs, name)
            && !previous.status.is_finished()
        {
            tracing::warn!(
                schedule = name,
                job_id = previous.job_id,
                "skipping a scheduled backup: the previous run is still {}",
                previous.status.as_str()
            );
            return;
        }
        let target = ArchivePath {
            raw: schedule.archive_path(now).to_string_lossy().into_owned(),
            quoted: true,
        };
        let submitted = self.backup_job(&target, None).and_then(|mut job| {
            job.schedule = Some(schedule.clone());
            Ok(self.jobs().submit(Arc::new(job), SCHEDULER)?)
        });
        match submitted {
            Ok(job_id) => tracing::info!(schedule = name, job_id, "scheduled backup started"),
            Err(e) => tracing::error!(schedule = name, "cannot start a scheduled backup: {e}"),
        }
    }

    /// The schedule named `name`, for a queued scheduled run resumed after a restart.
    pub(super) fn schedule_named(&self, name: &str) -> Option<Schedule> {
        self.schedules.iter().find(|s| s.name() == name).cloned()
    }
}

/// `system.backup_schedules`: each schedule, its retention, its last run and its next.
#[derive(Debug)]
pub(super) struct BackupSchedulesTable {
    pub schedules: Arc<[Schedule]>,
}

impl SystemTable for BackupSchedulesTable {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("cron", DataType::Utf8, false),
            Field::new("directory", DataType::Utf8, false),
            Field::new("keep_last", DataType::Int64, true),
            Field::new("keep_days", DataType::Int64, true),
            Field::new("last_job_id", DataType::Utf8, true),
            Field::new("last_status", DataType::Utf8, true),
            Field::new("last_run_at", timestamp_type(), true),
            Field::new("next_run", timestamp_type(), true),
        ]))
    }

    fn rows(&self, store: &Store) -> Result<Vec<ArrayRef>> {
        let jobs = store.jobs().map_err(super::catalog::storage_error)?;
        let last: Vec<_> = self
            .schedules
            .iter()
            .map(|s| last_scheduled_job(&jobs, s.name()))
            .collect();
        let now = Utc::now();
        let directories: Vec<String> = self
            .schedules
            .iter()
            .map(|s| s.config.directory.to_string_lossy().into_owned())
            .collect();
        Ok(vec![
            texts(self.schedules.iter().map(|s| Some(s.name()))),
            texts(self.schedules.iter().map(|s| Some(s.config.cron.as_str()))),
            texts(directories.iter().map(|d| Some(d.as_str()))),
            Arc::new(Int64Array::from_iter(
                self.schedules
                    .iter()
                    .map(|s| s.config.keep_last.map(|n| n as i64)),
            )),
            Arc::new(Int64Array::from_iter(
                self.schedules
                    .iter()
                    .map(|s| s.config.keep_days.map(|n| n as i64)),
            )),
            texts(last.iter().map(|job| job.map(|j| j.job_id.as_str()))),
            texts(last.iter().map(|job| job.map(|j| j.status.as_str()))),
            timestamps(last.iter().map(|job| job.map(|j| j.created_at))),
            timestamps(
                self.schedules
                    .iter()
                    .map(|s| s.next_after(now).map(|t| t.timestamp_micros())),
            ),
        ])
    }
}
