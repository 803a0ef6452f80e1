//! `ref REF...`: how each reference parses and where it lands in the mirror.

use std::io::Write;

use clap::Args;
use serde::Serialize;

use std::path::Path;

use super::{EXIT_NO, EXIT_OK, ExitStatus, MirrorArgs, settings};
use crate::mirror::Collisions;
use crate::reference::Reference;

#[derive(Debug, Args)]
pub(crate) struct RefArgs {
    /// Image references, as written in manifests
    #[arg(required = true, value_name = "REF")]
    pub references: Vec<String>,
    #[command(flatten)]
    pub mirror: MirrorArgs,
    /// Output format
    #[arg(short = 'o', long = "output", value_enum, default_value_t = RefFormat::Text)]
    pub output: RefFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum RefFormat {
    Text,
    Json,
}

/// One reference's report; the JSON keys are a documented contract, absent parts are `null`.
#[derive(Debug, Serialize)]
struct RefReport {
    input: String,
    valid: bool,
    normalized: Option<String>,
    domain: Option<String>,
    path: Option<String>,
    tag: Option<String>,
    digest: Option<String>,
    familiar: Option<String>,
    mirror: Option<String>,
    error: Option<ErrorReport>,
}

#[derive(Debug, Serialize)]
struct ErrorReport {
    kind: String,
    message: String,
}

pub(super) fn run(args: &RefArgs, config: Option<&Path>) -> anyhow::Result<ExitStatus> {
    let naming = settings(&args.mirror, None, config)?.naming;
    let mut collisions = Collisions::new();
    let mut collision_errors = Vec::new();
    let mut any_invalid = false;
    let mut reports = Vec::new();
    for input in &args.references {
        let mut report = RefReport {
            input: input.clone(),
            valid: false,
            normalized: None,
            domain: None,
            path: None,
            tag: None,
            digest: None,
            familiar: None,
            mirror: None,
            error: None,
        };
        match Reference::parse(input) {
            Ok(r) => {
                report.valid = true;
                report.normalized = Some(r.to_string());
                report.domain = Some(r.domain().to_string());
                report.path = Some(r.path().to_string());
                report.tag = r.tag().map(str::to_string);
                report.digest = r.digest().map(str::to_string);
                report.familiar = Some(r.familiar());
                if let Some(naming) = &naming {
                    let mirrored = naming.map(&r)?;
                    if let Err(e) = collisions.insert(&r, &mirrored) {
                        collision_errors.push(e);
                    }
                    report.mirror = Some(mirrored.to_string());
                }
            }
            Err(e) => {
                any_invalid = true;
                report.error = Some(ErrorReport {
                    kind: e.kind.as_str().to_string(),
                    message: e.message,
                });
            }
        }
        reports.push(report);
    }
    let mut out = std::io::stdout().lock();
    match args.output {
        RefFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &reports)?;
            writeln!(out)?;
        }
        RefFormat::Text => write_text(&mut out, &reports)?,
    }
    out.flush()?;
    for e in &collision_errors {
        eprintln!("error: {e}");
    }
    Ok(if any_invalid || !collision_errors.is_empty() {
        EXIT_NO
    } else {
        EXIT_OK
    })
}

fn write_text(out: &mut impl Write, reports: &[RefReport]) -> std::io::Result<()> {
    for (i, r) in reports.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        writeln!(out, "input:      {}", r.input)?;
        match &r.error {
            Some(e) => {
                writeln!(out, "valid:      no")?;
                writeln!(out, "error:      {} ({})", e.message, e.kind)?;
            }
            None => {
                let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
                writeln!(out, "valid:      yes")?;
                writeln!(out, "normalized: {}", show(&r.normalized))?;
                writeln!(out, "domain:     {}", show(&r.domain))?;
                writeln!(out, "path:       {}", show(&r.path))?;
                writeln!(out, "tag:        {}", show(&r.tag))?;
                writeln!(out, "digest:     {}", show(&r.digest))?;
                writeln!(out, "familiar:   {}", show(&r.familiar))?;
                if r.mirror.is_some() {
                    writeln!(out, "mirror:     {}", show(&r.mirror))?;
                }
            }
        }
    }
    Ok(())
}
