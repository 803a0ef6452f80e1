//! A tar file as a read-only set of named files: the common ground of layout tars and docker
//! archives.
//!
//! A plain tar is read in place: one pass over its headers records where each file's bytes
//! start, and a read seeks there. A compressed tar cannot be read at random, so what its reader
//! needs is unpacked into a private temporary directory (see `unpack.rs`), each file under
//! a number of ours (never a name from the archive), and read from there; memory stays bounded
//! either way.
//!
//! Every entry name is checked while indexing: an absolute path, a `..` component, or a link
//! whose target leaves the archive fails the whole archive with the file and entry named, before
//! a single byte of it is copied anywhere.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::oci::{Digest, Sha256Writer};
use anyhow::{Context, bail};

use super::ByteStream;
use super::unpack::{Needs, unpack};

/// How a file is compressed, told by its first bytes (not by its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

impl Compression {
    /// Sniffs the magic number at the start of `head`.
    pub(crate) fn sniff(head: &[u8]) -> Compression {
        match head {
            [0x1f, 0x8b, ..] => Compression::Gzip,
            [b'B', b'Z', b'h', ..] => Compression::Bzip2,
            [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => Compression::Xz,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
            _ => Compression::None,
        }
    }

    /// The compression a file name asks for when writing (`.tar.gz`/`.tgz`, `.tar.zst`).
    pub(crate) fn for_output(path: &Path) -> Option<Compression> {
        let name = path.file_name()?.to_str()?;
        if name.ends_with(".tar") {
            Some(Compression::None)
        } else if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
            Some(Compression::Gzip)
        } else if name.ends_with(".tar.zst") || name.ends_with(".tar.zstd") {
            Some(Compression::Zstd)
        } else {
            None
        }
    }

    pub(super) fn decoder<'a>(self, file: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
        let file = BufReader::with_capacity(1 << 16, file);
        Ok(match self {
            Compression::None => Box::new(file),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
            Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(file)),
            Compression::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(file)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(file)?),
        })
    }
}

/// Where a file's bytes are.
#[derive(Debug, Clone)]
pub(super) enum At {
    /// At this offset of the (plain) archive itself.
    Offset(u64),
    /// In the unpacked file with this number.
    Unpacked(usize),
}

#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub at: At,
    pub size: u64,
    /// `sha256:<hex>` of the content, when the archive was opened with hashing.
    pub digest: Option<Digest>,
}

/// An archive's files by name.
pub(crate) struct TarFiles {
    path: PathBuf,
    /// Keeps the unpacked files of a compressed archive for as long as they are read.
    unpacked: Option<crate::cleanup::TempDir>,
    entries: HashMap<String, Entry>,
    /// Every file name the archive holds, read or passed over.
    seen: HashSet<String>,
}

