//! Plain image lists, as users already keep them: a file with one reference a line (`#`
//! comments and blank lines skipped; `--image-list FILE`, a package file's `imageLists`), and
//! references named one by one (`save IMAGE...`, a package file's `images`). A line that is not
//! a reference is an error naming the file and line, not a skipped image.

use std::path::Path;

use anyhow::Context;

use super::files::{InputScan, listed_uses};
use crate::reference::Reference;

/// Bytes of an image list read at the most: a list of a million references is under 100 MB.
const MAX_LIST: u64 = 64 << 20;

/// The images of a list file.
pub(crate) fn scan_image_list(file: &Path) -> anyhow::Result<InputScan> {
    let name = file.display().to_string();
    let meta =
        std::fs::metadata(file).with_context(|| format!("--image-list {name}: no such file"))?;
    if meta.len() > MAX_LIST {
        anyhow::bail!(
            "--image-list {name}: {} bytes, more than the {MAX_LIST} an image list may be",
            meta.len()
        );
    }
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("--image-list {name}: reading it (one reference a line)"))?;
    let mut listed = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        let reference = Reference::parse(entry).map_err(|e| {
            anyhow::anyhow!(
                "{name}:{}: {} is not an image reference ({}); write one reference a line, # for comments",
                i + 1,
                crate::excerpt::Excerpt(entry),
                e.message
            )
        })?;
        listed.push((reference, String::new(), i + 1));
    }
    Ok(listed_uses(name, "image-list", "image-list", listed))
}

/// The images named one by one in `input` (`command line`, or a package file).
pub(crate) fn scan_references(input: &str, references: &[String]) -> anyhow::Result<InputScan> {
    let listed = references
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let reference = Reference::parse(r).map_err(|e| {
                anyhow::anyhow!(
                    "{input}: {} is not an image reference ({})",
                    crate::excerpt::Excerpt(r),
                    e.message
                )
            })?;
            Ok((reference, String::new(), i + 1))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(listed_uses(input.to_string(), "image", "listed", listed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_skip_comments_and_blank_lines_and_name_a_bad_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("images.txt");
        std::fs::write(
            &path,
            "# our images\nnginx:1.27\n\n  quay.io/a/b:1 # pinned later\n",
        )
        .unwrap();
        let scan = scan_image_list(&path).unwrap();
        let refs: Vec<String> = scan
            .scan
            .uses
            .iter()
            .map(|u| u.reference.to_string())
            .collect();
        assert_eq!(refs, ["docker.io/library/nginx:1.27", "quay.io/a/b:1"]);
        assert_eq!(scan.scan.uses[1].location.line, 4);

        std::fs::write(&path, "nginx:1.27\nNot A Ref\n").unwrap();
        let Err(e) = scan_image_list(&path) else {
            panic!("a bad line was read");
        };
        let e = format!("{e:#}");
        assert!(
            e.contains("images.txt:2:") && e.contains("Not A Ref"),
            "{e}"
        );
    }
}
