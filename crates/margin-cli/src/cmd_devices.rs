//! `margin devices`: each backend, available or why not.

use crate::args::DevicesCmd;
use crate::backends;

/// Prints the report as text or JSON.
pub fn run(cmd: &DevicesCmd) {
    let report = backends::report();
    if cmd.json {
        println!("{}", serde_json::json!({ "devices": report }));
        return;
    }
    for r in report {
        let state = if r.available {
            "available"
        } else {
            "unavailable"
        };
        println!("{:<10} {:<12} {}", r.backend, state, r.detail);
    }
}
