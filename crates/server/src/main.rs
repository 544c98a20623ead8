//! `stampede`: parses the command line, loads configuration, sets up logging and runs the server
//! until SIGTERM or SIGINT. The admin commands (`queue`, `conn`, `send`, `tail`) are in `cli`.

mod cli;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use stampede_server::backup;
use stampede_server::config::{self, LogFormat};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "stampede", version, about = "A STOMP message broker")]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// TOML configuration file (see broker.toml for every key).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Data directory; overrides storage.data_dir.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Log format; overrides log.format.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the broker (the default).
    Serve {
        /// Keep everything in memory (storage.backend = "memory"): nothing is written to disk and
        /// nothing survives the process. For tests and CI pipelines.
        #[arg(long)]
        ephemeral: bool,
    },
    /// Read a password from stdin (its first line) and print its argon2id hash, for
    /// `[auth.users.NAME] password_hash`.
    Passwd,
    /// Ask a running broker's HTTP listener for /healthz (or /readyz) and exit 0 if it answers
    /// 200: a container HEALTHCHECK for images without curl. The address is the configuration's
    /// `listeners.http.bind` (an unspecified address probes loopback) unless `--addr` says.
    Health {
        /// HOST:PORT of the HTTP listener.
        #[arg(long)]
        addr: Option<std::net::SocketAddr>,
        /// Probe /readyz (recovery done, STOMP accepted) instead of /healthz.
        #[arg(long)]
        ready: bool,
    },
    /// Write a consistent snapshot of a running broker (its HTTP listener's /api/backup) to a
    /// file: everything stored at one instant, as a `kill -9` then would leave it. The file gets
    /// its name only once it has arrived whole and checks out.
    Backup {
        /// The snapshot file to write.
        out: PathBuf,
        /// HOST:PORT of the broker's HTTP listener, a name or an address (default: the
        /// configured listeners.http.bind).
        #[arg(long)]
        addr: Option<String>,
        /// A user with read and admin permission on `*` (auth.mode = "users"); the password is
        /// read from the environment variable STAMPEDE_PASSWORD.
        #[arg(long)]
        user: Option<String>,
        /// Read the data directory of a stopped broker instead of asking a running one.
        #[arg(long)]
        offline: bool,
    },
    /// Write a snapshot file made by `stampede backup` into a new or empty data directory (the
    /// broker must not be running on it), after checking the file whole.
    Restore {
        /// The snapshot file to read.
        file: PathBuf,
    },
    #[command(flatten)]
    Admin(Box<cli::Command>),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stampede: {}", describe(&e));
            cli::exit_code(&e)
        }
    }
}

/// The error and its causes, each stated once. Most of our errors already include their cause in
/// their own text (thiserror's `{0}` / `{source}`), so `{:#}` would print every cause twice.
fn describe(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let cause = cause.to_string();
        if text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(Cmd::Admin(command)) = cli.command {
        return cli::run(*command);
    }
    if matches!(cli.command, Some(Cmd::Passwd)) {
        return passwd();
    }
    if let Some(Cmd::Health { addr, ready }) = cli.command {
        let addr = match addr {
            Some(a) => a,
            None => config::load(cli.config.as_deref(), std::env::vars())?.http_addr,
        };
        return health(addr, if ready { "/readyz" } else { "/healthz" });
    }
    if let Some(Cmd::Backup { .. } | Cmd::Restore { .. }) = &cli.command {
        return backup_or_restore(cli);
    }
    let ephemeral = matches!(cli.command, Some(Cmd::Serve { ephemeral: true }));
    let mut loaded = config::load(cli.config.as_deref(), std::env::vars())?;
    if ephemeral {
        loaded.settings.storage.backend = config::Backend::Memory;
    }
    if let Some(dir) = cli.data_dir {
        loaded.settings.storage.data_dir = dir;
    }
    if let Some(format) = cli.log_format {
        loaded.settings.log.format = format;
    }
    init_logging(&loaded.settings.log)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let shutdown = {
        let _ctx = runtime.enter();
        shutdown_signal()
    };
    runtime.block_on(async {
        let listeners = stampede_server::bind(&loaded).await?;
        stampede_server::run(loaded, listeners, shutdown).await
    })?;
    Ok(())
}

