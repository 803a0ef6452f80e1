//! Fuzzes the post-renderer: whatever the input, no panic, and the output is either an error or
//! the input with only image tokens changed (each to its mirror name), and a second rewrite
//! changes nothing. Also checks that the fast path never disagrees with the full parser.
#![no_main]

use airgap::manifest::Rewriter;
use airgap::manifest::rules::RuleSet;
use airgap::manifest::{fast, node};
use airgap::mirror::{Mirror, MirrorNaming, Naming};
use airgap::reference::Reference;
use libfuzzer_sys::fuzz_target;

fn tokens(line: &str) -> Vec<&str> {
    line.split(|c: char| c.is_whitespace() || "\"'=,[]{}".contains(c))
        .map(|t| t.strip_suffix(':').unwrap_or(t))
        .collect()
}

fn rewrite(input: &str, naming: &MirrorNaming, rules: &RuleSet) -> Option<String> {
    let mut out = Vec::new();
    Rewriter { naming, rules }
        .rewrite(input.as_bytes(), "fuzz", &mut out)
        .ok()?;
    Some(String::from_utf8(out).expect("output is UTF-8"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else { return };
    if let Some(fast_docs) = fast::parse_documents(input, 1) {
        let full = node::parse_documents(input, 1);
        assert!(full.is_ok(), "fast path accepted what the parser rejects");
        assert_eq!(fast_docs.len(), full.unwrap().len());
    }
    let naming = MirrorNaming::new(Mirror::parse("reg.local:5000").unwrap(), Naming::Nested, Vec::new());
    let rules = RuleSet::built_in();
    let Some(output) = rewrite(input, &naming, &rules) else { return };
    let (a, b): (Vec<&str>, Vec<&str>) = (input.split('\n').collect(), output.split('\n').collect());
    assert_eq!(a.len(), b.len(), "line count changed");
    for (x, y) in a.iter().zip(&b) {
        if x == y {
            continue;
        }
        let (xt, yt) = (tokens(x), tokens(y));
        assert_eq!(xt.len(), yt.len(), "token structure changed:\n- {x}\n+ {y}");
        for (p, q) in xt.iter().zip(&yt).filter(|(p, q)| p != q) {
            let mapped = Reference::parse(p).ok().and_then(|r| naming.map(&r).ok());
            // A whole reference becomes its mirror name; the parts of a split reference become
            // the mirror host (registry) or a mirror path ending in the old repository.
            let ok = mapped.is_some_and(|m| m.to_string() == *q)
                || *q == naming.mirror().host()
                || q.ends_with(&format!("/{p}"));
            assert!(ok, "{p:?} became {q:?}");
        }
    }
    assert_eq!(rewrite(&output, &naming, &rules).as_deref(), Some(output.as_str()), "not idempotent");
});
