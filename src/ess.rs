//! Element Server Suite's `images_digests.yml`: an image list read by `check`, `push` and `save`,
//! and the ConfigMap that points every ESS container at the mirror.
//!
//! The file is a tree of component → container → `{image_repository_server,
//! image_repository_path, image_tag, image_digest}` (optionally under one `images_digests:`
//! key). ESS users write the mirror's version of it by hand today; here it is derived. The
//! ConfigMap keeps the file's own text (comments, order, quoting) and replaces only the server
//! and path scalars, the same splicing the post-renderer does, so digests and tags are kept
//! byte for byte.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::excerpt::Excerpt;
use crate::manifest::node::{Node, Scalar, parse_documents};
use crate::manifest::splice;
use crate::mirror::MirrorNaming;
use crate::reference::Reference;

const SERVER: &str = "image_repository_server";
const PATH: &str = "image_repository_path";
const TAG: &str = "image_tag";
const DIGEST: &str = "image_digest";

/// One container's image in the file.
#[derive(Debug, Clone)]
pub(crate) struct EssImage {
    /// The keys leading to it, e.g. `synapse.synapse`.
    pub path: String,
    pub line: usize,
    pub reference: Reference,
    /// The two scalars the mirror's version replaces.
    server: Scalar<'static>,
    repository_path: Scalar<'static>,
}

/// A parsed `images_digests.yml`.
#[derive(Debug)]
pub(crate) struct ImagesDigests {
    pub file: PathBuf,
    text: String,
    /// Where the tree the ConfigMap carries starts: after the line of a single top-level
    /// `images_digests:` key, else 0. Every image scalar lies after it, so splicing keeps it.
    tree_start: usize,
    pub images: Vec<EssImage>,
}

impl ImagesDigests {
    pub(crate) fn load(file: &Path) -> anyhow::Result<ImagesDigests> {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        ImagesDigests::parse(file, text)
    }

    pub(crate) fn parse(file: &Path, text: String) -> anyhow::Result<ImagesDigests> {
        let name = file.display();
        let docs = parse_documents(&text, 1).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        let [root] = &docs[..] else {
            anyhow::bail!(
                "{name}: expected one YAML document (an images_digests tree), found {}",
                docs.len()
            );
        };
        let mut images = Vec::new();
        walk(root, &mut Vec::new(), &mut images).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        if images.is_empty() {
            anyhow::bail!(
                "{name}: no images found; expected component → container → {{{SERVER}, {PATH}, {TAG}, {DIGEST}}}"
            );
        }
        let tree_start = wrapper_end(root, &text).unwrap_or(0);
        Ok(ImagesDigests {
            file: file.to_path_buf(),
            tree_start,
            images,
            text,
        })
    }

    /// The file's text with every server and path pointed at the mirror; tags, digests,
    /// comments and layout as they were. Images already in the mirror stay as they are.
    pub(crate) fn pointed_at(&self, naming: &MirrorNaming) -> anyhow::Result<String> {
        let mut replacements = Vec::new();
        for image in &self.images {
            let mirror = naming
                .map(&image.reference)
                .with_context(|| format!("{}: {}", self.file.display(), image.path))?;
            for (scalar, value) in [
                (&image.server, mirror.domain()),
                (&image.repository_path, mirror.path()),
            ] {
                replacements.push(
                    splice::replacement(&self.text, scalar, 0..scalar.value.len(), value).map_err(
                        |e| anyhow::anyhow!("{}: {}: {e}", self.file.display(), image.path),
                    )?,
                );
            }
        }
        let mut out = String::new();
        splice::apply(&self.text, &mut replacements, &mut out);
        Ok(out)
    }

    /// A ConfigMap `NAME` (in `namespace`) whose `images_digests` key holds [`Self::pointed_at`].
    pub(crate) fn config_map(
        &self,
        naming: &MirrorNaming,
        name: &str,
        namespace: Option<&str>,
    ) -> anyhow::Result<String> {
        let spliced = self.pointed_at(naming)?;
        let tree = dedent(&spliced[self.tree_start..]);
        let mut metadata = serde_norway::Mapping::new();
        metadata.insert("name".into(), name.into());
        if let Some(ns) = namespace {
            metadata.insert("namespace".into(), ns.into());
        }
        let mut data = serde_norway::Mapping::new();
        data.insert("images_digests".into(), tree.into());
        let mut cm = serde_norway::Mapping::new();
        cm.insert("apiVersion".into(), "v1".into());
        cm.insert("kind".into(), "ConfigMap".into());
        cm.insert("metadata".into(), metadata.into());
        cm.insert("data".into(), data.into());
        Ok(serde_norway::to_string(&cm)?)
    }
}

