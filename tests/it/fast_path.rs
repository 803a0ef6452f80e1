//! The fast path must build exactly the tree the full parser builds, wherever it accepts input,
//! and must never accept what the parser rejects.

use crate::common;

use airgap::manifest::fast;
use airgap::manifest::node::{Node, parse_documents};
use airgap::manifest::stream::ChunkReader;
use proptest::prelude::*;
use saphyr_parser::ScalarStyle;

fn same_tree(fast: &Node<'_>, full: &Node<'_>, text: &str, path: &str) {
    match (fast, full) {
        (Node::Scalar(a), Node::Scalar(b)) => {
            assert_eq!(a.value, b.value, "{path}: value");
            assert_eq!(a.style, b.style, "{path}: style of {:?}", a.value);
            // Nulls (empty plain scalars) are never edited nor named in messages, and the
            // parser places them at the next token; their positions are not compared.
            let empty = a.value.is_empty() && a.style == ScalarStyle::Plain;
            if !empty {
                assert_eq!(a.line, b.line, "{path}: line of {:?}", a.value);
            }
            assert_eq!(a.tagged, b.tagged, "{path}");
            match a.style {
                // Block scalars: splicing counts occurrences inside the span, so the spans must
                // cover the same text; where they start may differ by indentation.
                ScalarStyle::Literal | ScalarStyle::Folded => {
                    assert_eq!(
                        text[a.span.clone()].trim(),
                        text[b.span.clone()].trim(),
                        "{path}: span"
                    );
                }
                _ if empty => {}
                _ => assert_eq!(a.span, b.span, "{path}: span of {:?}", a.value),
            }
        }
        (Node::Seq(a), Node::Seq(b)) => {
            assert_eq!(a.len(), b.len(), "{path}: items");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                same_tree(x, y, text, &format!("{path}[{i}]"));
            }
        }
        (Node::Map(a), Node::Map(b)) => {
            assert_eq!(a.len(), b.len(), "{path}: entries");
            for ((k1, v1), (k2, v2)) in a.iter().zip(b) {
                same_tree(k1, k2, text, &format!("{path}.<key>"));
                let key = k1.as_str().unwrap_or("?");
                same_tree(v1, v2, text, &format!("{path}.{key}"));
            }
        }
        _ => panic!("{path}: fast {fast:?} vs full {full:?}"),
    }
}

/// Checks one chunk; returns whether the fast path took it.
fn check_chunk(text: &str, first_line: usize) -> bool {
    let Some(fast_docs) = fast::parse_documents(text, first_line) else {
        return false;
    };
    let full_docs = parse_documents(text, first_line)
        .unwrap_or_else(|e| panic!("fast path accepted what the parser rejects ({e}):\n{text}"));
    assert_eq!(fast_docs.len(), full_docs.len(), "document count:\n{text}");
    for (i, (a, b)) in fast_docs.iter().zip(&full_docs).enumerate() {
        same_tree(a, b, text, &format!("doc {i}"));
    }
    true
}

fn check_stream(text: &str) -> (usize, usize) {
    let (mut fast, mut all) = (0, 0);
    for chunk in ChunkReader::new(text.as_bytes()) {
        let chunk = chunk.unwrap();
        all += 1;
        if check_chunk(&chunk.text, chunk.first_line) {
            fast += 1;
        }
    }
    (fast, all)
}

#[test]
fn fast_path_agrees_with_the_parser_on_the_corpus() {
    let (mut fast, mut all) = (0, 0);
    for file in common::corpus_files() {
        let (f, a) = check_stream(&std::fs::read_to_string(&file).unwrap());
        fast += f;
        all += a;
    }
    println!("fast path took {fast} of {all} corpus chunks");
    if all > 0 {
        assert!(
            fast * 2 > all,
            "the fast path took only {fast} of {all} chunks"
        );
    }
}

#[test]
fn fast_path_agrees_on_the_projects_own_cases() {
    let (fast, all) = check_stream(include_str!("../../testdata/manifests/cases.yaml"));
    assert!(fast >= 3, "{fast} of {all}");
}

#[test]
fn fast_path_declines_what_it_does_not_know() {
    for text in [
        "a: &x 1\nb: *x\n",
        "a: !!str 1\n",
        "a: >\n  folded\n",
        "a: \"esc\\\"aped\"\n",
        "a: multi\n  line\n",
        "a:\n\tb: 1\n",
        "? complex\n: key\n",
        "%YAML 1.2\n---\na: 1\n",
        "a: [1,\n 2]\n",
        "a: |2\n   x\n",
        "  indented: root\n",
        "a: x\u{0}y\n",
        "a: \u{7f}\n",
        "a: \u{9b}\n",
        "a: b: c\n",
    ] {
        assert!(fast::parse_documents(text, 1).is_none(), "took {text:?}");
    }
}

/// Lines from which generated documents are built: valid and invalid fragments mixed, so both
/// agreement and refusal are exercised.
fn fragment() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("a".to_string()),
        Just("image".to_string()),
        Just("\"q k\"".to_string()),
        Just("'s'".to_string()),
        Just("x.y/z".to_string()),
    ];
    let value = prop_oneof![
        Just("".to_string()),
        Just("nginx:1.27".to_string()),
        Just("'it''s'".to_string()),
        Just("\"dq\"".to_string()),
        Just("[a, \"b\", {k: v}]".to_string()),
        Just("{}".to_string()),
        Just("[]".to_string()),
        Just("plain value  # comment".to_string()),
        Just("|".to_string()),
        Just("|-".to_string()),
        Just("|+".to_string()),
        Just("a:b".to_string()),
        Just("-1".to_string()),
        Just("[a: b]".to_string()),
        Just("{a, b}".to_string()),
        Just("'unclosed".to_string()),
        Just("\"x\" trailing".to_string()),
        Just("- a".to_string()),
        Just("@x".to_string()),
    ];
    let indent = prop_oneof![Just(0usize), Just(1), Just(2), Just(4), Just(6)];
    prop_oneof![
        (indent.clone(), key, value.clone())
            .prop_map(|(i, k, v)| format!("{}{k}: {v}", " ".repeat(i))),
        (indent.clone(), value).prop_map(|(i, v)| format!("{}- {v}", " ".repeat(i))),
        indent.clone().prop_map(|i| format!("{}-", " ".repeat(i))),
        indent
            .clone()
            .prop_map(|i| format!("{}# comment", " ".repeat(i))),
        indent.prop_map(|i| format!("{}text line", " ".repeat(i))),
        Just(String::new()),
        Just("---".to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn fast_path_agrees_on_generated_documents(lines in prop::collection::vec(fragment(), 1..14)) {
        let text = lines.join("\n") + "\n";
        check_chunk(&text, 1);
    }
}
