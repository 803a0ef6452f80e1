//! Documents in, documents out: splitting a stream, scanning with positions, rules, splicing.

pub mod fast;
pub mod node;
pub mod pull_secret;
pub mod rules;
pub mod scan;
pub mod splice;
pub mod stream;

use rustc_hash::FxHashMap;
use std::io::{BufRead, Write};

use crate::mirror::{Collisions, MirrorNaming, NamingError};
use crate::reference::Reference;
use node::{SyntaxError, parse_documents, validate_documents};
use rules::RuleSet;
use scan::{DocScan, JoinRole, JoinVersion, Location, Part, ScanError, Scanner, Suspect};
use stream::{Chunk, ChunkReader, StreamError};

/// Why a stream could not be read or rewritten. Every variant says where.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{source_name}: {error}")]
    Stream {
        source_name: String,
        error: StreamError,
    },
    #[error(
        "{source_name}: invalid YAML at {error}; fix the template that produced it (run `helm template` to see the rendered text)"
    )]
    Syntax {
        source_name: String,
        error: SyntaxError,
    },
    #[error(
        "{source_name}: at {error}; a manifest that deep is not one Kubernetes can use: check the template that produced it"
    )]
    TooDeep {
        source_name: String,
        error: SyntaxError,
    },
    #[error(
        "{source_name}: the document rewritten at {error} would not parse as YAML, so it was not written; this is a bug in kubectl-airgap: please report it with that document"
    )]
    Unparsable {
        source_name: String,
        error: SyntaxError,
    },
    #[error("{source_name}: {error}")]
    Scan {
        source_name: String,
        error: ScanError,
    },
    #[error("{source_name}: document {} ({}), field {}, line {}: {error}", .location.document, .location.describe_object(), .location.path, .location.line)]
    Naming {
        source_name: String,
        location: Box<Location>,
        error: NamingError,
    },
    #[error("{source_name}: document {} ({}), field {}, line {}: cannot rewrite {image}: {why}", .location.document, .location.describe_object(), .location.path, .location.line)]
    Splice {
        source_name: String,
        location: Box<Location>,
        image: String,
        why: String,
    },
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

/// One use of an image, owned (free of the document it came from).
#[derive(Debug, Clone)]
pub struct ImageUse {
    pub reference: Reference,
    pub location: Location,
}

