//! The admin command line: `stampede queue …`, `stampede conn …`, `stampede send` and
//! `stampede tail`, each a client of a running broker's admin API (docs/admin-api.md) over plain
//! HTTP — `tail` also speaks STOMP. This module owns the commands' arguments, their output (tables
//! for people, `--json` for scripts) and their exit codes (docs/cli.md); `main` only dispatches.
//!
//! The files: `api` (the HTTP client and how its failures become exit codes), `queue`, `conn`
//! (connections and `send`), `tail`, `show` (tables and human sizes and durations).

mod api;
mod conn;
mod queue;
mod show;
mod tail;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use thiserror::Error;

pub use conn::ConnCmd;
pub use queue::QueueCmd;

/// Where the admin API is and who asks. `global` so the flags may follow the subcommand.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Broker")]
pub struct ApiArgs {
    /// The broker's HTTP listener.
    #[arg(
        long,
        global = true,
        env = "STAMPEDE_URL",
        default_value = "http://127.0.0.1:8161"
    )]
    pub url: String,
    /// A user with read and admin permission on `*` (auth.mode = "users"); the password is read
    /// from the environment variable STAMPEDE_PASSWORD, as `stampede backup` reads it.
    #[arg(long, global = true, env = "STAMPEDE_USER")]
    pub user: Option<String>,
    /// Print JSON for scripts instead of tables (docs/cli.md describes each shape).
    #[arg(long, global = true)]
    pub json: bool,
}

/// The admin commands, flattened into the binary's own subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Queues of a running broker: list, show, peek, purge, redrive, delete, change settings.
    Queue {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        cmd: QueueCmd,
    },
    /// Client connections of a running broker: list, close.
    Conn {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        cmd: ConnCmd,
    },
    /// Send a test message through the admin API, answered once it is durable.
    Send {
        #[command(flatten)]
        api: ApiArgs,
        #[command(flatten)]
        send: conn::SendArgs,
    },
    /// Watch messages as they arrive at a destination, one line each, until interrupted. A topic
    /// is subscribed to over STOMP (a copy; nobody else misses anything). A queue is peeked at
    /// through the admin API, so its consumers still get every message; `--consume` subscribes
    /// instead and takes them.
    Tail {
        #[command(flatten)]
        api: ApiArgs,
        #[command(flatten)]
        tail: tail::TailArgs,
    },
}

/// Failures with their own exit code; anything else exits 1.
#[derive(Debug, Error)]
pub enum Exit {
    /// Exit 2, as clap exits for a bad command line.
    #[error("{0}")]
    Usage(String),
    /// Exit 3: nothing that speaks the admin API (or STOMP, for `tail`) answered.
    #[error("cannot reach {what}: {reason}")]
    Unreachable { what: String, reason: String },
    /// Exit 1, or 4 for `404`, 5 for `401`/`403`.
    #[error("the broker refused ({status} {error}): {message}")]
    Refused {
        status: u16,
        error: String,
        message: String,
    },
    /// Exit 5 when the STOMP listener refused the login, else 1.
    #[error("the STOMP listener refused: {message}")]
    Stomp { at_login: bool, message: String },
}

impl Exit {
    fn code(&self) -> u8 {
        match self {
            Exit::Usage(_) => 2,
            Exit::Unreachable { .. } => 3,
            Exit::Refused { status: 404, .. } => 4,
            Exit::Refused {
                status: 401 | 403, ..
            } => 5,
            Exit::Refused { .. } => 1,
            Exit::Stomp { at_login: true, .. } => 5,
            Exit::Stomp { .. } => 1,
        }
    }
}

/// The exit code for an error of any `stampede` command.
pub fn exit_code(e: &anyhow::Error) -> ExitCode {
    ExitCode::from(e.downcast_ref::<Exit>().map_or(1, Exit::code))
}

pub fn run(command: Command) -> anyhow::Result<()> {
    // `stampede queue ls | head` should end quietly when head has read enough, as other command
    // line tools do; Rust ignores SIGPIPE, which makes every later print panic instead.
    #[cfg(unix)]
    // SAFETY: restoring a signal's default action before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    match command {
        Command::Queue { api, cmd } => queue::run(&api::Api::new(&api)?, api.json, cmd),
        Command::Conn { api, cmd } => conn::run(&api::Api::new(&api)?, api.json, cmd),
        Command::Send { api, send } => conn::send(&api::Api::new(&api)?, api.json, send),
        Command::Tail { api, tail } => tail::run(&api, tail),
    }
}

/// Asks before something that cannot be undone, unless `--yes` said so already: on a terminal a
/// `y` goes ahead, anything else stops with nothing done; without a terminal to ask on it is
/// refused before the broker is asked anything, so a script never hangs on a prompt nor purges by
/// accident. `question` is only built (it may ask the broker how much is at stake) to be asked.
fn confirm(question: impl FnOnce() -> anyhow::Result<String>) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(Exit::Usage(
            "stdin is not a terminal to confirm on; pass --yes to go ahead".into(),
        )
        .into());
    }
    eprint!("{}? [y/N] ", question()?);
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    anyhow::ensure!(
        matches!(answer.trim(), "y" | "Y" | "yes"),
        "not confirmed; nothing was done"
    );
    Ok(())
}
