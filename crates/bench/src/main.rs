//! The `stampede-bench` command: parses flags, runs the benchmark on a multi-threaded runtime and
//! prints the report. Exit status 0 = clean run, 1 = errors, lost or duplicated messages, 2 = the
//! run could not start.

use std::process::ExitCode;

use clap::Parser;
use stampede_bench::{run, Config};

fn main() -> ExitCode {
    let config = Config::parse();
    let json = config.json;
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("stampede-bench: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(config)) {
        Ok(report) => {
            if json {
                match serde_json::to_string_pretty(&report) {
                    Ok(text) => println!("{text}"),
                    Err(e) => {
                        eprintln!("stampede-bench: cannot encode the report: {e}");
                        return ExitCode::from(2);
                    }
                }
            } else {
                print!("{report}");
            }
            if report.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("stampede-bench: {e}");
            ExitCode::from(2)
        }
    }
}