/// Reads every document of `input`, calling `each` with the chunk text and what its documents
/// hold. Memory holds one chunk at a time.
fn for_each_document<R: BufRead>(
    input: R,
    source_name: &str,
    rules: &RuleSet,
    suspects: bool,
    mut each: impl FnMut(&Chunk, DocScan<'_>) -> Result<(), ManifestError>,
) -> Result<usize, ManifestError> {
    let scanner = Scanner::new(rules, suspects);
    let mut document = 0;
    for chunk in ChunkReader::new(input) {
        let chunk = chunk.map_err(|error| ManifestError::Stream {
            source_name: source_name.to_string(),
            error,
        })?;
        let syntax = |error: SyntaxError| {
            let source_name = source_name.to_string();
            if error.too_deep {
                ManifestError::TooDeep { source_name, error }
            } else {
                ManifestError::Syntax { source_name, error }
            }
        };
        if !suspects && no_rule_applies(&chunk.text, rules) {
            document += validate_documents(&chunk.text, chunk.first_line).map_err(syntax)?;
            each(&chunk, DocScan::default())?;
            continue;
        }
        let docs = match fast::parse_documents(&chunk.text, chunk.first_line) {
            Some(docs) => docs,
            None => parse_documents(&chunk.text, chunk.first_line).map_err(syntax)?,
        };
        let mut all = DocScan::default();
        for doc in &docs {
            document += 1;
            let mut scan = scanner
                .scan(doc, document)
                .map_err(|error| ManifestError::Scan {
                    source_name: source_name.to_string(),
                    error,
                })?;
            all.findings.append(&mut scan.findings);
            all.suspects.append(&mut scan.suspects);
            all.pod_specs.append(&mut scan.pod_specs);
            all.versions.append(&mut scan.versions);
        }
        each(&chunk, all)?;
    }
    Ok(document)
}

/// Whether a chunk is a CustomResourceDefinition (its only top-level `kind`) that no rule looks
/// into: then it is validated without building a tree. A `kind:` at column 0 is a top-level key,
/// since anything nested or continued is indented.
fn no_rule_applies(text: &str, rules: &RuleSet) -> bool {
    if memchr::memmem::find(text.as_bytes(), b"kind: CustomResourceDefinition").is_none() {
        return false;
    }
    let mut kinds = text
        .lines()
        .filter_map(|l| l.strip_prefix("kind:"))
        .map(|k| k.trim().trim_matches(['"', '\'']));
    kinds.next() == Some("CustomResourceDefinition")
        && kinds.next().is_none()
        && !rules
            .rules
            .iter()
            .any(|r| r.names_kind("CustomResourceDefinition"))
        && !may_default_to_a_reference(text)
}

/// Whether a CRD's text holds a schema `default:` that might be a reference (a value with a
/// `/` after a host-like first part): only such CRDs are parsed for their image defaults, the
/// rest (almost all, and the largest documents of a chart) are only validated.
fn may_default_to_a_reference(text: &str) -> bool {
    memchr::memmem::find_iter(text.as_bytes(), b"default:").any(|at| {
        let rest = &text[at + "default:".len()..];
        let value = rest[..rest.find('\n').unwrap_or(rest.len())]
            .trim()
            .trim_matches(['"', '\'']);
        value.split_once('/').is_some_and(|(host, path)| {
            host.contains(['.', ':']) && !path.is_empty() && !path.contains(char::is_whitespace)
        })
    })
}

/// The text of a split reference's repository field: the mirror's `name` less the `tail` bytes
/// that a later field (an `image` name) appends to the source's. Naming keeps a repository's
/// last part, so the mirror name ends with the same tail unless an override renames it.
fn split_lead(name: &str, source: &Reference, tail: usize) -> Result<String, String> {
    let source_name = source.name();
    let Some(suffix) = source_name.get(source_name.len().saturating_sub(tail)..) else {
        return Err("the split reference's parts do not add up".into());
    };
    name.strip_suffix(suffix).map(str::to_string).ok_or_else(|| {
        format!(
            "its mirror name {name} does not end with {suffix:?}, which the chart's image field supplies and the rewrite leaves as it is; change the override so that it keeps the last part of the repository"
        )
    })
}

/// Defence in depth: a rewritten chunk must still be YAML, or it is an error and is never
/// written. Splicing keeps every byte but the image text, so this only fails on a bug; the
/// fast reader answers for almost every chunk, the full parser for the rest.
fn still_parses(text: &str, first_line: usize) -> Result<(), SyntaxError> {
    if fast::parse_documents(text, first_line).is_some() {
        return Ok(());
    }
    validate_documents(text, first_line).map(|_| ())
}

/// What a stream names: images to copy, repository-only values (rewritten, but their tags
/// are the operator's to add, so nothing to copy), and, when asked, suspects.
#[derive(Debug, Default)]
pub struct StreamScan {
    pub uses: Vec<ImageUse>,
    pub repositories: Vec<ImageUse>,
    pub suspects: Vec<Suspect>,
    /// Names operators ask of a mirror for images named otherwise at their source.
    pub aliases: Vec<Alias>,
}

/// A name an operator asks of a mirror for an image its source names otherwise: the MongoDB
/// operator pulls `REPO/IMAGE:VERSION-ubi8` from its official repositories but
/// `REPO/IMAGE:VERSION` from any other, the mirror among them (`tagSuffixEnv` in `rules.yaml`).
/// The image is copied under both names; `asked` exists only in the mirror.
#[derive(Debug, Clone)]
pub struct Alias {
    pub image: Reference,
    pub asked: Reference,
    pub location: Location,
}

/// Lists every image use (and, when asked, every suspect) in a stream.
pub fn scan_stream<R: BufRead>(
    input: R,
    source_name: &str,
    rules: &RuleSet,
    suspects: bool,
) -> Result<StreamScan, ManifestError> {
    let mut out = StreamScan::default();
    let mut joins = Joins::default();
    for_each_document(input, source_name, rules, suspects, |_, scan| {
        for f in scan.findings {
            let u = ImageUse {
                location: f.location(),
                reference: f.reference,
            };
            match f.join {
                // Rewritten, but pulled by no resource of the input.
                _ if f.schema_default => {}
                Some(role) => joins.parts.push((role, u)),
                None if f.repository_only => out.repositories.push(u),
                None => out.uses.push(u),
            }
        }
        joins.versions.extend(scan.versions);
        out.suspects.extend(scan.suspects);
        Ok(())
    })?;
    joins.list(&mut out);
    Ok(out)
}

/// The parts of cross-object joins (`crossJoins`) a stream holds, listed once all is read:
/// an operator's repository completed with the names and versions its resources ask for, and
/// the per-version annotations of the versions asked for. Without a resource asking, a
/// repository is listed as one and every annotation as an image, since resources made later
/// may ask for any.
#[derive(Default)]
struct Joins {
    parts: Vec<(JoinRole, ImageUse)>,
    versions: Vec<JoinVersion>,
}

impl Joins {
    fn list(self, out: &mut StreamScan) {
        for (role, u) in self.parts {
            let join = match &role {
                JoinRole::Repository { join, .. } | JoinRole::Offer { join, .. } => *join,
            };
            let mut asked = self.versions.iter().filter(|v| v.join == join).peekable();
            if asked.peek().is_none() {
                match role {
                    JoinRole::Repository { .. } => out.repositories.push(u),
                    JoinRole::Offer { .. } => out.uses.push(u),
                }
                continue;
            }
            match role {
                JoinRole::Repository { suffix, .. } => {
                    for v in asked {
                        // The version's names under the repository, or the repository itself.
                        let names: Vec<Option<&str>> = match &v.names[..] {
                            [] => vec![None],
                            names => names.iter().map(|n| Some(n.as_str())).collect(),
                        };
                        for n in names {
                            let repository = match n {
                                Some(n) => under(&u.reference, n),
                                None => Some(u.reference.clone()),
                            };
                            let Some(repository) = repository else {
                                continue;
                            };
                            let tagged = |tag: &str| {
                                Reference::parse(&format!("{}:{tag}", repository.name())).ok()
                            };
                            let tag = match &suffix {
                                Some(s) => format!("{}-{s}", v.version),
                                None => v.version.clone(),
                            };
                            let Some(reference) = tagged(&tag) else {
                                continue;
                            };
                            let mut location = u.location.clone();
                            location.rule = format!("{}/join", location.rule);
                            if suffix.is_some()
                                && let Some(asked) = tagged(&v.version)
                            {
                                out.aliases.push(Alias {
                                    image: reference.clone(),
                                    asked,
                                    location: location.clone(),
                                });
                            }
                            out.uses.push(ImageUse {
                                reference,
                                location,
                            });
                        }
                    }
                }
                JoinRole::Offer { version, name, .. } => {
                    let wanted = asked.any(|v| {
                        v.names.contains(&name)
                            && v.version
                                .strip_prefix('v')
                                .unwrap_or(&v.version)
                                .replace('.', "_")
                                == version.strip_prefix('v').unwrap_or(&version)
                    });
                    if wanted {
                        out.uses.push(u);
                    }
                }
            }
        }
    }
}

/// `repository/name`, when that is a reference.
fn under(repository: &Reference, name: &str) -> Option<Reference> {
    Reference::parse(&format!("{}/{name}", repository.name())).ok()
}

/// What a rewrite did.
#[derive(Debug, Default, Clone, Copy)]
pub struct RewriteStats {
    pub documents: usize,
    /// Image references pointed at the mirror.
    pub rewritten: usize,
    /// References that already pointed at the mirror.
    pub already_mirrored: usize,
    /// Pod specs given `imagePullSecrets`.
    pub pull_secrets_added: usize,
}

/// Rewrites every image reference of a stream to the mirror, byte-preserving elsewhere.
pub struct Rewriter<'a> {
    pub naming: &'a MirrorNaming,
    pub rules: &'a RuleSet,
    /// A Secret to name in every pod spec that has no `imagePullSecrets`.
    pub pull_secret: Option<&'a str>,
}

