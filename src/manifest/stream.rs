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
pub struct ChunkReader<R> {
    input: R,
    line_no: usize,
    /// A `---` line read while finishing the previous chunk; it begins the next one.
    pending: Option<Vec<u8>>,
    done: bool,
    /// Size of the last chunk, to allocate the next one once.
    last_len: usize,
}

impl<R: BufRead> ChunkReader<R> {
    pub fn new(input: R) -> Self {
        ChunkReader {
            input,
            line_no: 0,
            pending: None,
            done: false,
            last_len: 4096,
        }
    }

    fn next_chunk(&mut self) -> Result<Option<Chunk>, StreamError> {
        if self.done {
            return Ok(None);
        }
        let mut buf: Vec<u8> = Vec::with_capacity(self.last_len.next_power_of_two());
        let mut has_content = false;
        let mut first_line = self.line_no + 1;
        if let Some(line) = self.pending.take() {
            first_line = self.line_no;
            has_content = marker_line_has_content(&line);
            buf.extend_from_slice(&line);
        }
        loop {
            let start = buf.len();
            let n = self.input.read_until(b'\n', &mut buf)?;
            if n == 0 {
                self.done = true;
                break;
            }
            self.line_no += 1;
            let line = &buf[start..];
            match marker(line) {
                Some(Marker::DocumentStart) if has_content => {
                    self.pending = Some(buf.split_off(start));
                    break;
                }
                Some(Marker::DocumentStart) => has_content |= marker_line_has_content(line),
                Some(Marker::DocumentEnd) => {
                    if has_content {
                        break;
                    }
                }
                None => {
                    if !has_content {
                        has_content = is_content(line);
                    }
                }
            }
        }
        if buf.is_empty() {
            return Ok(None);
        }
        self.last_len = buf.len().min(1 << 20);
        let text = String::from_utf8(buf).map_err(|e| {
            let bytes = e.as_bytes();
            let bad = e.utf8_error().valid_up_to();
            let line = first_line + bytes[..bad].iter().filter(|&&b| b == b'\n').count();
            StreamError::NotUtf8 { line }
        })?;
        Ok(Some(Chunk { text, first_line }))
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

    trait Concat {
        fn concat_text(&self) -> String;
    }
    impl Concat for Vec<(usize, String)> {
        fn concat_text(&self) -> String {
            self.iter().map(|(_, t)| t.as_str()).collect()
        }
    }
}
