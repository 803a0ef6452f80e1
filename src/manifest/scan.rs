//! Finding image references in a parsed document.
//!
//! Rules (see `rules.yaml`) say where images are for the kinds they know; around them, the
//! heuristics (docs/ARCHITECTURE.md, `src/manifest/`) read container flags and environment
//! variables whose names say "image", strings that are themselves YAML/JSON or `key=REF` lines,
//! and split references. A place a rule names must hold a valid reference (or a placeholder such
//! as Istio's `auto`), or the scan fails; a heuristic place holds one only if it parses and looks
//! like one, so look-alikes such as `conns_per_addr:10m` are left alone.

use rustc_hash::FxHashMap;
use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::ops::Range;
use std::rc::Rc;

use saphyr_parser::ScalarStyle;

use super::node::{MAX_DEPTH, Node, Scalar, parse_documents};
use super::rules::{
    JoinSource, Rule, RuleSet, SplitForm, Step, Target, ends_with_image, mentions_image, says_image,
};
use crate::excerpt::Excerpt;
use crate::reference::{ParseError, Reference};

/// Which part of a reference an edit replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The whole reference.
    Image,
    /// The registry host of a split reference.
    Registry,
    /// The repository path of a split reference that has a registry field, less the last
    /// `tail` bytes of the path, which a later field (an `image` name) supplies.
    Repository { tail: usize },
    /// The repository of a split reference without a registry field: host and path, less the
    /// last `tail` bytes that a later field supplies.
    RepositoryWithHost { tail: usize },
}

/// One change to make: replace `range` of a scalar's decoded value.
#[derive(Debug, Clone)]
pub struct Edit<'d> {
    pub scalar: &'d Scalar<'d>,
    pub range: Range<usize>,
    pub part: Part,
}

/// The fields of one split reference, as found.
struct SplitParts<'d> {
    registry: Option<&'d Scalar<'d>>,
    repository: Field<'d>,
    image: Option<&'d Scalar<'d>>,
    /// Present but perhaps empty: an empty tag field makes a repository-only value.
    tag_field: Option<&'d Scalar<'d>>,
    digest: Option<&'d Scalar<'d>>,
}

/// A named string among siblings: a map's entry, or a container's env variable.
#[derive(Debug, Clone, Copy)]
struct Field<'d> {
    name: &'d str,
    value: &'d Scalar<'d>,
    /// The env variable's index, for its path.
    env: Option<usize>,
}

impl<'d> Field<'d> {
    fn path(&self, segs: &[Seg<'d>]) -> Vec<Seg<'d>> {
        let mut p = segs.to_vec();
        match self.env {
            Some(i) => p.extend([Seg::Key("env"), Seg::Index(i), Seg::Key("value")]),
            None => p.push(Seg::Key(self.name)),
        }
        p
    }
}

/// Where split fields are read: a map's entries or an env list, without copying either.
#[derive(Debug, Clone, Copy)]
enum Fields<'d> {
    Map(&'d [(Node<'d>, Node<'d>)]),
    Env(&'d [Node<'d>]),
}

impl<'d> Fields<'d> {
    fn each(&self, mut f: impl FnMut(Field<'d>)) {
        match self {
            Fields::Map(entries) => {
                for (k, v) in entries.iter() {
                    if let (Some(name), Node::Scalar(value)) = (k.as_str(), v)
                        && !value.tagged
                    {
                        f(Field {
                            name,
                            value,
                            env: None,
                        });
                    }
                }
            }
            Fields::Env(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let (Some(name), Some(Node::Scalar(value))) =
                        (item.str_at("name"), item.get("value"))
                        && !value.tagged
                    {
                        f(Field {
                            name,
                            value,
                            env: Some(i),
                        });
                    }
                }
            }
        }
    }

    fn find(&self, mut pred: impl FnMut(&Field<'d>) -> bool) -> Option<Field<'d>> {
        let mut found = None;
        self.each(|f| {
            if found.is_none() && pred(&f) {
                found = Some(f);
            }
        });
        found
    }
}

/// The names that may hold the tag of image key `key`: `key` + each of `suffixes`, and `key`
/// with its last word `image` (or `repository` after another word: `agentRepository`) turned
/// into `version` or `tag`, in the same case.
fn sibling_names<'a>(key: &'a str, suffixes: &'a [String]) -> impl Iterator<Item = String> + 'a {
    let stem = ["IMAGE", "Image", "image"]
        .iter()
        .find_map(|w| key.strip_suffix(w).map(|stem| (stem, *w)))
        .or_else(|| repository_stem(key));
    let swapped = stem.into_iter().flat_map(|(stem, w)| {
        let (v, t) = match w {
            "IMAGE" | "REPOSITORY" => ("VERSION", "TAG"),
            "Image" | "Repository" => ("Version", "Tag"),
            _ => ("version", "tag"),
        };
        [format!("{stem}{v}"), format!("{stem}{t}")]
    });
    suffixes
        .iter()
        .map(move |s| format!("{key}{s}"))
        .chain(swapped)
        .filter(move |n| n != key)
}

/// `agentRepository` -> (`agent`, `Repository`), `EXPORTER_REPOSITORY` -> (`EXPORTER_`,
/// `REPOSITORY`): a repository key with a word before it, which names whose repository it is.
/// A bare `repository` is the split forms' business (`splitForms`), not a sibling pair.
fn repository_stem(key: &str) -> Option<(&str, &'static str)> {
    ["REPOSITORY", "Repository", "repository"]
        .into_iter()
        .find_map(|w| key.strip_suffix(w).map(|stem| (stem, w)))
        .filter(|(stem, _)| {
            stem.chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        })
}

/// Whether `agentRepository: scylladb/scylla-manager-agent` may start a sibling pair: the key
/// names whose repository it is, and the value is a repository path (a `/`, no URL scheme).
/// Charts and source code have repositories and versions too (`chartRepository: bitnami` +
/// `chartVersion`, `gitRepository: https://...`): those words never start an image.
fn is_image_repository_pair_key(key: &str, value: &str) -> bool {
    let Some((stem, _)) = repository_stem(key) else {
        return false;
    };
    let stem = stem.to_ascii_lowercase();
    value.contains('/')
        && !value.contains("://")
        && !["chart", "helm", "git", "source", "code"]
            .iter()
            .any(|w| stem.contains(w))
}

/// Where a reference was found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Location {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub path: String,
    pub rule: String,
    /// The object's `helm.sh/hook` annotation: Helm 3 does not post-render hooks, so their
    /// images are pulled from the original registry there.
    #[serde(rename = "helmHook", skip_serializing_if = "Option::is_none")]
    pub helm_hook: Option<String>,
    #[serde(skip)]
    pub line: usize,
    #[serde(skip)]
    pub document: usize,
}

/// An image reference found in a document, and the edits that would point it at the mirror.
#[derive(Debug, Clone)]
pub struct Finding<'d> {
    pub reference: Reference,
    pub edits: Vec<Edit<'d>>,
    /// A repository without tag or digest at a place whose operator adds the tag (`image:
    /// {name: REPO, version: ""}`): rewritten to the mirror's repository, but no image to copy.
    pub repository_only: bool,
    /// Its part in a cross-object join (`crossJoins`): listed only once the stream's versions
    /// are known.
    pub join: Option<JoinRole>,
    /// A CRD schema's `default:`: what the API server fills in for a resource that omits the
    /// field. Rewritten, so that such a resource pulls from the mirror, but not listed: no
    /// resource of the input pulls it.
    pub schema_default: bool,
    place: Place<'d>,
}

/// What a finding is to a cross-object join (`crossJoins`, by index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinRole {
    /// The operator's repository (an env value, or an env split), completed with names and
    /// versions, and `suffix` after the version (its `tagSuffixEnv` value, when the
    /// repository is one it applies to).
    Repository { join: usize, suffix: Option<String> },
    /// One whole reference of a per-version table, at `version` (`_` for `.`) for `name`.
    Offer {
        join: usize,
        version: String,
        name: String,
    },
}

