//! Media types, named once. A literal spelled in several rooms drifts (one room learns a new
//! type, another does not); here each has one name, and the Accept list is built from them.

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_V1_SIGNED: &str =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";

pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// What Helm writes when it pushes a chart to a registry (`helm push`, Helm's pkg/registry).
pub const HELM_CHART_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";
pub const HELM_CHART_CONTENT: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";

/// Every manifest media type we accept, indexes first: a copy or a check must see the index of
/// a multi-platform image, never a manifest the registry picked for us.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.v1+prettyjws;q=0.5";

/// Whether a manifest of this media type lists other manifests.
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// Whether a config of this media type is a container image's (anything else makes the
/// manifest an artifact: a Helm chart, a signature, an SBOM).
pub fn is_image_config(media_type: &str) -> bool {
    media_type == OCI_CONFIG || media_type == DOCKER_CONFIG
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accept_list_names_every_manifest_type_indexes_first() {
        let listed: Vec<&str> = MANIFEST_ACCEPT
            .split(", ")
            .map(|t| t.split(';').next().unwrap())
            .collect();
        assert_eq!(
            listed,
            [
                OCI_INDEX,
                DOCKER_MANIFEST_LIST,
                OCI_MANIFEST,
                DOCKER_MANIFEST,
                DOCKER_MANIFEST_V1_SIGNED
            ]
        );
    }
}
