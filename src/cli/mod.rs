//! The command line: clap definitions, one file per command, and the exit-code contract.
//!
//! Exit codes follow `kubectl diff`: 0 success, 1 "the answer is no" (an invalid reference, a
//! missing image), 2 usage or runtime error.

mod chart_args;
mod charts;
mod check;
mod cluster_args;
mod completion;
mod copy_run;
mod images;
mod node_config;
mod post_render;
mod pull_secret;
mod push;
mod ref_cmd;
mod registry_args;
mod save;
mod serve;

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::Path;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::{ConfigFile, Settings};
use crate::mirror::Naming;

/// Exit status of a command that ran to the end.
pub type ExitStatus = i32;
pub const EXIT_OK: ExitStatus = 0;
pub const EXIT_NO: ExitStatus = 1;
pub const EXIT_ERROR: ExitStatus = 2;

/// The version with the git revision built from, e.g. `0.1.0 (git 55dfa0c1a2b3)`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("AIRGAP_GIT_REVISION"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "kubectl-airgap",
    version = VERSION,
    about = "Run Helm charts in air-gapped clusters: rewrite image references to an offline mirror and fill that mirror",
    long_about = None,
    propagate_version = true,
)]
pub(crate) struct Cli {
    /// Config file (default: $XDG_CONFIG_HOME/kubectl-airgap/config.yaml when it exists)
    #[arg(long, global = true, env = "AIRGAP_CONFIG", value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Helm post-renderer: read rendered manifests on stdin, write them with every image
    /// reference pointing at the mirror
    PostRender(post_render::PostRenderArgs),
    /// List the images that manifests need, where each was found, and its mirror name
    #[command(disable_version_flag = true)]
    Images(images::ImagesArgs),
    /// Verify that the mirror holds every needed image
    #[command(disable_version_flag = true)]
    Check(check::CheckArgs),
    /// Copy the images that the mirror lacks into it
    #[command(disable_version_flag = true)]
    Push(push::PushArgs),
    /// Write the container runtime files (containerd, CRI-O/podman, k3s/RKE2) that send nodes'
    /// pulls of the source registries to the mirror
    #[command(disable_version_flag = true)]
    NodeConfig(node_config::NodeConfigArgs),
    /// Create or update the mirror's pull Secret (kubernetes.io/dockerconfigjson) in namespaces
    PullSecret(pull_secret::PullSecretArgs),
    /// Pull every needed image into an offline bundle (OCI image layout)
    #[command(disable_version_flag = true)]
    Save(save::SaveArgs),
    /// List the charts a bundle carries; write them out as NAME-VERSION.tgz files with -d DIR
    Charts(charts::ChartsArgs),
    /// Serve bundles as a read-only registry, under their mirror names (no Docker needed on
    /// the air-gapped side)
    Serve(serve::ServeArgs),
    /// Show how image references parse and what they become in the mirror
    Ref(ref_cmd::RefArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell)
    Completion(completion::CompletionArgs),
    /// Print the version and the git revision it was built from
    Version,
}

/// Where the mirror is and how names are formed; shared by every command that names images.
#[derive(Debug, Clone, Args)]
pub(crate) struct MirrorArgs {
    /// The mirror registry, HOST[:PORT][/PREFIX]
    #[arg(long, env = "AIRGAP_REGISTRY", value_name = "HOST[:PORT][/PREFIX]")]
    pub registry: Option<String>,
    /// How mirror names are formed: nested keeps the source host as a path component, strip
    /// drops it
    #[arg(long, env = "AIRGAP_NAMING", value_enum)]
    pub naming: Option<Naming>,
    /// Map a source prefix to a path under the mirror host (repeatable), e.g.
    /// quay.io/jetstack=jetstack
    #[arg(long = "override", value_name = "SOURCE_PREFIX=MIRROR_PATH")]
    pub overrides: Vec<String>,
    /// At most N path components under the mirror's prefix (a Harbor project, GitLab's group
    /// depth): the components past N are folded into the last, joined by '-'
    #[arg(long = "max-path-depth", value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub max_path_depth: Option<u16>,
}

/// Resolves flags/env over the config file.
fn settings(
    mirror: &MirrorArgs,
    log_file: Option<&Path>,
    config: Option<&Path>,
) -> anyhow::Result<Settings> {
    let (file, _) = ConfigFile::load(config)?;
    Settings::resolve(
        mirror.registry.as_deref(),
        mirror.naming,
        &mirror.overrides,
        mirror.max_path_depth,
        log_file,
        file,
    )
}

/// The runtime of a command that talks to registries or the API server.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("starting the async runtime: {e}"))
}

/// The name usage text shows: `kubectl airgap` when run as a kubectl plugin.
fn display_name(argv0: Option<&OsString>) -> String {
    let file = argv0
        .and_then(|a| Path::new(a).file_stem())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "kubectl-airgap".into());
    match file.strip_prefix("kubectl-") {
        Some(plugin) => format!("kubectl {plugin}"),
        None => file,
    }
}