/// A version a custom resource asks of a cross join: `names` of join `join` at `version`.
#[derive(Debug, Clone)]
pub struct JoinVersion {
    pub join: usize,
    pub version: String,
    pub names: Vec<String>,
}

/// Where a finding is, kept as parts: the rewriter needs a [`Location`] only to report an
/// error, and building one for every image of a large stream cost 7% of its time.
#[derive(Debug, Clone)]
struct Place<'d> {
    object: Rc<Object>,
    segs: Vec<Seg<'d>>,
    rule: Cow<'d, str>,
    split: bool,
    line: usize,
}

impl Finding<'_> {
    pub fn location(&self) -> Location {
        let p = &self.place;
        Location {
            kind: p.object.kind.clone(),
            namespace: p.object.namespace.clone(),
            name: p.object.name.clone(),
            path: render(&p.object.prefix, &p.segs),
            rule: if p.split {
                format!("{}/split", p.rule)
            } else {
                p.rule.to_string()
            },
            helm_hook: p.object.helm_hook.clone(),
            line: p.line,
            document: p.object.document,
        }
    }
}

/// A string that looks like an image but that no rule covered.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Suspect {
    pub value: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub path: String,
    pub line: usize,
}

/// A value at a place that must hold an image does not parse as one.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ScanError {
    pub document: usize,
    pub object: String,
    pub path: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "document {} ({}), field {}, line {}: {}",
            self.document, self.object, self.path, self.line, self.message
        )
    }
}

/// What one document holds.
#[derive(Debug, Default)]
pub struct DocScan<'d> {
    pub findings: Vec<Finding<'d>>,
    pub suspects: Vec<Suspect>,
    /// Pod specs of the document itself (not of YAML embedded in its strings), for
    /// `--pull-secret`.
    pub pod_specs: Vec<PodSpecSite<'d>>,
    /// Versions custom resources ask of cross joins.
    pub versions: Vec<JoinVersion>,
}

/// A pod spec a rule names, and where it is, so that a field can be added to it.
#[derive(Debug, Clone)]
pub struct PodSpecSite<'d> {
    pub spec: &'d Node<'d>,
    object: Rc<Object>,
    segs: Vec<Seg<'d>>,
}

impl PodSpecSite<'_> {
    /// An error about this pod spec, positioned like a scan error.
    pub fn error(&self, line: usize, message: String) -> ScanError {
        ScanError {
            document: self.object.document,
            object: self.object.describe(),
            path: render(&self.object.prefix, &self.segs),
            line,
            message,
        }
    }
}

/// A path being walked, rendered only when something is found.
#[derive(Debug, Clone)]
enum Seg<'d> {
    Key(&'d str),
    Index(usize),
}

