//! The `margin` command-line tool. Every failure ends with one line on stderr and exit code 2 for
//! bad input (1 for a failure while running); nothing panics and no output file is left behind.

mod args;
mod backends;
mod cmd_bench;
mod cmd_devices;
mod cmd_eval;
mod cmd_loss;
mod demo;
mod error;
mod flags;
mod npy_io;

use args::{Cli, Command};
use clap::Parser;
use clap::error::ErrorKind;
use error::CliError;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            return ExitCode::from(2);
        }
        Err(e) => {
            // clap's message spans several lines (usage, hints); the contract is one line.
            let text = e.render().to_string();
            let message: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty() && !l.starts_with("Usage:"))
                .map(str::trim)
                .collect();
            eprintln!("{}", message.join(" "));
            return ExitCode::from(2);
        }
    };
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.to_string().replace('\n', " "));
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::Loss(cmd) => println!("{}", cmd_loss::run(&cmd)?),
        Command::Bench(cmd) => println!("{}", cmd_bench::run(&cmd)?),
        Command::Devices(cmd) => cmd_devices::run(&cmd),
        Command::Eval(cmd) => println!("{}", cmd_eval::run(&cmd)?),
        Command::Demo(cmd) => {
            // The human report (metrics table, PNG path) is printed by the demo itself.
            let summary = demo::run(&cmd)?;
            if cmd.json {
                println!("{summary}");
            }
        }
    }
    Ok(())
}
