//! Where image lists come from, merged once: manifests (`-f`: files, directories, stdin),
//! rendered charts (`--chart`), an images lock, an Element Server Suite `images_digests.yml`,
//! plain image lists, a package file (`save --package`) naming any of these, and what a
//! cluster runs.
//!
//! Every command that acts on images (`images`, `check`, `push`, `save`) used to build and
//! de-duplicate its own list, and the three lists drifted (which reference form was kept, which
//! inputs counted). Here there is one [`ImageSet`]: one entry per image, keyed by its canonical
//! reference (`nginx:1.27` and `docker.io/library/nginx:1.27` are one image), the first spelling
//! seen kept for display, and each entry's [`Provenance`]s saying where it was named, so a
//! report can say which objects use it, whether only Helm hooks do, and which digest a lock pins.

pub(crate) mod charts;
pub(crate) mod files;
pub(crate) mod lists;
pub(crate) mod package;

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::cluster::{Inventory, Use};
use crate::lock::LockFile;
use crate::manifest::rules::RuleSet;
use crate::manifest::scan::{Location, Suspect};
use crate::mirror::canonical_reference;
use crate::oci::Digest;
use crate::reference::Reference;
use files::InputScan;

/// The places a command was told to read images from: the `-f`, `-R`, `--lock` and
/// `--images-digests` flags, resolved (no clap here, so the library can be driven without it).
#[derive(Debug, Clone, Default)]
pub(crate) struct Sources {
    pub(crate) files: Vec<PathBuf>,
    pub(crate) recursive: bool,
    pub(crate) lock: Option<PathBuf>,
    pub(crate) images_digests: Vec<PathBuf>,
    /// Files of one reference a line (`--image-list`).
    pub(crate) image_lists: Vec<PathBuf>,
    /// References named one by one, with where they were named (`command line`, a package).
    pub(crate) images: Vec<(String, Vec<String>)>,
}

impl Sources {
    pub(crate) fn is_empty(&self) -> bool {
        self.files.is_empty()
            && self.lock.is_none()
            && self.images_digests.is_empty()
            && self.image_lists.is_empty()
            && self.images.iter().all(|(_, refs)| refs.is_empty())
    }

    /// Adds another list of sources (a package file's) to these; one lock at the most.
    pub(crate) fn extend(&mut self, other: Sources) {
        self.files.extend(other.files);
        self.recursive |= other.recursive;
        self.lock = self.lock.take().or(other.lock);
        self.images_digests.extend(other.images_digests);
        self.image_lists.extend(other.image_lists);
        self.images.extend(other.images);
    }

    /// Whether `-f -` reads the manifests from stdin (which `--password-stdin` would also read).
    pub(crate) fn reads_stdin(&self) -> bool {
        self.files.iter().any(|f| f.as_os_str() == "-")
    }

    /// Every source read into one set: manifests, the images_digests files, image lists and
    /// named images, then the lock.
    /// `suspects` also keeps the strings that look like images but that no rule covered.
    pub(crate) fn read(&self, rules: &RuleSet, suspects: bool) -> anyhow::Result<ImageSet> {
        let mut set = ImageSet::default();
        self.read_into(&mut set, rules, suspects)?;
        Ok(set)
    }

    /// [`Sources::read`] into a set that may already hold images (a cluster's, read first).
    pub(crate) fn read_into(
        &self,
        set: &mut ImageSet,
        rules: &RuleSet,
        suspects: bool,
    ) -> anyhow::Result<()> {
        for input in files::scan_manifests(&self.files, self.recursive, rules, suspects)? {
            set.add_scan(input);
        }
        for file in &self.images_digests {
            set.add_scan(files::scan_images_digests(file)?);
        }
        for file in &self.image_lists {
            set.add_scan(lists::scan_image_list(file)?);
        }
        for (input, references) in &self.images {
            set.add_scan(lists::scan_references(input, references)?);
        }
        if let Some(path) = &self.lock {
            for entry in LockFile::load(path)? {
                let digest = entry.digest;
                match entry.copy_of {
                    Some(image) => set.add_alias(entry.source, image, Provenance::Lock { digest }),
                    None => set.add(entry.source, Provenance::Lock { digest }),
                }
            }
        }
        Ok(())
    }
}

/// Where an image was named.
#[derive(Debug, Clone)]
pub(crate) enum Provenance {
    /// In a manifest input (a file, stdin, or an images_digests file) at `location`.
    Manifest { input: String, location: Location },
    /// In a lock file, which pins it to `digest` (absent for an image the lock names by digest).
    Lock { digest: Option<Digest> },
    /// By an object in the cluster.
    Cluster(Use),
}

/// One image (or one repository-only value), with every place that named it.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// As first written (so reports show what the user wrote, not our canonical form).
    pub(crate) source: Reference,
    pub(crate) provenance: Vec<Provenance>,
}

