//! `check --signatures`: the mirror asked for each image's signatures (see
//! [`crate::check::signatures`] for what "lacks" means), one line per image, exit 1 when any
//! lacks them.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use super::{CheckArgs, CheckFormat, wanted_in_mirror};
use crate::check::signatures::{Answer, Ask, Expect, ask};
use crate::cli::{EXIT_ERROR, EXIT_NO, EXIT_OK, ExitStatus, settings};
use crate::lock::LockFile;
use crate::mirror::MirrorNaming;
use crate::oci::Digest;
use crate::oci::cosign::Kind;
use crate::reference::Reference;
use crate::registry::Registry;
use crate::transfer::layout::{LOCK_NAME, OciLayout};

#[derive(serde::Serialize)]
struct Row {
    source: String,
    mirror: String,
    #[serde(flatten)]
    answer: Answer,
}

pub(super) fn run(args: &CheckArgs, config: Option<&Path>) -> anyhow::Result<ExitStatus> {
    if args.cluster.is_some() {
        anyhow::bail!(
            "--signatures and --cluster: check the signatures of a list of images (-f, --chart, --lock) or of a bundle (--bundle), not of the cluster"
        );
    }
    if args.output == CheckFormat::Lock {
        anyhow::bail!("--signatures writes a table or JSON (-o table|json), not a lock file");
    }
    let settings = settings(&args.mirror, None, config)?;
    let naming = settings.require_mirror("check --signatures")?;
    let options = args
        .registry
        .options(Some(naming.mirror().host()), &settings.registries)?;
    // What a bundle or a lock carried, when the input is one.
    let carried = match (&args.bundle, &args.images.lock) {
        (Some(path), _) => {
            let layout = OciLayout::open(path)?;
            let text = layout.lock_text()?.with_context(|| {
                format!(
                    "--bundle {}: it has no {LOCK_NAME} saying what it carried; check the images' signatures with -f or --lock instead",
                    path.display()
                )
            })?;
            Some(
                LockFile::parse(&text, &path.join(LOCK_NAME))
                    .with_context(|| format!("--bundle {}", path.display()))?,
            )
        }
        (None, Some(lock)) => Some(LockFile::read(lock)?),
        (None, None) => None,
    };
    let (sources, asks) = match carried {
        Some(file) => carried_asks(&file, naming)?,
        None => {
            if args.images.is_empty() {
                anyhow::bail!(
                    "nothing to check the signatures of: give manifests with -f FILE|DIR|-, a chart with --chart, a lock file with --lock, or a bundle with --bundle"
                );
            }
            let wanted = wanted_in_mirror(args, &settings.rules, naming, &options.hosts, None)?;
            wanted
                .into_iter()
                .filter_map(|w| {
                    let mirror = w.mirror?;
                    let ask = Ask {
                        image: mirror,
                        digest: w.entry.locked_digest().cloned(),
                        expect: Expect::AnySignature,
                    };
                    Some((w.entry.source, ask))
                })
                .unzip()
        }
    };
    let registry = Arc::new(Registry::new(options));
    let answers = super::super::runtime()?.block_on(ask(&registry, &asks));
    let rows: Vec<Row> = sources
        .iter()
        .zip(&asks)
        .zip(answers)
        .map(|((source, ask), answer)| Row {
            source: source.docker_ref(),
            mirror: ask.image.docker_ref(),
            answer,
        })
        .collect();
    let count = |f: fn(&Answer) -> bool| rows.iter().filter(|r| f(&r.answer)).count();
    let held = count(|a| matches!(a, Answer::Held(_)));
    let lacks = count(|a| matches!(a, Answer::Lacks(_)));
    let errors = count(|a| matches!(a, Answer::Error(_)));
    let mut out = std::io::stdout().lock();
    match args.output {
        CheckFormat::Json => {
            serde_json::to_writer_pretty(
                &mut out,
                &serde_json::json!({
                    "images": rows,
                    "summary": {"total": rows.len(), "signed": held, "lacking": lacks, "error": errors},
                }),
            )?;
            writeln!(out)?;
        }
        _ => {
            for r in &rows {
                let (word, detail) = match &r.answer {
                    Answer::Held(d) => ("signed ", d),
                    Answer::Lacks(d) => ("LACKS  ", d),
                    Answer::Error(d) => ("ERROR  ", d),
                };
                writeln!(out, "{word} {} -> {}: {detail}", r.source, r.mirror)?;
            }
            writeln!(
                out,
                "{} images: {held} with their signatures in the mirror, {lacks} lacking, {errors} errors",
                rows.len()
            )?;
        }
    }
    out.flush()?;
    Ok(if errors > 0 {
        EXIT_ERROR
    } else if lacks > 0 {
        EXIT_NO
    } else {
        EXIT_OK
    })
}

/// One ask per image of the lock: each artifact it carried named in the mirror beside its
/// image's mirror name (where `push` put it), or any signature when it carried none.
fn carried_asks(
    file: &LockFile,
    naming: &MirrorNaming,
) -> anyhow::Result<(Vec<Reference>, Vec<Ask>)> {
    let (mut sources, mut asks) = (Vec::new(), Vec::new());
    for image in &file.images {
        let mine: Vec<_> = file
            .artifacts
            .iter()
            .filter(|a| a.image == image.source)
            .collect();
        let source = Reference::parse(&image.source)
            .with_context(|| format!("{LOCK_NAME}: images[].source {:?}", image.source))?;
        let mirror = naming.map(&source)?;
        let digest = match &image.digest {
            Some(d) => Some(Digest::parse(d).map_err(|e| {
                anyhow::anyhow!("{LOCK_NAME}: the digest {d:?} of {}: {e}", image.source)
            })?),
            None => None,
        };
        // A lock that carried nothing for an image (`check -o lock`, `save --no-signatures`)
        // asks what a lock-less check asks: any signature at all.
        if mine.is_empty() {
            sources.push(source);
            asks.push(Ask {
                image: mirror,
                digest,
                expect: Expect::AnySignature,
            });
            continue;
        }
        let mut expected = Vec::new();
        for a in mine {
            let kind = Kind::parse(&a.kind).with_context(|| {
                format!("{LOCK_NAME}: artifacts[].kind {:?} is not signature, attestation, sbom or referrer", a.kind)
            })?;
            let name = Reference::parse(&a.source)
                .with_context(|| format!("{LOCK_NAME}: artifacts[].source {:?}", a.source))?;
            let at =
                Reference::from_parts(mirror.domain(), mirror.path(), name.tag(), name.digest())?;
            expected.push((kind, at));
        }
        sources.push(source);
        asks.push(Ask {
            image: mirror,
            digest,
            expect: Expect::Carried(expected),
        });
    }
    Ok((sources, asks))
}
