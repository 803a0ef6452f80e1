//! A fast recognizer for the block YAML that Helm writes, building the same tree as the parser.
//!
//! General YAML parsers (saphyr-parser and yaml-rust2 alike) read dense manifests at about
//! 23 MB/s on this machine class, well under what a post-renderer in front of every install
//! should cost. Helm output uses a small part of YAML: block mappings and sequences, one-line
//! plain and quoted scalars, literal block scalars, one-line flow collections, comments. This
//! module reads exactly that part, line by line, and gives up (returns `None`) on anything else:
//! tabs or CRs in structure, anchors, aliases, tags, folded or empty block scalars, multi-line
//! plain or quoted scalars, escapes, complex keys, directives, `...`. The caller then uses the
//! full parser, so a document is either read by this module into the tree the parser would have
//! built (`tests/it/fast_path.rs` checks that on the corpus and on generated input) or read by the
//! parser. Nothing is accepted that the parser would reject.

use std::borrow::Cow;
use std::cell::Cell;

use saphyr_parser::ScalarStyle;

use super::node::{MAX_DEPTH, Node, Scalar};

/// The input is outside the subset: use the full parser.
#[derive(Debug)]
struct Fallback;

type R<T> = Result<T, Fallback>;

struct Line {
    start: usize,
    /// End of the line's text, before its `\n`.
    end: usize,
}

struct Reader<'a> {
    text: &'a str,
    lines: Vec<Line>,
    /// Index of the current line.
    i: usize,
    /// A node that starts inside the current line (after `- `), as (column, byte offset).
    virtual_start: Option<(usize, usize)>,
    first_line: usize,
    /// The last line `peek` vetted, and its answer, since every level of nesting peeks again.
    peeked: Option<(usize, usize, usize)>,
    /// Items and entries under construction at every depth; each container takes its tail
    /// into a Vec of exact size, so no Vec grows by reallocation.
    items: Vec<Node<'a>>,
    entries: Vec<(Node<'a>, Node<'a>)>,
    /// Collections open around the current one: past [`MAX_DEPTH`] the full parser takes over
    /// (and refuses the document), so that this recursive reader never runs out of stack.
    depth: Cell<usize>,
}

/// Characters that may not start a plain scalar (YAML's c-indicator set).
fn is_indicator(b: u8) -> bool {
    b"-?:,[]{}#&*!|>'\"%@`".contains(&b)
}

impl<'a> Reader<'a> {
    fn new(text: &'a str, first_line: usize) -> Reader<'a> {
        let mut lines = Vec::with_capacity(text.len() / 24 + 1);
        let mut start = 0;
        let bytes = text.as_bytes();
        while start < bytes.len() {
            let end = match memchr(b'\n', &bytes[start..]) {
                Some(n) => start + n,
                None => bytes.len(),
            };
            lines.push(Line { start, end });
            start = end + 1;
        }
        Reader {
            text,
            lines,
            i: 0,
            virtual_start: None,
            first_line,
            peeked: None,
            items: Vec::with_capacity(64),
            entries: Vec::with_capacity(64),
            depth: Cell::new(0),
        }
    }

    fn line_text(&self, i: usize) -> &'a str {
        &self.text[self.lines[i].start..self.lines[i].end]
    }

    fn is_marker(line: &str, marker: &str) -> bool {
        line.starts_with(marker)
            && matches!(line.as_bytes().get(3), None | Some(b' ' | b'\t' | b'\r'))
    }

    /// The next line with content, as (indent, byte offset of its content), without consuming
    /// it; `None` at a document marker or the end.
    fn peek(&mut self) -> R<Option<(usize, usize)>> {
        if let Some(v) = self.virtual_start {
            return Ok(Some(v));
        }
        if let Some((i, indent, pos)) = self.peeked
            && i == self.i
        {
            return Ok(Some((indent, pos)));
        }
        while self.i < self.lines.len() {
            let line = self.line_text(self.i);
            if Self::is_marker(line, "---") || Self::is_marker(line, "...") {
                return Ok(None);
            }
            let indent = line.bytes().take_while(|&b| b == b' ').count();
            let rest = &line.as_bytes()[indent..];
            if rest.is_empty() || rest[0] == b'#' {
                if rest.contains(&b'\r') {
                    return Err(Fallback);
                }
                self.i += 1;
                continue;
            }
            if memchr2(b'\t', b'\r', line.as_bytes()).is_some() {
                return Err(Fallback);
            }
            let pos = self.lines[self.i].start + indent;
            self.peeked = Some((self.i, indent, pos));
            return Ok(Some((indent, pos)));
        }
        Ok(None)
    }

