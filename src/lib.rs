//! kubectl-airgap: get Helm charts running in clusters with no internet access.
//!
//! The library holds everything; `main.rs` only hands the command line to [`cli::run`], which
//! parses it and maps errors to exit codes, so that tests, benchmarks and fuzz targets drive the
//! same code users run. docs/ARCHITECTURE.md maps the modules and where new features go.
//!
//! Only what the integration tests and fuzz targets drive is public (`cli::run`, the rewrite
//! engine, mirror naming, the reference grammar); everything else is `pub(crate)`, so that
//! code nothing uses is reported as dead instead of surviving as API.
#![warn(unreachable_pub)]

mod chart;
mod check;
mod cleanup;
pub mod cli;
mod cluster;
mod config;
mod ess;
mod excerpt;
mod inputs;
mod lock;
pub mod manifest;
pub mod mirror;
mod nodeconfig;
mod oci;
pub mod reference;
mod registry;
mod serve;
mod transfer;
