//! Properties of the grammar and the naming that examples alone would not pin down.

use airgap::mirror::{Collisions, Mirror, MirrorNaming, Naming, Override, canonical_name};
use airgap::reference::Reference;
use proptest::prelude::*;

/// Host names from a small alphabet, with ports and IPv6 literals, so that hosts which an encoding
/// could confuse (`a-b` / `a.b`, `h:5000` / `h-5000`) are generated often.
fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ab]{1,2}(\\.[ab]{1,2}){1,2}",
        "[ab]{1,2}(-[ab]{1,2})?\\.io(:[0-9]{1,4})?",
        "localhost(:[0-9]{1,4})?",
        Just("docker.io".to_string()),
        Just("index.docker.io".to_string()),
        Just("registry-1.docker.io".to_string()),
        Just("[::1]:5000".to_string()),
        Just("[0:0::1]".to_string()),
        "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(:[0-9]{1,5})?",
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-c0-9]{1,3}([._-][a-c0-9]{1,3})?", 1..4).prop_map(|c| c.join("/"))
}

fn tag() -> impl Strategy<Value = Option<String>> {
    prop::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,10}")
}

fn digest() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        "[a-f0-9]{64}".prop_map(|h| format!("sha256:{h}")),
        "[a-f0-9]{96}".prop_map(|h| format!("sha384:{h}")),
        "[a-f0-9]{128}".prop_map(|h| format!("sha512:{h}")),
    ])
}

fn reference() -> impl Strategy<Value = Reference> {
    (host(), path(), tag(), digest()).prop_filter_map("not a valid reference", |(h, p, t, d)| {
        let mut s = format!("{h}/{p}");
        if let Some(t) = t {
            s = format!("{s}:{t}");
        }
        if let Some(d) = d {
            s = format!("{s}@{d}");
        }
        Reference::parse(&s).ok()
    })
}

fn naming(scheme: Naming) -> MirrorNaming {
    MirrorNaming::new(
        Mirror::parse("reg.local:5000/mirror").unwrap(),
        scheme,
        vec![Override::parse("a.io=over").unwrap()],
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parse_then_display_is_identity_on_canonical_forms(r in reference()) {
        let canonical = r.to_string();
        let again = Reference::parse(&canonical).unwrap();
        prop_assert_eq!(again.to_string(), canonical);
        prop_assert_eq!(again, r);
    }

    #[test]
    fn mapping_to_the_mirror_is_idempotent(r in reference(), strip in any::<bool>()) {
        let n = naming(if strip { Naming::Strip } else { Naming::Nested });
        let once = n.map(&r).unwrap();
        prop_assert_eq!(once.tag(), r.tag());
        prop_assert_eq!(once.digest(), r.digest());
        let twice = n.map(&once).unwrap();
        prop_assert_eq!(twice, once);
    }

    #[test]
    fn nested_never_maps_two_sources_to_one_name(refs in prop::collection::vec(reference(), 2..40)) {
        let n = naming(Naming::Nested);
        let mut collisions = Collisions::new();
        for r in &refs {
            let m = n.map(r).unwrap();
            prop_assert!(collisions.insert(r, &m).is_ok(), "{} collided", canonical_name(r));
        }
    }
}