    fn advance(&mut self) {
        self.virtual_start = None;
        self.i += 1;
    }

    fn line_end(&self) -> usize {
        self.lines[self.i].end
    }

    fn line_no(&self) -> usize {
        self.first_line + self.i
    }

    fn is_seq_entry(&self, pos: usize) -> bool {
        let b = self.text.as_bytes();
        b[pos] == b'-' && (pos + 1 == self.line_end() || b[pos + 1] == b' ')
    }

    fn scalar(
        &self,
        value: Cow<'a, str>,
        style: ScalarStyle,
        start: usize,
        end: usize,
    ) -> Node<'a> {
        Node::Scalar(Scalar {
            value,
            style,
            span: start..end,
            line: self.line_no(),
            tagged: false,
            anchored: false,
        })
    }

    fn null(&self, at: usize) -> Node<'a> {
        self.scalar(Cow::Borrowed(""), ScalarStyle::Plain, at, at)
    }

    /// A node in block context below a parent at `parent` indentation; `indentless` allows a
    /// sequence at the parent's own indentation (`key:\n- item`).
    fn block_node(
        &mut self,
        parent: isize,
        indentless: Option<usize>,
        null_at: usize,
    ) -> R<Node<'a>> {
        match self.peek()? {
            Some((indent, pos)) if indent as isize > parent => {
                if self.is_seq_entry(pos) {
                    self.sequence(indent)
                } else if self.key_colon(pos, self.line_end()).is_some() {
                    self.mapping(indent)
                } else {
                    Err(Fallback)
                }
            }
            Some((indent, pos)) if Some(indent) == indentless && self.is_seq_entry(pos) => {
                self.sequence(indent)
            }
            _ => Ok(self.null(null_at)),
        }
    }

    /// One level deeper; a failure abandons the whole parse, so only success needs [`leave`].
    ///
    /// [`leave`]: Reader::leave
    fn enter(&self) -> R<()> {
        let d = self.depth.get() + 1;
        if d > MAX_DEPTH {
            return Err(Fallback);
        }
        self.depth.set(d);
        Ok(())
    }

    fn leave(&self) {
        self.depth.set(self.depth.get() - 1);
    }

    fn sequence(&mut self, indent: usize) -> R<Node<'a>> {
        self.enter()?;
        let base = self.items.len();
        while let Some((ind, pos)) = self.peek()? {
            if ind < indent || !self.is_seq_entry(pos) {
                break;
            }
            if ind > indent {
                return Err(Fallback);
            }
            let end = self.line_end();
            let after = pos + 1;
            let content = self.after_indicator(after, end)?;
            let item = match content {
                None => {
                    self.advance();
                    self.block_node(indent as isize, None, after)?
                }
                Some(content) => {
                    let column = indent + (content - pos);
                    if self.is_seq_entry(content) {
                        self.virtual_start = Some((column, content));
                        self.sequence(column)?
                    } else if self.key_colon(content, end).is_some() {
                        self.virtual_start = Some((column, content));
                        self.mapping(column)?
                    } else {
                        self.inline_value(content, indent as isize)?
                    }
                }
            };
            self.items.push(item);
        }
        self.leave();
        Ok(Node::Seq(self.items.drain(base..).collect()))
    }

    fn mapping(&mut self, indent: usize) -> R<Node<'a>> {
        self.enter()?;
        let base = self.entries.len();
        while let Some((ind, pos)) = self.peek()? {
            if ind < indent {
                break;
            }
            if ind > indent {
                return Err(Fallback);
            }
            if self.is_seq_entry(pos) {
                break;
            }
            let end = self.line_end();
            let colon = self.key_colon(pos, end).ok_or(Fallback)?;
            let key = self.key(pos, colon)?;
            let value = match self.after_indicator(colon + 1, end)? {
                None => {
                    self.advance();
                    self.block_node(indent as isize, Some(indent), colon)?
                }
                Some(content) => self.inline_value(content, indent as isize)?,
            };
            self.entries.push((key, value));
        }
        self.leave();
        Ok(Node::Map(self.entries.drain(base..).collect()))
    }

    /// What follows a `- ` or `key:` on its line: the offset of an inline value, or `None` when
    /// the value is on the following lines (nothing but blanks or a comment follows).
    fn after_indicator(&self, after: usize, end: usize) -> R<Option<usize>> {
        let b = self.text.as_bytes();
        let spaces = b[after..end].iter().take_while(|&&c| c == b' ').count();
        let content = after + spaces;
        if content == end {
            return Ok(None);
        }
        if b[content] == b'#' {
            // `key:#x` is not a comment; the indicator checks keep it from getting here.
            return if spaces == 0 { Err(Fallback) } else { Ok(None) };
        }
        Ok(Some(content))
    }

    /// Where the `:` of `key: value` is, when the content at `pos` is a simple key.
    fn key_colon(&self, pos: usize, end: usize) -> Option<usize> {
        let b = self.text.as_bytes();
        match b[pos] {
            q @ (b'"' | b'\'') => {
                let close = pos + 1 + memchr(q, &b[pos + 1..end])?;
                (close + 1 < end
                    && b[close + 1] == b':'
                    && (close + 2 == end || b[close + 2] == b' '))
                    .then_some(close + 1)
            }
            c if is_indicator(c) => None,
            _ => {
                // Lines are short: a byte loop beats memchr's per-call setup here.
                for k in pos..end {
                    match b[k] {
                        b':' if k + 1 == end || b[k + 1] == b' ' => return Some(k),
                        b'#' if b[k - 1] == b' ' => return None,
                        _ => {}
                    }
                }
                None
            }
        }
    }

    fn key(&self, pos: usize, colon: usize) -> R<Node<'a>> {
        let b = self.text.as_bytes();
        match b[pos] {
            b'"' => {
                let inner = &self.text[pos + 1..colon - 1];
                if inner.contains(['\\', '"']) {
                    return Err(Fallback);
                }
                Ok(self.scalar(Cow::Borrowed(inner), ScalarStyle::DoubleQuoted, pos, colon))
            }
            b'\'' => {
                let inner = &self.text[pos + 1..colon - 1];
                if inner.contains('\'') {
                    return Err(Fallback);
                }
                Ok(self.scalar(Cow::Borrowed(inner), ScalarStyle::SingleQuoted, pos, colon))
            }
            _ => {
                let key = &self.text[pos..colon];
                if key.ends_with(' ') {
                    return Err(Fallback);
                }
                Ok(self.scalar(Cow::Borrowed(key), ScalarStyle::Plain, pos, colon))
            }
        }
    }

    /// Only blanks or a comment may follow a value on its line.
    fn rest_is_blank(&self, from: usize, end: usize) -> bool {
        let rest = &self.text.as_bytes()[from..end];
        let spaces = rest.iter().take_while(|&&b| b == b' ').count();
        spaces == rest.len() || (spaces > 0 && rest[spaces] == b'#')
    }

    /// A value that starts on the current line at `pos`; consumes the line (and, for a block
    /// scalar, its content lines).
    fn inline_value(&mut self, pos: usize, parent: isize) -> R<Node<'a>> {
        let end = self.line_end();
        let b = self.text.as_bytes();
        let node = match b[pos] {
            b'|' => return self.literal(pos, parent),
            b'\'' | b'"' => {
                let (node, after) = self.quoted(pos, end)?;
                if !self.rest_is_blank(after, end) {
                    return Err(Fallback);
                }
                node
            }
            b'[' | b'{' => {
                let (node, after) = self.flow(pos, end)?;
                if !self.rest_is_blank(after, end) {
                    return Err(Fallback);
                }
                node
            }
            b'-' if pos + 1 < end && b[pos + 1] != b' ' => self.plain(pos, end)?,
            c if is_indicator(c) => return Err(Fallback),
            _ => self.plain(pos, end)?,
        };
        self.advance();
        Ok(node)
    }

    fn plain(&self, pos: usize, end: usize) -> R<Node<'a>> {
        let b = self.text.as_bytes();
        let mut stop = end;
        for k in pos..end {
            match b[k] {
                b'#' if b[k - 1] == b' ' => {
                    stop = k;
                    break;
                }
                b':' if k + 1 == end || b[k + 1] == b' ' => return Err(Fallback),
                _ => {}
            }
        }
        let value = self.text[pos..stop].trim_end_matches(' ');
        Ok(self.scalar(
            Cow::Borrowed(value),
            ScalarStyle::Plain,
            pos,
            pos + value.len(),
        ))
    }

    /// A one-line quoted scalar; returns it and the offset after its closing quote.
    fn quoted(&self, pos: usize, end: usize) -> R<(Node<'a>, usize)> {
        let b = self.text.as_bytes();
        let q = b[pos];
        if q == b'"' {
            let close = pos + 1 + memchr(b'"', &b[pos + 1..end]).ok_or(Fallback)?;
            let inner = &self.text[pos + 1..close];
            if inner.contains('\\') {
                return Err(Fallback);
            }
            let node = self.scalar(
                Cow::Borrowed(inner),
                ScalarStyle::DoubleQuoted,
                pos,
                close + 1,
            );
            return Ok((node, close + 1));
        }
        let mut j = pos + 1;
        let mut doubled = false;
        loop {
            let k = j + memchr(b'\'', &b[j..end]).ok_or(Fallback)?;
            if k + 1 < end && b[k + 1] == b'\'' {
                doubled = true;
                j = k + 2;
                continue;
            }
            let inner = &self.text[pos + 1..k];
            let value = if doubled {
                Cow::Owned(inner.replace("''", "'"))
            } else {
                Cow::Borrowed(inner)
            };
            return Ok((
                self.scalar(value, ScalarStyle::SingleQuoted, pos, k + 1),
                k + 1,
            ));
        }
    }

    /// A flow collection that opens and closes on this line.
    fn flow(&self, pos: usize, end: usize) -> R<(Node<'a>, usize)> {
        self.enter()?;
        let b = self.text.as_bytes();
        let skip = |mut j: usize| {
            while j < end && b[j] == b' ' {
                j += 1;
            }
            j
        };
        let is_map = b[pos] == b'{';
        let close = if is_map { b'}' } else { b']' };
        let mut j = skip(pos + 1);
        let mut items = Vec::new();
        let mut entries = Vec::new();
        if j < end && b[j] == close {
            let node = if is_map {
                Node::Map(entries)
            } else {
                Node::Seq(items)
            };
            self.leave();
            return Ok((node, j + 1));
        }
        loop {
            if is_map {
                let (key, after) = self.flow_scalar(j, end, true)?;
                if !(after + 1 < end && b[after] == b':' && b[after + 1] == b' ') {
                    return Err(Fallback);
                }
                let (value, after) = self.flow_item(skip(after + 1), end)?;
                entries.push((key, value));
                j = skip(after);
            } else {
                let (item, after) = self.flow_item(j, end)?;
                items.push(item);
                j = skip(after);
            }
            match b.get(j) {
                Some(&c) if c == close && j < end => break,
                Some(b',') if j < end => {
                    j = skip(j + 1);
                    if j >= end || b[j] == close || b[j] == b',' {
                        return Err(Fallback);
                    }
                }
                _ => return Err(Fallback),
            }
        }
        let node = if is_map {
            Node::Map(entries)
        } else {
            Node::Seq(items)
        };
        self.leave();
        Ok((node, j + 1))
    }

    fn flow_item(&self, j: usize, end: usize) -> R<(Node<'a>, usize)> {
        match self.text.as_bytes().get(j) {
            Some(b'[' | b'{') if j < end => self.flow(j, end),
            _ => self.flow_scalar(j, end, false),
        }
    }

    /// A scalar inside a flow collection; a key ends before `: `.
    fn flow_scalar(&self, j: usize, end: usize, key: bool) -> R<(Node<'a>, usize)> {
        let b = self.text.as_bytes();
        if j >= end {
            return Err(Fallback);
        }
        if b[j] == b'"' || b[j] == b'\'' {
            let (node, after) = self.quoted(j, end)?;
            return Ok((node, after));
        }
        if is_indicator(b[j]) {
            return Err(Fallback);
        }
        let mut k = j;
        while k < end {
            match b[k] {
                b',' | b'[' | b']' | b'{' | b'}' => break,
                b':' => {
                    let next = b.get(k + 1).copied();
                    if key && next == Some(b' ') {
                        break;
                    }
                    if matches!(next, None | Some(b' ' | b',' | b']' | b'}' | b'[' | b'{')) {
                        return Err(Fallback);
                    }
                }
                b'#' if b[k - 1] == b' ' => return Err(Fallback),
                _ => {}
            }
            k += 1;
        }
        let value = self.text[j..k].trim_end_matches(' ');
        if value.is_empty() {
            return Err(Fallback);
        }
        Ok((
            self.scalar(Cow::Borrowed(value), ScalarStyle::Plain, j, j + value.len()),
            k,
        ))
    }

    /// A literal block scalar (`|`, `|-`, `|+`) whose header is at `pos`.
    fn literal(&mut self, pos: usize, parent: isize) -> R<Node<'a>> {
        let end = self.line_end();
        let b = self.text.as_bytes();
        let mut h = pos + 1;
        let chomp = match b.get(h) {
            Some(b'-') if h < end => {
                h += 1;
                b'-'
            }
            Some(b'+') if h < end => {
                h += 1;
                b'+'
            }
            _ => b' ',
        };
        if !self.rest_is_blank(h, end) {
            return Err(Fallback);
        }
        let header_line = self.i;
        let mut first = self.i + 1;
        // The content indentation is that of the first non-blank line.
        let mut leading_blank_max = 0;
        let content_indent = loop {
            let Some(_) = self.lines.get(first) else {
                return Err(Fallback);
            };
            let line = self.line_text(first);
            let indent = line.bytes().take_while(|&b| b == b' ').count();
            if indent == line.len() {
                leading_blank_max = leading_blank_max.max(indent);
                first += 1;
                continue;
            }
            break indent;
        };
        if (content_indent as isize) <= parent || leading_blank_max > content_indent {
            return Err(Fallback);
        }
        if first != header_line + 1 {
            // Leading blank lines: rare in charts, and their spans differ; leave to the parser.
            return Err(Fallback);
        }
        let mut value = String::new();
        let mut pending_blank = 0;
        let mut k = first;
        let mut ended_with_newline = true;
        while k < self.lines.len() {
            let line = self.line_text(k);
            let indent = line.bytes().take_while(|&b| b == b' ').count();
            if indent == line.len() {
                if indent > content_indent || line.contains('\r') {
                    return Err(Fallback);
                }
                pending_blank += 1;
                k += 1;
                continue;
            }
            if indent < content_indent {
                break;
            }
            if line.contains('\r') {
                return Err(Fallback);
            }
            if k > first {
                value.push('\n');
            }
            for _ in 0..pending_blank {
                value.push('\n');
            }
            pending_blank = 0;
            value.push_str(&line[content_indent..]);
            ended_with_newline = self.lines[k].end < self.text.len();
            k += 1;
        }
        if !ended_with_newline {
            return Err(Fallback);
        }
        match chomp {
            b'-' => {}
            b'+' => {
                value.push('\n');
                for _ in 0..pending_blank {
                    value.push('\n');
                }
            }
            _ => value.push('\n'),
        }
        let start = self.lines[first].start + content_indent;
        let span_end = self.lines.get(k).map_or(self.text.len(), |l| l.start);
        let node = Node::Scalar(Scalar {
            value: Cow::Owned(value),
            style: ScalarStyle::Literal,
            span: start..span_end,
            line: self.first_line + first,
            tagged: false,
            anchored: false,
        });
        self.virtual_start = None;
        self.i = k;
        Ok(node)
    }
}

