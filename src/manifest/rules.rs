//! Rules: which fields of which objects hold images.
//!
//! The built-in pack (`rules.yaml`) and users' rules share one form, so that a rule a user
//! writes for a custom resource is as strong as a built-in one and a built-in one can be read as
//! an example.

use std::collections::HashSet;
use std::fmt;

use serde::Deserialize;

const BUILT_IN: &str = include_str!("rules.yaml");

/// One or a list of strings.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(untagged)]
pub enum OneOrMany {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::None => Vec::new(),
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// A rule as written in `rules.yaml` or a config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RuleSpec {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub api_version: OneOrMany,
    #[serde(default)]
    pub kind: OneOrMany,
    #[serde(default)]
    pub kinds: OneOrMany,
    #[serde(default)]
    pub image: Vec<String>,
    #[serde(default)]
    pub container: Vec<String>,
    #[serde(default)]
    pub pod_spec: Vec<String>,
    #[serde(default)]
    pub split: Vec<String>,
    /// Fields holding a whole reference, or only a tag of `tagRepository` (Grafana's
    /// `spec.version: 12.3.1`, which its operator joins with a repository of its own).
    #[serde(default)]
    pub tag_or_image: Vec<String>,
    #[serde(default)]
    pub tag_repository: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Pack {
    image_flags: Vec<String>,
    image_env: Vec<String>,
    placeholders: Vec<String>,
    split_forms: Vec<SplitSpec>,
    sibling_tags: Vec<String>,
    env_splits: Vec<SplitSpec>,
    repository_env: Vec<String>,
    ignored_config_keys: Vec<String>,
    cross_joins: Vec<CrossJoinSpec>,
    rules: Vec<RuleSpec>,
}

/// A cross-object join as written in `rules.yaml` (`crossJoins`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CrossJoinSpec {
    name: String,
    #[serde(default)]
    repository_env: Option<String>,
    #[serde(default)]
    annotations: Option<String>,
    #[serde(default)]
    env_split: Option<String>,
    #[serde(default)]
    tag_suffix_env: Option<String>,
    #[serde(default)]
    suffix_from: Vec<String>,
    versions: Vec<VersionSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct VersionSpec {
    #[serde(default)]
    api_version: OneOrMany,
    kind: String,
    field: String,
    #[serde(default)]
    names: Vec<String>,
}

/// Where an operator names its part of a cross-object join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinSource {
    /// An env variable of the operator's container: registry and path, completed by the
    /// operator as `VALUE/NAME:VERSION`.
    RepositoryEnv(String),
    /// Pod template (or object) annotations `PREFIX<version>.<name>` holding whole references,
    /// the version spelled with `_` for `.`.
    Annotations(String),
    /// The repository an `envSplits` form of this name joins from the container's env,
    /// completed as `REPOSITORY:VERSION`.
    EnvSplit(String),
}

/// Images an operator joins from a part named in its own workload and the version each of its
/// custom resources asks for (`crossJoins` in `rules.yaml`): the MySQL operator's default
/// repository env and each InnoDBCluster's `spec.version`, the Sail operator's per-version
/// image annotations and each Istio's `spec.version`.
#[derive(Debug, Clone)]
pub struct CrossJoin {
    pub name: String,
    pub source: JoinSource,
    /// An env variable whose value the operator appends to the version (`VERSION-VALUE`), only
    /// when the repository is one of `suffix_from`: from any other registry, a mirror among
    /// them, it asks for `VERSION` alone, so the mirror holds the image under both tags.
    pub tag_suffix_env: Option<String>,
    pub suffix_from: Vec<String>,
    pub versions: Vec<VersionSource>,
}

/// Custom resources whose field asks for a version, and the names (images or components) each
/// one pulls at that version.
#[derive(Debug, Clone)]
pub struct VersionSource {
    api_versions: Vec<ApiVersionPattern>,
    kind: String,
    pub field: FieldPath,
    pub names: Vec<String>,
}

impl VersionSource {
    pub fn applies_to(&self, api_version: &str, kind: &str) -> bool {
        self.kind == kind
            && (self.api_versions.is_empty()
                || self.api_versions.iter().any(|p| p.matches(api_version)))
    }
}

