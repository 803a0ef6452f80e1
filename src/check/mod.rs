//! `check`'s one question, asked of any place images can be: does it hold each wanted image,
//! at the digest a lock pins and for the platforms asked for?
//!
//! A registry answers through [`crate::registry::exists`] (HEADs and tag lists); an offline
//! bundle through [`bundle`], from its index and manifests alone. Both give the same typed
//! [`Verdict`](crate::registry::exists::Verdict)s, which `cli/check.rs` renders as a table or
//! JSON and turns into an exit code, so a user reads a bundle's answer as a mirror's.

pub(crate) mod bundle;