impl Entry {
    /// The digest a lock pins a by-tag reference to; a reference by digest is checked by its
    /// own digest, so a lock adds nothing to it.
    pub(crate) fn locked_digest(&self) -> Option<&Digest> {
        if self.source.digest().is_some() {
            return None;
        }
        self.provenance.iter().find_map(|p| match p {
            Provenance::Lock { digest, .. } => digest.as_ref(),
            _ => None,
        })
    }

    /// The Helm hooks that use it, each once: `Job shop/migrate (pre-install)`.
    pub(crate) fn helm_hooks(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for p in &self.provenance {
            if let Provenance::Manifest { location, .. } = p
                && let Some(hook) = &location.helm_hook
            {
                let note = format!("{} ({hook})", location.describe_object());
                if !out.contains(&note) {
                    out.push(note);
                }
            }
        }
        out
    }

    /// Whether only Helm hooks use it (Helm 3 does not post-render hooks, so under Helm 3 such
    /// an image is pulled from its original registry). A lock's mention is no use.
    pub(crate) fn only_in_hooks(&self) -> bool {
        let mut hooks = false;
        for p in &self.provenance {
            match p {
                Provenance::Manifest { location, .. } if location.helm_hook.is_some() => {
                    hooks = true
                }
                Provenance::Manifest { .. } | Provenance::Cluster(_) => return false,
                Provenance::Lock { .. } => {}
            }
        }
        hooks
    }

    /// The cluster objects that name it.
    pub(crate) fn cluster_uses(&self) -> impl Iterator<Item = &Use> {
        self.provenance.iter().filter_map(|p| match p {
            Provenance::Cluster(u) => Some(u),
            _ => None,
        })
    }

    /// The manifest locations that name it, with their input's name.
    pub(crate) fn locations(&self) -> impl Iterator<Item = (&str, &Location)> {
        self.provenance.iter().filter_map(|p| match p {
            Provenance::Manifest { input, location } => Some((input.as_str(), location)),
            _ => None,
        })
    }
}

/// Images (each once, by canonical reference, in that order), repository-only values (each
/// once, by repository name), and suspects.
#[derive(Debug, Default)]
pub(crate) struct ImageSet {
    images: BTreeMap<String, Entry>,
    repositories: BTreeMap<String, Entry>,
    /// Names operators ask of a mirror for images their sources name otherwise
    /// ([`crate::manifest::Alias`]), by canonical asked name: the entry, and the image.
    aliases: BTreeMap<String, (Entry, Reference)>,
    suspects: Vec<Suspect>,
}

impl ImageSet {
    /// Adds an image named at `provenance`.
    pub(crate) fn add(&mut self, source: Reference, provenance: Provenance) {
        merge(
            &mut self.images,
            canonical_reference(&source),
            source,
            provenance,
        );
    }

    /// Adds a name an operator asks of a mirror for `image`: copied from `image` to that name.
    pub(crate) fn add_alias(&mut self, asked: Reference, image: Reference, provenance: Provenance) {
        let (entry, _) = self
            .aliases
            .entry(canonical_reference(&asked))
            .or_insert_with(|| {
                (
                    Entry {
                        source: asked,
                        provenance: Vec::new(),
                    },
                    image,
                )
            });
        entry.provenance.push(provenance);
    }

    /// The names operators ask of a mirror for images named otherwise at their sources, each
    /// with that image: the asked name is a copy of the image, made in the mirror.
    /// A name also listed as an image is that image, not a copy.
    pub(crate) fn aliases(&self) -> impl Iterator<Item = (&Entry, &Reference)> {
        self.aliases
            .iter()
            .filter(|(key, _)| !self.images.contains_key(*key))
            .map(|(_, (e, image))| (e, image))
    }

    /// [`ImageSet::aliases`] as (asked name, image) pairs.
    pub(crate) fn alias_pairs(&self) -> Vec<(Reference, Reference)> {
        self.aliases()
            .map(|(e, image)| (e.source.clone(), image.clone()))
            .collect()
    }

    /// Adds a repository-only value: rewritten to the mirror by `post-render`, but its operator
    /// adds the tag, so there is no image to copy or check.
    fn add_repository(&mut self, source: Reference, provenance: Option<Provenance>) {
        let entry = self
            .repositories
            .entry(source.name())
            .or_insert_with(|| Entry {
                source,
                provenance: Vec::new(),
            });
        entry.provenance.extend(provenance);
    }

    /// Adds what one input holds.
    pub(crate) fn add_scan(&mut self, input: InputScan) {
        let provenance = |location| Provenance::Manifest {
            input: input.name.clone(),
            location,
        };
        for u in input.scan.uses {
            self.add(u.reference, provenance(u.location));
        }
        for u in input.scan.repositories {
            self.add_repository(u.reference, Some(provenance(u.location)));
        }
        for a in input.scan.aliases {
            self.add_alias(a.asked, a.image, provenance(a.location));
        }
        self.suspects.extend(input.scan.suspects);
    }

