//! The `margin` command-line tool. Every failure ends with one line on stderr and exit code 2 for
//! bad input (1 for a failure while running); nothing panics and no output file is left behind.

mod args;
mod backends;
mod cmd_bench;
mod cmd_devices;
mod cmd_eval;
mod cmd_loss;
mod cmd_pairwise;
mod demo;
mod error;
mod flags;
mod npy_io;

use args::{Cli, Command};
use clap::Parser;
use clap::error::ErrorKind;
use error::CliError;
use std::process::ExitCode;

/// Mesa's implicit Vulkan layer `VK_LAYER_MESA_device_select` asks Wayland for the default GPU
/// while wgpu enumerates adapters; on a headless machine (no `XDG_RUNTIME_DIR`) libwayland prints
/// "error: XDG_RUNTIME_DIR is invalid or not set" to stderr, four times per process, which would
/// break the one-line error contract and clutter every report. margin chooses its adapter in code
/// (`margin_wgpu::adapter`), so the layer's reordering is not needed: it is switched off through
/// its documented `NODEVICE_SELECT` variable unless the user set that variable.
fn quiet_vulkan_device_select() {
    if std::env::var_os("NODEVICE_SELECT").is_none() {
        // SAFETY: called first thing in `main`, before any thread exists (clap, rayon, wgpu and
        // the CUDA loader have not started), so nothing can read the environment concurrently.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
}

fn main() -> ExitCode {
    quiet_vulkan_device_select();
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
        Command::Pairwise(cmd) => println!("{}", cmd_pairwise::run(&cmd)?),
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
