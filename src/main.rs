//! The `facegate` command line: parses the arguments and hands them to `cli`, which calls
//! the library. Exit codes: 0 success (and "yes" for questions), 1 "no" (e.g. `verify`:
//! different people), 2 error.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("info,tract_linalg=warn"),
    )
    .init();
    match cli::run(cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("facegate: error: {}", e.to_string().trim_end());
            ExitCode::from(2)
        }
    }
}