/// The end of the line holding a single top-level `images_digests:` key; None when the file is
/// the bare tree.
fn wrapper_end(root: &Node<'_>, text: &str) -> Option<usize> {
    let Node::Map(entries) = root else {
        return None;
    };
    let [(Node::Scalar(key), Node::Map(_))] = &entries[..] else {
        return None;
    };
    if key.value != "images_digests" {
        return None;
    }
    let after = key.span.end;
    Some(after + text[after..].find('\n')? + 1)
}

/// `body` with the indentation of its first content line removed from every line, so that it
/// reads as a tree on its own.
fn dedent(body: &str) -> String {
    let indent = body
        .lines()
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map_or(0, |l| l.len() - l.trim_start_matches(' ').len());
    body.split_inclusive('\n')
        .map(|l| {
            let spaces = l.len() - l.trim_start_matches(' ').len();
            &l[spaces.min(indent)..]
        })
        .collect()
}

fn walk(node: &Node<'_>, keys: &mut Vec<String>, out: &mut Vec<EssImage>) -> Result<(), String> {
    let Node::Map(entries) = node else {
        return Ok(());
    };
    if node.get(PATH).is_some() || node.get(SERVER).is_some() {
        out.push(image(node, keys)?);
        return Ok(());
    }
    for (k, v) in entries {
        keys.push(k.as_str().unwrap_or("?").to_string());
        walk(v, keys, out)?;
        keys.pop();
    }
    Ok(())
}

fn image(node: &Node<'_>, keys: &[String]) -> Result<EssImage, String> {
    let at = keys.join(".");
    let field = |key: &str| -> Result<Option<&Scalar<'_>>, String> {
        match node.get(key) {
            None => Ok(None),
            Some(Node::Scalar(s)) if s.is_null() || s.value.is_empty() => Ok(None),
            Some(Node::Scalar(s)) if !s.tagged => Ok(Some(s)),
            Some(_) => Err(format!(
                "{at}.{key} (line {}): expected a string",
                line(node)
            )),
        }
    };
    let need = |key: &str| -> Result<&Scalar<'_>, String> {
        field(key)?.ok_or_else(|| {
            format!(
                "{at} (line {}): {key} is missing; every image needs {SERVER} and {PATH}",
                line(node)
            )
        })
    };
    let (server, path) = (need(SERVER)?, need(PATH)?);
    let (tag, digest) = (field(TAG)?, field(DIGEST)?);
    if tag.is_none() && digest.is_none() {
        return Err(format!(
            "{at} (line {}): neither {TAG} nor {DIGEST} is set; give the image one of them",
            server.line
        ));
    }
    let reference = Reference::from_parts(
        &server.value,
        &path.value,
        tag.map(|t| &*t.value),
        digest.map(|d| &*d.value),
    )
    .map_err(|e| {
        format!(
            "{at} (line {}): {SERVER} {} with {PATH} {} is not an image reference: {}",
            server.line,
            Excerpt(&server.value),
            Excerpt(&path.value),
            e.message
        )
    })?;
    Ok(EssImage {
        path: at,
        line: server.line,
        reference,
        server: server.clone().into_owned(),
        repository_path: path.clone().into_owned(),
    })
}

