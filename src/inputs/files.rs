//! Reading image uses out of files: manifests named by `-f` (files, directories, stdin) and an
//! Element Server Suite `images_digests.yml`. Each input is scanned by the one rule-driven
//! scanner ([`crate::manifest::scan_stream`]) that `post-render` rewrites with, so what is listed
//! is what would be rewritten.

use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::ess::ImagesDigests;
use crate::manifest::rules::RuleSet;
use crate::manifest::scan::Location;
use crate::manifest::{ImageUse, StreamScan, scan_stream};

/// What one input holds, by its name (`stdin`, or the file's path as given).
pub(crate) struct InputScan {
    pub(crate) name: String,
    pub(crate) scan: StreamScan,
}

/// The manifest files that `-f` arguments name, in a stable order: a directory gives its
/// `.yaml`, `.yml` and `.json` files, sorted, and its subdirectories' with `recursive`.
pub(crate) fn expand_inputs(files: &[PathBuf], recursive: bool) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for f in files {
        if f.as_os_str() == "-" {
            out.push(f.clone());
        } else if f.is_dir() {
            collect_dir(f, recursive, &mut out)?;
        } else if f.exists() {
            out.push(f.clone());
        } else {
            anyhow::bail!("{}: no such file or directory", f.display());
        }
    }
    Ok(out)
}

fn collect_dir(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading directory {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if recursive {
                collect_dir(&p, recursive, out)?;
            }
        } else if matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(p);
        }
    }
    Ok(())
}

/// Every image use (and, with `suspects`, every suspect) in the inputs `-f` names.
pub(crate) fn scan_manifests(
    files: &[PathBuf],
    recursive: bool,
    rules: &RuleSet,
    suspects: bool,
) -> anyhow::Result<Vec<InputScan>> {
    let mut out = Vec::new();
    for path in expand_inputs(files, recursive)? {
        let (name, result) = if path.as_os_str() == "-" {
            let stdin = std::io::stdin();
            (
                "stdin".to_string(),
                scan_stream(stdin.lock(), "stdin", rules, suspects),
            )
        } else {
            let name = path.display().to_string();
            let file = std::fs::File::open(&path).with_context(|| format!("opening {name}"))?;
            let r = scan_stream(
                BufReader::with_capacity(1 << 16, file),
                &name,
                rules,
                suspects,
            );
            (name, r)
        };
        out.push(InputScan {
            name,
            scan: result?,
        });
    }
    Ok(out)
}

/// The images of an Element Server Suite images_digests.yml, as uses of kind `images_digests`
/// at the component.container path.
pub(crate) fn scan_images_digests(file: &Path) -> anyhow::Result<InputScan> {
    let digests = ImagesDigests::load(file)?;
    let listed = digests
        .images
        .into_iter()
        .map(|i| (i.reference, i.path, i.line));
    Ok(listed_uses(
        file.display().to_string(),
        "images_digests",
        "element-server-suite",
        listed,
    ))
}

/// An input that lists images rather than holding manifests (an images_digests file, an
/// image list, images named on the command line): each `(reference, path, line)` a use of
/// `kind` found by `rule`, so reports show where it was listed.
pub(crate) fn listed_uses(
    name: String,
    kind: &str,
    rule: &str,
    listed: impl IntoIterator<Item = (crate::reference::Reference, String, usize)>,
) -> InputScan {
    let uses = listed
        .into_iter()
        .map(|(reference, path, line)| ImageUse {
            reference,
            location: Location {
                kind: kind.into(),
                namespace: None,
                name: None,
                path,
                rule: rule.into(),
                helm_hook: None,
                line,
                document: 1,
            },
        })
        .collect();
    InputScan {
        name,
        scan: StreamScan {
            uses,
            ..StreamScan::default()
        },
    }
}
