//! Turning edits of decoded scalar values into edits of source bytes.
//!
//! The output must equal the input except inside image references. A scalar whose whole value is
//! replaced has its content (inside any quotes) replaced. A part of a value (an image inside a
//! `key=REF` line, inside embedded YAML, inside a block scalar) is found in the source by
//! counting: the k-th occurrence of the image text in the value is the k-th in the source. That
//! holds for every style because escapes and line folding only touch `\`, quotes and whitespace,
//! none of which an image reference contains; when the counts differ, the edit is refused rather
//! than guessed.

use std::ops::Range;

use saphyr_parser::ScalarStyle;

use super::node::Scalar;
use crate::excerpt::Excerpt;

/// Replace `range` of the chunk with `text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement {
    pub range: Range<usize>,
    pub text: String,
}

/// The source bytes of `value_range` in scalar `s` of `chunk`, and the text to write there for
/// `new_value`.
pub fn replacement(
    chunk: &str,
    s: &Scalar<'_>,
    value_range: Range<usize>,
    new_value: &str,
) -> Result<Replacement, String> {
    let whole = value_range.start == 0 && value_range.end == s.value.len();
    let inner = match s.style {
        ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => s.span.start + 1..s.span.end - 1,
        _ => s.span.clone(),
    };
    if whole && s.style != ScalarStyle::Literal && s.style != ScalarStyle::Folded {
        let text = match s.style {
            // `[` starts a flow sequence and `,[]{}` end a plain scalar in flow context: an IPv6
            // mirror host needs quotes where the source had none.
            ScalarStyle::Plain if new_value.contains(['[', ']', ',', '{', '}', '#']) => {
                format!("\"{new_value}\"")
            }
            _ => new_value.to_string(),
        };
        return Ok(Replacement { range: inner, text });
    }
    let needle = &s.value[value_range.clone()];
    if needle.is_empty() {
        return Err("empty image text".into());
    }
    let raw = &chunk[inner.clone()];
    let nth = s
        .value
        .match_indices(needle)
        .position(|(i, _)| i == value_range.start)
        .ok_or("the image text overlaps another occurrence of itself")?;
    let in_value = s.value.matches(needle).count();
    let in_source: Vec<usize> = raw.match_indices(needle).map(|(i, _)| i).collect();
    if in_source.len() != in_value {
        return Err(format!(
            "{} occurs {in_value} times in the value but {} times in its source text (escaped or split across lines); write it plainly in the chart",
            Excerpt(needle),
            in_source.len()
        ));
    }
    let start = inner.start + in_source[nth];
    Ok(Replacement {
        range: start..start + needle.len(),
        text: new_value.to_string(),
    })
}

/// Writes `chunk` with `replacements` applied. Overlapping replacements are a bug upstream.
pub fn apply(chunk: &str, replacements: &mut [Replacement], out: &mut String) {
    replacements.sort_by_key(|r| r.range.start);
    let mut at = 0;
    for r in replacements.iter() {
        assert!(r.range.start >= at, "overlapping replacements");
        out.push_str(&chunk[at..r.range.start]);
        out.push_str(&r.text);
        at = r.range.end;
    }
    out.push_str(&chunk[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::node::parse_documents;

    fn first_scalar_edit(src: &str, key: &str, needle: &str, new: &str) -> String {
        let docs = parse_documents(src, 1).unwrap();
        let s = docs[0].get(key).unwrap().as_scalar().unwrap();
        let start = s.value.find(needle).unwrap();
        let r = replacement(src, s, start..start + needle.len(), new).unwrap();
        let mut out = String::new();
        apply(src, &mut [r], &mut out);
        out
    }

    #[test]
    fn whole_values_keep_their_quoting() {
        for (src, want) in [
            ("image: nginx # c\n", "image: r.io/n # c\n"),
            ("image: 'nginx'\n", "image: 'r.io/n'\n"),
            ("image: \"nginx\"\n", "image: \"r.io/n\"\n"),
        ] {
            assert_eq!(first_scalar_edit(src, "image", "nginx", "r.io/n"), want);
        }
    }

    #[test]
    fn parts_of_block_and_escaped_scalars() {
        let src = "v: |\n  a=nginx\n  b=nginx:1\n";
        assert_eq!(
            first_scalar_edit(src, "v", "nginx:1", "r.io/n:1"),
            "v: |\n  a=nginx\n  b=r.io/n:1\n"
        );
        let src = "v: \"{\\\"image\\\": \\\"nginx:1\\\"}\"\n";
        assert_eq!(
            first_scalar_edit(src, "v", "nginx:1", "r.io/n:1"),
            "v: \"{\\\"image\\\": \\\"r.io/n:1\\\"}\"\n"
        );
    }

    #[test]
    fn plain_values_that_need_quotes_get_them() {
        assert_eq!(
            first_scalar_edit("image: nginx\n", "image", "nginx", "[::1]:5000/n"),
            "image: \"[::1]:5000/n\"\n"
        );
    }
}