fn line(node: &Node<'_>) -> usize {
    match node {
        Node::Map(entries) => entries
            .first()
            .and_then(|(k, _)| k.as_scalar())
            .map_or(0, |s| s.line),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::{Mirror, Naming};

    const FILE: &str = "\
# digests as released
images_digests:
  synapse:
    synapse:
      image_digest: sha256:1111111111111111111111111111111111111111111111111111111111111111
      image_repository_path: element-hq/synapse
      image_repository_server: ghcr.io
      image_tag: v1.120.0
  matrix_authentication_service:
    syn2mas:
      image_repository_server: \"ghcr.io\"
      image_repository_path: 'element-hq/matrix-authentication-service/syn2mas'
      image_tag: \"0.12\"
    haproxy:
      image_repository_server: docker.io
      image_repository_path: library/haproxy
      image_digest: sha256:2222222222222222222222222222222222222222222222222222222222222222
";

    fn naming(scheme: Naming) -> MirrorNaming {
        MirrorNaming::new(Mirror::parse("reg.local:5000").unwrap(), scheme, Vec::new())
    }

    #[test]
    fn reads_every_container_with_its_path() {
        let d = ImagesDigests::parse(Path::new("d.yml"), FILE.into()).unwrap();
        let got: Vec<(String, String)> = d
            .images
            .iter()
            .map(|i| (i.path.clone(), i.reference.to_string()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "images_digests.synapse.synapse".to_string(),
                    "ghcr.io/element-hq/synapse:v1.120.0@sha256:1111111111111111111111111111111111111111111111111111111111111111".to_string()
                ),
                (
                    "images_digests.matrix_authentication_service.syn2mas".into(),
                    "ghcr.io/element-hq/matrix-authentication-service/syn2mas:0.12".into()
                ),
                (
                    "images_digests.matrix_authentication_service.haproxy".into(),
                    "docker.io/library/haproxy@sha256:2222222222222222222222222222222222222222222222222222222222222222".into()
                ),
            ]
        );
    }

    #[test]
    fn pointing_at_the_mirror_changes_only_server_and_path() {
        let d = ImagesDigests::parse(Path::new("d.yml"), FILE.into()).unwrap();
        let out = d.pointed_at(&naming(Naming::Nested)).unwrap();
        let want = FILE
            .replace(
                "image_repository_path: element-hq/synapse",
                "image_repository_path: ghcr.io/element-hq/synapse",
            )
            .replace(
                "'element-hq/matrix-authentication-service/syn2mas'",
                "'ghcr.io/element-hq/matrix-authentication-service/syn2mas'",
            )
            .replace("library/haproxy", "docker.io/library/haproxy")
            .replace("server: ghcr.io", "server: reg.local:5000")
            .replace("server: \"ghcr.io\"", "server: \"reg.local:5000\"")
            .replace("server: docker.io", "server: reg.local:5000");
        assert_eq!(out, want);
        // Pointing twice changes nothing more.
        let again = ImagesDigests::parse(Path::new("d.yml"), out.clone()).unwrap();
        assert_eq!(again.pointed_at(&naming(Naming::Nested)).unwrap(), out);
        let strip = d.pointed_at(&naming(Naming::Strip)).unwrap();
        assert!(strip.contains("image_repository_path: element-hq/synapse\n"));
    }

    #[test]
    fn the_config_map_holds_the_tree_below_the_top_key() {
        let d = ImagesDigests::parse(Path::new("d.yml"), FILE.into()).unwrap();
        let cm = d
            .config_map(&naming(Naming::Nested), "ess-images", Some("ess"))
            .unwrap();
        let v: serde_norway::Value = serde_norway::from_str(&cm).unwrap();
        assert_eq!(v["metadata"]["name"], "ess-images");
        assert_eq!(v["metadata"]["namespace"], "ess");
        let tree: serde_norway::Value =
            serde_norway::from_str(v["data"]["images_digests"].as_str().unwrap()).unwrap();
        assert_eq!(
            tree["synapse"]["synapse"]["image_repository_server"],
            "reg.local:5000"
        );
        assert_eq!(
            tree["matrix_authentication_service"]["syn2mas"]["image_tag"],
            "0.12"
        );
    }

    #[test]
    fn bad_entries_say_where() {
        for (text, want) in [
            (
                "a:\n  b:\n    image_repository_path: x/y\n    image_tag: '1'\n",
                "a.b (line 3): image_repository_server is missing",
            ),
            (
                "a:\n  b:\n    image_repository_server: ghcr.io\n    image_repository_path: x/y\n",
                "a.b (line 3): neither image_tag nor image_digest is set",
            ),
            (
                "a:\n  b:\n    image_repository_server: ghcr.io\n    image_repository_path: X/y\n    image_tag: '1'\n",
                "is not an image reference",
            ),
            (
                "a:\n  b:\n    image_repository_server: element\n    image_repository_path: x/y\n    image_tag: '1'\n",
                "would be read as docker.io/element/x/y",
            ),
            ("a: 1\n", "no images found"),
        ] {
            let err = ImagesDigests::parse(Path::new("d.yml"), text.into())
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("d.yml: ") && err.contains(want), "{err}");
        }
    }
}
