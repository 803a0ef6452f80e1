//! Unpacking a compressed archive, bounded by what its reader needs.
//!
//! A compressed tar is a stream that cannot be read at random, so the files a reader needs are
//! unpacked into a private temporary directory. What is needed is learnt from the archive as
//! it goes by (an OCI layout's `index.json` and manifests, a docker archive's `manifest.json`;
//! each format says so through [`Needs`]), and only that is written, never more bytes than its
//! descriptor gives. A decompression bomb (a few hundred KB that expand to gigabytes) is
//! refused by these rules, most at the entry's header, before its bytes are read:
//!
//! - a needed entry of another size than its descriptor gives is refused;
//! - the needed entries must fit in the space free on the temporary directory's disk;
//! - entries nothing needs are decompressed to be skipped, never written, and may add up to
//!   [`SKIP_LIMIT`]; the entry that crosses it is refused.
//!
//! When the needs come late (an index after its blobs, as `tar -C DIR .` may order them), the
//! first pass writes nothing it cannot yet tell is needed, reading only the headers and the
//! small files that tell the needs; a second pass unpacks the rest, at the sizes the first
//! pass checked. `save` writes its tars parent first, so they unpack in one pass.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Write as _};
use std::path::Path;

use anyhow::{Context, bail};
use sha2::{Digest as _, Sha256};

use super::archive::{At, Compression, Damage, Entry, HashingReader, Indexer, clean_name};
use crate::cleanup::{self, TempDir};

/// The name of our unpacking directories in TMPDIR, before the PID of the run.
const PREFIX: &str = "kubectl-airgap-unpacked-";

/// Bytes of entries nothing needs that an archive may hold: skipping them costs decompression
/// time, and a bundle has no business with gigabytes outside its images.
pub(crate) const SKIP_LIMIT: u64 = 1 << 30;

/// Whether an entry is needed, as far as is known yet.
pub(crate) enum Need {
    Yes(Size),
    /// Never, whatever comes later.
    No,
    /// Not known yet: what would name it has not been read.
    Unknown,
}

/// The size a needed entry must have.
pub(crate) enum Size {
    /// As a descriptor gives it; `by` says where (`index.json`, `manifest sha256:…`).
    Exactly { size: u64, by: String },
    /// At most this many bytes (an index, a manifest list).
    AtMost(u64),
    /// Any size (a docker archive's `manifest.json` gives none); bounded by free space.
    Any,
}

/// What the reader of one archive format needs from it.
pub(crate) trait Needs {
    fn need(&self, name: &str) -> Need;
    /// Whether entry `name` of `size` bytes should be read into memory and given to `learn`.
    fn reads(&self, name: &str, size: u64) -> bool;
    /// Takes in a file that tells needs (an index, a manifest).
    fn learn(&mut self, name: &str, content: &[u8]) -> anyhow::Result<()>;
    /// Whether the file that tells the needs has been read; an archive without it is left to
    /// its reader to refuse, with nothing unpacked but that.
    fn found(&self) -> bool;
    /// Whether every need is known.
    fn settled(&self) -> bool;
    /// The names known to be needed.
    fn needed(&self) -> Vec<String>;
    /// How many they are (asked after every entry, so cheaply).
    fn needed_count(&self) -> usize;
}

/// An archive's needed files, unpacked.
pub(super) struct Unpacked {
    pub dir: TempDir,
    pub entries: HashMap<String, Entry>,
    /// Every file name the archive holds, unpacked or not.
    pub seen: HashSet<String>,
}

/// An entry passed over before its need was known.
struct Deferred {
    n: usize,
    name: String,
    raw: String,
    size: u64,
}

struct Unpacker<'a> {
    dir: TempDir,
    needs: &'a mut dyn Needs,
    damage: Damage,
    /// Bytes free on the disk of `dir` when unpacking began (`None`: not known here).
    free: Option<u64>,
    written: u64,
    skipped: u64,
    files: usize,
    unpacked: HashSet<String>,
    deferred: Vec<Deferred>,
}