impl CrossJoin {
    fn compile(spec: CrossJoinSpec) -> CrossJoin {
        let source = match (spec.repository_env, spec.annotations, spec.env_split) {
            (Some(env), None, None) => JoinSource::RepositoryEnv(env),
            (None, Some(prefix), None) => JoinSource::Annotations(prefix),
            (None, None, Some(split)) => JoinSource::EnvSplit(split),
            _ => panic!(
                "crossJoins {:?}: give exactly one of repositoryEnv, annotations and envSplit",
                spec.name
            ),
        };
        CrossJoin {
            name: spec.name,
            source,
            tag_suffix_env: spec.tag_suffix_env,
            suffix_from: spec.suffix_from,
            versions: spec
                .versions
                .into_iter()
                .map(|v| VersionSource {
                    api_versions: v
                        .api_version
                        .into_vec()
                        .iter()
                        .map(|p| ApiVersionPattern::parse(p))
                        .collect(),
                    kind: v.kind,
                    field: FieldPath::parse(&v.field).expect("built-in crossJoins field paths"),
                    names: v.names,
                })
                .collect(),
        }
    }
}

/// A split form as written in `rules.yaml`: the field names of each part, tried in order.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SplitSpec {
    name: String,
    #[serde(default)]
    registry: OneOrMany,
    repository: OneOrMany,
    #[serde(default)]
    image: OneOrMany,
    #[serde(default)]
    tag: OneOrMany,
    #[serde(default)]
    digest: OneOrMany,
    #[serde(default)]
    under_image_key: bool,
    #[serde(default)]
    empty_registry_unknown: bool,
}

/// How an operator joins one reference from sibling fields:
/// `[registry "/"] repository ["/" image] [":" tag] ["@" digest]`. Each part lists the field
/// names it may have, tried in order.
#[derive(Debug, Clone)]
pub struct SplitForm {
    pub name: String,
    pub registry: Vec<String>,
    pub repository: Vec<String>,
    pub image: Vec<String>,
    pub tag: Vec<String>,
    pub digest: Vec<String>,
    /// Only in a map under a key that says image: the field names (`name`, `version`) are
    /// too common elsewhere.
    pub under_image_key: bool,
    /// An empty registry field means the operator's default registry, which the output does
    /// not name: such a map is left alone rather than joined without it.
    pub empty_registry_unknown: bool,
}

impl SplitForm {
    fn compile(spec: SplitSpec) -> SplitForm {
        SplitForm {
            name: spec.name,
            registry: spec.registry.into_vec(),
            repository: spec.repository.into_vec(),
            image: spec.image.into_vec(),
            tag: spec.tag.into_vec(),
            digest: spec.digest.into_vec(),
            under_image_key: spec.under_image_key,
            empty_registry_unknown: spec.empty_registry_unknown,
        }
    }
}

/// What the value at a rule's path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Image,
    Container,
    PodSpec,
    Split,
    /// A whole reference, or a tag of the rule's `tagRepository`.
    TagOrImage,
}

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    /// `[*]`: every item of a sequence.
    AnyItem,
    /// `*`: every value of a mapping.
    AnyKey,
}

/// A parsed field path such as `spec.templates[*].container`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath(pub Vec<Step>);

impl FieldPath {
    pub fn parse(text: &str) -> Result<FieldPath, String> {
        let mut steps = Vec::new();
        for part in text.split('.') {
            let (key, mut rest) = match part.find('[') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            };
            match key {
                "" if rest.is_empty() => {
                    return Err(format!("empty step in field path {text:?}"));
                }
                "" => {}
                "*" => steps.push(Step::AnyKey),
                k => steps.push(Step::Key(k.to_string())),
            }
            while !rest.is_empty() {
                rest = rest.strip_prefix("[*]").ok_or_else(|| {
                    format!("in field path {text:?}: only [*] may follow a key, found {rest:?}")
                })?;
                steps.push(Step::AnyItem);
            }
        }
        Ok(FieldPath(steps))
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Step::Key(k) if i == 0 => f.write_str(k)?,
                Step::Key(k) => write!(f, ".{k}")?,
                Step::AnyItem => f.write_str("[*]")?,
                Step::AnyKey if i == 0 => f.write_str("*")?,
                Step::AnyKey => f.write_str(".*")?,
            }
        }
        Ok(())
    }
}

/// `group/version` patterns: `apps/*`, `v1` (core), `*`.
#[derive(Debug, Clone)]
struct ApiVersionPattern {
    group: String,
    version: Option<String>,
}

impl ApiVersionPattern {
    fn parse(text: &str) -> ApiVersionPattern {
        if text == "*" {
            return ApiVersionPattern {
                group: "*".into(),
                version: None,
            };
        }
        let (group, version) = text.rsplit_once('/').unwrap_or(("", text));
        ApiVersionPattern {
            group: group.to_string(),
            version: (version != "*").then(|| version.to_string()),
        }
    }