/// `stampede backup` and `stampede restore`; what they did goes to stderr, as the log would.
fn backup_or_restore(cli: Cli) -> anyhow::Result<()> {
    let mut loaded = config::load(cli.config.as_deref(), std::env::vars())?;
    if let Some(dir) = cli.data_dir {
        loaded.settings.storage.data_dir = dir;
    }
    let settings = &loaded.settings;
    let (summary, what) = match cli.command {
        Some(Cmd::Backup {
            out, offline: true, ..
        }) => (
            backup::snapshot_offline(settings, &out)?,
            format!(
                "backed up {} to {}",
                settings.storage.data_dir.display(),
                out.display()
            ),
        ),
        Some(Cmd::Backup {
            out, addr, user, ..
        }) => {
            let addr = match addr {
                Some(a) => std::net::ToSocketAddrs::to_socket_addrs(&a)
                    .with_context(|| format!("--addr {a}: not a HOST:PORT this machine resolves"))?
                    .next()
                    .with_context(|| format!("--addr {a} resolves to no address"))?,
                None => backup::local(loaded.http_addr),
            };
            let password = match &user {
                Some(u) => Some(std::env::var("STAMPEDE_PASSWORD").with_context(|| {
                    format!("--user {u} needs the password in STAMPEDE_PASSWORD")
                })?),
                None => None,
            };
            let credentials = user.as_deref().zip(password.as_deref());
            (
                backup::download(addr, credentials, &out)?,
                format!("backed up the broker on {addr} to {}", out.display()),
            )
        }
        Some(Cmd::Restore { file }) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            (
                runtime.block_on(backup::restore(&file, settings))?,
                format!(
                    "restored {} into {}",
                    file.display(),
                    settings.storage.data_dir.display()
                ),
            )
        }
        _ => unreachable!("called for backup and restore only"),
    };
    eprintln!(
        "stampede: {what}: {} queues, {} messages, {} metadata entries",
        summary.queues, summary.messages, summary.meta
    );
    Ok(())
}

/// `stampede health`: one GET, two seconds at most, 200 or failure.
fn health(addr: std::net::SocketAddr, path: &str) -> anyhow::Result<()> {
    let addr = backup::local(addr);
    let agent: ureq::Agent = stampede_server::client::config()
        .timeout_global(Some(std::time::Duration::from_secs(2)))
        .build()
        .into();
    let answer = agent
        .get(format!("http://{addr}{path}"))
        .call()
        .with_context(|| format!("no answer from the HTTP listener on {addr}{path}"))?;
    let status = answer.status().as_u16();
    anyhow::ensure!(status == 200, "{addr}{path} answered {status}");
    Ok(())
}

/// `stampede passwd`: the hash goes to stdout alone, so `stampede passwd < file` can feed a
/// config generator.
fn passwd() -> anyhow::Result<()> {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    let hash = stampede_server::auth::hash_password(password)?;
    println!("{hash}");
    Ok(())
}

fn init_logging(log: &config::Log) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => EnvFilter::try_new(v),
        _ => EnvFilter::try_new(&log.level),
    }
    .with_context(|| {
        format!(
            "configuration key `log.level`: invalid filter {:?}",
            log.level
        )
    })?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
    }
    Ok(())
}

/// Completes on the first SIGTERM or SIGINT. The handlers are installed when this is called, not
/// when the future is first polled: `run` logs `ready` before it awaits this, and a SIGTERM sent in
/// between (a supervisor reacting to `ready`) met the default action and killed the process
/// without a graceful shutdown. Must be called inside the runtime.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let handlers = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        );
        async move {
            match handlers {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {},
                        _ = int.recv() => {},
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
