//! `check`'s one question, asked of any place images can be: does it hold each wanted image,
//! at the digest a lock pins and for the platforms asked for?
//!
//! A registry answers through `registry.rs` (HEADs and tag lists, one task per repository so
//! that a tag list can stand in for many HEADs); an offline bundle through [`bundle`], from its
//! index and manifests alone. Both give the same typed [`Verdict`]s (`verdict.rs`, no IO), in
//! the order asked, which `cli/check.rs` renders as a table or JSON and turns
//! into an exit code, so a user reads a bundle's answer as a mirror's.

pub(crate) mod bundle;
mod registry;
pub(crate) mod signatures;
mod verdict;

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;

use crate::oci::Platform;
use crate::reference::Reference;
use crate::registry::Registry;
pub(crate) use verdict::{Status, Verdict};

/// One image to look for: its name in the place checked, and the digest a lock pins it to.
pub(crate) struct Query {
    pub(crate) image: Reference,
    pub(crate) digest: Option<crate::oci::Digest>,
}

/// Where the images are looked for.
pub(crate) enum Place {
    /// The mirror registry: images under their mirror names.
    Registry(Arc<Registry>),
    /// An offline bundle: images under their source names.
    Bundle(Box<bundle::Bundle>),
}

impl Place {
    /// A verdict for each query, in the order given.
    pub(crate) async fn check(
        &self,
        queries: Vec<Query>,
        platforms: &[Platform],
    ) -> anyhow::Result<Vec<Verdict>> {
        match self {
            Place::Bundle(bundle) => Ok(queries
                .iter()
                .map(|q| bundle.check(&q.image, q.digest.as_ref(), platforms))
                .collect()),
            Place::Registry(registry) => check_registry(registry, queries, platforms).await,
        }
    }
}

/// One task per repository, all at once; the registry client bounds the requests in flight.
async fn check_registry(
    registry: &Arc<Registry>,
    queries: Vec<Query>,
    platforms: &[Platform],
) -> anyhow::Result<Vec<Verdict>> {
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, q) in queries.iter().enumerate() {
        groups.entry(q.image.name()).or_default().push(i);
    }
    let platforms: Arc<[Platform]> = platforms.into();
    let mut queries: Vec<Option<Query>> = queries.into_iter().map(Some).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for members in groups.into_values() {
        let images = members
            .iter()
            .filter_map(|&i| queries[i].take())
            .map(|q| (q.image, q.digest))
            .collect();
        let (registry, platforms) = (registry.clone(), platforms.clone());
        tasks.spawn(async move {
            let verdicts = registry::check_repository(registry, images, platforms).await;
            (members, verdicts)
        });
    }
    let mut verdicts = vec![None; queries.len()];
    while let Some(joined) = tasks.join_next().await {
        let (members, found) = joined.context("a check task failed")?;
        for (i, v) in members.into_iter().zip(found) {
            verdicts[i] = Some(v);
        }
    }
    Ok(verdicts.into_iter().flatten().collect())
}
