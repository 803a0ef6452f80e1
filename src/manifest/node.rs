//! A YAML document as a tree whose scalars remember where their bytes are.
//!
//! Rules need structure (a container's `image` beside its `name`, an env var's `value` beside its
//! `name`, `kind` at the root); splicing needs byte positions. saphyr-parser gives both: every
//! event carries a start..end span. Its positions count characters, so they are turned into byte
//! offsets here, once, with a fast path for ASCII documents (almost all of them).

use std::borrow::Cow;
use std::ops::Range;

use rustc_hash::FxHashMap;
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
    /// Whether the scalar carries an explicit tag that makes it something other than a string
    /// (`!!binary`, `!!int`, `!custom`): such values are left alone. `!!str` and the
    /// non-specific `!` say "a string", so a scalar tagged so is not `tagged`.
    pub tagged: bool,
    /// Whether the scalar is anchored (`&a`), or is a copy of an anchored scalar standing where
    /// an alias (`*a`) was: the two share one source span, so an edit of one is an edit of
    /// both and the alias follows its anchor.
    pub anchored: bool,
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
    /// A scalar; an alias of an anchored scalar is a copy of it (same span, `anchored`).
    Scalar(Scalar<'a>),
    Seq(Vec<Node<'a>>),
    Map(Vec<(Node<'a>, Node<'a>)>),
    /// `*anchor` of a collection: the anchored node is visited where it is defined. Copying
    /// collections for their aliases would let a few lines expand into billions of nodes.
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

    /// The same node, no longer borrowing the text it was parsed from.
    fn into_owned(self) -> Node<'static> {
        match self {
            Node::Scalar(s) => Node::Scalar(s.into_owned()),
            Node::Seq(items) => Node::Seq(items.into_iter().map(Node::into_owned).collect()),
            Node::Map(entries) => Node::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect(),
            ),
            Node::Alias => Node::Alias,
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
    /// Valid YAML, but collections nest deeper than [`MAX_DEPTH`].
    pub too_deep: bool,
}

/// How deep collections may nest. Walking a tree is recursive (and so is dropping one), so
/// without a bound a few kilobytes of `[` overflow the stack; saphyr-parser itself stops flow
/// collections at 255 levels. Real manifests nest a few dozen levels at most.
pub const MAX_DEPTH: usize = 256;

/// saphyr-parser refuses a tab after a mapping's `:` when a letter or `-` follows
/// (`image:\tnginx:1`), which YAML allows (`s-separate-in-line` is spaces or tabs) and which
/// Helm and kubectl accept.
const TAB_AFTER_COLON: &str = "':' must be followed by a valid YAML whitespace";
/// Retries past such tabs, one per tab, before the error stands.
const MAX_TAB_FIXES: usize = 64;

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
    match parse_exact(text, first_line) {
        Ok(docs) => Ok(docs),
        Err(e) => past_tabs(text, e, first_line, |fixed| {
            parse_exact(fixed, first_line)
                .map(|docs| docs.into_iter().map(Node::into_owned).collect())
        }),
    }
}

/// After saphyr-parser refused `text` with `e`: when for a tab after `:`, `parse` again a copy
/// with spaces for such tabs. That tab is separation, not content: with a space there the tree
/// and every span are the same (values then come from the copy).
fn past_tabs<T>(
    text: &str,
    mut e: saphyr_parser::ScanError,
    first_line: usize,
    parse: impl Fn(&str) -> Result<T, saphyr_parser::ScanError>,
) -> Result<T, SyntaxError> {
    let mut fixed = text.to_string();
    for _ in 0..MAX_TAB_FIXES {
        if e.info() != TAB_AFTER_COLON || !space_tabs_before(&mut fixed, e.marker().index()) {
            break;
        }
        match parse(&fixed) {
            Ok(t) => return Ok(t),
            Err(next) => e = next,
        }
    }
    Err(syntax_error(&e, first_line))
}

/// Turns the tabs between the `:` and character `index` of `text` into spaces (same bytes,
/// same character count, so every span stays where it was); false when there is no such tab.
fn space_tabs_before(text: &mut String, index: usize) -> bool {
    let at = match Offsets::new(text) {
        Offsets::Ascii => index,
        Offsets::Table(t) => t[index.min(t.len() - 1)] as usize,
    };
    let head = &text.as_bytes()[..at.min(text.len())];
    let tabs = head.iter().rev().take_while(|b| **b == b'\t').count();
    if tabs == 0 || head.len() == tabs || head[head.len() - tabs - 1] != b':' {
        return false;
    }
    let start = head.len() - tabs;
    text.replace_range(start..start + tabs, &" ".repeat(tabs));
    true
}

