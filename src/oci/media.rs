//! Media types, named once. A literal spelled in several rooms drifts (one room learns a new
//! type, another does not); here each has one name, with the Accept list every manifest
//! request sends.

pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

pub(crate) const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub(crate) const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

pub(crate) const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub(crate) const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub(crate) const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// What Helm writes when it pushes a chart to a registry (`helm push`, Helm's pkg/registry).
pub(crate) const HELM_CHART_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";
pub(crate) const HELM_CHART_CONTENT: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";

/// Every manifest media type we accept, indexes first: a copy or a check must see the index of
/// a multi-platform image, never a manifest the registry picked for us.
pub(crate) const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.v1+prettyjws;q=0.5";

/// Whether a config of this media type is a container image's (anything else makes the
/// manifest an artifact: a Helm chart, a signature, an SBOM).
pub(crate) fn is_image_config(media_type: &str) -> bool {
    media_type == OCI_CONFIG || media_type == DOCKER_CONFIG
}
