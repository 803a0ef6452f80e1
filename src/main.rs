//! `kubectl-airgap`: thin on purpose; everything lives in the library so tests run the same code.

fn main() {
    let code = airgap::cli::run(std::env::args_os().collect());
    std::process::exit(code);
}
