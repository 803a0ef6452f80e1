//! Objects read from the cluster turned into image uses by the rule pack's scanner.
//!
//! The kinds and fields that hold images are known once, in the rule pack (`src/manifest`):
//! each object listed is written out as YAML and scanned as `post-render` and `images` scan a
//! rendered chart, so a custom resource `post-render` rewrites (an Alertmanager's `spec.image`)
//! is checked in the cluster too, and a config file's rules count here as there. Only what Pods
//! report having run (`status.*ContainerStatuses[].imageID`) is read apart, since no manifest
//! holds it.

use std::collections::HashSet;

use kube::Api;
use kube::api::DynamicObject;
use serde::Serialize;
use serde_json::{Map, Value};

use super::list::{Listed, Served};
use super::{Cluster, Scope};
use crate::manifest::rules::RuleSet;
use crate::manifest::{ManifestError, scan_stream};
use crate::reference::Reference;

/// One image named by one object.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Use {
    /// As the object writes it (or, for `ran`, as the runtime reported it).
    pub image: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// Field path, e.g. `spec.template.spec.containers[0].image`.
    pub path: String,
    /// From `status.*ContainerStatuses[].imageID`: what the Pod ran, which differs from its
    /// spec (another repository, or another digest than the spec pins).
    pub ran: bool,
}