use memchr::{memchr, memchr2};

/// YAML allows only printable characters (and tab, LF, CR) anywhere in a stream; the parser
/// rejects the rest, so must we. A byte order mark is left to the parser too.
fn all_printable(text: &str) -> bool {
    // Branch-free per 64-byte block, so the compiler can vectorize it; this runs over every byte.
    let bad = |b: u8| ((b < 0x20) & (b != b'\t') & (b != b'\n') & (b != b'\r')) | (b == 0x7f);
    let ascii_ok = text
        .as_bytes()
        .chunks(64)
        .all(|block| !block.iter().fold(false, |acc, &b| acc | bad(b)));
    ascii_ok
        && (text.is_ascii()
            || !text.chars().any(|c| {
                matches!(c, '\u{80}'..='\u{84}' | '\u{86}'..='\u{9f}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}')
            }))
}

/// Reads every document of `text` if all of it is in the subset; `None` sends the caller to the
/// full parser.
pub fn parse_documents(text: &str, first_line: usize) -> Option<Vec<Node<'_>>> {
    if !all_printable(text) {
        return None;
    }
    let mut r = Reader::new(text, first_line);
    let mut docs = Vec::new();
    let mut explicit_start = false;
    loop {
        match r.peek().ok()? {
            Some((indent, pos)) => {
                if indent != 0 {
                    return None;
                }
                let node = if r.is_seq_entry(pos) {
                    r.sequence(0).ok()?
                } else if r.key_colon(pos, r.line_end()).is_some() {
                    r.mapping(0).ok()?
                } else {
                    return None;
                };
                docs.push(node);
                explicit_start = false;
                if r.peek().ok()?.is_some() {
                    return None;
                }
            }
            None if r.i >= r.lines.len() => {
                if explicit_start {
                    docs.push(r.null(text.len()));
                }
                return Some(docs);
            }
            None => {
                let line = r.line_text(r.i);
                if line.trim_end_matches(' ') != "---" {
                    return None;
                }
                if explicit_start {
                    docs.push(r.null(r.lines[r.i].start));
                }
                explicit_start = true;
                r.i += 1;
            }
        }
    }
}