/// Unpacks from the archive at `path` what `needs` says is needed.
pub(super) fn unpack(
    path: &Path,
    compression: Compression,
    hash: bool,
    needs: &mut dyn Needs,
) -> anyhow::Result<Unpacked> {
    let tmp = std::env::temp_dir();
    // What runs killed with `kill -9` left.
    cleanup::sweep(&tmp, |name| {
        cleanup::leading_pid(name.strip_prefix(PREFIX)?)
    });
    let dir = TempDir::new_in(&tmp, PREFIX).with_context(|| {
        format!(
            "creating a temporary directory in {} to unpack into (set TMPDIR to a disk with room)",
            tmp.display()
        )
    })?;
    let free = free_space(dir.path());
    let damage = Damage::Compressed;
    let mut u = Unpacker {
        dir,
        needs,
        damage,
        free,
        written: 0,
        skipped: 0,
        files: 0,
        unpacked: HashSet::new(),
        deferred: Vec::new(),
    };
    let mut index = Indexer::new(damage);

    let mut archive = tar::Archive::new(open(path, compression, damage)?);
    for (n, entry) in archive.entries().map_err(|e| damage.error(e))?.enumerate() {
        let mut entry = entry.map_err(|e| damage.error(e))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let need = clean_name(&raw).map(|name| u.need_of(&name, &index));
        index.add(n, &mut entry, hash, |name, size, content| {
            u.first_pass(n, &raw, name, size, need.unwrap_or(Need::No), content)
        })?;
        if u.needs.settled()
            && u.unpacked.len() >= u.needs.needed_count()
            && u.needs.needed().iter().all(|name| {
                index
                    .resolve(name)
                    .is_some_and(|target| u.unpacked.contains(&target))
            })
        {
            // Everything needed is out; the rest is not even decompressed.
            break;
        }
    }
    if !u.needs.found() {
        return u.finish(index);
    }

    // The entries passed over: now needed (a second pass unpacks them) or skipped for good.
    // Of a name given twice, the later entry counts, as when a tar is extracted.
    let deferred = std::mem::take(&mut u.deferred);
    let mut last: HashMap<&str, usize> = HashMap::new();
    for (i, d) in deferred.iter().enumerate() {
        last.insert(&d.name, i);
    }
    let mut second: BTreeMap<usize, (String, u64)> = BTreeMap::new();
    let mut extra = 0;
    for (i, d) in deferred.iter().enumerate() {
        let at = || format!("entry {} {:?}", d.n, d.raw);
        let need = if last[d.name.as_str()] != i || u.unpacked.contains(&d.name) {
            Need::No
        } else {
            u.need_of(&d.name, &index)
        };
        match need {
            Need::Yes(size) => {
                size.check(d.size).with_context(at)?;
                extra += d.size;
                second.insert(d.n, (d.name.clone(), d.size));
            }
            Need::No | Need::Unknown => u.skip(d.size).with_context(at)?,
        }
    }
    u.room(extra)
        .context("unpacking what the archive's images need")?;
    if let Some(&end) = second.keys().next_back() {
        let mut archive = tar::Archive::new(open(path, compression, damage)?);
        for (n, entry) in archive.entries().map_err(|e| damage.error(e))?.enumerate() {
            if n > end {
                break;
            }
            let mut entry = entry.map_err(|e| damage.error(e))?;
            let Some((name, size)) = second.get(&n) else {
                continue;
            };
            if entry.size() != *size {
                bail!(
                    "entry {n} {name:?} is {} bytes now, {size} before; the archive changed while it was read",
                    entry.size()
                );
            }
            let mut hasher = hash.then(Sha256::new);
            let mut reader = HashingReader {
                inner: &mut entry,
                hasher: hasher.as_mut(),
            };
            let at = u
                .write(name, *size, &mut reader)
                .with_context(|| format!("entry {n} {name:?}"))?;
            let digest = hasher.map(|h| format!("sha256:{}", hex::encode(h.finalize())));
            index.insert(
                name.clone(),
                Entry {
                    at,
                    size: *size,
                    digest,
                },
            );
        }
    }
    u.finish(index)
}

fn open(
    path: &Path,
    compression: Compression,
    damage: Damage,
) -> anyhow::Result<Box<dyn Read + '_>> {
    let file = File::open(path)?;
    compression.decoder(file).map_err(|e| damage.error(e))
}