/// An entry name made relative and clean (`./a//b` → `a/b`), or why it is refused.
pub(super) fn clean_name(raw: &str) -> Result<String, &'static str> {
    if raw.starts_with('/') || raw.starts_with('\\') || raw.get(1..2) == Some(":") {
        return Err("is an absolute path");
    }
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("has a `..` component"),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// A link target resolved against the directory of the link (`None` if it leaves the archive).
fn resolve_link(link: &str, target: &str, hard: bool) -> Option<String> {
    if target.starts_with('/') {
        return None;
    }
    // A hard link names its target from the archive root, a symbolic one from its own directory.
    let mut parts: Vec<&str> = if hard {
        Vec::new()
    } else {
        let mut p: Vec<&str> = link.split('/').collect();
        p.pop();
        p
    };
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

impl TarFiles {
    /// Indexes `path`, unpacking what `needs` asks for when it is compressed; with `hash`, every
    /// file's sha256 is computed on the way (docker archives name layers by path, not digest).
    pub(crate) fn open(path: &Path, hash: bool, needs: &mut dyn Needs) -> anyhow::Result<TarFiles> {
        let mut file =
            File::open(path).with_context(|| format!("opening archive {}", path.display()))?;
        let mut head = [0u8; 6];
        let n = read_up_to(&mut file, &mut head)
            .with_context(|| format!("reading archive {}", path.display()))?;
        file.seek(SeekFrom::Start(0))?;
        let compression = Compression::sniff(&head[..n]);
        let result = if compression == Compression::None {
            Self::index_in_place(path, file, hash)
        } else {
            drop(file);
            unpack(path, compression, hash, needs).map(|u| TarFiles {
                path: path.to_path_buf(),
                unpacked: Some(u.dir),
                entries: u.entries,
                seen: u.seen,
            })
        };
        result.with_context(|| format!("archive {}", path.display()))
    }

    fn index_in_place(path: &Path, file: File, hash: bool) -> anyhow::Result<TarFiles> {
        let len = file.metadata()?.len();
        let mut archive = tar::Archive::new(BufReader::with_capacity(1 << 16, file));
        let damage = Damage::Plain { len };
        let mut index = Indexer::new(damage);
        let entries = if hash {
            // Hashing reads every byte anyway; seeking would not save anything.
            archive.entries()
        } else {
            archive.entries_with_seek()
        };
        // Where the last entry's data ends, padded to whole blocks (and which entry that is).
        let mut end: Option<(u64, usize, String)> = None;
        for (n, entry) in entries.map_err(|e| damage.error(e))?.enumerate() {
            let mut entry = entry.map_err(|e| damage.error(e))?;
            let offset = entry.raw_file_position();
            let size = entry.size();
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            // Seeking past the end of a cut file reads as the end of the archive, and reading
            // a cut entry as its end: only positions show where the file was cut.
            if offset + size > len {
                bail!(
                    "truncated at byte {len}: entry {n} {raw:?} needs {size} bytes from byte {offset}; the file was cut short (copy it again)"
                );
            }
            index.add(n, &mut entry, hash, |_, _, _| Ok(Some(At::Offset(offset))))?;
            end = Some(((offset + size).div_ceil(512) * 512, n, raw));
        }
        // Every tar writer ends with zero blocks; without them the file was cut between
        // entries, and whatever followed is missing.
        if let Some((end, n, raw)) = end
            && len < end + 512
        {
            bail!(
                "truncated at byte {len}: the file ends after entry {n} {raw:?} without tar's end-of-archive marker; it was cut short (copy it again)"
            );
        }
        let (entries, seen) = index.finish()?;
        Ok(TarFiles {
            path: path.to_path_buf(),
            unpacked: None,
            entries,
            seen,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.entry(name).is_some()
    }

    /// Whether the archive holds a file `name`, read or (compressed and not needed) passed over.
    pub(crate) fn lists(&self, name: &str) -> bool {
        clean_name(name).is_ok_and(|n| self.seen.contains(&n))
    }

    fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries.get(&clean_name(name).ok()?)
    }

    pub(crate) fn size(&self, name: &str) -> Option<u64> {
        self.entry(name).map(|e| e.size)
    }

    pub(crate) fn digest(&self, name: &str) -> Option<&Digest> {
        self.entry(name)?.digest.as_ref()
    }

    fn open_at(&self, entry: &Entry) -> io::Result<File> {
        match entry.at {
            At::Offset(offset) => {
                let mut f = File::open(&self.path)?;
                f.seek(SeekFrom::Start(offset))?;
                Ok(f)
            }
            At::Unpacked(n) => {
                let dir = self
                    .unpacked
                    .as_ref()
                    .expect("unpacked archives keep their dir");
                File::open(dir.path().join(n.to_string()))
            }
        }
    }

    /// File `name` opened at byte `start` of its content, with its whole size: a ranged read
    /// seeks there instead of reading up to it. `None` when the archive has no such file.
    pub(crate) fn open_from(&self, name: &str, start: u64) -> io::Result<Option<(File, u64)>> {
        let Some(entry) = self.entry(name) else {
            return Ok(None);
        };
        let mut file = self.open_at(entry)?;
        file.seek(SeekFrom::Current(start.min(entry.size) as i64))?;
        Ok(Some((file, entry.size)))
    }

    /// A whole file of at most `limit` bytes (`None` when the archive has no such file).
    pub(crate) fn read(&self, name: &str, limit: u64) -> anyhow::Result<Option<Vec<u8>>> {
        let Some(entry) = self.entry(name) else {
            return Ok(None);
        };
        if entry.size > limit {
            bail!(
                "{}: {name} is {} bytes, more than the {limit} expected",
                self.path.display(),
                entry.size
            );
        }
        let mut bytes = Vec::with_capacity(entry.size as usize);
        self.open_at(entry)
            .and_then(|f| f.take(entry.size).read_to_end(&mut bytes))
            .with_context(|| format!("reading {name} in {}", self.path.display()))?;
        Ok(Some(bytes))
    }

    /// The first bytes of a file (for sniffing compression).
    pub(crate) fn head(&self, name: &str, n: usize) -> anyhow::Result<Vec<u8>> {
        let entry = self
            .entry(name)
            .with_context(|| format!("{} has no {name}", self.path.display()))?;
        let mut buf = vec![0; n.min(entry.size as usize)];
        self.open_at(entry)
            .and_then(|mut f| f.read_exact(&mut buf))
            .with_context(|| format!("reading {name} in {}", self.path.display()))?;
        Ok(buf)
    }

    /// A file's bytes, streamed.
    pub(crate) async fn stream(&self, name: &str) -> anyhow::Result<ByteStream> {
        use tokio::io::AsyncReadExt as _;
        let entry = self
            .entry(name)
            .with_context(|| format!("{} has no {name}", self.path.display()))?;
        let file = self
            .open_at(entry)
            .with_context(|| format!("reading {name} in {}", self.path.display()))?;
        let file = tokio::fs::File::from_std(file).take(entry.size);
        Ok(Box::pin(tokio_util::io::ReaderStream::with_capacity(
            file,
            super::READ_CHUNK,
        )))
    }
}

/// Collects entries and links while an archive is read, then resolves the links.
pub(super) struct Indexer {
    entries: HashMap<String, Entry>,
    /// link name → (target name, entry number)
    links: Vec<(String, String, usize)>,
    seen: HashSet<String>,
    damage: Damage,
}

/// Links lead to links; a few hops settle any sane chain.
const LINK_HOPS: usize = 8;

/// What a read error inside an archive is reported as.
#[derive(Clone, Copy)]
pub(super) enum Damage {
    /// A plain tar of `len` bytes: a short read means it was cut at its end.
    Plain { len: u64 },
    /// A compressed stream cannot tell a cut from a corruption.
    Compressed,
}

impl Damage {
    /// A read error inside the archive, said as what it means: cut short or damaged.
    pub(super) fn error(self, e: io::Error) -> anyhow::Error {
        // The tar crate says "failed to read entire block" when a header is cut.
        let short =
            e.kind() == io::ErrorKind::UnexpectedEof || e.to_string().contains("entire block");
        match self {
            Damage::Plain { len } if short => {
                anyhow::anyhow!("truncated at byte {len}: the file was cut short (copy it again)")
            }
            Damage::Plain { .. } => {
                anyhow::Error::new(e).context("the archive is corrupt (copy it again)")
            }
            Damage::Compressed => {
                anyhow::Error::new(e).context("the archive is truncated or corrupt")
            }
        }
    }
}

impl Indexer {
    pub(super) fn new(damage: Damage) -> Indexer {
        Indexer {
            entries: HashMap::new(),
            links: Vec::new(),
            seen: HashSet::new(),
            damage,
        }
    }

    /// Checks and records entry `n`; a regular file's content goes to `store` (its clean name,
    /// size and bytes), which says where it is kept, or `None` when it is passed over.
    pub(super) fn add<R: Read>(
        &mut self,
        n: usize,
        entry: &mut tar::Entry<'_, R>,
        hash: bool,
        store: impl FnOnce(&str, u64, &mut dyn Read) -> anyhow::Result<Option<At>>,
    ) -> anyhow::Result<()> {
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = clean_name(&raw)
            .map_err(|why| anyhow::anyhow!("entry {n} {raw:?} {why}; refusing the archive"))?;
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Directory => Ok(()),
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry.size();
                let mut hasher = hash.then(Sha256Writer::new);
                let mut reader = HashingReader {
                    inner: &mut *entry,
                    hasher: hasher.as_mut(),
                };
                let at = store(&name, size, &mut reader)
                    .with_context(|| format!("entry {n} {raw:?}"))?;
                self.seen.insert(name.clone());
                let Some(at) = at else {
                    return Ok(());
                };
                if hash && !matches!(at, At::Unpacked(_)) {
                    // In place: read the content through the hasher now.
                    io::copy(&mut reader, &mut io::sink())
                        .map_err(|e| self.damage.error(e))
                        .with_context(|| format!("entry {n} {raw:?}"))?;
                }
                let digest = hasher.map(Sha256Writer::finish);
                self.entries.insert(name, Entry { at, size, digest });
                Ok(())
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .unwrap_or_default();
                let hard = kind == tar::EntryType::Link;
                let resolved = resolve_link(&name, &target, hard).with_context(|| {
                    format!(
                        "entry {n} {raw:?} links to {target:?}, outside the archive; refusing the archive"
                    )
                })?;
                self.seen.insert(name.clone());
                self.links.push((name, resolved, n));
                Ok(())
            }
            other => bail!(
                "entry {n} {raw:?} is a {other:?}, which an image archive never holds; refusing the archive"
            ),
        }
    }

    /// Records an entry read apart (in a second pass).
    pub(super) fn insert(&mut self, name: String, entry: Entry) {
        self.entries.insert(name, entry);
    }

    /// The file a name leads to, following links (`None` for a chain too long).
    pub(super) fn resolve(&self, name: &str) -> Option<String> {
        let mut name = name.to_string();
        for _ in 0..=LINK_HOPS {
            match self.links.iter().rev().find(|(link, _, _)| *link == name) {
                Some((_, target, _)) => name = target.clone(),
                None => return Some(name),
            }
        }
        None
    }

    /// The links read so far that lead to `name`.
    pub(super) fn links_to(&self, name: &str) -> impl Iterator<Item = String> + '_ {
        let mut found: Vec<String> = Vec::new();
        let mut wanted = vec![name.to_string()];
        for _ in 0..LINK_HOPS {
            let next: Vec<String> = self
                .links
                .iter()
                .filter(|(link, target, _)| wanted.contains(target) && !found.contains(link))
                .map(|(link, _, _)| link.clone())
                .collect();
            if next.is_empty() {
                break;
            }
            found.extend(next.iter().cloned());
            wanted = next;
        }
        found.into_iter()
    }

    /// The files by name, links resolved, and every name seen. A link to a file passed over
    /// (not needed), or a chain of links too long, is dropped; a link to a name the archive
    /// lacks is an error.
    pub(super) fn finish(mut self) -> anyhow::Result<(HashMap<String, Entry>, HashSet<String>)> {
        for _ in 0..LINK_HOPS {
            let mut pending = Vec::new();
            for (name, target, n) in std::mem::take(&mut self.links) {
                match self.entries.get(&target) {
                    Some(e) => {
                        let e = e.clone();
                        self.entries.insert(name, e);
                    }
                    None => pending.push((name, target, n)),
                }
            }
            if pending.is_empty() {
                break;
            }
            self.links = pending;
        }
        if let Some((name, target, n)) = self
            .links
            .iter()
            .find(|(_, target, _)| !self.seen.contains(target))
        {
            bail!("entry {n} {name:?} links to {target:?}, which the archive does not hold")
        }
        Ok((self.entries, self.seen))
    }
}

