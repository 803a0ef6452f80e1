//! What a copy will do before it starts: a job per image (what the manifests name, where its
//! bytes are fetched from, where they are written), and `--source-mirror` stand-ins for source
//! registries. `push` and `save` plan with these and run the jobs through the one copier.

use std::collections::BTreeMap;

use crate::mirror::{Collisions, MirrorNaming};
use crate::reference::Reference;
use crate::registry::RegistryOptions;

/// One image to copy.
pub(crate) struct Job {
    /// The reference the manifests name.
    pub(crate) source: Reference,
    /// Where its bytes are read (the source, or its `--source-mirror` stand-in).
    pub(crate) fetch: Reference,
    /// Where it is written.
    pub(crate) target: Reference,
    /// Set when `source` is a name an operator asks only of a mirror: the image, as its
    /// source names it, that `fetch` reads.
    pub(crate) copy_of: Option<Reference>,
}

/// `--source-mirror HOST=URL` values: source host → (host to fetch from, plain HTTP?).
pub(crate) struct SourceMirrors(BTreeMap<String, (String, bool)>);

impl SourceMirrors {
    pub(crate) fn parse(values: &[String]) -> anyhow::Result<SourceMirrors> {
        let mut out = BTreeMap::new();
        for v in values {
            let bad = || {
                anyhow::anyhow!(
                    "--source-mirror {v:?}: write HOST=URL, e.g. docker.io=https://proxy.corp:5000"
                )
            };
            let (host, url) = v.split_once('=').ok_or_else(bad)?;
            let (insecure, rest) = match url.split_once("://") {
                Some(("http", rest)) => (true, rest),
                Some(("https", rest)) => (false, rest),
                Some(_) => return Err(bad()),
                None => (false, url),
            };
            let target = rest.trim_end_matches('/');
            if host.is_empty() || target.is_empty() || target.contains('/') {
                return Err(bad());
            }
            for h in [host, target] {
                crate::mirror::check_host_port(h)
                    .map_err(|why| anyhow::anyhow!("--source-mirror {v:?}: {why}"))?;
            }
            let host = crate::oci::hub::canonical(host);
            out.insert(host.to_string(), (target.to_string(), insecure));
        }
        Ok(SourceMirrors(out))
    }

    /// Marks the stand-ins named with http:// as plain-HTTP hosts.
    pub(crate) fn apply(&self, options: &mut RegistryOptions) {
        for (host, insecure) in self.0.values() {
            options.hosts.entry(host.clone()).or_default().insecure |= *insecure;
        }
    }

    /// Where to read `source` from.
    pub(crate) fn fetch(&self, source: &Reference) -> anyhow::Result<Reference> {
        Ok(match self.0.get(source.domain()) {
            Some((host, _)) => source.with_name(host, source.path())?,
            None => source.clone(),
        })
    }
}

/// A job per source not already in the mirror, named per the mirror naming; two sources that
/// the naming would put in one repository are refused.
pub(crate) fn into_mirror(
    sources: Vec<Reference>,
    naming: &MirrorNaming,
    fetch: impl Fn(&Reference) -> anyhow::Result<Reference>,
) -> anyhow::Result<Vec<Job>> {
    into_mirror_with(sources, Vec::new(), naming, fetch)
}

/// [`into_mirror`], and a job per name an operator asks only of a mirror (`(asked, image)`):
/// read from the image, written under the asked name. One collision check covers both.
pub(crate) fn into_mirror_with(
    sources: Vec<Reference>,
    aliases: Vec<(Reference, Reference)>,
    naming: &MirrorNaming,
    fetch: impl Fn(&Reference) -> anyhow::Result<Reference>,
) -> anyhow::Result<Vec<Job>> {
    let mut collisions = Collisions::new();
    let mut out = Vec::new();
    let mut in_mirror = Vec::new();
    let wanted = sources.into_iter().map(|s| (s, None)).chain(
        aliases
            .into_iter()
            .map(|(asked, image)| (asked, Some(image))),
    );
    for (source, copy_of) in wanted {
        if naming.mirror().holds(&source) {
            in_mirror.push(source.to_string());
            continue;
        }
        let target = naming.map(&source)?;
        collisions.insert(&source, &target)?;
        out.push(Job {
            fetch: fetch(copy_of.as_ref().unwrap_or(&source))?,
            source,
            target,
            copy_of,
        });
    }
    if !in_mirror.is_empty() {
        eprintln!(
            "note: {} images already name the mirror {} and were left as they are: {}",
            in_mirror.len(),
            naming.mirror(),
            in_mirror.join(", ")
        );
    }
    Ok(out)
}

/// A job per source into a bundle, which holds images by their source names.
pub(crate) fn into_bundle(
    sources: Vec<Reference>,
    remaps: &SourceMirrors,
) -> anyhow::Result<Vec<Job>> {
    into_bundle_with(sources, Vec::new(), remaps)
}

/// [`into_bundle`], and a job per name an operator asks only of a mirror (`(asked, image)`):
/// the bundle holds the image under the asked name too, so that `push --from` puts both in
/// the mirror.
pub(crate) fn into_bundle_with(
    sources: Vec<Reference>,
    aliases: Vec<(Reference, Reference)>,
    remaps: &SourceMirrors,
) -> anyhow::Result<Vec<Job>> {
    let wanted = sources.into_iter().map(|s| (s, None)).chain(
        aliases
            .into_iter()
            .map(|(asked, image)| (asked, Some(image))),
    );
    wanted
        .map(|(source, copy_of)| {
            Ok(Job {
                fetch: remaps.fetch(copy_of.as_ref().unwrap_or(&source))?,
                target: source.clone(),
                source,
                copy_of,
            })
        })
        .collect()
}
