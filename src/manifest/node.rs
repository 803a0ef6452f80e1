//! A YAML document as a tree whose scalars remember where their bytes are.
//!
//! Rules need structure (a container's `image` beside its `name`, an env var's `value` beside its
//! `name`, `kind` at the root); splicing needs byte positions. saphyr-parser gives both: every
//! event carries a start..end span. Its positions count characters, so they are turned into byte
//! offsets here, once, with a fast path for ASCII documents (almost all of them).

use std::borrow::Cow;
use std::ops::Range;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// A scalar: its decoded value and where its source text is.
#[derive(Debug, Clone)]
pub struct Scalar<'a> {
    pub value: Cow<'a, str>,
    pub style: ScalarStyle,
    /// Byte range of the scalar's source text in the chunk, quotes included; for block scalars
    /// the content lines (the `|`/`>` header is before it).
    pub span: Range<usize>,
    /// 1-based line in the whole stream.
    pub line: usize,
    /// Whether the scalar carries an explicit tag (`!!binary`, `!custom`): such values are not
    /// plain strings and are left alone.
    pub tagged: bool,
}

impl Scalar<'_> {
    /// YAML's null: an empty plain scalar, `~` or `null`.
    pub fn is_null(&self) -> bool {
        self.style == ScalarStyle::Plain
            && matches!(&*self.value, "" | "~" | "null" | "Null" | "NULL")
    }

    /// The same scalar, no longer borrowing the text it was parsed from.
    pub fn into_owned(self) -> Scalar<'static> {
        Scalar {
            value: Cow::Owned(self.value.into_owned()),
            ..self
        }
    }
}

#[derive(Debug, Clone)]
pub enum Node<'a> {
    Scalar(Scalar<'a>),
    Seq(Vec<Node<'a>>),
    Map(Vec<(Node<'a>, Node<'a>)>),
    /// `*anchor`: the anchored node is visited where it is defined.
    Alias,
}

impl<'a> Node<'a> {
    /// The value under `key` of a mapping.
    pub fn get(&self, key: &str) -> Option<&Node<'a>> {
        match self {
            Node::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_scalar(&self) -> Option<&Scalar<'a>> {
        match self {
            Node::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// The text of an untagged scalar.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::Scalar(s) if !s.tagged => Some(&s.value),
            _ => None,
        }
    }

    /// The string at a dotted path of mapping keys, e.g. `metadata.name`.
    pub fn str_at(&self, dotted: &str) -> Option<&str> {
        dotted
            .split('.')
            .try_fold(self, |node, key| node.get(key))
            .and_then(Node::as_str)
    }
}

/// A YAML syntax error, positioned in the whole stream.
#[derive(Debug, Clone, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Turns saphyr's character positions into byte offsets.
enum Offsets {
    Ascii,
    /// Byte offset of every character, plus one for the end.
    Table(Vec<u32>),
}

impl Offsets {
    fn new(text: &str) -> Offsets {
        if text.is_ascii() {
            Offsets::Ascii
        } else {
            let mut table: Vec<u32> = text.char_indices().map(|(i, _)| i as u32).collect();
            table.push(text.len() as u32);
            Offsets::Table(table)
        }
    }

    fn byte(&self, char_index: usize) -> usize {
        match self {
            Offsets::Ascii => char_index,
            Offsets::Table(t) => t[char_index.min(t.len() - 1)] as usize,
        }
    }
}

/// Parses every document in `text`. `first_line` is the stream line where `text` begins.
pub fn parse_documents(text: &str, first_line: usize) -> Result<Vec<Node<'_>>, SyntaxError> {
    let offsets = Offsets::new(text);
    let mut docs = Vec::new();
    // Containers under construction: a sequence's items, or a mapping's flat key/value list.
    let mut stack: Vec<(bool, Vec<Node<'_>>)> = Vec::new();
    let mut root: Option<Node<'_>> = None;
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| syntax_error(&e, first_line))?;
        let node = match event {
            Event::DocumentStart(_) => {
                root = None;
                continue;
            }
            Event::DocumentEnd => {
                docs.push(root.take().unwrap_or(Node::Map(Vec::new())));
                continue;
            }
            Event::SequenceStart(..) => {
                stack.push((false, Vec::new()));
                continue;
            }
            Event::MappingStart(..) => {
                stack.push((true, Vec::new()));
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (is_map, items) = stack.pop().expect("balanced events");
                if is_map {
                    let mut entries = Vec::with_capacity(items.len() / 2);
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        entries.push((k, v));
                    }
                    Node::Map(entries)
                } else {
                    Node::Seq(items)
                }
            }
            Event::Scalar(value, style, _anchor, tag) => Node::Scalar(Scalar {
                span: scalar_span(text, &offsets, &span, style),
                value,
                style,
                line: first_line + span.start.line() - 1,
                tagged: tag.is_some(),
            }),
            Event::Alias(_) => Node::Alias,
            Event::StreamStart | Event::StreamEnd | Event::Nothing => continue,
        };
        match stack.last_mut() {
            Some((_, items)) => items.push(node),
            None => root = Some(node),
        }
    }
    Ok(docs)
}

