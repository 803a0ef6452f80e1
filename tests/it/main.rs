//! The integration tests, as one binary (as ripgrep keeps them): each file is a module, and the
//! binary is linked once instead of once per file, each linking kube, reqwest and the library.
//! They drive the built `kubectl-airgap` against real registries, Helm and container tools
//! (see `common/`).

mod common;

mod bundles;
mod charts;
mod check;
mod cli_post_render;
mod cli_ref;
mod cluster;
mod corpus;
mod delta;
mod demo;
mod discovery;
mod ess;
mod fast_path;
mod faults_archive;
mod faults_input;
mod faults_registry;
mod helm;
mod journey;
mod naming_properties;
mod node_config;
mod operators;
mod packaging;
mod path_depth;
mod push;
mod reference_vectors;
mod serve;
mod signatures;
mod transfer;
