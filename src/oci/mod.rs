//! The OCI core: names and types that every room of the house shares, with no IO.
//!
//! What lives here is what used to be written again in each room that needed it, and drifted:
//! Docker Hub's several names were known in five places, and a setting keyed by one name was
//! missed by a lookup under another. A room that needs one of these facts takes it from here.

pub mod hub;