impl Unpacker<'_> {
    /// The need of `name`, or of a link already read that leads to it.
    fn need_of(&self, name: &str, index: &Indexer) -> Need {
        match self.needs.need(name) {
            Need::Yes(size) => Need::Yes(size),
            other => {
                let linked = index
                    .links_to(name)
                    .find_map(|link| match self.needs.need(&link) {
                        Need::Yes(size) => Some(size),
                        _ => None,
                    });
                match linked {
                    Some(size) => Need::Yes(size),
                    None => other,
                }
            }
        }
    }

    /// A regular entry met in the first pass: unpacked, read for its needs, or passed over.
    fn first_pass(
        &mut self,
        n: usize,
        raw: &str,
        name: &str,
        size: u64,
        need: Need,
        content: &mut dyn Read,
    ) -> anyhow::Result<Option<At>> {
        let need = if self.unpacked.contains(name) {
            Need::No
        } else {
            need
        };
        match need {
            Need::Yes(bound) => {
                bound.check(size)?;
                self.room(size)?;
                Ok(Some(self.write(name, size, content)?))
            }
            Need::No => {
                self.skip(size)?;
                Ok(None)
            }
            Need::Unknown => {
                // Too big to unpack, were it needed, and to skip, were it not.
                if let Some(free) = self.free
                    && size > SKIP_LIMIT
                    && self.written + size > free
                {
                    bail!(
                        "is {}: more than the {} free in {} to unpack it into, were it needed, and more than the {} of unused entries an archive may hold, were it not; refusing the archive{HINT}",
                        bytes(size),
                        bytes(free.saturating_sub(self.written)),
                        self.tmp().display(),
                        bytes(SKIP_LIMIT)
                    );
                }
                if self.needs.reads(name, size) {
                    let content = self.read_all(content, size)?;
                    self.needs.learn(name, &content)?;
                }
                self.deferred.push(Deferred {
                    n,
                    name: name.to_string(),
                    raw: raw.to_string(),
                    size,
                });
                Ok(None)
            }
        }
    }

    fn read_all(&self, content: &mut dyn Read, size: u64) -> anyhow::Result<Vec<u8>> {
        let mut bytes = Vec::with_capacity(size as usize);
        content
            .take(size)
            .read_to_end(&mut bytes)
            .map_err(|e| self.damage.error(e))?;
        if (bytes.len() as u64) < size {
            return Err(self.damage.error(io::ErrorKind::UnexpectedEof.into()));
        }
        Ok(bytes)
    }

    /// Writes `size` bytes of `content` to a file of ours (named by a number, never by the
    /// archive), handing them to the needs first when they tell needs.
    fn write(&mut self, name: &str, size: u64, content: &mut dyn Read) -> anyhow::Result<At> {
        let number = self.files;
        self.files += 1;
        let path = self.dir.path().join(number.to_string());
        let creating = cleanup::creating();
        let mut out = File::create(&path)
            .with_context(|| format!("creating {} to unpack into", path.display()))?;
        drop(creating);
        if self.needs.reads(name, size) {
            let bytes = self.read_all(content, size)?;
            self.needs.learn(name, &bytes)?;
            out.write_all(&bytes)
                .with_context(|| format!("writing {}", path.display()))?;
        } else {
            let copied = io::copy(&mut content.take(size), &mut out).map_err(|e| {
                // Reading fails inside the archive, writing on our disk; say which.
                if e.kind() == io::ErrorKind::StorageFull {
                    anyhow::Error::new(e).context(format!("writing {}", path.display()))
                } else {
                    self.damage.error(e)
                }
            })?;
            if copied < size {
                return Err(self.damage.error(io::ErrorKind::UnexpectedEof.into()));
            }
        }
        self.written += size;
        self.unpacked.insert(name.to_string());
        Ok(At::Unpacked(number))
    }

    /// The temporary directory we unpack in (TMPDIR), as the user knows it.
    fn tmp(&self) -> &Path {
        self.dir.path().parent().unwrap_or(self.dir.path())
    }

    /// Whether `more` bytes fit beside those written.
    fn room(&self, more: u64) -> anyhow::Result<()> {
        if let Some(free) = self.free
            && self.written + more > free
        {
            bail!(
                "needs {} unpacked in all, and {} has {} free; refusing the archive: set TMPDIR to a disk with room{HINT}",
                bytes(self.written + more),
                self.tmp().display(),
                bytes(free)
            );
        }
        Ok(())
    }

    /// Counts an entry nothing needs against [`SKIP_LIMIT`].
    fn skip(&mut self, size: u64) -> anyhow::Result<()> {
        self.skipped += size;
        if self.skipped > SKIP_LIMIT {
            bail!(
                "is {} that no image in the archive uses ({} of such entries in all, more than the {} an archive may hold); refusing the archive as a decompression bomb{HINT}",
                bytes(size),
                bytes(self.skipped),
                bytes(SKIP_LIMIT)
            );
        }
        Ok(())
    }

    fn finish(self, index: Indexer) -> anyhow::Result<Unpacked> {
        let (entries, seen) = index.finish()?;
        Ok(Unpacked {
            dir: self.dir,
            entries,
            seen,
        })
    }
}

