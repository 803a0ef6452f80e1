//! Splitting a byte stream into YAML document chunks without parsing it.
//!
//! The post-renderer must write each document before it reads the next, and hold no more than
//! the largest document in memory. The YAML spec makes that possible without a parser: a line
//! that starts with `---` or `...` followed by a blank or the end of the line is a document
//! marker wherever it appears (`c-forbidden`), even inside block or quoted scalars. So the stream
//! is cut at such lines, and each chunk is parsed on its own.
//!
//! A chunk may hold more than one document (a `---` that follows only comments or directives
//! does not start a new chunk, so that `%YAML` directives and leading comments stay with the
//! document they precede); the parser handles that.

use std::io::BufRead;

/// One or more complete YAML documents and where they start in the stream.
#[derive(Debug)]
pub struct Chunk {
    pub text: String,
    /// 1-based line number of the chunk's first line in the whole stream.
    pub first_line: usize,
}

/// Errors while reading the stream itself (before any YAML is parsed).
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("reading input: {0}")]
    Io(#[from] std::io::Error),
    #[error("line {line}: the input is not UTF-8 text (YAML must be UTF-8)")]
    NotUtf8 { line: usize },
}

/// Reads [`Chunk`]s from a buffered reader.
///
/// Reads in blocks and looks for marker lines with a substring search (`\n---`, `\n...`)
/// rather than line by line: documents are a few dozen lines, so this visits each document once
/// instead of each line. Memory holds the current chunk and at most one block beyond it.
pub struct ChunkReader<R> {
    input: R,
    /// Read bytes; the current chunk starts at `start`, what is before it was returned.
    buf: Vec<u8>,
    start: usize,
    /// Where the next search for a marker line starts.
    scan: usize,
    /// Lines before this offset have been checked for content.
    checked: usize,
    has_content: bool,
    /// Stream line number of `buf[0]`.
    line_no: usize,
    eof: bool,
}

/// What the next marker search found.
enum Found {
    /// A marker line: its start, the end of the line (after its `\n`), and its kind.
    Marker(usize, usize, Marker),
    /// Not a marker, or not complete yet: continue at this offset (or read more first).
    NotMarker(usize),
    NeedMore,
}

impl<R: BufRead> ChunkReader<R> {
    pub fn new(input: R) -> Self {
        ChunkReader {
            input,
            buf: Vec::new(),
            start: 0,
            scan: 0,
            checked: 0,
            has_content: false,
            line_no: 1,
            eof: false,
        }
    }

    /// The next line start at or after `scan` that could be a marker line.
    fn find_marker(&self) -> Found {
        let b = &self.buf;
        let from = self.scan;
        let candidate = if from == self.start || b.get(from - 1) == Some(&b'\n') {
            Some(from)
        } else {
            None
        };
        let ls =
            match candidate.filter(|&c| b[c..].starts_with(b"---") || b[c..].starts_with(b"...")) {
                Some(c) => c,
                None => {
                    let hay = &b[from..];
                    let dash = memchr::memmem::find(hay, b"\n---");
                    // `...` is rare: look for it only before the next `---`, or every search would
                    // run to the end of the buffer.
                    let dots = memchr::memmem::find(&hay[..dash.unwrap_or(hay.len())], b"\n...");
                    match dots.or(dash) {
                        None => return Found::NeedMore,
                        Some(x) => from + x + 1,
                    }
                }
            };
        let le = match memchr::memchr(b'\n', &b[ls..]) {
            Some(n) => ls + n + 1,
            None if self.eof => b.len(),
            None => return Found::NeedMore,
        };
        match marker(&b[ls..le]) {
            Some(kind) => Found::Marker(ls, le, kind),
            None => Found::NotMarker(ls + 1),
        }
    }

    fn take(&mut self, end: usize) -> Result<Chunk, StreamError> {
        let bytes = self.buf[self.start..end].to_vec();
        self.start = end;
        let first_line = self.line_no;
        self.line_no += memchr::memchr_iter(b'\n', &bytes).count();
        self.scan = end;
        self.checked = end;
        let text = String::from_utf8(bytes).map_err(|e| {
            let bad = e.utf8_error().valid_up_to();
            let bytes = e.as_bytes();
            let line = first_line + bytes[..bad].iter().filter(|&&b| b == b'\n').count();
            StreamError::NotUtf8 { line }
        })?;
        Ok(Chunk { text, first_line })
    }

    fn next_chunk(&mut self) -> Result<Option<Chunk>, StreamError> {
        loop {
            match self.find_marker() {
                Found::Marker(ls, le, kind) => {
                    if !self.has_content {
                        self.has_content = self.buf[self.checked..ls]
                            .split(|&b| b == b'\n')
                            .any(is_content);
                    }
                    let line_has_content = marker_line_has_content(&self.buf[ls..le]);
                    match kind {
                        Marker::DocumentStart if self.has_content && ls > self.start => {
                            let chunk = self.take(ls)?;
                            self.has_content = line_has_content;
                            self.checked = le;
                            self.scan = le;
                            return Ok(Some(chunk));
                        }
                        Marker::DocumentStart => self.has_content |= line_has_content,
                        Marker::DocumentEnd if self.has_content => {
                            let chunk = self.take(le)?;
                            self.has_content = false;
                            return Ok(Some(chunk));
                        }
                        Marker::DocumentEnd => {}
                    }
                    self.checked = le;
                    self.scan = le;
                }
                Found::NotMarker(next) => self.scan = next,
                Found::NeedMore if self.eof => {
                    if self.start == self.buf.len() {
                        return Ok(None);
                    }
                    let end = self.buf.len();
                    return self.take(end).map(Some);
                }
                Found::NeedMore => {
                    // Search again from the last line start seen, which may be a marker whose
                    // line is not complete yet.
                    self.scan = match memchr::memrchr(b'\n', &self.buf[self.scan..]) {
                        Some(n) => self.scan + n,
                        None => self.scan,
                    };
                    // Drop what was returned, once it is most of the buffer (amortized O(1)).
                    if self.start > 0 && self.start * 2 >= self.buf.len() {
                        self.buf.drain(..self.start);
                        self.scan -= self.start;
                        self.checked -= self.start;
                        self.start = 0;
                    }
                    let block = self.input.fill_buf()?;
                    if block.is_empty() {
                        self.eof = true;
                    } else {
                        let n = block.len();
                        self.buf.extend_from_slice(block);
                        self.input.consume(n);
                    }
                }
            }
        }
    }
}

