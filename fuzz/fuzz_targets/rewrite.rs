//! Fuzzes the post-renderer: whatever the input, no panic, and the output is either an error or
//! the input with only image tokens changed (each to its mirror name), and a second rewrite
//! changes nothing. Two oracles, because each misses what the other sees: line by line (no byte
//! moved, no token but an image changed) and tree by tree (the output parses, with an independent
//! parser, to the input's tree with image values replaced, so an anchor kept but its alias left
//! behind, or a quote broken, fails here). Also checks that the fast path never disagrees with
//! the full parser.
#![no_main]

use airgap::manifest::Rewriter;
use airgap::manifest::rules::RuleSet;
use airgap::manifest::{fast, node};
use airgap::mirror::{Mirror, MirrorNaming, Naming};
use airgap::reference::Reference;
use libfuzzer_sys::fuzz_target;
use yaml_rust2::{Yaml, YamlLoader};

fn tokens(line: &str) -> Vec<&str> {
    line.split(|c: char| c.is_whitespace() || "\"'=,[]{}".contains(c))
        .map(|t| t.strip_suffix(':').unwrap_or(t))
        .collect()
}

fn rewrite(input: &str, naming: &MirrorNaming, rules: &RuleSet) -> Option<String> {
    let mut out = Vec::new();
    Rewriter { naming, rules, pull_secret: None }
        .rewrite(input.as_bytes(), "fuzz", &mut out)
        .ok()?;
    Some(String::from_utf8(out).expect("output is UTF-8"))
}

/// Whether token `q` of the output may stand where `p` stood in the input: the same, or `p`
/// pointed at the mirror (a whole reference becomes its mirror name; the parts of a split
/// reference become the mirror host or a mirror path ending in the old repository).
fn token_ok(p: &str, q: &str, naming: &MirrorNaming) -> bool {
    p == q
        || Reference::parse(p)
            .ok()
            .and_then(|r| naming.map(&r).ok())
            .is_some_and(|m| m.to_string() == q)
        || q == naming.mirror().host()
        || q.ends_with(&format!("/{p}"))
}

/// The input's tree with image values replaced is the output's tree.
fn same_tree(a: &Yaml, b: &Yaml, naming: &MirrorNaming, at: &str) -> Result<(), String> {
    match (a, b) {
        (Yaml::String(x), Yaml::String(y)) if x != y => {
            let (xt, yt) = (tokens(x), tokens(y));
            if xt.len() != yt.len() {
                return Err(format!("{at}: string's tokens changed: {x:?} became {y:?}"));
            }
            match xt.iter().zip(&yt).find(|(p, q)| !token_ok(p, q, naming)) {
                Some((p, q)) => Err(format!("{at}: {p:?} became {q:?}")),
                None => Ok(()),
            }
        }
        // `image: 1` is a number to YAML and a Docker Hub name to a rule.
        (Yaml::Integer(_) | Yaml::Real(_) | Yaml::Boolean(_), Yaml::String(y))
            if y.starts_with(naming.mirror().host()) =>
        {
            Ok(())
        }
        (Yaml::Array(x), Yaml::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .try_for_each(|(i, (p, q))| same_tree(p, q, naming, &format!("{at}[{i}]"))),
        (Yaml::Hash(x), Yaml::Hash(y)) if x.len() == y.len() => {
            x.iter().zip(y).try_for_each(|((xk, xv), (yk, yv))| {
                let key = format!("{at}.{xk:?}");
                same_tree(xk, yk, naming, &key)?;
                same_tree(xv, yv, naming, &key)
            })
        }
        _ if a == b => Ok(()),
        _ => Err(format!("{at}: {a:?} became {b:?}")),
    }
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
        for (p, q) in xt.iter().zip(&yt) {
            assert!(token_ok(p, q, &naming), "{p:?} became {q:?}");
        }
    }
    // yaml-rust2 refuses some YAML that Helm and we accept (a tab after `:`); where it reads the
    // input, it must read the output too, to the same tree but for images.
    if let Ok(before) = YamlLoader::load_from_str(input) {
        let after = YamlLoader::load_from_str(&output)
            .unwrap_or_else(|e| panic!("the input parses and the output does not: {e}"));
        assert_eq!(before.len(), after.len(), "document count changed");
        for (i, (x, y)) in before.iter().zip(&after).enumerate() {
            if let Err(e) = same_tree(x, y, &naming, &format!("document {}", i + 1)) {
                panic!("the output's tree is not the input's with images replaced: {e}");
            }
        }
    }
    assert_eq!(rewrite(&output, &naming, &rules).as_deref(), Some(output.as_str()), "not idempotent");
});
