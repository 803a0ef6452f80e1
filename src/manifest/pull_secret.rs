//! Adding `imagePullSecrets` to pod specs as inserted text, so that a mirror needing credentials
//! gets them in every Pod, and every other byte of the stream stays as it was.
//!
//! A block mapping gets two new lines before its first key, at that key's indentation; a flow
//! mapping gets an entry before its first key (JSON-quoted when that key is quoted, so a JSON
//! document stays JSON). A pod spec with its own `imagePullSecrets` gets the Secret as one more
//! item (a new first line of a block list, a new first entry of a flow list, a list in place of
//! null), because a chart's Secrets are for the registries it pulled from, not for the mirror.

use saphyr_parser::ScalarStyle;

use super::node::{Node, Scalar};
use super::scan::{PodSpecSite, ScanError};
use super::splice::Replacement;

/// Whether `name` can name a `kind` object (Secret, ServiceAccount, ConfigMap: a DNS-1123
/// subdomain), so that it can be written as a plain YAML scalar without quoting.
pub fn validate_name(name: &str, kind: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name
            .split('.')
            .all(|part| !part.is_empty() && !part.starts_with('-') && !part.ends_with('-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid {kind} name: use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters"
        ))
    }
}

/// The text to insert into `chunk` so that the pod spec at `site` names the Secret `name`, or
/// `None` when it names it already.
pub fn insertion(
    chunk: &str,
    site: &PodSpecSite<'_>,
    name: &str,
) -> Result<Option<Replacement>, ScanError> {
    let Node::Map(entries) = site.spec else {
        return Ok(None);
    };
    if let Some((key, value)) = entries
        .iter()
        .find(|(k, _)| k.as_str() == Some("imagePullSecrets"))
    {
        return add_to_list(chunk, site, key, value, name);
    }
    let Some(first) = entries.first().and_then(|(k, _)| k.as_scalar()) else {
        // An empty pod spec is not a valid one; the API server will say so.
        return Ok(None);
    };
    let at = first.span.start;
    let before = &chunk[..at];
    let flow = before
        .trim_end_matches([' ', '\t', '\r', '\n'])
        .ends_with('{');
    if flow {
        let json = first.style == ScalarStyle::DoubleQuoted;
        let text = if json {
            format!("\"imagePullSecrets\": [{}], ", entry(name, json))
        } else {
            format!("imagePullSecrets: [{}], ", entry(name, json))
        };
        return Ok(Some(Replacement {
            range: at..at,
            text,
        }));
    }
    let line_start = line_start(chunk, at);
    let indent = &chunk[line_start..at];
    if !indent.bytes().all(|b| b == b' ') {
        return Err(site.error(
            first.line,
            format!(
                "cannot add imagePullSecrets: the pod spec's first key {} does not begin its line; put it on a line of its own in the chart, or add imagePullSecrets there",
                crate::excerpt::Excerpt(&first.value)
            ),
        ));
    }
    let newline = newline_of(chunk, at);
    Ok(Some(Replacement {
        range: line_start..line_start,
        text: format!("{indent}imagePullSecrets:{newline}{indent}  - name: {name}{newline}"),
    }))
}

/// The pod spec has `imagePullSecrets`; the Secret joins the list unless it is there. The
/// chart's own Secrets (for the registries it pulled from before) are kept: the kubelet tries
/// each Secret whose registry matches, so the mirror's one does not displace them.
fn add_to_list(
    chunk: &str,
    site: &PodSpecSite<'_>,
    key: &Node<'_>,
    value: &Node<'_>,
    name: &str,
) -> Result<Option<Replacement>, ScanError> {
    let Some(key) = key.as_scalar() else {
        return Ok(None);
    };
    let json = key.style == ScalarStyle::DoubleQuoted;
    let refuse = |line: usize, why: &str| {
        site.error(
            line,
            format!(
                "cannot add {name} to imagePullSecrets: {why}; write the list as `- name:` lines or as [...] in the chart, or add {name} there"
            ),
        )
    };
    // Where the value's text begins: past the `:` that ends the key.
    let after_key = &chunk[key.span.end..];
    let colon = after_key.trim_start_matches([' ', '\t']);
    if !colon.starts_with(':') {
        return Err(refuse(
            key.line,
            "its key is not followed by ':' on its line",
        ));
    }
    let value_at = chunk.len() - colon.len() + 1;
    let value_text = chunk[value_at..].trim_start_matches([' ', '\t']);
    let value_start = chunk.len() - value_text.len();
    match value {
        Node::Seq(items) => {
            if items.iter().any(|i| i.str_at("name") == Some(name)) {
                return Ok(None);
            }
            if value_text.starts_with('[') {
                let text = if items.is_empty() {
                    entry(name, json)
                } else {
                    format!("{}, ", entry(name, json))
                };
                let at = value_start + 1;
                return Ok(Some(Replacement {
                    range: at..at,
                    text,
                }));
            }
            // A block sequence: a new first item, on a line of its own, with the same `- `.
            let Some(first) = items.first().and_then(first_scalar) else {
                return Err(refuse(key.line, "its first item holds no scalar"));
            };
            let start = line_start(chunk, first.span.start);
            let prefix = &chunk[start..first.span.start];
            let dash = prefix.trim_start_matches(' ');
            let item_indent = &prefix[..prefix.len() - dash.len()];
            let opens_item = dash.strip_prefix('-').is_some_and(|rest| {
                rest.starts_with(' ')
                    && rest
                        .trim_start_matches(' ')
                        .trim_start_matches('{')
                        .trim_start_matches(' ')
                        .is_empty()
            });
            if !opens_item {
                return Err(refuse(first.line, "its first item does not begin its line"));
            }
            let newline = newline_of(chunk, first.span.start);
            Ok(Some(Replacement {
                range: start..start,
                text: format!("{item_indent}- name: {name}{newline}"),
            }))
        }
        Node::Scalar(s) if s.is_null() && !s.tagged => {
            // `imagePullSecrets:`, `~` or `null`: no Secrets yet, so the list is the mirror's.
            let list = format!("[{}]", entry(name, json));
            let explicit = !s.value.is_empty();
            Ok(Some(if explicit {
                Replacement {
                    range: s.span.clone(),
                    text: list,
                }
            } else {
                Replacement {
                    range: value_at..value_at,
                    text: format!(" {list}"),
                }
            }))
        }
        // Not a list (the API server will refuse it) or an alias (visited where it is defined).
        _ => Ok(None),
    }
}