    fn matches(&self, api_version: &str) -> bool {
        if self.group == "*" {
            return true;
        }
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        group == self.group && self.version.as_deref().is_none_or(|v| v == version)
    }
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    api_versions: Vec<ApiVersionPattern>,
    kinds: Vec<String>,
    pub paths: Vec<(Target, FieldPath)>,
    pub tag_repository: Option<String>,
}

impl Rule {
    fn compile(spec: RuleSpec, default_name: &str) -> Result<Rule, String> {
        let mut kinds = spec.kind.into_vec();
        kinds.extend(spec.kinds.into_vec());
        if kinds.is_empty() {
            return Err("a rule needs `kind` or `kinds`".into());
        }
        let name = spec.name.unwrap_or_else(|| default_name.to_string());
        let mut paths = Vec::new();
        for (target, list) in [
            (Target::Image, spec.image),
            (Target::Container, spec.container),
            (Target::PodSpec, spec.pod_spec),
            (Target::Split, spec.split),
            (Target::TagOrImage, spec.tag_or_image),
        ] {
            for p in list {
                paths.push((target, FieldPath::parse(&p)?));
            }
        }
        if paths.iter().any(|(t, _)| *t == Target::TagOrImage) && spec.tag_repository.is_none() {
            return Err(format!(
                "rule {name:?} has tagOrImage paths: give tagRepository, the repository a bare tag there belongs to"
            ));
        }
        if paths.is_empty() {
            return Err(format!(
                "rule {name:?} names no field: give image, container, podSpec or split paths"
            ));
        }
        Ok(Rule {
            name,
            api_versions: spec
                .api_version
                .into_vec()
                .iter()
                .map(|v| ApiVersionPattern::parse(v))
                .collect(),
            kinds,
            paths,
            tag_repository: spec.tag_repository,
        })
    }

    pub fn names_kind(&self, kind: &str) -> bool {
        self.kinds.iter().any(|k| k == kind)
    }

    pub fn applies_to(&self, api_version: &str, kind: &str) -> bool {
        self.kinds.iter().any(|k| k == kind)
            && (self.api_versions.is_empty()
                || self.api_versions.iter().any(|p| p.matches(api_version)))
    }
}

/// Every rule in force, with the name lists of rule kind 3.
#[derive(Debug, Clone)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    image_flags: HashSet<String>,
    image_env: HashSet<String>,
    placeholders: HashSet<String>,
    /// The split forms, most specific first is not needed: a map takes the form it fills most.
    pub split_forms: Vec<SplitForm>,
    /// Every repository field name of `split_forms`: a map without one is no split reference.
    split_repository_keys: HashSet<String>,
    /// Suffixes that make a sibling key the tag of an image key: `controllerImage` and
    /// `controllerImageVersion`.
    pub sibling_tags: Vec<String>,
    /// Split forms over the env variables of one container, by variable name.
    pub env_splits: Vec<SplitForm>,
    /// Env variables (patterns) whose value is a repository the operator adds its own tag to.
    repository_env: Vec<String>,
    /// ConfigMap keys (patterns) that no operator reads: examples shipped beside the real files.
    ignored_config_keys: Vec<String>,
    /// Images joined across objects (`crossJoins`).
    pub cross_joins: Vec<CrossJoin>,
}

impl RuleSet {
    /// The built-in pack plus `extra` rules (from the config file) and placeholders.
    pub fn new(extra: Vec<RuleSpec>, extra_placeholders: &[String]) -> Result<RuleSet, String> {
        let pack: Pack = serde_norway::from_str(BUILT_IN).expect("built-in rules.yaml is valid");
        let mut rules = Vec::new();
        for spec in pack.rules {
            rules.push(Rule::compile(spec, "built-in").expect("built-in rules compile"));
        }
        for (i, spec) in extra.into_iter().enumerate() {
            let rule = Rule::compile(spec, &format!("config-rule-{}", i + 1))
                .map_err(|e| format!("config rule {}: {e}", i + 1))?;
            rules.push(rule);
        }
        let mut placeholders: HashSet<String> = pack.placeholders.into_iter().collect();
        placeholders.extend(extra_placeholders.iter().cloned());
        Ok(RuleSet {
            rules,
            image_flags: pack.image_flags.into_iter().collect(),
            image_env: pack.image_env.into_iter().collect(),
            placeholders,
            split_repository_keys: pack
                .split_forms
                .iter()
                .flat_map(|f| f.repository.clone().into_vec())
                .collect(),
            split_forms: pack
                .split_forms
                .into_iter()
                .map(SplitForm::compile)
                .collect(),
            sibling_tags: pack.sibling_tags,
            env_splits: pack
                .env_splits
                .into_iter()
                .map(SplitForm::compile)
                .collect(),
            repository_env: pack.repository_env,
            ignored_config_keys: pack.ignored_config_keys,
            cross_joins: pack
                .cross_joins
                .into_iter()
                .map(CrossJoin::compile)
                .collect(),
        })
    }