impl Rewriter<'_> {
    pub fn rewrite<R: BufRead, W: Write>(
        &self,
        input: R,
        source_name: &str,
        output: &mut W,
    ) -> Result<RewriteStats, ManifestError> {
        let mut stats = RewriteStats::default();
        let mut collisions = Collisions::new();
        // Mirror names by source; bounded like the scanner's parse cache.
        let mut mapped: FxHashMap<Reference, Reference> = FxHashMap::default();
        let mut buf = String::new();
        stats.documents =
            for_each_document(input, source_name, self.rules, false, |whole, scan| {
                let chunk = whole.text.as_str();
                let mut replacements = Vec::new();
                if let Some(name) = self.pull_secret {
                    for site in &scan.pod_specs {
                        let added = pull_secret::insertion(chunk, site, name).map_err(|error| {
                            ManifestError::Scan {
                                source_name: source_name.to_string(),
                                error,
                            }
                        })?;
                        if let Some(r) = added {
                            replacements.push(r);
                            stats.pull_secrets_added += 1;
                        }
                    }
                }
                let splice_error = |f: &scan::Finding<'_>, why| ManifestError::Splice {
                    source_name: source_name.to_string(),
                    location: Box::new(f.location()),
                    image: f.reference.to_string(),
                    why,
                };
                for f in scan.findings {
                    if self.naming.mirror().holds(&f.reference) {
                        stats.already_mirrored += 1;
                        continue;
                    }
                    let naming_error = |error| ManifestError::Naming {
                        source_name: source_name.to_string(),
                        location: Box::new(f.location()),
                        error,
                    };
                    let mirrored = match mapped.get(&f.reference) {
                        Some(m) => m.clone(),
                        None => {
                            let m = self.naming.map(&f.reference).map_err(naming_error)?;
                            if mapped.len() >= 4096 {
                                mapped.clear();
                            }
                            mapped.insert(f.reference.clone(), m.clone());
                            m
                        }
                    };
                    collisions
                        .insert(&f.reference, &mirrored)
                        .map_err(naming_error)?;
                    for e in &f.edits {
                        let new_text = match e.part {
                            Part::Image => mirrored.to_string(),
                            Part::Registry => mirrored.domain().to_string(),
                            Part::Repository { tail } => {
                                split_lead(mirrored.path(), &f.reference, tail)
                                    .map_err(|why| splice_error(&f, why))?
                            }
                            Part::RepositoryWithHost { tail } => {
                                split_lead(&mirrored.name(), &f.reference, tail)
                                    .map_err(|why| splice_error(&f, why))?
                            }
                        };
                        let r = splice::replacement(chunk, e.scalar, e.range.clone(), &new_text)
                            .map_err(|why| splice_error(&f, why))?;
                        replacements.push(r);
                    }
                    stats.rewritten += 1;
                }
                buf.clear();
                let edited = !replacements.is_empty();
                splice::apply(chunk, &mut replacements, &mut buf);
                if edited {
                    still_parses(&buf, whole.first_line).map_err(|error| {
                        ManifestError::Unparsable {
                            source_name: source_name.to_string(),
                            error,
                        }
                    })?;
                }
                output.write_all(buf.as_bytes())?;
                Ok(())
            })?;
        output.flush()?;
        Ok(stats)
    }
}