/// `{name: NAME}`, or its JSON spelling when the surrounding keys are JSON-quoted.
fn entry(name: &str, json: bool) -> String {
    if json {
        format!("{{\"name\": \"{name}\"}}")
    } else {
        format!("{{name: {name}}}")
    }
}

/// The first scalar of a node, depth first: where an item's text begins.
fn first_scalar<'n, 'a>(node: &'n Node<'a>) -> Option<&'n Scalar<'a>> {
    match node {
        Node::Scalar(s) => Some(s),
        Node::Map(entries) => entries.first().and_then(|(k, _)| first_scalar(k)),
        Node::Seq(items) => items.first().and_then(first_scalar),
        Node::Alias => None,
    }
}

fn line_start(chunk: &str, at: usize) -> usize {
    chunk[..at].rfind('\n').map_or(0, |i| i + 1)
}

/// The line ending of the line holding `at`, so that inserted lines match a CRLF file.
fn newline_of(chunk: &str, at: usize) -> &'static str {
    if chunk[at..]
        .split('\n')
        .next()
        .is_some_and(|l| l.ends_with('\r'))
    {
        "\r\n"
    } else {
        "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::node::parse_documents;
    use crate::manifest::rules::RuleSet;
    use crate::manifest::scan::Scanner;
    use crate::manifest::splice::apply;

    fn with_secret(src: &str) -> Result<String, ScanError> {
        let rules = RuleSet::built_in();
        let docs = parse_documents(src, 1).unwrap();
        let scanner = Scanner::new(&rules, false);
        let mut replacements = Vec::new();
        for (i, d) in docs.iter().enumerate() {
            for site in scanner.scan(d, i + 1).unwrap().pod_specs {
                replacements.extend(insertion(src, &site, "mirror-pull")?);
            }
        }
        let mut out = String::new();
        apply(src, &mut replacements, &mut out);
        Ok(out)
    }

    #[test]
    fn block_pod_specs_get_two_lines_at_their_indentation() {
        let src = "kind: Deployment\napiVersion: apps/v1\nspec:\n  template:\n    spec:\n      # c\n      containers:\n      - image: nginx\n";
        let want = "kind: Deployment\napiVersion: apps/v1\nspec:\n  template:\n    spec:\n      # c\n      imagePullSecrets:\n        - name: mirror-pull\n      containers:\n      - image: nginx\n";
        let out = with_secret(src).unwrap();
        assert_eq!(out, want);
        // The result parses, and the field is where Kubernetes reads it.
        let docs = parse_documents(&out, 1).unwrap();
        let spec = docs[0].get("spec").unwrap().get("template").unwrap();
        let Some(Node::Seq(items)) = spec.get("spec").unwrap().get("imagePullSecrets") else {
            panic!("no imagePullSecrets list in {out}")
        };
        assert_eq!(items[0].str_at("name"), Some("mirror-pull"));
    }

    #[test]
    fn flow_and_json_pod_specs_get_an_entry() {
        let src = "kind: Pod\napiVersion: v1\nspec: {containers: [{name: a, image: nginx}]}\n";
        assert_eq!(
            with_secret(src).unwrap(),
            "kind: Pod\napiVersion: v1\nspec: {imagePullSecrets: [{name: mirror-pull}], containers: [{name: a, image: nginx}]}\n"
        );
        let src = "{\"kind\": \"Pod\", \"apiVersion\": \"v1\", \"spec\": {\n  \"containers\": [{\"image\": \"nginx\"}]}}\n";
        let out = with_secret(src).unwrap();
        assert_eq!(
            out,
            "{\"kind\": \"Pod\", \"apiVersion\": \"v1\", \"spec\": {\n  \"imagePullSecrets\": [{\"name\": \"mirror-pull\"}], \"containers\": [{\"image\": \"nginx\"}]}}\n"
        );
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(json["spec"]["imagePullSecrets"][0]["name"], "mirror-pull");
    }

    /// `imagePullSecrets: VALUE` in a Pod, before and after.
    fn pod_with(value: &str) -> String {
        format!(
            "kind: Pod\napiVersion: v1\nspec:\n  imagePullSecrets:{value}\n  containers:\n  - image: nginx\n"
        )
    }

    #[test]
    fn existing_lists_get_the_secret_as_one_more_item() {
        let cases = [
            // Block lists, indented or not, maps block or flow: a new first item line.
            (
                "\n    - name: theirs",
                "\n    - name: mirror-pull\n    - name: theirs",
            ),
            (
                "\n  - name: theirs\n  - name: other",
                "\n  - name: mirror-pull\n  - name: theirs\n  - name: other",
            ),
            (
                " # their registry\n  - {name: theirs}",
                " # their registry\n  - name: mirror-pull\n  - {name: theirs}",
            ),
            // Flow lists: a new first entry.
            (
                " [{name: theirs}]",
                " [{name: mirror-pull}, {name: theirs}]",
            ),
            (" []", " [{name: mirror-pull}]"),
            (" [ ]  # none", " [{name: mirror-pull} ]  # none"),
            // Null: the list is the mirror's.
            ("", " [{name: mirror-pull}]"),
            (" ~", " [{name: mirror-pull}]"),
            (" null # none", " [{name: mirror-pull}] # none"),
        ];
        for (value, want) in cases {
            let out = with_secret(&pod_with(value)).unwrap();
            assert_eq!(out, pod_with(want), "{value:?}");
            let docs = parse_documents(&out, 1).unwrap();
            let Some(Node::Seq(items)) = docs[0].get("spec").unwrap().get("imagePullSecrets")
            else {
                panic!("no list in {out}")
            };
            assert!(
                items
                    .iter()
                    .any(|i| i.str_at("name") == Some("mirror-pull")),
                "{out}"
            );
            // A second pass finds it there.
            assert_eq!(with_secret(&out).unwrap(), out);
        }
        // A list that names it already, anywhere, is left alone; so is a value that is no list.
        for value in [
            " [{name: a}, {name: mirror-pull}]",
            "\n  - name: a\n  - name: mirror-pull",
            " oops",
        ] {
            assert_eq!(with_secret(&pod_with(value)).unwrap(), pod_with(value));
        }
        // JSON stays JSON.
        let src = "{\"kind\": \"Pod\", \"apiVersion\": \"v1\", \"spec\": {\"imagePullSecrets\": [], \"containers\": [{\"image\": \"nginx\"}]}}\n";
        let out = with_secret(src).unwrap();
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            json["spec"]["imagePullSecrets"],
            serde_json::json!([{"name": "mirror-pull"}])
        );
        let src = src.replace("[]", "null");
        let json: serde_json::Value = serde_json::from_str(&with_secret(&src).unwrap()).unwrap();
        assert_eq!(
            json["spec"]["imagePullSecrets"],
            serde_json::json!([{"name": "mirror-pull"}])
        );
    }

    #[test]
    fn a_list_whose_first_item_shares_a_line_is_refused_with_its_place() {
        let src = pod_with(" &theirs\n  - - name: theirs");
        let e = with_secret(&src).unwrap_err();
        assert_eq!((e.document, e.path.as_str(), e.line), (1, "spec", 5), "{e}");
        assert!(
            e.message
                .contains("cannot add mirror-pull to imagePullSecrets"),
            "{e}"
        );
    }

    #[test]
    fn crlf_lines() {
        let src = "kind: Pod\r\napiVersion: v1\r\nspec:\r\n  containers:\r\n  - image: nginx\r\n";
        assert_eq!(
            with_secret(src).unwrap(),
            "kind: Pod\r\napiVersion: v1\r\nspec:\r\n  imagePullSecrets:\r\n    - name: mirror-pull\r\n  containers:\r\n  - image: nginx\r\n"
        );
        let src = "kind: Pod\r\napiVersion: v1\r\nspec:\r\n  imagePullSecrets:\r\n  - name: a\r\n  containers:\r\n  - image: nginx\r\n";
        assert_eq!(
            with_secret(src).unwrap(),
            src.replace("  - name: a", "  - name: mirror-pull\r\n  - name: a")
        );
    }

    #[test]
    fn a_first_key_that_shares_its_line_is_refused_with_its_place() {
        let src = "kind: Pod\napiVersion: v1\nspec: !!map\n  ? containers\n  : [{image: nginx}]\n";
        let e = with_secret(src).unwrap_err();
        assert_eq!((e.document, e.path.as_str(), e.line), (1, "spec", 4), "{e}");
        assert!(e.message.contains("first key"), "{e}");
    }

    #[test]
    fn secret_names_are_dns_subdomains() {
        assert!(validate_name("mirror-pull.v1", "Secret").is_ok());
        for bad in ["", "Mirror", "-a", "a-", "a..b", "a b", "a:b"] {
            assert!(validate_name(bad, "Secret").is_err(), "{bad:?}");
        }
    }
}
