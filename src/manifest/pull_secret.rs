//! Adding `imagePullSecrets` to pod specs as inserted text, so that a mirror needing credentials
//! gets them in every Pod, and every other byte of the stream stays as it was.
//!
//! A block mapping gets two new lines before its first key, at that key's indentation; a flow
//! mapping gets an entry before its first key (JSON-quoted when that key is quoted, so a JSON
//! document stays JSON). A pod spec that already has the field is left as the chart wrote it.

use super::node::Node;
use super::scan::{PodSpecSite, ScanError};
use super::splice::Replacement;

/// Whether `name` can name a Secret (a DNS-1123 subdomain), so that it can be written as a plain
/// YAML scalar without quoting.
pub fn validate_name(name: &str) -> Result<(), String> {
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
            "{name:?} is not a valid Secret name: use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters"
        ))
    }
}

/// The text to insert into `chunk` so that the pod spec at `site` names the Secret `name`, or
/// `None` when it has `imagePullSecrets` already.
pub fn insertion(
    chunk: &str,
    site: &PodSpecSite<'_>,
    name: &str,
) -> Result<Option<Replacement>, ScanError> {
    let Node::Map(entries) = site.spec else {
        return Ok(None);
    };
    if site.spec.get("imagePullSecrets").is_some() {
        return Ok(None);
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
        let text = if first.style == saphyr_parser::ScalarStyle::DoubleQuoted {
            format!("\"imagePullSecrets\": [{{\"name\": \"{name}\"}}], ")
        } else {
            format!("imagePullSecrets: [{{name: {name}}}], ")
        };
        return Ok(Some(Replacement {
            range: at..at,
            text,
        }));
    }
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let indent = &chunk[line_start..at];
    if !indent.bytes().all(|b| b == b' ') {
        return Err(site.error(
            first.line,
            format!(
                "cannot add imagePullSecrets: the pod spec's first key {:?} does not begin its line; put it on a line of its own in the chart, or add imagePullSecrets there",
                first.value
            ),
        ));
    }
    let newline = if chunk[at..]
        .split('\n')
        .next()
        .is_some_and(|l| l.ends_with('\r'))
    {
        "\r\n"
    } else {
        "\n"
    };
    Ok(Some(Replacement {
        range: line_start..line_start,
        text: format!("{indent}imagePullSecrets:{newline}{indent}  - name: {name}{newline}"),
    }))
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

    #[test]
    fn existing_pull_secrets_and_crlf_lines() {
        let src = "kind: Pod\napiVersion: v1\nspec:\n  imagePullSecrets: []\n  containers:\n  - image: nginx\n";
        assert_eq!(with_secret(src).unwrap(), src);
        let src = "kind: Pod\r\napiVersion: v1\r\nspec:\r\n  containers:\r\n  - image: nginx\r\n";
        assert_eq!(
            with_secret(src).unwrap(),
            "kind: Pod\r\napiVersion: v1\r\nspec:\r\n  imagePullSecrets:\r\n    - name: mirror-pull\r\n  containers:\r\n  - image: nginx\r\n"
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
        assert!(validate_name("mirror-pull.v1").is_ok());
        for bad in ["", "Mirror", "-a", "a-", "a..b", "a b", "a:b"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }
}