/// A reader that feeds what passes through it to a hasher.
pub(super) struct HashingReader<'a, R: Read> {
    pub inner: R,
    pub hasher: Option<&'a mut Sha256Writer>,
}

impl<R: Read> Read for HashingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Writes the directory `dir` as a tar at `out` (compressed as asked), atomically: the tar is
/// written beside `out` and renamed once complete. Entries are in a fixed order with fixed
/// owners and times, so the same bundle gives the same bytes: the paths `first` names, in that
/// order, then the rest by name.
pub(crate) fn write_tar(
    dir: &Path,
    out: &Path,
    compression: Compression,
    first: &[String],
) -> anyhow::Result<()> {
    let name = out.file_name().and_then(|n| n.to_str()).unwrap_or("bundle");
    let partial = format!(".{name}.partial-");
    let tmp = out.with_file_name(format!("{partial}{}", std::process::id()));
    // Removed on a signal; what a `kill -9` left, removed now.
    let _registered = crate::cleanup::register(&tmp);
    if let Some(parent) = tmp.parent() {
        crate::cleanup::sweep(parent, |n| {
            crate::cleanup::leading_pid(n.strip_prefix(&partial)?)
        });
    }
    let result = (|| -> anyhow::Result<()> {
        if !matches!(
            compression,
            Compression::None | Compression::Gzip | Compression::Zstd
        ) {
            bail!(
                "writing {compression:?} archives is not supported; use .tar, .tar.gz or .tar.zst"
            )
        }
        let file = {
            // The handler waits for this creation, so a signal never leaves `tmp` behind.
            let _creating = crate::cleanup::creating();
            File::create(&tmp)?
        };
        let writer = Output::new(io::BufWriter::with_capacity(1 << 16, file), compression)?;
        let mut builder = tar::Builder::new(writer);
        builder.mode(tar::HeaderMode::Deterministic);
        builder.follow_symlinks(false);
        let mut files = Vec::new();
        collect_files(dir, dir, &mut files)?;
        // `first` in its order (parents before what they name, so a reader of the stream
        // knows each entry's need at its header), then the rest by name.
        let rank = |p: &PathBuf| {
            let s = p.to_string_lossy().into_owned();
            let at = first.iter().position(|f| *f == s).unwrap_or(first.len());
            (at, s)
        };
        files.sort_by_cached_key(rank);
        for rel in files {
            builder.append_path_with_name(dir.join(&rel), &rel)?;
        }
        // The compressor's trailer and the buffer's last bytes are written here, and the
        // file synced, with every error reported: a full disk at the very end must not rename
        // a cut bundle into place.
        builder.into_inner()?.finish()?.sync_all()?;
        Ok(())
    })();
    match result {
        Ok(()) => std::fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display())),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e.context(format!("writing {}", out.display())))
        }
    }
}

