//! Quoting input in messages, within a bound.
//!
//! Errors quote the value they are about, so that a user can find it; but a value is input, and
//! a 100 MB image value quoted whole made a 200 MB error on the terminal and in the log file.
//! [`Excerpt`] quotes like `{:?}` up to [`MAX_QUOTED`] bytes and says how long the rest is.

use std::fmt;

/// Bytes of a value that a message quotes at the most.
pub(crate) const MAX_QUOTED: usize = 200;

/// Displays a value as `{:?}` would, cut after [`MAX_QUOTED`] bytes (on a character boundary)
/// with the length of the whole.
pub(crate) struct Excerpt<'a>(pub &'a str);

impl fmt::Display for Excerpt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        if s.len() <= MAX_QUOTED {
            return write!(f, "{s:?}");
        }
        let mut end = MAX_QUOTED;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        write!(f, "{:?}... ({} bytes in all)", &s[..end], s.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_quoted_whole_and_long_ones_cut() {
        assert_eq!(Excerpt("a\"b").to_string(), r#""a\"b""#);
        let long = "é".repeat(1000);
        let shown = Excerpt(&long).to_string();
        assert!(shown.len() < MAX_QUOTED + 40, "{shown}");
        assert!(shown.ends_with("... (2000 bytes in all)"), "{shown}");
    }
}
