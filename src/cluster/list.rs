//! Lists as kubectl reads them: page by page, started again when a continue token expires, the
//! namespaces a scope names, and API discovery of which kinds the rule pack names are served.

use std::fmt;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;
use kube::api::{ApiResource, ListParams};
use kube::{Api, ResourceExt};
use serde::de::DeserializeOwned;

use super::{ApiError, Cluster, Scope, Unreadable};
use crate::manifest::rules::RuleSet;

/// Items per page: kubectl's default chunk size.
const PAGE_SIZE: u32 = 500;
/// How many times a list whose continue token expired is started again before giving up.
const RESTARTS: usize = 3;

impl Cluster {
    /// Every object of one list, page by page. An expired continue token (410) starts the list
    /// again from its first page, up to [`RESTARTS`] times; what the earlier pages held is
    /// dropped, so nothing is counted twice.
    pub(super) async fn list_all<K>(&self, api: &Api<K>) -> Result<Listed<K>, ApiError>
    where
        K: Clone + DeserializeOwned + fmt::Debug,
    {
        let mut restarts = 0;
        'restart: loop {
            let mut items = Vec::new();
            let mut token: Option<String> = None;
            let mut pages = 0;
            loop {
                let mut params = ListParams::default().limit(PAGE_SIZE);
                if let Some(t) = &token {
                    params = params.continue_token(t);
                }
                match self.timed(api.list(&params)).await {
                    Ok(page) => {
                        pages += 1;
                        items.extend(page.items);
                        token = page.metadata.continue_.filter(|t| !t.is_empty());
                        if token.is_none() {
                            return Ok(Listed {
                                items,
                                pages,
                                restarts,
                            });
                        }
                    }
                    Err(e) if e.is_expired() && token.is_some() && restarts < RESTARTS => {
                        restarts += 1;
                        continue 'restart;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }

    /// The names of every namespace.
    pub(crate) async fn namespaces(&self) -> Result<Vec<String>, ApiError> {
        let api: Api<core::Namespace> = Api::all(self.client.clone());
        Ok(self
            .list_all(&api)
            .await?
            .items
            .iter()
            .map(|n| n.name_any())
            .collect())
    }

    /// The namespaces a scope names: `-A` lists them, no `-n` means the context's namespace.
    pub(crate) async fn resolve(&self, scope: &Scope) -> Result<Vec<String>, ApiError> {
        match scope {
            Scope::All => self.namespaces().await,
            Scope::Namespaces(named) => Ok(self.or_context_namespace(named)),
        }
    }

    /// The named namespaces, or the context's when none is named.
    pub(super) fn or_context_namespace(&self, named: &[String]) -> Vec<String> {
        if named.is_empty() {
            vec![self.default_namespace.clone()]
        } else {
            named.to_vec()
        }
    }
}

/// One list's items and how it went.
pub(super) struct Listed<K> {
    pub(super) items: Vec<K>,
    pub(super) pages: usize,
    pub(super) restarts: usize,
}

/// A kind the rule pack names, as the API server serves it.
#[derive(Debug, Clone)]
pub(super) struct Served {
    pub(super) resource: ApiResource,
    pub(super) namespaced: bool,
}

impl Cluster {
    /// The resources the API server serves for the kinds `rules` names, in the rule pack's order
    /// of kinds, and the discovery requests that failed. One group version per group is asked
    /// (the server's preferred one when a rule may apply to it, else the first that a rule may
    /// apply to), so the same objects are not listed twice through two versions. A group or kind
    /// the server does not serve (no CRD installed) is left out silently; a discovery request the
    /// user may not make, or that fails, is reported like an unreadable list.
    pub(super) async fn served(&self, rules: &RuleSet) -> (Vec<Served>, Vec<Unreadable>) {
        let mut unreadable = Vec::new();
        let mut failed = |what: String, e: ApiError| {
            unreadable.push(Unreadable {
                kind: what,
                namespace: None,
                reason: e.to_string(),
            })
        };
        let core = async {
            if rules.may_apply_to("v1") {
                Some(self.timed(self.client.list_core_api_resources("v1")).await)
            } else {
                None
            }
        };
        let (core, groups) = tokio::join!(core, self.timed(self.client.list_api_groups()));
        let mut lists: Vec<APIResourceList> = Vec::new();
        match core {
            Some(Ok(list)) => lists.push(list),
            Some(Err(e)) if !e.is_not_found() => {
                failed("the core kinds (API discovery of /api/v1)".into(), e)
            }
            _ => {}
        }
        let group_versions: Vec<String> = match groups {
            Ok(groups) => groups
                .groups
                .iter()
                .filter_map(|g| {
                    g.preferred_version
                        .iter()
                        .chain(&g.versions)
                        .map(|v| &v.group_version)
                        .find(|gv| rules.may_apply_to(gv))
                        .cloned()
                })
                .collect(),
            Err(e) => {
                failed("the API groups (API discovery of /apis)".into(), e);
                Vec::new()
            }
        };
        let asked = group_versions.iter().map(|gv| async move {
            let answer = self.timed(self.client.list_api_group_resources(gv)).await;
            (gv, answer)
        });
        for (gv, answer) in futures_util::future::join_all(asked).await {
            match answer {
                Ok(list) => lists.push(list),
                // Removed between the two requests (a CRD deleted): not served.
                Err(e) if e.is_not_found() => {}
                Err(e) => failed(format!("the kinds of {gv} (API discovery)"), e),
            }
        }
        let mut served = Vec::new();
        for kind in rules.kinds() {
            for list in &lists {
                let gv = &list.group_version;
                if rules.for_object(gv, kind).next().is_none() {
                    continue;
                }
                let (group, version) = gv.rsplit_once('/').unwrap_or(("", gv));
                let listable = list.resources.iter().filter(|r| {
                    r.kind == kind && !r.name.contains('/') && r.verbs.iter().any(|v| v == "list")
                });
                for r in listable {
                    served.push(Served {
                        resource: ApiResource {
                            group: group.to_string(),
                            version: version.to_string(),
                            api_version: gv.clone(),
                            kind: kind.to_string(),
                            plural: r.name.clone(),
                        },
                        namespaced: r.namespaced,
                    });
                }
            }
        }
        (served, unreadable)
    }
}