/// Helm 3 runs the post-renderer with only `--post-renderer-args` as arguments, often none.
/// With no subcommand and a piped stdin, act as `post-render`.
fn insert_implied_post_render(mut argv: Vec<OsString>, stdin_is_terminal: bool) -> Vec<OsString> {
    let cmd = Cli::command();
    // The first word that is neither an option nor the value of a top-level option
    // (`--config FILE`): a file named like a subcommand must not count, nor a subcommand
    // after `--config FILE` be missed.
    let takes_value: Vec<String> = cmd
        .get_arguments()
        .filter(|a| a.get_action().takes_values())
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .collect();
    let mut words = argv.iter().skip(1);
    let mut first_word = None;
    while let Some(a) = words.next() {
        let s = a.to_string_lossy();
        if takes_value.iter().any(|t| *t == s) {
            words.next();
        } else if !s.starts_with('-') {
            first_word = Some(a);
            break;
        }
    }
    let has_subcommand = first_word.is_some_and(|w| {
        let w = w.to_string_lossy();
        cmd.get_subcommands()
            .any(|s| s.get_name() == w || s.get_all_aliases().any(|a| a == w))
            || w == "help"
    });
    let asks_for_help = argv
        .iter()
        .skip(1)
        .any(|a| matches!(a.to_str(), Some("-h" | "--help" | "-V" | "--version")));
    if !has_subcommand && !asks_for_help && !stdin_is_terminal {
        argv.insert(1.min(argv.len()), "post-render".into());
    }
    argv
}

/// Gives each `--chart` the flags that follow it (see [`chart_args`]).
fn group_chart_flags(command: &mut Command, matches: &clap::ArgMatches) -> anyhow::Result<()> {
    let Some((_, m)) = matches.subcommand() else {
        return Ok(());
    };
    match command {
        Command::Images(a) => a.charts.group(m),
        Command::Check(a) => a.images.charts.group(m),
        Command::Push(a) => a.images.charts.group(m),
        Command::Save(a) => a.images.charts.group(m),
        Command::NodeConfig(a) => a.images.charts.group(m),
        _ => Ok(()),
    }
}

/// Runs the command line and returns the process exit code.
pub fn run(argv: Vec<OsString>) -> ExitStatus {
    // kubectl's plugin completion protocol, kept out of clap so no completion script lists it.
    if argv.get(1).is_some_and(|a| a == completion::COMPLETE) {
        let words: Vec<String> = argv[2..]
            .iter()
            .map(|w| w.to_string_lossy().into_owned())
            .collect();
        return completion::complete(&words);
    }
    let argv = insert_implied_post_render(argv, std::io::stdin().is_terminal());
    let name = display_name(argv.first());
    let matches = match Cli::command().bin_name(name).try_get_matches_from(argv) {
        Ok(m) => m,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_ERROR } else { EXIT_OK };
            let _ = e.print();
            return code;
        }
    };
    let mut cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return EXIT_ERROR;
        }
    };
    if let Err(e) = group_chart_flags(&mut cli.command, &matches) {
        eprintln!("error: {e:#}");
        return EXIT_ERROR;
    }
    let result = match cli.command {
        Command::Ref(args) => ref_cmd::run(&args, cli.config.as_deref()),
        Command::PostRender(args) => post_render::run(&args, cli.config.as_deref()),
        Command::Images(args) => images::run(&args, cli.config.as_deref()),
        Command::Version => {
            println!("kubectl-airgap {VERSION}");
            Ok(EXIT_OK)
        }
        Command::Check(args) => check::run(&args, cli.config.as_deref()),
        Command::Push(args) => push::run(&args, cli.config.as_deref()),
        Command::NodeConfig(args) => node_config::run(&args, cli.config.as_deref()),
        Command::PullSecret(args) => pull_secret::run(&args, cli.config.as_deref()),
        Command::Save(args) => save::run(&args, cli.config.as_deref()),
        Command::Serve(args) => serve::run(&args, cli.config.as_deref()),
        Command::Completion(args) => completion::run(&args),
        Command::Charts(args) => charts::run(&args, cli.config.as_deref()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            EXIT_ERROR
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn plugin_binaries_show_kubectl_usage() {
        assert_eq!(
            display_name(Some(&"/usr/bin/kubectl-airgap".into())),
            "kubectl airgap"
        );
        assert_eq!(display_name(Some(&"airgap".into())), "airgap");
    }

    #[test]
    fn helm3_style_invocations_imply_post_render() {
        let got = insert_implied_post_render(words(&["kubectl-airgap"]), false);
        assert_eq!(got, words(&["kubectl-airgap", "post-render"]));
        let got = insert_implied_post_render(words(&["kubectl-airgap", "--registry=r.io"]), false);
        assert_eq!(
            got,
            words(&["kubectl-airgap", "post-render", "--registry=r.io"])
        );
        // A terminal, an explicit subcommand, or a help request are left alone.
        let got = insert_implied_post_render(words(&["kubectl-airgap"]), true);
        assert_eq!(got, words(&["kubectl-airgap"]));
        let got = insert_implied_post_render(words(&["kubectl-airgap", "ref", "x"]), false);
        assert_eq!(got, words(&["kubectl-airgap", "ref", "x"]));
        let got = insert_implied_post_render(words(&["kubectl-airgap", "--help"]), false);
        assert_eq!(got, words(&["kubectl-airgap", "--help"]));
        // The value of --config is not the subcommand, and the subcommand after it is seen.
        let got = insert_implied_post_render(
            words(&["kubectl-airgap", "--config", "c.yaml", "images", "-f", "-"]),
            false,
        );
        assert_eq!(
            got,
            words(&["kubectl-airgap", "--config", "c.yaml", "images", "-f", "-"])
        );
        let got = insert_implied_post_render(words(&["kubectl-airgap", "--config", "ref"]), false);
        assert_eq!(
            got,
            words(&["kubectl-airgap", "post-render", "--config", "ref"])
        );
    }
}
