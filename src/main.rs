//! The `kalamdb` command: runs the server.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kalamdb::config::{Config, LogFormat};

#[derive(Parser)]
#[command(
    name = "kalamdb",
    version,
    about = "PostgreSQL-wire-compatible database server"
)]
struct Cli {
    /// Path of server.toml (default: ./server.toml if present, else built-in defaults).
    #[arg(long, short = 'c', global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Check a backup archive (structure, manifest, every file's SHA-256) without restoring it.
    VerifyBackup {
        /// The .tar.gz archive BACKUP DATABASE wrote.
        archive: PathBuf,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Print the effective configuration (defaults, file, environment), secrets masked.
    Show,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("kalamdb: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config),
        Command::VerifyBackup { archive } => verify_backup(&archive, &config),
        Command::Config {
            action: ConfigAction::Show,
        } => {
            let source = config
                .source_path
                .as_ref()
                .map_or("no file".to_owned(), |p| p.display().to_string());
            println!(
                "# Effective configuration: embedded defaults, then {source}, then KALAMDB_* environment variables. Secrets are masked."
            );
            print!("{}", config.to_masked_toml());
            ExitCode::SUCCESS
        }
    }
}

fn serve(config: Config) -> ExitCode {
    kalamdb::allocator::tune();
    init_logging(&config);
    kalamdb::allocator::start_reclaimer();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(kalamdb::sql::limits::THREAD_STACK_BYTES)
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("kalamdb: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(kalamdb::node::run(config, kalamdb::node::shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("kalamdb: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Checks an archive as RESTORE would, under the config's `[backup] signing_key`.
fn verify_backup(archive: &std::path::Path, config: &Config) -> ExitCode {
    let started = std::time::Instant::now();
    let key = config
        .backup
        .signing_key
        .as_ref()
        .map(|key| kalamdb::backup::SigningKey::new(key.as_bytes()));
    let policy = kalamdb::backup::PathPolicy {
        data_dir: &config.storage.data_path,
        allowed_dirs: &config.backup.allowed_dirs,
    };
    match kalamdb::backup::verify_chain(&archive.into(), key.as_ref(), &policy) {
        Ok(chain) => {
            let checked = &chain.top;
            let manifest = &checked.manifest;
            println!("{}: OK", archive.display());
            println!("  format version   {}", manifest.format_version);
            println!("  written by       KalamDB {}", manifest.kalamdb_version);
            println!("  created at       {}", manifest.created_at);
            println!("  backup job       {}", manifest.job_id);
            println!("  applied seq      {}", manifest.applied_seq);
            println!(
                "  files            {} ({}), {} directories, checksums {}",
                manifest.files.len(),
                kalamdb::backup::human_bytes(chain.database_bytes()),
                checked.directories,
                manifest.checksum_algorithm
            );
            for area in manifest.areas() {
                println!(
                    "    {:<16} {:>6} files {:>12}{}",
                    area.area,
                    area.files,
                    kalamdb::backup::human_bytes(area.bytes),
                    if area.stored_files == area.files {
                        String::new()
                    } else {
                        format!(
                            " ({} files, {} in this archive)",
                            area.stored_files,
                            kalamdb::backup::human_bytes(area.stored_bytes)
                        )
                    }
                );
            }
            if let Some(base) = &manifest.base {
                println!(
                    "  incremental on   {} (job {}), checked with {} base archive(s): {}",
                    base.path,
                    base.job_id,
                    chain.bases.len(),
                    chain.base_list()
                );
            }
            println!(
                "  archive          {} (server.toml {})",
                kalamdb::backup::human_bytes(checked.archive_bytes),
                if checked.has_config {
                    "included"
                } else {
                    "not included"
                }
            );
            println!(
                "  signature        {}",
                match checked.signature {
                    kalamdb::backup::Signature::Verified =>
                        "HMAC-SHA-256, verified with [backup] signing_key",
                    kalamdb::backup::Signature::Unchecked =>
                        "HMAC-SHA-256, not checked (no [backup] signing_key set)",
                    kalamdb::backup::Signature::Absent => "none (the archive is not signed)",
                }
            );
            println!(
                "  verified in      {:.2} s",
                started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: FAILED: {e}", archive.display());
            ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &Config) {
    let directives = std::env::var("RUST_LOG").unwrap_or_else(|_| config.logging.level.clone());
    let mut filter = tracing_subscriber::EnvFilter::new(&directives);
    // openraft logs every vote and snapshot chunk at info: below warn it drowns the server's
    // own log unless asked for by name.
    if !directives.contains("openraft") {
        filter = filter.add_directive("openraft=warn".parse().expect("a valid directive"));
    }
    // Colour escapes only help a person at a terminal; in a file or a pipe they are noise.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match config.logging.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    // A panic is a bug: it reaches the log with where it happened and how it got there, while
    // the connection that hit it answers XX000 and carries on.
    std::panic::set_hook(Box::new(|info| {
        let backtrace = std::backtrace::Backtrace::force_capture();
        tracing::error!("panic: {info}\n{backtrace}");
    }));
}
