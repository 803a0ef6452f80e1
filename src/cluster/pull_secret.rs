//! The mirror's pull Secret in the cluster: written by server-side apply and listed in
//! ServiceAccounts, so that Pods the post-renderer never saw pull from the mirror too.

use k8s_openapi::api::core::v1 as core;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};

use super::{ApiError, Cluster};

/// How many times a ServiceAccount written by someone else between our read and our patch (409)
/// is read and patched again before giving up.
const CONFLICT_RETRIES: usize = 3;
/// The field manager named in server-side apply, so that `kubectl get -o yaml --show-managed-fields`
/// says who wrote the Secret.
pub(crate) const FIELD_MANAGER: &str = "kubectl-airgap";

impl Cluster {
    /// Creates or updates a Secret by server-side apply: one request, whatever is there.
    pub(crate) async fn apply_secret(&self, secret: &core::Secret) -> Result<(), ApiError> {
        let namespace = secret.namespace().unwrap_or_default();
        let api: Api<core::Secret> = Api::namespaced(self.client.clone(), &namespace);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        self.timed(api.patch(&secret.name_any(), &params, &Patch::Apply(secret)))
            .await
            .map(|_| ())
    }

    /// Lists the Secret in a ServiceAccount's `imagePullSecrets`, so that Pods the post-renderer
    /// never sees (made by operators, `kubectl apply`, GitOps controllers) pull with it too: the
    /// ServiceAccount admission plugin copies the list into each Pod that runs as it.
    ///
    /// A patch replaces the list whole (a ServiceAccount's `imagePullSecrets` has no merge key,
    /// unlike a pod spec's), so it is read, extended and written back with the `resourceVersion`
    /// it was read at; a 409
    /// (someone wrote the ServiceAccount in between) reads it again, up to [`CONFLICT_RETRIES`] times,
    /// so that nobody's Secret is dropped.
    pub(crate) async fn attach_secret(
        &self,
        namespace: &str,
        service_account: &str,
        secret: &str,
    ) -> Result<Attached, ApiError> {
        let api: Api<core::ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..PatchParams::default()
        };
        let mut conflicts = 0;
        loop {
            let account = self.timed(api.get(service_account)).await?;
            let mut list = account.image_pull_secrets.unwrap_or_default();
            if list.iter().any(|r| r.name == secret) {
                return Ok(Attached::Already);
            }
            list.push(core::LocalObjectReference {
                name: secret.to_string(),
            });
            let patch = serde_json::json!({
                "metadata": {"resourceVersion": account.metadata.resource_version},
                "imagePullSecrets": list,
            });
            match self
                .timed(api.patch(service_account, &params, &Patch::Merge(&patch)))
                .await
            {
                Ok(_) => return Ok(Attached::Added),
                Err(ApiError::Status { code: 409, .. }) if conflicts < CONFLICT_RETRIES => {
                    conflicts += 1
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// What [`Cluster::attach_secret`] found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attached {
    Added,
    Already,
}

/// The `.dockerconfigjson` of a pull Secret for one registry, as `kubectl create secret
/// docker-registry` writes it.
pub(crate) fn docker_config_json(registry: &str, username: &str, password: &str) -> String {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    serde_json::json!({
        "auths": {
            registry: { "username": username, "password": password, "auth": auth }
        }
    })
    .to_string()
}

/// A `kubernetes.io/dockerconfigjson` Secret.
pub(crate) fn pull_secret(name: &str, namespace: &str, config_json: &str) -> core::Secret {
    core::Secret {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(
                [(
                    "app.kubernetes.io/managed-by".to_string(),
                    FIELD_MANAGER.to_string(),
                )]
                .into(),
            ),
            ..Default::default()
        },
        type_: Some("kubernetes.io/dockerconfigjson".to_string()),
        data: Some(
            [(
                ".dockerconfigjson".to_string(),
                k8s_openapi::ByteString(config_json.as_bytes().to_vec()),
            )]
            .into(),
        ),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_json_has_one_auths_entry() {
        let json: serde_json::Value =
            serde_json::from_str(&docker_config_json("reg.local:5000", "u", "p:w")).unwrap();
        assert_eq!(json["auths"]["reg.local:5000"]["username"], "u");
        assert_eq!(json["auths"]["reg.local:5000"]["password"], "p:w");
        assert_eq!(json["auths"]["reg.local:5000"]["auth"], "dTpwOnc=");
    }
}
