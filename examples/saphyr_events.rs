//! The benchmark's "bare saphyr event parse" baseline (`scripts/bench`, post-render section).
//!
//! Reads all of stdin and pulls every event out of `saphyr_parser::Parser` to the end of the
//! stream, building no tree and writing nothing but the event count (to stderr). That is the
//! least a rewriter that reads its input with a general YAML parser could cost, so the benchmark
//! shows post-render's throughput beside it on the same bytes. It uses the saphyr-parser the
//! crate depends on, driven the way `src/manifest/node.rs` drives it. Exits non-zero when stdin
//! is not UTF-8 or is not YAML.

use std::io::Read;
use std::process::ExitCode;

use saphyr_parser::Parser;

fn main() -> ExitCode {
    let mut bytes = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut bytes) {
        eprintln!("saphyr_events: reading stdin: {e}");
        return ExitCode::FAILURE;
    }
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("saphyr_events: stdin is not UTF-8: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut events: u64 = 0;
    for event in Parser::new_from_str(&text) {
        match event {
            Ok((event, _span)) => {
                std::hint::black_box(event);
                events += 1;
            }
            Err(e) => {
                eprintln!("saphyr_events: after {events} events: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    eprintln!("{events} events");
    ExitCode::SUCCESS
}