fn render(prefix: &str, segs: &[Seg<'_>]) -> String {
    let mut s = prefix.to_string();
    for seg in segs {
        match seg {
            Seg::Key(k) if k.contains(['.', '[', ']', '"']) || k.is_empty() => {
                s.push_str(&format!("[{k:?}]"));
            }
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// The object a document describes, for locations and messages.
#[derive(Debug, Clone)]
struct Object {
    document: usize,
    kind: String,
    namespace: Option<String>,
    name: Option<String>,
    helm_hook: Option<String>,
    /// Prefix of every path: empty for a document, `items[3]` for a List item, or the path of a
    /// string holding embedded YAML.
    prefix: String,
}

impl Object {
    fn describe(&self) -> String {
        describe_object(&self.kind, self.namespace.as_deref(), self.name.as_deref())
    }
}

impl Location {
    /// `Deployment default/web`, for messages.
    pub fn describe_object(&self) -> String {
        describe_object(&self.kind, self.namespace.as_deref(), self.name.as_deref())
    }
}

fn describe_object(kind: &str, namespace: Option<&str>, name: Option<&str>) -> String {
    let kind = if kind.is_empty() { "no kind" } else { kind };
    match (namespace, name) {
        (Some(ns), Some(n)) => format!("{kind} {ns}/{n}"),
        (None, Some(n)) => format!("{kind} {n}"),
        _ => kind.to_string(),
    }
}

/// Walks documents with a rule set.
pub struct Scanner<'r> {
    rules: &'r RuleSet,
    suspects: bool,
    /// Parsed references by text: a stream names the same few images thousands of times, and
    /// parsing is the grammar's regular expressions.
    parsed: RefCell<FxHashMap<String, Result<Reference, ParseError>>>,
}

/// Past this many distinct strings the cache starts over, so memory stays bounded.
const PARSE_CACHE_LIMIT: usize = 4096;

/// How sure a place is to hold an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Certainty {
    /// A rule says so: the value must parse.
    Rule,
    /// A name or shape suggests so: the value is taken only if it parses and looks like one.
    Heuristic,
    /// A name ending in `image` (`SIDECAR_IMAGE`, a custom resource's container `image`): the
    /// value is taken if it parses, a bare short name (`busybox`) included, as in a pod spec.
    Named,
}

/// Which lines of a string may hold a reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lines {
    /// A value whose name says image: `key=REF` lines and lines that are a reference alone
    /// (Strimzi's multi-line `version=image` lists).
    Bare,
    /// ConfigMap text: `key=REF` lines, and `KEY: REF` lines whose key says image (a template
    /// that Go actions keep from parsing as YAML).
    Text,
    /// Any other string (a custom resource's): only `KEY: REF` lines whose key says image,
    /// since `a=b:c` is everywhere in PromQL and prose.
    KeyedOnly,
}

/// How many strings deep YAML in YAML is looked into (a ConfigMap value holding a `yaml: |`
/// block holding a Pod is two).
const MAX_NESTED: usize = 4;

struct Walk<'s, 'r: 'd, 'd> {
    scanner: &'s Scanner<'r>,
    object: Rc<Object>,
    findings: Vec<Finding<'d>>,
    pod_specs: Vec<PodSpecSite<'d>>,
    /// (scalar start, value range) of places already edited: a place is reported once, and no
    /// two findings edit overlapping bytes (rules run before sweeps, so the first claim is the
    /// rule's). A handful per object: a Vec beats hashing.
    claimed: Vec<(usize, Range<usize>)>,
}

impl<'r> Scanner<'r> {
    pub fn new(rules: &'r RuleSet, suspects: bool) -> Scanner<'r> {
        Scanner {
            rules,
            suspects,
            parsed: RefCell::new(FxHashMap::default()),
        }
    }

    fn parse(&self, text: &str) -> Result<Reference, ParseError> {
        if let Some(r) = self.parsed.borrow().get(text) {
            return r.clone();
        }
        let r = Reference::parse(text);
        let mut cache = self.parsed.borrow_mut();
        if cache.len() >= PARSE_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(text.to_string(), r.clone());
        r
    }

    /// Scans one document (`document` is its 1-based index in the stream).
    pub fn scan<'d>(&self, root: &'d Node<'d>, document: usize) -> Result<DocScan<'d>, ScanError>
    where
        'r: 'd,
    {
        let mut out = DocScan::default();
        self.scan_object(root, document, String::new(), &mut out)?;
        Ok(out)
    }

    fn scan_object<'d>(
        &self,
        root: &'d Node<'d>,
        document: usize,
        prefix: String,
        out: &mut DocScan<'d>,
    ) -> Result<(), ScanError>
    where
        'r: 'd,
    {
        let api_version = root.str_at("apiVersion").unwrap_or("");
        let kind = root.str_at("kind").unwrap_or("");
        let object = Object {
            document,
            kind: kind.to_string(),
            namespace: root.str_at("metadata.namespace").map(str::to_string),
            name: root.str_at("metadata.name").map(str::to_string),
            helm_hook: root
                .get("metadata")
                .and_then(|m| m.get("annotations"))
                .and_then(|a| a.get("helm.sh/hook"))
                .and_then(Node::as_str)
                .map(str::to_string),
            prefix: prefix.clone(),
        };
        if kind == "List"
            && let Some(Node::Seq(items)) = root.get("items")
        {
            for (i, item) in items.iter().enumerate() {
                let p = render(&prefix, &[Seg::Key("items"), Seg::Index(i)]);
                self.scan_object(item, document, p, out)?;
            }
            return Ok(());
        }
        let mut walk = Walk {
            scanner: self,
            object: Rc::new(object),
            findings: Vec::new(),
            pod_specs: Vec::new(),
            claimed: Vec::new(),
        };
        for rule in self.rules.for_object(api_version, kind) {
            for (target, path) in &rule.paths {
                let mut hits = Vec::new();
                select(root, &path.0, &mut Vec::new(), &mut hits);
                for (node, segs) in hits {
                    walk.target(*target, node, &segs, rule)?;
                }
            }
        }
        walk.cross_joins(root, api_version, kind, &mut out.versions)?;
        if kind == "CustomResourceDefinition" {
            walk.schema_defaults(root, &mut Vec::new());
        }
        if kind == "ConfigMap"
            && api_version == "v1"
            && let Some(Node::Map(entries)) = root.get("data")
        {
            // Flat split references (`trivy.repository` + `trivy.tag`) and sibling tags come
            // first, so that their parts are not taken one by one.
            let mut prefixes: Vec<&str> = entries
                .iter()
                .filter_map(|(k, _)| Some(k.as_str()?.rsplit_once('.')?.0))
                .collect();
            prefixes.sort_unstable();
            prefixes.dedup();
            let data = [Seg::Key("data")];
            let forms = &self.rules.split_forms;
            for prefix in prefixes {
                let under_image = says_image(prefix);
                let prefix = format!("{prefix}.");
                walk.split(
                    Fields::Map(entries),
                    forms,
                    &prefix,
                    &data,
                    "configmap",
                    under_image,
                );
            }
            walk.sibling_tags(Fields::Map(entries), &data, "configmap");
            for (k, v) in entries {
                if let (Some(key), Some(s)) = (k.as_str(), v.as_scalar())
                    && !self.rules.is_ignored_config_key(key)
                {
                    let place = [Seg::Key("data"), Seg::Key(key)];
                    walk.text(key, s, &place, ("configmap", Lines::Text), 1)?;
                }
            }
        }
        if is_custom_resource(api_version) {
            walk.sweep(root, &mut Vec::new(), "custom-resource", 0)?;
        }
        if self.suspects {
            let claimed = &walk.claimed;
            collect_suspects(
                root,
                &mut Vec::new(),
                &walk.object,
                claimed,
                &mut out.suspects,
            );
        }
        out.findings.append(&mut walk.findings);
        out.pod_specs.append(&mut walk.pod_specs);
        Ok(())
    }
}

/// Custom resources get the key-name sweep; CRDs (schemas, full of `image` properties) do not.
fn is_custom_resource(api_version: &str) -> bool {
    match api_version.rsplit_once('/') {
        Some((group, _)) => {
            group.contains('.')
                && !group.ends_with(".k8s.io")
                && group != "apiextensions.k8s.io"
                && !group.ends_with("helm.sh")
        }
        None => false,
    }
}

/// Every node at `steps` below `node`, with its path.
fn select<'d>(
    node: &'d Node<'d>,
    steps: &[Step],
    segs: &mut Vec<Seg<'d>>,
    out: &mut Vec<(&'d Node<'d>, Vec<Seg<'d>>)>,
) {
    let Some((step, rest)) = steps.split_first() else {
        out.push((node, segs.clone()));
        return;
    };
    match (step, node) {
        (Step::Key(k), Node::Map(entries)) => {
            for (key, value) in entries {
                if let Some(key) = key.as_str()
                    && key == k
                {
                    segs.push(Seg::Key(key));
                    select(value, rest, segs, out);
                    segs.pop();
                }
            }
        }
        (Step::AnyKey, Node::Map(entries)) => {
            for (key, value) in entries {
                if let Some(key) = key.as_str() {
                    segs.push(Seg::Key(key));
                    select(value, rest, segs, out);
                    segs.pop();
                }
            }
        }
        (Step::AnyItem, Node::Seq(items)) => {
            for (i, item) in items.iter().enumerate() {
                segs.push(Seg::Index(i));
                select(item, rest, segs, out);
                segs.pop();
            }
        }
        _ => {}
    }
}

/// A value that is "not set" rather than a string: `~`, `null`, or nothing.
/// Whether text that parses as a reference also looks like one at a heuristic place: bare words
/// (`auto`, `enabled`) parse as Docker Hub names but are almost never images there, and a
/// registry host is never written in capitals, while base64 lines that parse are full of them.
fn looks_like_image(text: &str, r: &Reference) -> bool {
    text.contains(['/', ':', '@']) && !r.domain().bytes().any(|b| b.is_ascii_uppercase())
}

impl<'s, 'r: 'd, 'd> Walk<'s, 'r, 'd> {
    fn rules(&self) -> &'r RuleSet {
        self.scanner.rules
    }

    fn path(&self, segs: &[Seg<'_>]) -> String {
        render(&self.object.prefix, segs)
    }

    fn error(&self, segs: &[Seg<'_>], line: usize, message: String) -> ScanError {
        ScanError {
            document: self.object.document,
            object: self.object.describe(),
            path: self.path(segs),
            line,
            message,
        }
    }

    /// A split reference's finding.
    fn push_split(
        &mut self,
        reference: Reference,
        segs: &[Seg<'d>],
        rule: &'d str,
        edits: Vec<Edit<'d>>,
        repository_only: bool,
    ) {
        let before = self.findings.len();
        self.push(reference, segs, rule, true, edits);
        if let Some(f) = self.findings.get_mut(before) {
            f.repository_only = repository_only;
        }
    }

    fn push(
        &mut self,
        reference: Reference,
        segs: &[Seg<'d>],
        rule: &'d str,
        split: bool,
        edits: Vec<Edit<'d>>,
    ) {
        let line = edits.first().map_or(0, |e| e.scalar.line);
        let mut edits = edits;
        if !self.claim(&edits) {
            // An alias and its anchor are one scalar in the source: the alias's place is
            // listed too, and the bytes are edited once, so the alias follows its anchor.
            let shared = edits
                .iter()
                .all(|e| e.scalar.anchored && self.claimed_exactly(e.scalar, &e.range));
            // Paths are rendered only for anchored scalars, which are rare.
            if !shared {
                return;
            }
            let path = self.path(segs);
            if self
                .findings
                .iter()
                .any(|f| render(&f.place.object.prefix, &f.place.segs) == path)
            {
                return;
            }
            edits.clear();
        }
        self.findings.push(Finding {
            reference,
            edits,
            repository_only: false,
            join: None,
            schema_default: false,
            place: Place {
                object: Rc::clone(&self.object),
                segs: segs.to_vec(),
                rule: Cow::Borrowed(rule),
                split,
                line,
            },
        });
    }

    fn is_claimed(&self, s: &Scalar<'_>, range: &Range<usize>) -> bool {
        overlaps_claim(&self.claimed, s.span.start, range)
    }

    fn claimed_exactly(&self, s: &Scalar<'_>, range: &Range<usize>) -> bool {
        self.claimed
            .iter()
            .any(|(start, r)| *start == s.span.start && r == range)
    }

    /// Claims every edit's place, or none when one of them is taken already.
    fn claim(&mut self, edits: &[Edit<'_>]) -> bool {
        if edits.iter().any(|e| self.is_claimed(e.scalar, &e.range)) {
            return false;
        }
        self.claimed
            .extend(edits.iter().map(|e| (e.scalar.span.start, e.range.clone())));
        true
    }

    fn target(
        &mut self,
        target: Target,
        node: &'d Node<'d>,
        segs: &[Seg<'d>],
        rule_of: &'r Rule,
    ) -> Result<(), ScanError> {
        let rule: &'d str = &rule_of.name;
        match target {
            Target::TagOrImage => {
                let (Node::Scalar(s), Some(repository)) = (node, &rule_of.tag_repository) else {
                    return Ok(());
                };
                if s.tagged || s.is_null() || s.value.contains(['/', '@']) {
                    return self.image(s, 0..s.value.len(), segs, rule, Certainty::Rule);
                }
                match self.scanner.parse(&format!("{repository}:{}", s.value)) {
                    Ok(r) => {
                        let edit = Edit {
                            scalar: s,
                            range: 0..s.value.len(),
                            part: Part::Image,
                        };
                        self.push(r, segs, rule, false, vec![edit]);
                        Ok(())
                    }
                    Err(e) => Err(self.error(
                        segs,
                        s.line,
                        format!(
                            "{} is neither an image reference nor a tag of {repository}: {}",
                            Excerpt(&s.value),
                            e.message
                        ),
                    )),
                }
            }
            Target::Image => match node {
                Node::Scalar(s) => self.image(s, 0..s.value.len(), segs, rule, Certainty::Rule),
                Node::Map(entries) => {
                    let forms = &self.rules().split_forms;
                    self.split(Fields::Map(entries), forms, "", segs, rule, true);
                    Ok(())
                }
                _ => Ok(()),
            },
            Target::Container => self.container(node, segs, rule, Certainty::Rule),
            Target::PodSpec => self.pod_spec(node, segs, rule),
            Target::Split => {
                if let Node::Map(entries) = node {
                    let forms = &self.rules().split_forms;
                    self.split(Fields::Map(entries), forms, "", segs, rule, true);
                }
                Ok(())
            }
        }
    }

    /// An image at `range` of a scalar's value.
    fn image(
        &mut self,
        s: &'d Scalar<'d>,
        range: Range<usize>,
        segs: &[Seg<'d>],
        rule: &'d str,
        certainty: Certainty,
    ) -> Result<(), ScanError> {
        if s.tagged || (self.is_claimed(s, &range) && !s.anchored) {
            return Ok(());
        }
        let text = &s.value[range.clone()];
        if (range.len() == s.value.len() && s.is_null()) || self.rules().is_placeholder(text) {
            return Ok(());
        }
        match self.scanner.parse(text) {
            Ok(r)
                if certainty == Certainty::Rule
                    || certainty == Certainty::Named && !r.domain().bytes().any(|b| b.is_ascii_uppercase())
                    || looks_like_image(text, &r) =>
            {
                let edit = Edit {
                    scalar: s,
                    range,
                    part: Part::Image,
                };
                self.push(r, segs, rule, false, vec![edit]);
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(e) if certainty == Certainty::Rule => Err(self.error(
                segs,
                s.line,
                format!(
                    "{} is not an image reference: {}; fix the chart's values, or add it to `placeholders` in the config file if it is filled in later",
                    Excerpt(text),
                    e.message
                ),
            )),
            Err(_) => Ok(()),
        }
    }

    fn pod_spec(
        &mut self,
        node: &'d Node<'d>,
        segs: &[Seg<'d>],
        rule: &'d str,
    ) -> Result<(), ScanError> {
        if matches!(node, Node::Map(_)) {
            self.pod_specs.push(PodSpecSite {
                spec: node,
                object: Rc::clone(&self.object),
                segs: segs.to_vec(),
            });
        }
        for list in ["containers", "initContainers", "ephemeralContainers"] {
            if let Some(Node::Seq(items)) = node.get(list) {
                for (i, c) in items.iter().enumerate() {
                    let mut p = segs.to_vec();
                    p.extend([Seg::Key(list), Seg::Index(i)]);
                    self.container(c, &p, rule, Certainty::Rule)?;
                }
            }
        }
        if let Some(Node::Seq(volumes)) = node.get("volumes") {
            for (i, v) in volumes.iter().enumerate() {
                if let Some(Node::Scalar(s)) = v.get("image").and_then(|i| i.get("reference")) {
                    let mut p = segs.to_vec();
                    p.extend([
                        Seg::Key("volumes"),
                        Seg::Index(i),
                        Seg::Key("image"),
                        Seg::Key("reference"),
                    ]);
                    self.image(s, 0..s.value.len(), &p, rule, Certainty::Rule)?;
                }
            }
        }
        Ok(())
    }

    /// A container: `image` (with `certainty`: a rule's pod spec, or a container-shaped item
    /// of a custom resource's `*Containers` list), flags, and env values.
    fn container(
        &mut self,
        node: &'d Node<'d>,
        segs: &[Seg<'d>],
        rule: &'d str,
        certainty: Certainty,
    ) -> Result<(), ScanError> {
        if let Some(Node::Scalar(s)) = node.get("image") {
            let mut p = segs.to_vec();
            p.push(Seg::Key("image"));
            self.image(s, 0..s.value.len(), &p, rule, certainty)?;
        }
        for list in ["command", "args"] {
            if let Some(Node::Seq(items)) = node.get(list) {
                let mut p = segs.to_vec();
                p.push(Seg::Key(list));
                self.args(items, &p)?;
            }
        }
        if let Some(Node::Seq(env)) = node.get("env") {
            self.env_splits(env, segs);
            for (i, var) in env.iter().enumerate() {
                let (Some(name), Some(Node::Scalar(value))) =
                    (var.str_at("name"), var.get("value"))
                else {
                    continue;
                };
                if self.rules().is_image_env(name) {
                    let mut p = segs.to_vec();
                    p.extend([Seg::Key("env"), Seg::Index(i), Seg::Key("value")]);
                    if ends_with_image(name) && !value.value.contains('\n') {
                        self.image(value, 0..value.value.len(), &p, "env", Certainty::Named)?;
                    } else {
                        self.lines(value, &p, "env", Lines::Bare)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// `--flag=REF`, and `--flag` `REF` as two items.
    fn args(&mut self, items: &'d [Node<'d>], segs: &[Seg<'d>]) -> Result<(), ScanError> {
        for (i, item) in items.iter().enumerate() {
            let Some(s) = item.as_scalar() else { continue };
            let Some(flag) = s
                .value
                .strip_prefix("--")
                .or_else(|| s.value.strip_prefix('-'))
            else {
                continue;
            };
            match flag.split_once('=') {
                Some((name, value)) if self.rules().is_image_flag(name) => {
                    let mut p = segs.to_vec();
                    p.push(Seg::Index(i));
                    let start = s.value.len() - value.len();
                    self.image(s, start..s.value.len(), &p, "args", Certainty::Heuristic)?;
                }
                None if self.rules().is_image_flag(flag) => {
                    if let Some(Node::Scalar(next)) = items.get(i + 1)
                        && !next.value.starts_with('-')
                    {
                        let mut p = segs.to_vec();
                        p.push(Seg::Index(i + 1));
                        self.image(next, 0..next.value.len(), &p, "args", Certainty::Heuristic)?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// References in the lines of a string, as `mode` says which lines count.
    fn lines(
        &mut self,
        s: &'d Scalar<'d>,
        segs: &[Seg<'d>],
        rule: &'d str,
        mode: Lines,
    ) -> Result<(), ScanError> {
        let mut offset = 0;
        for line in s.value.split_inclusive('\n') {
            let body = line.trim_end_matches(['\n', '\r']);
            let mut certainty = Certainty::Heuristic;
            let yaml = match mode {
                Lines::Bare => None,
                Lines::Text | Lines::KeyedOnly => yaml_line_image(body, self.rules()),
            };
            let value = match (yaml, body.split_once('='), mode) {
                (Some((value, named)), _, _) => {
                    if named {
                        certainty = Certainty::Named;
                    }
                    value
                }
                (None, Some((_, v)), Lines::Bare | Lines::Text) => v,
                (None, None, Lines::Bare) => body,
                _ => {
                    offset += line.len();
                    continue;
                }
            };
            let trimmed = value.trim();
            if !trimmed.is_empty() {
                let start = offset
                    + (value.as_ptr() as usize - body.as_ptr() as usize)
                    + (value.len() - value.trim_start().len());
                self.image(s, start..start + trimmed.len(), segs, rule, certainty)?;
            }
            offset += line.len();
        }
        Ok(())
    }

    /// Fields holding the parts of one reference, in the split form of `forms` they fill most
    /// (`splitForms` in `rules.yaml`); `prefix` reads dotted keys of a flat map
    /// (`trivy.repository`, `trivy.tag` with prefix `trivy.`), and `under_image` says the map's
    /// own key says image (some forms need that).
    fn split(
        &mut self,
        fields: Fields<'d>,
        forms: &[SplitForm],
        prefix: &str,
        segs: &[Seg<'d>],
        rule: &'d str,
        under_image: bool,
    ) {
        // A map (the common case, visited for every map of a custom resource) holds no split
        // reference without a field that can hold its repository.
        if let Fields::Map(entries) = fields
            && forms.len() == self.rules().split_forms.len()
            && !entries.iter().any(|(k, _)| {
                k.as_str()
                    .and_then(|k| k.strip_prefix(prefix))
                    .is_some_and(|k| self.rules().is_split_repository_key(k))
            })
        {
            return;
        }
        let field = |name: &str| fields.find(|f| f.name.strip_prefix(prefix) == Some(name));
        let first = |names: &[String]| names.iter().find_map(|n| field(n));
        let set =
            |f: Option<Field<'d>>| f.filter(|f| !f.value.is_null() && !f.value.value.is_empty());
        // The best form so far, by fields filled; `None` parts: the map is one reference whose
        // registry is not in the output, so nothing is taken from it.
        let mut best: Option<(usize, Option<SplitParts<'d>>)> = None;
        for form in forms {
            if form.under_image_key && !under_image {
                continue;
            }
            let Some(repository) = set(first(&form.repository)) else {
                continue;
            };
            let registry_field = first(&form.registry);
            // Istio's `hub: ""`: the operator's default registry, which is not in the output.
            if form.empty_registry_unknown && registry_field.is_some_and(|f| set(Some(f)).is_none())
            {
                let score = 2 + usize::from(first(&form.tag).is_some());
                if best.as_ref().is_none_or(|(b, _)| score > *b) {
                    best = Some((score, None));
                }
                continue;
            }
            let parts = SplitParts {
                registry: set(registry_field).map(|f| f.value),
                repository,
                image: set(first(&form.image)).map(|f| f.value),
                tag_field: first(&form.tag).map(|f| f.value),
                digest: set(first(&form.digest)).map(|f| f.value),
            };
            let score = 1
                + usize::from(parts.registry.is_some())
                + usize::from(parts.image.is_some())
                + usize::from(parts.tag_field.is_some())
                + usize::from(parts.digest.is_some());
            if score >= 2 && best.as_ref().is_none_or(|(b, _)| score > *b) {
                best = Some((score, Some(parts)));
            }
        }
        if let Some((_, Some(parts))) = best {
            self.split_reference(parts, segs, rule);
        }
    }

    /// `controllerImage: REPO` beside `controllerImageVersion: TAG`, or `X_IMAGE` beside
    /// `X_VERSION` (`siblingTags`): one reference, or a repository-only value when the tag is
    /// empty.
    fn sibling_tags(&mut self, fields: Fields<'d>, segs: &[Seg<'d>], rule: &'d str) {
        let mut pairs = Vec::new();
        fields.each(|f| {
            if f.value.value.is_empty()
                || !(self.rules().is_image_key(f.name)
                    || says_image(f.name)
                    || is_image_repository_pair_key(f.name, &f.value.value))
            {
                return;
            }
            let tag = sibling_names(f.name, &self.rules().sibling_tags)
                .find_map(|name| fields.find(|t| t.name == name));
            if let Some(tag) = tag {
                pairs.push((f, tag.value));
            }
        });
        for (repository, tag) in pairs {
            let parts = SplitParts {
                registry: None,
                repository,
                image: None,
                tag_field: Some(tag),
                digest: None,
            };
            self.split_reference(parts, segs, rule);
        }
    }

    /// Joins split parts, and claims them as one finding whose edits touch the repository
    /// (and registry) fields only.
    fn split_reference(&mut self, parts: SplitParts<'d>, segs: &[Seg<'d>], rule: &'d str) {
        let repo = parts.repository.value;
        let tag = parts
            .tag_field
            .filter(|t| !t.is_null() && !t.value.is_empty());
        let mut text = String::new();
        if let Some(r) = parts.registry {
            text.push_str(&r.value);
            text.push('/');
        }
        text.push_str(&repo.value);
        let mut tail = 0;
        if let Some(i) = parts.image {
            text.push('/');
            text.push_str(&i.value);
            tail = i.value.len() + 1;
        }
        if let Some(t) = tag {
            text.push(':');
            text.push_str(&t.value);
        }
        if let Some(d) = parts.digest {
            text.push('@');
            text.push_str(&d.value);
        }
        let Ok(reference) = self.scanner.parse(&text) else {
            return;
        };
        let whole = 0..repo.value.len();
        if self.is_claimed(repo, &whole)
            || parts
                .registry
                .is_some_and(|r| self.is_claimed(r, &(0..r.value.len())))
        {
            return;
        }
        let mut edits = Vec::new();
        if let Some(r) = parts.registry {
            edits.push(Edit {
                scalar: r,
                range: 0..r.value.len(),
                part: Part::Registry,
            });
        }
        edits.push(Edit {
            scalar: repo,
            range: whole,
            part: if parts.registry.is_some() {
                Part::Repository { tail }
            } else {
                Part::RepositoryWithHost { tail }
            },
        });
        // The image field is part of this reference, not one of its own.
        if let Some(i) = parts.image {
            self.claimed.push((i.span.start, 0..i.value.len()));
        }
        let repository_only = reference.tag().is_none() && reference.digest().is_none();
        // `{image: pilot, tag: ""}` names no repository anyone could find: a repository-only
        // value needs a path.
        if repository_only && !text.contains('/') {
            return;
        }
        let path = parts.repository.path(segs);
        self.push_split(reference, &path, rule, edits, repository_only);
    }

    /// A container's env variables: split forms over their names (`envSplits`), sibling tags,
    /// and repository-only variables (`repositoryEnv`), before each value is read alone.
    fn env_splits(&mut self, env: &'d [Node<'d>], segs: &[Seg<'d>]) {
        let fields = Fields::Env(env);
        if fields
            .find(|f| mentions_image(f.name) || self.rules().join_of_env(f.name).is_some())
            .is_none()
        {
            return;
        }
        let forms = &self.rules().env_splits;
        for form in forms {
            let before = self.findings.len();
            self.split(fields, std::slice::from_ref(form), "", segs, "env", false);
            if let Some(j) = self.rules().join_of_env_split(&form.name) {
                let role = self.env_join(j, fields, form);
                for found in &mut self.findings[before..] {
                    found.join = Some(role.clone());
                }
            }
        }
        self.sibling_tags(fields, segs, "env");
        let mut repositories = Vec::new();
        fields.each(|f| {
            if self.rules().is_repository_env(f.name) && !f.value.value.is_empty() {
                repositories.push(f);
            }
        });
        for f in repositories {
            let parts = SplitParts {
                registry: None,
                repository: f,
                image: None,
                tag_field: None,
                digest: None,
            };
            let join = self.rules().join_of_env(f.name);
            let rule = join.map_or("env", |j| self.rules().cross_joins[j].name.as_str());
            let before = self.findings.len();
            self.split_reference(parts, segs, rule);
            if let (Some(j), Some(found)) = (join, self.findings.get_mut(before)) {
                found.join = Some(JoinRole::Repository {
                    join: j,
                    suffix: None,
                });
            }
        }
    }

    /// The part an env split form plays in cross join `j`: its repository, with the suffix the
    /// operator appends to versions when the form's repository field names one of the
    /// repositories it appends it for.
    fn env_join(&self, j: usize, fields: Fields<'d>, form: &SplitForm) -> JoinRole {
        let spec = &self.rules().cross_joins[j];
        let value = |name: &str| {
            let found = fields.find(|e| e.name == name)?;
            let v = found.value.value.trim();
            (!v.is_empty()).then(|| v.to_string())
        };
        let repository = form.repository.iter().find_map(|n| value(n));
        let official = repository.is_some_and(|r| {
            let r = r.trim_end_matches('/');
            spec.suffix_from.iter().any(|s| s == r)
        });
        let suffix = match official {
            true => spec.tag_suffix_env.as_deref().and_then(value),
            false => None,
        };
        JoinRole::Repository { join: j, suffix }
    }

    /// A CRD's schema defaults at properties named as images or repositories
    /// (`default: ghcr.io/zalando/spilo-18:4.1-p2` under `docker_image`, `default:
    /// docker.io/scylladb/scylla` under `repository`): a registry host, and a tag or digest
    /// unless the property says repository (then a repository-only value).
    fn schema_defaults(&mut self, node: &'d Node<'d>, segs: &mut Vec<Seg<'d>>) {
        match node {
            Node::Map(entries) => {
                for (k, v) in entries {
                    let Some(key) = k.as_str() else { continue };
                    segs.push(Seg::Key(key));
                    if key == "properties"
                        && let Node::Map(properties) = v
                    {
                        for (name, property) in properties {
                            let (Some(name), Some(default)) = (
                                name.as_str(),
                                property.get("default").and_then(Node::as_scalar),
                            ) else {
                                continue;
                            };
                            segs.extend([Seg::Key(name), Seg::Key("default")]);
                            self.schema_default(name, default, segs);
                            segs.truncate(segs.len() - 2);
                        }
                    }
                    self.schema_defaults(v, segs);
                    segs.pop();
                }
            }
            Node::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    segs.push(Seg::Index(i));
                    self.schema_defaults(item, segs);
                    segs.pop();
                }
            }
            _ => {}
        }
    }

    fn schema_default(&mut self, name: &'d str, default: &'d Scalar<'d>, segs: &[Seg<'d>]) {
        let text = default.value.as_ref();
        let says_repository =
            name.eq_ignore_ascii_case("repository") || is_image_repository_pair_key(name, text);
        if !(says_repository || self.rules().is_image_key(name) || says_image(name)) {
            return;
        }
        let Some((host, _)) = text.split_once('/') else {
            return;
        };
        if !(host.contains('.') || host.contains(':') || host == "localhost") {
            return;
        }
        let Ok(reference) = self.scanner.parse(text) else {
            return;
        };
        let before = self.findings.len();
        if reference.tag().is_some() || reference.digest().is_some() {
            let edit = Edit {
                scalar: default,
                range: 0..text.len(),
                part: Part::Image,
            };
            self.push(reference, segs, "crd-default", false, vec![edit]);
        } else if says_repository && reference.domain() == host {
            // The field is `default`, under the property's own key.
            let field = Field {
                name: "default",
                value: default,
                env: None,
            };
            let parts = SplitParts {
                registry: None,
                repository: field,
                image: None,
                tag_field: None,
                digest: None,
            };
            self.split_reference(parts, &segs[..segs.len() - 1], "crd-default");
        }
        for f in &mut self.findings[before..] {
            f.schema_default = true;
        }
    }

    /// Cross-object joins (`crossJoins`): the versions this object asks for, and the
    /// per-version image annotations it holds (each rewritten, and listed by `scan_stream`
    /// only for a version some resource asks for).
    fn cross_joins(
        &mut self,
        root: &'d Node<'d>,
        api_version: &str,
        kind: &str,
        versions: &mut Vec<JoinVersion>,
    ) -> Result<(), ScanError> {
        for (j, join) in self.rules().cross_joins.iter().enumerate() {
            for v in join
                .versions
                .iter()
                .filter(|v| v.applies_to(api_version, kind))
            {
                let mut hits = Vec::new();
                select(root, &v.field.0, &mut Vec::new(), &mut hits);
                for (node, _) in hits {
                    if let Some(s) = node.as_scalar().filter(|s| !s.value.is_empty()) {
                        versions.push(JoinVersion {
                            join: j,
                            version: s.value.to_string(),
                            names: v.names.clone(),
                        });
                    }
                }
            }
            let JoinSource::Annotations(prefix) = &join.source else {
                continue;
            };
            for at in [&["metadata"][..], &["spec", "template", "metadata"][..]] {
                let Some(Node::Map(entries)) = at
                    .iter()
                    .try_fold(root, |n, k| n.get(k))
                    .and_then(|m| m.get("annotations"))
                else {
                    continue;
                };
                for (k, v) in entries {
                    let (Some(key), Some(value)) = (k.as_str(), v.as_scalar()) else {
                        continue;
                    };
                    let Some((version, name)) = key
                        .strip_prefix(prefix.as_str())
                        .and_then(|r| r.rsplit_once('.'))
                    else {
                        continue;
                    };
                    let mut segs: Vec<Seg<'d>> = at.iter().map(|k| Seg::Key(k)).collect();
                    segs.extend([Seg::Key("annotations"), Seg::Key(key)]);
                    let before = self.findings.len();
                    self.image(
                        value,
                        0..value.value.len(),
                        &segs,
                        join.name.as_str(),
                        Certainty::Named,
                    )?;
                    if let Some(found) = self.findings.get_mut(before) {
                        found.join = Some(JoinRole::Offer {
                            join: j,
                            version: version.to_string(),
                            name: name.to_string(),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// The key-name sweep over custom resources and embedded documents: `image`/`*Image` keys,
    /// split references, maps of images (under `images`, or any key that says image),
    /// container-shaped items of `*Containers` lists, fully qualified references at any key,
    /// and strings that are YAML themselves, `nested` strings deep already.
    fn sweep(
        &mut self,
        node: &'d Node<'d>,
        segs: &mut Vec<Seg<'d>>,
        rule: &'d str,
        nested: usize,
    ) -> Result<(), ScanError> {
        match node {
            Node::Map(entries) => {
                let under_image = matches!(segs.last(), Some(Seg::Key(k))
                    if self.rules().is_image_key(k) || says_image(k));
                let forms = &self.rules().split_forms;
                self.split(Fields::Map(entries), forms, "", segs, rule, under_image);
                self.sibling_tags(Fields::Map(entries), segs, rule);
                for (k, v) in entries {
                    let Some(key) = k.as_str() else { continue };
                    segs.push(Seg::Key(key));
                    match v {
                        // A bare `image: pilot` here is often a fragment the operator joins
                        // with a hub of its own: bare names count only in containers and env.
                        Node::Scalar(s) if self.rules().is_image_key(key) || says_image(key) => {
                            self.image(s, 0..s.value.len(), segs, rule, Certainty::Heuristic)?;
                        }
                        Node::Scalar(s) if under_image || looks_qualified_whole(&s.value) => {
                            self.image(s, 0..s.value.len(), segs, rule, Certainty::Heuristic)?;
                        }
                        Node::Scalar(s)
                            if s.value.contains('\n')
                                && nested < MAX_NESTED
                                && may_name_images(&s.value) =>
                        {
                            self.text(key, s, segs, (rule, Lines::KeyedOnly), nested + 1)?;
                        }
                        Node::Map(images) if key == "images" || key.ends_with("Images") => {
                            for (ik, _) in images {
                                if let Node::Scalar(ks) = ik {
                                    self.image(
                                        ks,
                                        0..ks.value.len(),
                                        segs,
                                        rule,
                                        Certainty::Heuristic,
                                    )?;
                                }
                            }
                            self.sweep(v, segs, rule, nested)?;
                        }
                        Node::Seq(items) if key.ends_with("ontainers") => {
                            for (i, item) in items.iter().enumerate() {
                                if item.get("name").is_some() {
                                    segs.push(Seg::Index(i));
                                    self.container(item, segs, rule, Certainty::Named)?;
                                    segs.pop();
                                }
                            }
                            self.sweep(v, segs, rule, nested)?;
                        }
                        _ => self.sweep(v, segs, rule, nested)?,
                    }
                    segs.pop();
                }
            }
            Node::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    segs.push(Seg::Index(i));
                    self.sweep(item, segs, rule, nested)?;
                    segs.pop();
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// A ConfigMap value: an image under a key that says so, YAML/JSON text, or `key=REF` lines.
    ///
    /// The same for a multi-line string elsewhere in a custom resource or embedded document
    /// (`rule` names where it is), `nested` strings deep; `mode` says which lines of text that
    /// is not YAML count (ConfigMap values are configuration, `key=REF` included; other strings
    /// only `KEY: REF`).
    fn text(
        &mut self,
        key: &str,
        s: &'d Scalar<'d>,
        segs: &[Seg<'d>],
        (rule, mode): (&'d str, Lines),
        nested: usize,
    ) -> Result<(), ScanError> {
        if s.tagged {
            return Ok(());
        }
        let value: &'d str = &s.value;
        if !value.contains('\n') {
            let whole = !value.contains(['=', ' ', ',', ';']);
            if whole && (self.rules().is_image_key(key) || self.rules().is_image_env(key)) {
                let certainty = if ends_with_image(key) {
                    Certainty::Named
                } else {
                    Certainty::Heuristic
                };
                return self.image(s, 0..value.len(), segs, rule, certainty);
            }
            // `plugin: "quay.io/cephcsi/cephcsi:v3.17.0"`: a whole value that names its
            // registry host and its tag is an image whatever its key.
            if whole && looks_qualified_whole(value) {
                return self.image(s, 0..value.len(), segs, rule, Certainty::Heuristic);
            }
            if !value.trim_start().starts_with(['{', '[']) {
                return self.lines(s, segs, rule, mode);
            }
        }
        let docs = match parse_documents(value, 1) {
            Ok(docs) => docs,
            // Text nested that deep is no configuration anyone wrote; skipping it would hide
            // whatever images it holds.
            Err(e) if e.too_deep => {
                return Err(self.error(
                    segs,
                    s.line + e.line - 1,
                    format!(
                        "this value is YAML whose collections nest more than {MAX_DEPTH} levels deep, too deep to look inside for images; flatten it, or check the template that wrote it"
                    ),
                ));
            }
            Err(_) => return self.lines(s, segs, rule, mode),
        };
        if !docs
            .iter()
            .any(|d| matches!(d, Node::Map(_) | Node::Seq(_)))
        {
            return self.lines(s, segs, rule, mode);
        }
        // The inner tree borrows from this scalar's value and lives only here, so its findings
        // are moved onto the outer scalar: an inner scalar whose source text equals its value
        // sits at the same offsets in the outer value.
        let prefix = self.path(segs);
        for (i, doc) in docs.iter().enumerate() {
            let mut inner = Walk {
                scanner: self.scanner,
                object: Rc::new(Object {
                    prefix: if docs.len() > 1 {
                        format!("{prefix}[doc {}]", i + 1)
                    } else {
                        prefix.clone()
                    },
                    ..(*self.object).clone()
                }),
                findings: Vec::new(),
                pod_specs: Vec::new(),
                claimed: Vec::new(),
            };
            let has_kind = doc.str_at("kind").is_some() && doc.str_at("apiVersion").is_some();
            if has_kind {
                let mut nested = DocScan::default();
                let scanner = Scanner::new(self.rules(), false);
                scanner.scan_object(
                    doc,
                    self.object.document,
                    inner.object.prefix.clone(),
                    &mut nested,
                )?;
                inner.findings = nested.findings;
            }
            inner.sweep(doc, &mut Vec::new(), "embedded", nested)?;
            for f in inner.findings {
                let Some(edits) = f
                    .edits
                    .iter()
                    .map(|e| {
                        lift_edit(value, e).map(|range| Edit {
                            scalar: s,
                            range,
                            part: e.part,
                        })
                    })
                    .collect::<Option<Vec<_>>>()
                else {
                    continue;
                };
                if !self.claim(&edits) {
                    continue;
                }
                // The inner tree dies here: its path is rendered into the object's prefix.
                let inner_place = f.place;
                let object = Object {
                    prefix: render(&inner_place.object.prefix, &inner_place.segs),
                    ..(*inner_place.object).clone()
                };
                self.findings.push(Finding {
                    reference: f.reference,
                    edits,
                    repository_only: f.repository_only,
                    join: f.join,
                    schema_default: f.schema_default,
                    place: Place {
                        object: Rc::new(object),
                        segs: Vec::new(),
                        rule: Cow::Owned(inner_place.rule.into_owned()),
                        split: inner_place.split,
                        line: s.line + inner_place.line.saturating_sub(1),
                    },
                });
            }
        }
        Ok(())
    }
}

/// Where an edit of an inner (embedded) scalar lies in the outer string. A scalar written
/// verbatim (no escapes, no folding) has its offsets carried over; any other (a `yaml: |` block
/// indented inside the outer text, an escaped string) by counting, as the splicer does: the
/// k-th occurrence of the image text in the inner value is the k-th in its source, or the edit
/// is dropped rather than guessed.
fn lift_edit(outer: &str, e: &Edit<'_>) -> Option<Range<usize>> {
    let span = e.scalar.span.clone();
    let content = match e.scalar.style {
        ScalarStyle::Plain | ScalarStyle::Literal | ScalarStyle::Folded => span,
        ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => span.start + 1..span.end - 1,
    };
    let source = outer.get(content.clone())?;
    if source == e.scalar.value {
        return Some(content.start + e.range.start..content.start + e.range.end);
    }
    let value = &e.scalar.value;
    let needle = value.get(e.range.clone()).filter(|n| !n.is_empty())?;
    let nth = value
        .match_indices(needle)
        .position(|(i, _)| i == e.range.start)?;
    let found: Vec<usize> = source.match_indices(needle).map(|(i, _)| i).collect();
    (found.len() == value.matches(needle).count())
        .then(|| content.start + found[nth]..content.start + found[nth] + needle.len())
}

/// Whether a custom resource's multi-line string is worth parsing as YAML: it says image, or
/// a line's value is a fully qualified reference. PromQL, prose and scripts, the usual
/// multi-line strings, are skipped unparsed.
fn may_name_images(text: &str) -> bool {
    mentions_image(text)
        || text.lines().any(|l| {
            l.split_once(": ")
                .is_some_and(|(_, v)| looks_qualified_whole(v.trim().trim_matches(['"', '\''])))
        })
}

/// A whole value that is one fully qualified reference (`quay.io/cephcsi/cephcsi:v3.17.0`).
fn looks_qualified_whole(value: &str) -> bool {
    value.len() >= 5 && !value.contains(char::is_whitespace) && looks_qualified(value)
}

/// A line of YAML-like text `KEY: VALUE` (or `- KEY: VALUE`) whose key says image: its value,
/// unquoted, and whether the key ends with `image` (a bare short name counts then).
fn yaml_line_image<'t>(body: &'t str, rules: &RuleSet) -> Option<(&'t str, bool)> {
    let line = body.trim_start();
    let line = line.strip_prefix("- ").unwrap_or(line).trim_start();
    let (key, value) = line.split_once(": ")?;
    let key = key.trim_matches(['"', '\'']);
    if !(rules.is_image_key(key) || says_image(key)) || key.contains(char::is_whitespace) {
        return None;
    }
    let value = value.trim();
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
        .unwrap_or(value);
    Some((value, ends_with_image(key)))
}

/// Strings that look like fully qualified images (`host/path:tag` or `@digest`) that no finding
/// covered: what `images --suspects` shows so nothing is missed silently.
fn collect_suspects<'d>(
    node: &'d Node<'d>,
    segs: &mut Vec<Seg<'d>>,
    object: &Object,
    claimed: &[(usize, Range<usize>)],
    out: &mut Vec<Suspect>,
) {
    match node {
        Node::Scalar(s) => check_suspect(s, segs, object, claimed, out),
        Node::Map(entries) => {
            for (k, v) in entries {
                let key = k.as_str().unwrap_or("?");
                segs.push(Seg::Key(key));
                if let Node::Scalar(ks) = k {
                    check_suspect(ks, segs, object, claimed, out);
                }
                collect_suspects(v, segs, object, claimed, out);
                segs.pop();
            }
        }
        Node::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                segs.push(Seg::Index(i));
                collect_suspects(item, segs, object, claimed, out);
                segs.pop();
            }
        }
        Node::Alias => {}
    }
}

fn check_suspect(
    s: &Scalar<'_>,
    segs: &[Seg<'_>],
    object: &Object,
    claimed: &[(usize, Range<usize>)],
    out: &mut Vec<Suspect>,
) {
    if s.tagged {
        return;
    }
    // A CRD's schema describes its fields in prose with example images; none is pulled.
    if object.kind == "CustomResourceDefinition"
        && matches!(segs.last(), Some(Seg::Key("description")))
    {
        return;
    }
    // Any length is read, in one pass: tokens longer than any reference (a name is at most 255
    // bytes, a tag 128, a digest about 100) are skipped unparsed, so the work is linear.
    for token in s
        .value
        .split(|c: char| c.is_whitespace() || "\"',=;()<>{}".contains(c))
    {
        // Separators may be multi-byte whitespace, so the offset comes from the slice itself.
        let start = token.as_ptr() as usize - s.value.as_ptr() as usize;
        if token.len() < 5
            || token.len() > MAX_REFERENCE_LEN
            || overlaps_claim(claimed, s.span.start, &(start..start + token.len()))
        {
            continue;
        }
        if looks_qualified(token) {
            out.push(Suspect {
                value: token.to_string(),
                kind: object.kind.clone(),
                namespace: object.namespace.clone(),
                name: object.name.clone(),
                path: render(&object.prefix, segs),
                line: s.line,
            });
        }
    }
}

/// Whether `range` of the scalar starting at `scalar` overlaps a claimed place (an empty range
/// counts as the point where it starts).
fn overlaps_claim(claimed: &[(usize, Range<usize>)], scalar: usize, range: &Range<usize>) -> bool {
    let end = range.end.max(range.start + 1);
    claimed
        .iter()
        .any(|(s, c)| *s == scalar && c.start < end && range.start < c.end.max(c.start + 1))
}

/// Longer than any image reference: a name of 255 bytes, a tag of 128, a sha512 digest.
const MAX_REFERENCE_LEN: usize = 255 + 1 + 128 + 1 + 7 + 128;

fn looks_qualified(token: &str) -> bool {
    let Some((first, _)) = token.split_once('/') else {
        return false;
    };
    if !(first.contains('.') || first.contains(':') || first == "localhost") || first.contains("//")
    {
        return false;
    }
    match Reference::parse(token) {
        Ok(r) => (r.tag().is_some() || r.digest().is_some()) && r.domain() == first,
        Err(_) => false,
    }
}