/// A tar's output: its file, buffered and maybe compressed, that is finished explicitly
/// rather than in `Drop`, where write errors are lost.
enum Output {
    Plain(io::BufWriter<File>),
    Gzip(flate2::write::GzEncoder<io::BufWriter<File>>),
    Zstd(zstd::stream::write::Encoder<'static, io::BufWriter<File>>),
}

impl Output {
    /// `compression` is one of those `write_tar` accepts.
    fn new(file: io::BufWriter<File>, compression: Compression) -> io::Result<Output> {
        Ok(match compression {
            Compression::Gzip => Output::Gzip(flate2::write::GzEncoder::new(
                file,
                flate2::Compression::default(),
            )),
            Compression::Zstd => Output::Zstd(zstd::stream::write::Encoder::new(file, 3)?),
            _ => Output::Plain(file),
        })
    }

    /// Writes the compressor's trailer and the last buffered bytes; the file, to be synced.
    fn finish(self) -> io::Result<File> {
        let buffered = match self {
            Output::Plain(b) => b,
            Output::Gzip(e) => e.finish()?,
            Output::Zstd(e) => e.finish()?,
        };
        buffered
            .into_inner()
            .map_err(io::IntoInnerError::into_error)
    }
}

impl io::Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Output::Plain(w) => w.write(buf),
            Output::Gzip(w) => w.write(buf),
            Output::Zstd(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::Plain(w) => w.flush(),
            Output::Gzip(w) => w.flush(),
            Output::Zstd(w) => w.flush(),
        }
    }
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            collect_files(root, &path, out)?;
        } else {
            out.push(path.strip_prefix(root).expect("under root").to_path_buf());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cleaned_or_refused() {
        assert_eq!(
            clean_name("./blobs//sha256/ab"),
            Ok("blobs/sha256/ab".into())
        );
        assert!(clean_name("/etc/passwd").is_err());
        assert!(clean_name("a/../../b").is_err());
        assert!(clean_name("C:/x").is_err());
    }

    #[test]
    fn links_stay_inside() {
        assert_eq!(
            resolve_link("a/b/layer.tar", "../c/layer.tar", false),
            Some("a/c/layer.tar".into())
        );
        assert_eq!(resolve_link("a/layer.tar", "../../x", false), None);
        assert_eq!(resolve_link("a/layer.tar", "/etc/passwd", false), None);
        assert_eq!(resolve_link("a/x", "b/y", true), Some("b/y".into()));
    }

    #[test]
    fn compression_is_sniffed() {
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(Compression::sniff(b"BZh91AY"), Compression::Bzip2);
        assert_eq!(
            Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::sniff(b"ustar"), Compression::None);
    }
}