fn syntax_error(e: &saphyr_parser::ScanError, first_line: usize) -> SyntaxError {
    SyntaxError {
        line: first_line + e.marker().line() - 1,
        column: e.marker().col() + 1,
        message: e.info().to_string(),
    }
}

/// Parses `text` only to validate it, returning how many documents it holds. For documents no
/// rule looks into (CRDs are 80% of the corpus's bytes), building the tree is the largest cost
/// after parsing itself.
pub fn validate_documents(text: &str, first_line: usize) -> Result<usize, SyntaxError> {
    let mut documents = 0;
    for event in Parser::new_from_str(text) {
        let (event, _) = event.map_err(|e| syntax_error(&e, first_line))?;
        if matches!(event, Event::DocumentEnd) {
            documents += 1;
        }
    }
    Ok(documents)
}

/// The parser's span in bytes. For quoted scalars the parser's span can run on past the closing
/// quote, over blanks and even a comment (`"a" # note`); it is cut at the real closing quote,
/// found by reading the quoted text, as every user of spans assumes.
fn scalar_span(text: &str, offsets: &Offsets, span: &Span, style: ScalarStyle) -> Range<usize> {
    let (start, end) = (
        offsets.byte(span.start.index()),
        offsets.byte(span.end.index()),
    );
    let b = &text.as_bytes()[start..end];
    let close = match style {
        ScalarStyle::DoubleQuoted => {
            let mut i = 1;
            loop {
                match b.get(i) {
                    Some(b'\\') => i += 2,
                    Some(b'"') => break Some(i),
                    Some(_) => i += 1,
                    None => break None,
                }
            }
        }
        ScalarStyle::SingleQuoted => {
            let mut i = 1;
            loop {
                match (b.get(i), b.get(i + 1)) {
                    (Some(b'\''), Some(b'\'')) => i += 2,
                    (Some(b'\''), _) => break Some(i),
                    (Some(_), _) => i += 1,
                    (None, _) => break None,
                }
            }
        }
        _ => None,
    };
    match close {
        Some(i) => start..start + i + 1,
        None => start..end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_bytes_even_after_multibyte_text() {
        let text = "a: ä é\nimage: \"nginx\"\n";
        let docs = parse_documents(text, 10).unwrap();
        let s = docs[0].get("image").unwrap().as_scalar().unwrap();
        assert_eq!(&text[s.span.clone()], "\"nginx\"");
        assert_eq!(s.line, 11);
    }

    #[test]
    fn quoted_spans_end_at_the_quote_in_flow_collections() {
        let text = "args: [\"--image\" , 'ngi''nx'  ]\nb: \"x\\\"y\" # note\n";
        let docs = parse_documents(text, 1).unwrap();
        let Some(Node::Seq(items)) = docs[0].get("args") else {
            panic!()
        };
        let spans: Vec<&str> = items
            .iter()
            .map(|i| &text[i.as_scalar().unwrap().span.clone()])
            .collect();
        assert_eq!(spans, ["\"--image\"", "'ngi''nx'"]);
        let b = docs[0].get("b").unwrap().as_scalar().unwrap();
        assert_eq!(&text[b.span.clone()], "\"x\\\"y\"");
    }

    #[test]
    fn syntax_errors_carry_stream_lines() {
        let e = parse_documents("a: 1\nb: [\n", 100).unwrap_err();
        assert!(e.line >= 101, "{e}");
    }

    #[test]
    fn empty_and_multiple_documents() {
        let docs = parse_documents("---\n# only a comment\n---\nkind: A\n", 1).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].str_at("kind"), Some("A"));
    }
}