    pub fn built_in() -> RuleSet {
        RuleSet::new(Vec::new(), &[]).expect("built-in rules")
    }

    pub fn for_object<'r>(
        &'r self,
        api_version: &'r str,
        kind: &'r str,
    ) -> impl Iterator<Item = &'r Rule> + 'r {
        self.rules
            .iter()
            .filter(move |r| r.applies_to(api_version, kind))
    }

    /// Every kind a rule names, each once, in the order the rules first name it: what
    /// `check --cluster` lists, so that the cluster is read where `post-render` rewrites.
    pub(crate) fn kinds(&self) -> Vec<&str> {
        let mut kinds: Vec<&str> = Vec::new();
        for k in self.rules.iter().flat_map(|r| &r.kinds) {
            if !kinds.contains(&k.as_str()) {
                kinds.push(k);
            }
        }
        kinds
    }

    /// Whether some rule may apply to objects of `group_version` (`v1`, `apps/v1`), whatever
    /// their kind: API discovery asks the server only about such group versions.
    pub(crate) fn may_apply_to(&self, group_version: &str) -> bool {
        self.rules.iter().any(|r| {
            r.api_versions.is_empty() || r.api_versions.iter().any(|p| p.matches(group_version))
        })
    }

    /// Whether a container flag (dashes removed) holds an image.
    pub fn is_image_flag(&self, flag: &str) -> bool {
        says_image(flag) || self.image_flags.contains(flag)
    }

    /// Whether an environment variable (or a ConfigMap key read as one) holds an image.
    pub fn is_image_env(&self, name: &str) -> bool {
        says_image(name) || self.image_env.contains(name)
    }

    /// Whether a map key (in a custom resource or embedded config) says its value is an image.
    pub fn is_image_key(&self, key: &str) -> bool {
        key == "image"
            || key.ends_with("Image")
            || key.ends_with("_image")
            || key.ends_with("-image")
    }

    /// Whether a field name can hold the repository of a split form.
    pub fn is_split_repository_key(&self, name: &str) -> bool {
        self.split_repository_keys.contains(name)
    }

    /// Whether an env variable holds a repository that its operator completes with a tag.
    pub fn is_repository_env(&self, name: &str) -> bool {
        self.repository_env.iter().any(|p| glob(p, name)) || self.join_of_env(name).is_some()
    }

    /// The cross join (its index in `cross_joins`) whose repository the env split form `name`
    /// joins.
    pub fn join_of_env_split(&self, name: &str) -> Option<usize> {
        self.cross_joins
            .iter()
            .position(|j| j.source == JoinSource::EnvSplit(name.to_string()))
    }

    /// The cross join (its index in `cross_joins`) whose repository is env variable `name`.
    pub fn join_of_env(&self, name: &str) -> Option<usize> {
        self.cross_joins
            .iter()
            .position(|j| j.source == JoinSource::RepositoryEnv(name.to_string()))
    }

    pub fn is_ignored_config_key(&self, key: &str) -> bool {
        self.ignored_config_keys.iter().any(|p| glob(p, key))
    }

    pub fn is_placeholder(&self, value: &str) -> bool {
        self.placeholders.contains(value)
    }
}

/// The words of a name: `RELATED_IMAGE_MARIADB`, `controllerImageVersion`, `trivy.tag` and
/// `image-pull-policy` split at `_`, `-`, `.`, `/` and lower-to-upper case changes, lowercased.
pub fn words(name: &str) -> impl Iterator<Item = String> + '_ {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if matches!(c, '_' | '-' | '.' | '/' | ' ') {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            prev_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower && !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        word.push(c.to_ascii_lowercase());
    }
    if !word.is_empty() {
        out.push(word);
    }
    out.into_iter()
}

/// Whether a name says its value is an image: a word `image` or `images` (`RELATED_IMAGE_X`,
/// `POSTGRES_IMAGE_NAME`, `VERSION_UPGRADE_HOOK_IMAGE`, `sidecarImage`), no word about pulling
/// (`IMAGE_PULL_POLICY`, `imagePullSecrets`), and no last word naming a part of one (`imageTag`,
/// `IMAGE_REGISTRY`, `IMAGE_VERSION`).
pub fn says_image(name: &str) -> bool {
    // Most names do not mention images: they are told apart without splitting into words.
    if !mentions_image(name) {
        return false;
    }
    let mut image = false;
    let mut last = String::new();
    for w in words(name) {
        match w.as_str() {
            w if w.ends_with("image") || w.ends_with("images") => image = true,
            "pull" | "policy" | "secret" | "secrets" | "pullpolicy" => return false,
            _ => {}
        }
        last = w;
    }
    image
        && !matches!(
            last.as_str(),
            "tag" | "version" | "registry" | "digest" | "repository" | "repo" | "url"
        )
}