    /// Adds the images of rendered charts (`--chart`), scanned as `-f` manifests are.
    pub(crate) fn add_charts(
        &mut self,
        charts: &[crate::chart::Rendered],
        rules: &RuleSet,
        suspects: bool,
    ) -> anyhow::Result<()> {
        for input in charts::scan_charts(charts, rules, suspects)? {
            self.add_scan(input);
        }
        Ok(())
    }

    /// Adds what a cluster runs. Returns a warning for each object whose image is not a
    /// reference (it cannot be looked for, and the caller says so).
    pub(crate) fn add_cluster(&mut self, inventory: &Inventory) -> Vec<String> {
        let mut warnings = Vec::new();
        for u in &inventory.uses {
            match Reference::parse(&u.image) {
                Ok(source) => self.add(source, Provenance::Cluster(u.clone())),
                Err(e) => warnings.push(format!(
                    "{} {}: {} is not an image reference ({}); not checked",
                    u.object(),
                    u.path,
                    crate::excerpt::Excerpt(&u.image),
                    e.message
                )),
            }
        }
        for r in &inventory.repositories {
            self.add_repository(r.clone(), None);
        }
        warnings
    }

    pub(crate) fn images(&self) -> impl ExactSizeIterator<Item = &Entry> {
        self.images.values()
    }

    pub(crate) fn into_images(self) -> Vec<Entry> {
        self.images.into_values().collect()
    }

    /// Every image's reference, as first written.
    pub(crate) fn references(&self) -> Vec<Reference> {
        self.images.values().map(|e| e.source.clone()).collect()
    }

    pub(crate) fn repositories(&self) -> impl ExactSizeIterator<Item = &Entry> {
        self.repositories.values()
    }

    pub(crate) fn suspects(&self) -> &[Suspect] {
        &self.suspects
    }
}

fn merge(
    map: &mut BTreeMap<String, Entry>,
    key: String,
    source: Reference,
    provenance: Provenance,
) {
    map.entry(key)
        .or_insert_with(|| Entry {
            source,
            provenance: Vec::new(),
        })
        .provenance
        .push(provenance);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(hook: Option<&str>) -> Location {
        Location {
            kind: "Job".into(),
            namespace: Some("shop".into()),
            name: Some("migrate".into()),
            path: "spec.template.spec.containers[0].image".into(),
            rule: "pod-spec".into(),
            helm_hook: hook.map(str::to_string),
            line: 1,
            document: 1,
        }
    }

    fn manifest(hook: Option<&str>) -> Provenance {
        Provenance::Manifest {
            input: "m.yaml".into(),
            location: location(hook),
        }
    }

    #[test]
    fn one_entry_per_image_whatever_the_spelling_and_the_first_spelling_kept() {
        let mut set = ImageSet::default();
        set.add(Reference::parse("nginx:1.27").unwrap(), manifest(None));
        set.add(
            Reference::parse("docker.io/library/nginx:1.27").unwrap(),
            manifest(None),
        );
        set.add(
            Reference::parse("index.docker.io/library/nginx:1.27").unwrap(),
            Provenance::Lock {
                digest: Some(Digest::sha256(b"a")),
            },
        );
        let entries: Vec<&Entry> = set.images().collect();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].source.familiar(), "nginx:1.27");
        assert_eq!(entries[0].provenance.len(), 3);
        assert_eq!(entries[0].locked_digest(), Some(&Digest::sha256(b"a")));
    }

    #[test]
    fn a_reference_by_digest_takes_no_digest_from_a_lock() {
        let digest = format!("sha256:{}", "b".repeat(64));
        let mut set = ImageSet::default();
        set.add(
            Reference::parse(&format!("quay.io/a/b@{digest}")).unwrap(),
            Provenance::Lock {
                digest: Some(Digest::sha256(b"c")),
            },
        );
        assert_eq!(set.images().next().unwrap().locked_digest(), None);
    }

    #[test]
    fn only_in_hooks_when_no_other_object_uses_it_and_a_lock_does_not_count() {
        let r = || Reference::parse("busybox:1").unwrap();
        let lock = Provenance::Lock { digest: None };
        let mut set = ImageSet::default();
        set.add(r(), manifest(Some("pre-install")));
        set.add(r(), manifest(Some("pre-install")));
        set.add(r(), lock.clone());
        let e = set.images().next().unwrap();
        assert!(e.only_in_hooks());
        assert_eq!(e.helm_hooks(), vec!["Job shop/migrate (pre-install)"]);

        set.add(r(), manifest(None));
        assert!(!set.images().next().unwrap().only_in_hooks());

        let mut lock_only = ImageSet::default();
        lock_only.add(r(), lock);
        assert!(!lock_only.images().next().unwrap().only_in_hooks());
    }
}
