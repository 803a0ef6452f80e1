//! The OCI core: names and types that every room of the house shares, with no IO.
//!
//! What lives here is what used to be written again in each room that needed it, and drifted:
//! Docker Hub's several names were known in five places, and a setting keyed by one name was
//! missed by a lookup under another; three `Descriptor` structs, two manifest carriers and the
//! platform read four ways. A room that needs one of these takes it from here.
//!
//! These are our own few serde structs rather than the `oci-spec` crate's: manifests travel as
//! raw bytes (a re-serialized manifest has another digest), so only the handful of fields a
//! copy or a check reads are parsed, and unknown fields are never dropped from anything we
//! write back (an index is the one thing written, and its entries carry their annotations).

pub(crate) mod chart;
pub(crate) mod cosign;
mod digest;
pub(crate) mod hub;
mod manifest;
pub(crate) mod media;
mod platform;

pub(crate) use digest::{Digest, DigestErrorKind, Sha256Writer};
pub(crate) use manifest::{
    Descriptor, ImageManifest, Index, Parsed, RawManifest, index_platforms, is_index,
};
pub(crate) use platform::Platform;