/// Whether `text` holds `image` in any case, without allocating.
pub fn mentions_image(text: &str) -> bool {
    text.as_bytes()
        .windows(5)
        .any(|w| w.eq_ignore_ascii_case(b"image"))
}

/// Whether `name` matches a pattern with `*` wildcards (`VM_*DEFAULT_IMAGE`).
pub fn glob(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, p) in parts.iter().enumerate() {
        if i == parts.len() - 1 {
            return rest.ends_with(p);
        }
        match rest.find(p) {
            Some(at) => rest = &rest[at + p.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// Whether a name's last word is `image`: a value there may be a bare short name
/// (`SIDECAR_IMAGE: busybox`), as in a container's `image`.
pub fn ends_with_image(name: &str) -> bool {
    words(name).last().is_some_and(|w| w == "image")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pack_loads_and_matches_by_group_and_kind() {
        let rules = RuleSet::built_in();
        let names: Vec<_> = rules
            .for_object("apps/v1", "Deployment")
            .map(|r| &r.name)
            .collect();
        assert_eq!(names, ["workload"]);
        assert_eq!(
            rules.for_object("extensions/v1beta1", "Deployment").count(),
            1
        );
        assert_eq!(rules.for_object("example.com/v1", "Deployment").count(), 0);
        // What check --cluster lists: workload kinds first, then the custom resources.
        let kinds = rules.kinds();
        assert_eq!(
            kinds[..10],
            [
                "Pod",
                "PodTemplate",
                "Deployment",
                "StatefulSet",
                "DaemonSet",
                "ReplicaSet",
                "ReplicationController",
                "Job",
                "CronJob",
                "Prometheus"
            ]
        );
        assert!(kinds.contains(&"Alertmanager") && kinds.contains(&"ClusterWorkflowTemplate"));
        assert!(rules.may_apply_to("v1") && rules.may_apply_to("apps/v1"));
        assert!(rules.may_apply_to("monitoring.coreos.com/v1"));
        assert!(!rules.may_apply_to("example.com/v1") && !rules.may_apply_to("storage.k8s.io/v1"));
        assert_eq!(
            rules
                .for_object("monitoring.coreos.com/v1", "Prometheus")
                .count(),
            1
        );
    }

    #[test]
    fn field_paths_round_trip() {
        for p in ["spec.templates[*].container", "data.*", "spec.a[*][*].b"] {
            assert_eq!(FieldPath::parse(p).unwrap().to_string(), p);
        }
        assert!(FieldPath::parse("spec..a").is_err());
        assert!(FieldPath::parse("spec.a[0]").is_err());
    }

    #[test]
    fn names_that_say_image() {
        let r = RuleSet::built_in();
        assert!(r.is_image_flag("acme-http01-solver-image"));
        assert!(r.is_image_flag("prometheus-config-reloader"));
        assert!(!r.is_image_flag("image-pull-policy"));
        assert!(r.is_image_env("STRIMZI_KAFKA_IMAGES"));
        assert!(r.is_image_env("STRIMZI_DEFAULT_MAVEN_BUILDER"));
        assert!(!r.is_image_env("IMAGE_PULL_SECRET"));
        assert!(r.is_image_env("RELATED_IMAGE_MARIADB"));
        assert!(r.is_image_env("POSTGRES_IMAGE_NAME"));
        assert!(!r.is_image_env("IMAGE_REGISTRY"));
        assert!(!r.is_image_env("imageTag"));
        assert!(!r.is_image_env("STAGE"));
        assert!(r.is_image_env("VERSION_UPGRADE_HOOK_IMAGE"));
        assert!(!r.is_image_env("IMAGE_PULL_SECRET_NAME"));
        assert!(glob("VM_*DEFAULT_IMAGE", "VM_VMAUTHDEFAULT_IMAGE"));
        assert!(!glob("VM_*DEFAULT_IMAGE", "VM_VMAUTHDEFAULT_VERSION"));
        assert!(glob("*.example", "001-templates.json.example") && glob("a", "a"));
        assert!(r.is_image_env("sidecar_docker_images"));
        assert!(ends_with_image("SIDECAR_IMAGE") && ends_with_image("initImage"));
        assert!(!ends_with_image("RELATED_IMAGE_X"));
    }
}
