//! kubectl-airgap: get Helm charts running in clusters with no internet access.
//!
//! The library holds everything; `main.rs` only hands the command line to [`cli::run`], which
//! parses it and maps errors to exit codes, so that tests, benchmarks and fuzz targets drive the
//! same code users run. docs/ARCHITECTURE.md maps the modules and where new features go.

mod check;
mod cleanup;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod ess;
pub mod excerpt;
pub mod lock;
pub mod manifest;
pub mod mirror;
pub mod oci;
pub mod reference;
pub mod registry;
mod serve;
pub mod transfer;
