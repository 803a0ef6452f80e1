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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Pack {
    image_flags: Vec<String>,
    image_env: Vec<String>,
    placeholders: Vec<String>,
    rules: Vec<RuleSpec>,
}

/// What the value at a rule's path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Image,
    Container,
    PodSpec,
    Split,
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
        ] {
            for p in list {
                paths.push((target, FieldPath::parse(&p)?));
            }
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

    /// Whether a container flag (dashes removed) holds an image.
    pub fn is_image_flag(&self, flag: &str) -> bool {
        contains_ignore_case(flag, "image") && !says_not_an_image(flag)
            || self.image_flags.contains(flag)
    }

    /// Whether an environment variable holds an image.
    pub fn is_image_env(&self, name: &str) -> bool {
        contains_ignore_case(name, "image") && !says_not_an_image(name)
            || self.image_env.contains(name)
    }

    /// Whether a map key (in a custom resource or embedded config) says its value is an image.
    pub fn is_image_key(&self, key: &str) -> bool {
        key == "image"
            || key.ends_with("Image")
            || key.ends_with("_image")
            || key.ends_with("-image")
    }

    pub fn is_placeholder(&self, value: &str) -> bool {
        self.placeholders.contains(value)
    }
}

fn contains_ignore_case(haystack: &str, lower_needle: &str) -> bool {
    haystack.to_ascii_lowercase().contains(lower_needle)
}

/// Names such as `imagePullPolicy` or `IMAGE_PULL_SECRETS` mention images but hold none.
fn says_not_an_image(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    ["pull", "policy", "secret"]
        .iter()
        .any(|w| lower.contains(w))
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
    }
}
