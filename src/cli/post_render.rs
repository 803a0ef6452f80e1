//! `post-render`: Helm's post-renderer. stdin → stdout, every image pointed at the mirror.
//!
//! Output is spooled to an unlinked temporary file and copied to stdout only when the whole
//! stream was rewritten: memory stays bounded by the largest document, and a failure leaves
//! nothing on stdout that `| kubectl apply -f -` could half-apply. (Helm itself ignores the output
//! of a failed post-renderer; a shell pipe does not.)

use std::io::{BufReader, BufWriter, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use super::{EXIT_OK, ExitStatus, MirrorArgs, settings};
use crate::manifest::Rewriter;
use crate::manifest::pull_secret::validate_name;

#[derive(Debug, Args)]
pub(crate) struct PostRenderArgs {
    #[command(flatten)]
    pub mirror: MirrorArgs,
    /// Also append errors to this file: Helm 4 discards a post-renderer's stderr
    #[arg(long, env = "AIRGAP_LOG_FILE", value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// List Secret NAME in every pod spec's imagePullSecrets, beside any the chart sets
    /// (create the Secret with `kubectl airgap pull-secret NAME`)
    #[arg(long, env = "AIRGAP_PULL_SECRET", value_name = "NAME")]
    pub pull_secret: Option<String>,
}

pub(super) fn run(args: &PostRenderArgs, config: Option<&Path>) -> anyhow::Result<ExitStatus> {
    let settings = settings(&args.mirror, args.log_file.as_deref(), config);
    let log_file = match &settings {
        Ok(s) => s.log_file.clone(),
        Err(_) => args.log_file.clone(),
    };
    let result = settings.and_then(|settings| {
        let naming = settings.require_mirror("post-render")?;
        let pull_secret = args.pull_secret.as_ref().or(settings.pull_secret.as_ref());
        if let Some(name) = pull_secret {
            validate_name(name, "Secret").map_err(|e| anyhow::anyhow!("--pull-secret: {e}"))?;
        }
        let rewriter = Rewriter {
            naming,
            rules: &settings.rules,
            pull_secret: pull_secret.map(String::as_str),
        };
        let spool = tempfile::tempfile().context("creating a temporary file for the output")?;
        let mut writer = BufWriter::with_capacity(1 << 16, spool);
        let stdin = std::io::stdin();
        let input = BufReader::with_capacity(1 << 16, stdin.lock());
        rewriter.rewrite(input, "stdin", &mut writer)?;
        let mut spool = writer.into_inner().map_err(|e| e.into_error())?;
        spool.rewind()?;
        let mut stdout = std::io::stdout().lock();
        std::io::copy(&mut spool, &mut stdout).context("writing to stdout")?;
        stdout.flush()?;
        Ok(EXIT_OK)
    });
    if let Err(e) = &result {
        report_elsewhere(
            &format!("kubectl-airgap post-render: error: {e:#}"),
            log_file.as_deref(),
        );
    }
    result
}

/// Helm 4 throws a post-renderer's stderr away, so errors also go to the log file and to the
/// terminal, where the user will see them. stderr still gets the error (from `main`).
fn report_elsewhere(message: &str, log_file: Option<&Path>) {
    if let Some(path) = log_file {
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| writeln!(f, "{message}"));
        if let Err(e) = written {
            eprintln!(
                "kubectl-airgap: cannot write log file {}: {e}",
                path.display()
            );
        }
    }
    if let Ok(mut tty) = std::fs::OpenOptions::new().write(true).open("/dev/tty") {
        let _ = writeln!(tty, "{message}");
    }
}