impl Use {
    /// `Deployment shop/web`, for tables.
    pub(crate) fn object(&self) -> String {
        format!("{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// A list that could not be read.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Unreadable {
    /// The kind, or which discovery request failed.
    pub kind: String,
    /// `None` for a cluster-wide list.
    pub namespace: Option<String>,
    pub reason: String,
}

/// What the cluster runs, as far as it could be read.
#[derive(Debug, Default)]
pub(crate) struct Inventory {
    pub uses: Vec<Use>,
    pub unreadable: Vec<Unreadable>,
    /// Repository-only values (an operator adds the tag): named, since they cannot be checked.
    pub repositories: Vec<crate::reference::Reference>,
    /// Objects whose images could not be read, with why (a rule's field holds no reference).
    pub unscanned: Vec<String>,
    /// Lists read to the end (one per kind and namespace, or per kind for `-A`).
    pub lists_read: usize,
    pub pages: usize,
    /// Lists started again after their continue token expired.
    pub restarts: usize,
}

/// One kind's lists.
#[derive(Default)]
struct KindRead {
    objects: Vec<DynamicObject>,
    unreadable: Vec<Unreadable>,
    lists_read: usize,
    pages: usize,
    restarts: usize,
}

impl KindRead {
    fn add(&mut self, listed: Listed<DynamicObject>) {
        self.lists_read += 1;
        self.pages += listed.pages;
        self.restarts += listed.restarts;
        self.objects.extend(listed.items);
    }
}

impl Cluster {
    /// The images of every object in `scope` of the kinds `rules` names, and of what Pods
    /// report having run, with what could not be read. Cluster-scoped kinds (a
    /// ClusterWorkflowTemplate, a Crossplane Provider) belong to no namespace and are read only
    /// for `-A`.
    pub(crate) async fn inventory(&self, scope: &Scope, rules: &RuleSet) -> Inventory {
        let (served, unreadable) = self.served(rules).await;
        let wanted: Vec<&Served> = served
            .iter()
            .filter(|s| s.namespaced || *scope == Scope::All)
            .collect();
        let reads =
            futures_util::future::join_all(wanted.iter().map(|s| self.read_kind(scope, s))).await;
        let mut inventory = Inventory {
            unreadable,
            ..Inventory::default()
        };
        // An object served through two groups (Deployments in extensions/v1beta1 and apps/v1 on
        // old clusters) is one object: its uid says so.
        let mut seen: HashSet<(String, String)> = HashSet::new();
        for (s, read) in wanted.into_iter().zip(reads) {
            inventory.unreadable.extend(read.unreadable);
            inventory.lists_read += read.lists_read;
            inventory.pages += read.pages;
            inventory.restarts += read.restarts;
            for object in read.objects {
                if let Some(uid) = &object.metadata.uid
                    && !seen.insert((s.resource.kind.clone(), uid.clone()))
                {
                    continue;
                }
                object_uses(s, object, rules, &mut inventory);
            }
        }
        inventory
    }

    /// One kind in a scope. Cluster-wide for `-A`; when that is forbidden, namespace by
    /// namespace, so that a user who may read some namespaces gets those.
    async fn read_kind(&self, scope: &Scope, served: &Served) -> KindRead {
        let (resource, kind) = (&served.resource, &served.resource.kind);
        let mut read = KindRead::default();
        let unreadable = |namespace: Option<&String>, reason: String| Unreadable {
            kind: kind.clone(),
            namespace: namespace.cloned(),
            reason,
        };
        let namespaces = match scope {
            Scope::All => {
                let api: Api<DynamicObject> = Api::all_with(self.client.clone(), resource);
                match self.list_all(&api).await {
                    Ok(listed) => {
                        read.add(listed);
                        return read;
                    }
                    Err(e) if e.is_forbidden() && served.namespaced => {
                        match self.namespaces().await {
                            Ok(n) => n,
                            Err(ns_error) => {
                                read.unreadable.push(unreadable(None, format!(
                                    "{e} (and namespaces cannot be listed to read them one by one: {ns_error})"
                                )));
                                return read;
                            }
                        }
                    }
                    Err(e) => {
                        read.unreadable.push(unreadable(None, e.to_string()));
                        return read;
                    }
                }
            }
            Scope::Namespaces(named) => self.or_context_namespace(named),
        };
        let lists = namespaces.iter().map(|ns| async move {
            let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, resource);
            (ns, self.list_all(&api).await)
        });
        for (ns, result) in futures_util::future::join_all(lists).await {
            match result {
                Ok(listed) => read.add(listed),
                Err(e) => read.unreadable.push(unreadable(Some(ns), e.to_string())),
            }
        }
        read
    }
}

/// Scans one object with the rule pack, as `images` scans a manifest, and adds what a Pod ran.
///
/// The object is written out without `status` (what the API reports, which no manifest holds
/// and no rule reads) and with only the name and namespace of its metadata (managed fields and
/// `last-applied-configuration` annotations repeat the spec, and are noise to the scanner).
fn object_uses(served: &Served, object: DynamicObject, rules: &RuleSet, out: &mut Inventory) {
    let kind = &served.resource.kind;
    let namespace = object.metadata.namespace.clone().unwrap_or_default();
    let name = object.metadata.name.clone().unwrap_or_default();
    let mut metadata = Map::new();
    metadata.insert("name".into(), Value::from(name.clone()));
    if let Some(ns) = &object.metadata.namespace {
        metadata.insert("namespace".into(), Value::from(ns.clone()));
    }
    let mut document = Map::new();
    document.insert(
        "apiVersion".into(),
        Value::from(served.resource.api_version.clone()),
    );
    document.insert("kind".into(), Value::from(kind.clone()));
    document.insert("metadata".into(), Value::Object(metadata));
    let mut status = None;
    if let Value::Object(fields) = object.data {
        for (key, value) in fields {
            match key.as_str() {
                "status" => status = Some(value),
                "apiVersion" | "kind" | "metadata" => {}
                _ => {
                    document.insert(key, value);
                }
            }
        }
    }
    let object_name = format!("{kind} {namespace}/{name}");
    let text = match serde_norway::to_string(&document) {
        Ok(t) => t,
        Err(e) => {
            out.unscanned
                .push(format!("{object_name}: cannot be written as YAML: {e}"));
            return;
        }
    };
    let scan = match scan_stream(text.as_bytes(), &object_name, rules, false) {
        Ok(scan) => scan,
        Err(ManifestError::Scan { error, .. }) => {
            out.unscanned.push(format!(
                "{object_name}, field {}: {}",
                error.path, error.message
            ));
            return;
        }
        Err(e) => {
            out.unscanned.push(e.to_string());
            return;
        }
    };
    let use_of = |image: String, path: String, ran: bool| Use {
        image,
        kind: kind.clone(),
        namespace: namespace.clone(),
        name: name.clone(),
        path,
        ran,
    };
    for u in scan.uses {
        out.uses
            .push(use_of(u.reference.to_string(), u.location.path, false));
    }
    out.repositories
        .extend(scan.repositories.into_iter().map(|u| u.reference));
    if served.resource.group.is_empty() && kind == "Pod" {
        let spec = document.get("spec").unwrap_or(&Value::Null);
        for (path, image) in pod_ran(spec, status.as_ref().unwrap_or(&Value::Null)) {
            out.uses.push(use_of(image, path, true));
        }
    }
}

/// `(path, image)` of what a Pod's containers ran by another name or digest than their spec's.
fn pod_ran(spec: &Value, status: &Value) -> Vec<(String, String)> {
    let spec_image = |name: &str| -> Option<&str> {
        ["containers", "initContainers", "ephemeralContainers"]
            .iter()
            .filter_map(|list| spec.get(list).and_then(Value::as_array))
            .flatten()
            .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
            .and_then(|c| c.get("image").and_then(Value::as_str))
    };
    let mut out = Vec::new();
    for list in [
        "containerStatuses",
        "initContainerStatuses",
        "ephemeralContainerStatuses",
    ] {
        let statuses = status.get(list).and_then(Value::as_array);
        for (i, s) in statuses.into_iter().flatten().enumerate() {
            let id = s.get("imageID").and_then(Value::as_str).unwrap_or("");
            let name = s.get("name").and_then(Value::as_str).unwrap_or("");
            if let Some(ran) = ran_image(id, spec_image(name)) {
                out.push((format!("status.{list}[{i}].imageID"), ran));
            }
        }
    }
    out
}

/// The image a container ran, from its status `imageID`, when it says something the spec does
/// not: another repository (a webhook rewrote it, or the Pod predates the template), or another
/// digest than the spec pins. A bare image ID (`sha256:...`, a locally built image) names no
/// repository and is skipped.
pub(crate) fn ran_image(image_id: &str, spec_image: Option<&str>) -> Option<String> {
    let id = ["docker-pullable://", "docker://"]
        .iter()
        .find_map(|p| image_id.strip_prefix(p))
        .unwrap_or(image_id);
    if !id.contains('@') {
        return None;
    }
    let ran = Reference::parse(id).ok()?;
    ran.digest()?;
    if let Some(Ok(spec)) = spec_image.map(Reference::parse)
        && spec.name() == ran.name()
        && spec.digest().is_none_or(|d| Some(d) == ran.digest())
    {
        return None;
    }
    Some(ran.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ran_images_are_kept_only_when_they_differ_from_the_spec() {
        let d = "sha256:".to_string() + &"a".repeat(64);
        let ran = format!("docker.io/library/nginx@{d}");
        // Same repository, spec by tag: the status adds nothing.
        assert_eq!(ran_image(&ran, Some("nginx:1.27")), None);
        assert_eq!(
            ran_image(&format!("docker-pullable://nginx@{d}"), Some("nginx")),
            None
        );
        // Another repository than the spec's.
        assert_eq!(
            ran_image(&ran, Some("reg.local:5000/docker.io/library/nginx:1.27")),
            Some(ran.clone())
        );
        // The spec pins another digest.
        let other = format!("nginx@sha256:{}", "b".repeat(64));
        assert_eq!(ran_image(&ran, Some(&other)), Some(ran.clone()));
        // Bare image IDs name no repository.
        assert_eq!(ran_image(&d, Some("nginx")), None);
        assert_eq!(ran_image("", Some("nginx")), None);
    }
}