/// The parse proper, failing with saphyr's error as it is.
fn parse_exact(text: &str, first_line: usize) -> Result<Vec<Node<'_>>, saphyr_parser::ScanError> {
    let offsets = Offsets::new(text);
    let mut docs = Vec::new();
    // Containers under construction: a sequence's items, or a mapping's flat key/value list.
    let mut stack: Vec<(bool, Vec<Node<'_>>)> = Vec::new();
    let mut root: Option<Node<'_>> = None;
    // Anchored scalars of the current document, by saphyr's anchor id, for their aliases.
    let mut anchors: FxHashMap<usize, Scalar<'_>> = FxHashMap::default();
    for event in Parser::new_from_str(text) {
        let (event, span) = event?;
        if stack.len() >= MAX_DEPTH
            && matches!(event, Event::SequenceStart(..) | Event::MappingStart(..))
        {
            return Err(saphyr_parser::ScanError::new_str(span.start, TOO_DEEP));
        }
        let node = match event {
            Event::DocumentStart(_) => {
                root = None;
                anchors.clear();
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
            Event::Scalar(value, style, anchor, tag) => {
                let s = Scalar {
                    span: scalar_span(text, &offsets, &span, style),
                    value,
                    style,
                    line: first_line + span.start.line() - 1,
                    tagged: tag.is_some_and(|t| !is_string_tag(&t)),
                    anchored: anchor != 0,
                };
                if anchor != 0 {
                    anchors.insert(anchor, s.clone());
                }
                Node::Scalar(s)
            }
            Event::Alias(id) => match anchors.get(&id) {
                Some(s) => Node::Scalar(Scalar {
                    line: first_line + span.start.line() - 1,
                    ..s.clone()
                }),
                None => Node::Alias,
            },
            Event::StreamStart | Event::StreamEnd | Event::Nothing => continue,
        };
        match stack.last_mut() {
            Some((_, items)) => items.push(node),
            None => root = Some(node),
        }
    }
    Ok(docs)
}

/// Our depth error, carried as saphyr's so that both take one path to a [`SyntaxError`].
const TOO_DEEP: &str = "collections nested too deep";

fn syntax_error(e: &saphyr_parser::ScanError, first_line: usize) -> SyntaxError {
    // saphyr-parser's own bound on flow collections says "recursion limit exceeded".
    let too_deep = e.info() == TOO_DEEP || e.info() == "recursion limit exceeded";
    SyntaxError {
        line: first_line + e.marker().line() - 1,
        column: e.marker().col() + 1,
        message: if too_deep {
            format!(
                "collections (mappings and sequences) nest more than {MAX_DEPTH} levels deep, more than kubectl-airgap reads"
            )
        } else {
            e.info().to_string()
        },
        too_deep,
    }
}

/// `!!str` (also written `!<tag:yaml.org,2002:str>`) and the non-specific `!`: tags that say
/// the scalar is a string. saphyr-parser gives `!` as an empty handle with suffix `!`.
fn is_string_tag(tag: &saphyr_parser::Tag) -> bool {
    matches!(
        (tag.handle.as_str(), tag.suffix.as_str()),
        ("tag:yaml.org,2002:", "str") | ("", "tag:yaml.org,2002:str" | "!")
    )
}

/// Parses `text` only to validate it, returning how many documents it holds. For documents no
/// rule looks into (CRDs are 80% of the corpus's bytes), building the tree is the largest cost
/// after parsing itself.
pub fn validate_documents(text: &str, first_line: usize) -> Result<usize, SyntaxError> {
    fn count(text: &str) -> Result<usize, saphyr_parser::ScanError> {
        let mut documents = 0;
        for event in Parser::new_from_str(text) {
            if matches!(event?.0, Event::DocumentEnd) {
                documents += 1;
            }
        }
        Ok(documents)
    }
    count(text).or_else(|e| past_tabs(text, e, first_line, count))
}

/// The parser's span in bytes. For quoted scalars the parser's span can run on past the closing
/// quote, over blanks and even a comment (`"a" # note`); it is cut at the real closing quote,
/// found by reading the quoted text, as every user of spans assumes.
fn scalar_span(text: &str, offsets: &Offsets, span: &Span, style: ScalarStyle) -> Range<usize> {
    let (start, end) = (
        match style {
            ScalarStyle::Literal | ScalarStyle::Folded => offsets.byte(span.start.index()),
            _ => skip_properties(text, offsets.byte(span.start.index())),
        },
        offsets.byte(span.end.index()),
    );
    let end = end.max(start);
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

/// The span saphyr-parser gives a scalar with an anchor or a tag starts at those properties
/// (`&a !!str nginx`); the scalar's own text starts after them, their blanks, and any comment
/// line between them and it.
fn skip_properties(text: &str, mut at: usize) -> usize {
    let b = text.as_bytes();
    while matches!(b.get(at), Some(b'&' | b'!')) {
        // A verbatim tag `!<...>` may hold nothing but URI characters: no blank ends it early.
        while at < b.len() && !matches!(b[at], b' ' | b'\t' | b'\n' | b'\r') {
            at += 1;
        }
        loop {
            match b.get(at) {
                Some(b' ' | b'\t' | b'\n' | b'\r') => at += 1,
                Some(b'#') => {
                    while at < b.len() && b[at] != b'\n' {
                        at += 1;
                    }
                }
                _ => break,
            }
        }
    }
    at
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
