//! The `stampede-bench-oci` command: the OCI REST benchmark (see `stampede_bench::oci`). Exit
//! status 0 = clean run, 1 = errors or messages not accounted for, 2 = the run could not start.

use std::process::ExitCode;

use clap::Parser;
use stampede_bench::oci::{run, run_long_polls, OciConfig};

fn main() -> ExitCode {
    let config = OciConfig::parse();
    let json = config.json;
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("stampede-bench-oci: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = runtime.block_on(async {
        match config.long_polls {
            Some(n) => run_long_polls(config, n).await.map(|r| {
                let clean = r.errors == 0 && r.answered_with_a_message == r.opened;
                (serde_json::to_value(&r), clean)
            }),
            None => run(config)
                .await
                .map(|r| (serde_json::to_value(&r), r.is_clean())),
        }
    });
    match outcome {
        Ok((Ok(report), clean)) => {
            let text = if json {
                serde_json::to_string_pretty(&report)
            } else {
                serde_json::to_string(&report)
            };
            println!("{}", text.unwrap_or_default());
            if clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Ok((Err(e), _)) => {
            eprintln!("stampede-bench-oci: cannot encode the report: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("stampede-bench-oci: {e}");
            ExitCode::from(2)
        }
    }
}