impl<R: BufRead> Iterator for ChunkReader<R> {
    type Item = Result<Chunk, StreamError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_chunk().transpose()
    }
}

enum Marker {
    DocumentStart,
    DocumentEnd,
}

fn marker(line: &[u8]) -> Option<Marker> {
    let kind = if line.starts_with(b"---") {
        Marker::DocumentStart
    } else if line.starts_with(b"...") {
        Marker::DocumentEnd
    } else {
        return None;
    };
    match line.get(3) {
        None | Some(b' ' | b'\t' | b'\r' | b'\n') => Some(kind),
        _ => None,
    }
}

/// Whether a line holds anything but blanks, a comment, or a directive.
fn is_content(line: &[u8]) -> bool {
    if line.first() == Some(&b'%') {
        return false;
    }
    match line.iter().find(|b| !b.is_ascii_whitespace()) {
        None | Some(b'#') => false,
        Some(_) => true,
    }
}

/// `--- value` carries content on the marker line itself.
fn marker_line_has_content(line: &[u8]) -> bool {
    is_content(&line[3.min(line.len())..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(s: &str) -> Vec<(usize, String)> {
        ChunkReader::new(s.as_bytes())
            .map(|c| c.map(|c| (c.first_line, c.text)).unwrap())
            .collect()
    }

    #[test]
    fn cuts_at_markers_and_keeps_every_byte() {
        let s = "---\n# Source: a\nkind: A\n---\n---\n# c\n---\nkind: B\n...\nkind: C  \n";
        let got = chunks(s);
        assert_eq!(got.concat_text(), s);
        assert_eq!(
            got,
            vec![
                (1, "---\n# Source: a\nkind: A\n".into()),
                (4, "---\n---\n# c\n---\nkind: B\n...\n".into()),
                (10, "kind: C  \n".into()),
            ]
        );
    }

    #[test]
    fn a_marker_inside_a_word_is_not_a_marker() {
        let got = chunks("a: 1\n---x\n----\n--- b\n");
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], (4, "--- b\n".into()));
    }

    #[test]
    fn non_utf8_names_the_line() {
        let mut r = ChunkReader::new(&b"a: 1\nb: \xff\n"[..]);
        let e = r.next().unwrap().unwrap_err();
        assert!(e.to_string().starts_with("line 2:"), "{e}");
    }

    /// A stream of arbitrary lines, markers and look-alikes among them, read in tiny blocks so that
    /// markers straddle block boundaries.
    #[test]
    fn chunks_concatenate_to_the_input_and_start_at_markers() {
        use proptest::prelude::*;
        let line = prop_oneof![
            Just("---".to_string()),
            Just("--- x".to_string()),
            Just("...".to_string()),
            Just("----".to_string()),
            Just("-- -".to_string()),
            Just("# c".to_string()),
            Just("%YAML 1.2".to_string()),
            Just(String::new()),
            Just("a: 1".to_string()),
            Just("  - b".to_string()),
        ];
        let mut runner = proptest::test_runner::TestRunner::default();
        runner
            .run(
                &(prop::collection::vec(line, 0..30), any::<bool>(), 1usize..9),
                |(lines, trailing_newline, block)| {
                    let mut text = lines.join("\n");
                    if trailing_newline && !text.is_empty() {
                        text.push('\n');
                    }
                    let reader = std::io::BufReader::with_capacity(block, text.as_bytes());
                    let got: Vec<Chunk> = ChunkReader::new(reader).map(|c| c.unwrap()).collect();
                    let joined: String = got.iter().map(|c| c.text.as_str()).collect();
                    prop_assert_eq!(&joined, &text);
                    let mut line = 1;
                    for (i, c) in got.iter().enumerate() {
                        prop_assert_eq!(c.first_line, line);
                        prop_assert!(!c.text.is_empty());
                        if i > 0 {
                            let prev = &got[i - 1].text;
                            prop_assert!(
                                c.text.starts_with("---") || prev.trim_end().ends_with("..."),
                                "chunk {} starts mid-document: {:?}",
                                i,
                                c.text
                            );
                        }
                        line += c.text.matches('\n').count();
                    }
                    Ok(())
                },
            )
            .unwrap();
    }

    trait Concat {
        fn concat_text(&self) -> String;
    }
    impl Concat for Vec<(usize, String)> {
        fn concat_text(&self) -> String {
            self.iter().map(|(_, t)| t.as_str()).collect()
        }
    }
}