/// What to do about a refused compressed archive that is not hostile.
const HINT: &str = " (to read it anyway, decompress it and give the plain .tar, which is read in place and never unpacked)";

impl Size {
    fn check(&self, size: u64) -> anyhow::Result<()> {
        match self {
            Size::Exactly { size: want, by } if size != *want => bail!(
                "is {}, but {by} gives that blob {want} bytes; refusing the archive (a decompression bomb, or a damaged bundle)",
                bytes(size)
            ),
            Size::AtMost(max) if size > *max => bail!(
                "is {}, more than the {} such a file may be; refusing the archive",
                bytes(size),
                bytes(*max)
            ),
            _ => Ok(()),
        }
    }
}

/// `n` bytes, with the size in GiB or MiB beside when that reads better.
fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 40 => format!("{n} bytes ({:.1} TiB)", n as f64 / (1u64 << 40) as f64),
        n if n >= 1 << 30 => format!("{n} bytes ({:.1} GiB)", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{n} bytes ({:.1} MiB)", n as f64 / (1u64 << 20) as f64),
        n => format!("{n} bytes"),
    }
}

/// Bytes free for us on the disk holding `dir`.
#[cfg(unix)]
fn free_space(dir: &Path) -> Option<u64> {
    let s = rustix::fs::statvfs(dir).ok()?;
    Some(s.f_bavail.saturating_mul(s.f_frsize))
}

#[cfg(not(unix))]
fn free_space(_dir: &Path) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs `a` (3 bytes) once `index` has been read; nothing else.
    #[derive(Default)]
    struct Wants {
        index_read: bool,
    }

    impl Needs for Wants {
        fn need(&self, name: &str) -> Need {
            match (name, self.index_read) {
                ("index", _) => Need::Yes(Size::AtMost(100)),
                ("a", true) => Need::Yes(Size::Exactly {
                    size: 3,
                    by: "index".into(),
                }),
                (_, true) => Need::No,
                (_, false) => Need::Unknown,
            }
        }
        fn reads(&self, name: &str, _size: u64) -> bool {
            name == "index"
        }
        fn learn(&mut self, _name: &str, _content: &[u8]) -> anyhow::Result<()> {
            self.index_read = true;
            Ok(())
        }
        fn found(&self) -> bool {
            self.index_read
        }
        fn settled(&self) -> bool {
            self.index_read
        }
        fn needed(&self) -> Vec<String> {
            vec!["index".into(), "a".into()]
        }
        fn needed_count(&self) -> usize {
            2
        }
    }

    fn tar_zst(entries: &[(&str, &[u8])]) -> tempfile::NamedTempFile {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap();
        }
        let tar = b.into_inner().unwrap();
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(&zstd::encode_all(&tar[..], 1).unwrap())
            .unwrap();
        file
    }

    #[test]
    fn a_late_index_unpacks_in_a_second_pass_only_what_it_names() {
        let file = tar_zst(&[("a", b"abc"), ("b", b"bbbbb"), ("index", b"{}")]);
        let u = unpack(file.path(), Compression::Zstd, false, &mut Wants::default()).unwrap();
        let mut names: Vec<&String> = u.entries.keys().collect();
        names.sort();
        assert_eq!(names, ["a", "index"]);
        assert_eq!(std::fs::read_dir(u.dir.path()).unwrap().count(), 2);
        assert_eq!(u.seen.len(), 3);
    }

    #[test]
    fn a_needed_entry_of_another_size_is_refused_at_its_header() {
        let file = tar_zst(&[("index", b"{}"), ("a", b"abcd")]);
        let err = unpack(file.path(), Compression::Zstd, false, &mut Wants::default())
            .err()
            .unwrap();
        let text = format!("{err:#}");
        assert!(
            text.contains("entry 1 \"a\"") && text.contains("index gives that blob 3 bytes"),
            "{text}"
        );
    }

    #[test]
    fn sizes_read_as_bytes_and_gib() {
        assert_eq!(bytes(512), "512 bytes");
        assert_eq!(bytes(20 << 30), "21474836480 bytes (20.0 GiB)");
    }
}
