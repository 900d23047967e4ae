//! `wsx`: the project's command-line tool.
//!
//! - `wsx serve ADDR`: echo (or `--broadcast` chat) server.
//! - `wsx connect URL`: interactive client (stdin lines → text messages), or
//!   `--echo` to send every message back (Autobahn client role).
//! - `wsx bench URL`: load generator with a summary table.
//!
//! Exit codes: 0 after a normal close (1000, 1001 or no status), 3 when the
//! peer closed with another code, 1 on a connection error, 2 on bad arguments.
//!
//! Layout: a folder per subcommand (`serve/`, `connect/`, `bench/`), each
//! with a `mod.rs` that holds what its drivers share (argument handling,
//! output, the dispatch on `--driver`) and one file per driver (`std.rs`,
//! `mio.rs`, `tokio.rs`) that depends on that `mod.rs` and on the top-level
//! modules below, never on another driver's file. Top level: [`opts`] (the
//! arguments), [`tls`] (certificates and trust, for serve and connect),
//! [`logger`]. A new driver is one more file per folder, one `mod` line and
//! one match arm in each `mod.rs`, and a [`opts::Driver`] variant.
#![forbid(unsafe_code)]

mod bench;
mod connect;
mod describe;
mod logger;
mod opts;
mod serve;
mod tls;

use clap::Parser;

fn main() {
    let cli = opts::Cli::parse();
    let code = match cli.command {
        opts::Command::Serve(a) => {
            logger::init(a.quiet);
            serve::run(a)
        }
        opts::Command::Connect(a) => {
            logger::init(true);
            connect::run(a)
        }
        opts::Command::Bench(a) => {
            logger::init(true);
            bench::run(a)
        }
    };
    std::process::exit(code);
}
