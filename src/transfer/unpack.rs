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
//! - the needed entries must fit in the space free on the temporary directory's disk, less a
//!   margin ([`margin`]): their declared total is checked once the needs are settled, before
//!   the rest is written, and every write is covered by room claimed beforehand, against what
//!   other archives unpacked at once have claimed too;
//! - entries nothing needs are decompressed to be skipped, never written, and may add up to
//!   [`SKIP_LIMIT`]; the entry that crosses it is refused;
//! - entries passed over before their need is known (below) are counted as they go by: they
//!   will be needed (and must fit the free space) or skipped (and must fit [`SKIP_LIMIT`]), so
//!   the entry that takes them past both together is refused, however the archive orders its
//!   entries, and whether or not it has an index at all.
//!
//! When the needs come late (an index after its blobs, as `tar -C DIR .` may order them), the
//! first pass writes nothing it cannot yet tell is needed, reading only the headers and the
//! small files that tell the needs; a second pass unpacks the rest, at the sizes the first
//! pass checked. `save` writes its tars parent first, so they unpack in one pass.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Write as _};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use crate::oci::Sha256Writer;
use anyhow::{Context, bail};

use super::archive::{At, Compression, Damage, Entry, HashingReader, Indexer, clean_name};
use crate::cleanup::{self, TempDir};

/// The name of our unpacking directories in TMPDIR, before the PID of the run.
const PREFIX: &str = "kubectl-airgap-unpacked-";

/// Bytes of entries nothing needs that an archive may hold: skipping them costs decompression
/// time, and a bundle has no business with gigabytes outside its images.
pub(crate) const SKIP_LIMIT: u64 = 1 << 30;

/// Bytes that unpackers of this process have claimed on their disk and not yet written, so
/// that archives unpacked at once (a directory of docker archives is read in parallel) do not
/// each count the same free space as theirs.
static CLAIMED: Mutex<u64> = Mutex::new(0);

fn claimed() -> MutexGuard<'static, u64> {
    CLAIMED.lock().unwrap_or_else(|p| p.into_inner())
}

/// This unpacker's part of [`CLAIMED`], given back as it is written or when it is dropped.
struct Claim(u64);

impl Claim {
    fn release(&mut self, n: u64) {
        let n = n.min(self.0);
        self.0 -= n;
        let mut claimed = claimed();
        *claimed = claimed.saturating_sub(n);
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.release(self.0);
    }
}

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
    written: u64,
    skipped: u64,
    /// Bytes of the entries passed over before their need was known.
    pending: u64,
    /// Room claimed for what is still to be written.
    claim: Claim,
    /// Whether the declared total of the needed entries has been claimed.
    total_claimed: bool,
    /// Tells the room on a disk ([`space`]; another in tests).
    space: fn(&Path) -> Option<Space>,
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
    unpack_with(path, compression, hash, needs, space)
}

fn unpack_with(
    path: &Path,
    compression: Compression,
    hash: bool,
    needs: &mut dyn Needs,
    space: fn(&Path) -> Option<Space>,
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
    let damage = Damage::Compressed;
    let mut u = Unpacker {
        dir,
        needs,
        damage,
        written: 0,
        skipped: 0,
        pending: 0,
        claim: Claim(0),
        total_claimed: false,
        space,
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
        if !u.total_claimed && u.needs.settled() {
            u.claim_needed(&index)
                .context("unpacking what the archive's images need")?;
        }
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
                extra = u64::saturating_add(extra, d.size);
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
            let mut hasher = hash.then(Sha256Writer::new);
            let mut reader = HashingReader {
                inner: &mut entry,
                hasher: hasher.as_mut(),
            };
            let at = u
                .write(name, *size, &mut reader)
                .with_context(|| format!("entry {n} {name:?}"))?;
            let digest = hasher.map(Sha256Writer::finish);
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
                let room = self.available();
                // Too big to unpack, were it needed, and to skip, were it not.
                if let Some(room) = room
                    && size > SKIP_LIMIT
                    && size > room
                {
                    bail!(
                        "is {}: more than the {} free in {} to unpack it into, were it needed, and more than the {} of unused entries an archive may hold, were it not; refusing the archive{HINT}",
                        bytes(size),
                        bytes(room),
                        self.tmp().display(),
                        bytes(SKIP_LIMIT)
                    );
                }
                // And the same of all the entries passed over so far: each will be needed or
                // not, so together they must fit both bounds. Without this, a bomb of many
                // entries each under both limits, before an index (or with none), would be
                // decompressed whole before the second pass refused it.
                self.pending = self.pending.saturating_add(size);
                if self.pending > SKIP_LIMIT.saturating_add(room.unwrap_or(0)) {
                    let free = match room {
                        Some(room) => format!(
                            "the {} free in {} to unpack them into, were they needed, plus ",
                            bytes(room),
                            self.tmp().display()
                        ),
                        None => String::new(),
                    };
                    bail!(
                        "is {}, which brings the entries read before the archive tells whether they are needed to {}: more than {free}the {} of unused entries an archive may hold; refusing the archive as a decompression bomb{HINT}",
                        bytes(size),
                        bytes(self.pending),
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
        self.claim.release(size);
        self.unpacked.insert(name.to_string());
        Ok(At::Unpacked(number))
    }

    /// The temporary directory we unpack in (TMPDIR), as the user knows it.
    fn tmp(&self) -> &Path {
        self.dir.path().parent().unwrap_or(self.dir.path())
    }

    /// Bytes that may still be claimed on the disk of `dir`: free now, less the margin and
    /// what every unpacker of ours (this one too) has claimed (`None`: not known here).
    fn available(&self) -> Option<u64> {
        let space = (self.space)(self.dir.path())?;
        Some(space.usable().saturating_sub(*claimed()))
    }

    /// Claims room for the next `more` bytes to be written, beyond what is claimed already.
    fn room(&mut self, more: u64) -> anyhow::Result<()> {
        let Some(short) = more.checked_sub(self.claim.0).filter(|&n| n > 0) else {
            return Ok(());
        };
        let mut claimed = claimed();
        if let Some(space) = (self.space)(self.dir.path())
            && short > space.usable().saturating_sub(*claimed)
        {
            let others = claimed.saturating_sub(self.claim.0);
            let others = if others > 0 {
                format!(
                    ", and {} of it is promised to other archives being unpacked",
                    bytes(others)
                )
            } else {
                String::new()
            };
            bail!(
                "needs {} unpacked in all, and {} has {} free, of which {} is to be left free{others}; refusing the archive: set TMPDIR to a disk with room{HINT}",
                bytes(self.written.saturating_add(more)),
                self.tmp().display(),
                bytes(space.free),
                bytes(space.margin)
            );
        }
        *claimed += short;
        self.claim.0 += short;
        Ok(())
    }

    /// Claims room, once the needs are settled, for the declared total of the needed entries
    /// not yet unpacked, so that a bundle too big for the disk is refused before its first
    /// layer is written rather than after most of them. Only exact sizes count: an entry of
    /// `AtMost` or `Any` size claims its room when it is written.
    fn claim_needed(&mut self, index: &Indexer) -> anyhow::Result<()> {
        self.total_claimed = true;
        let mut total: u64 = 0;
        // Named in the refusal, so the user sees which image makes the bundle too big.
        let mut biggest: Option<(String, u64, String)> = None;
        for name in self.needs.needed() {
            let file = index.resolve(&name).unwrap_or_else(|| name.clone());
            if self.unpacked.contains(&file) {
                continue;
            }
            if let Need::Yes(Size::Exactly { size, by }) = self.needs.need(&name) {
                total = total.saturating_add(size);
                if biggest.as_ref().is_none_or(|(_, most, _)| size > *most) {
                    biggest = Some((name, size, by));
                }
            }
        }
        self.room(total).with_context(|| match biggest {
            Some((name, size, by)) => {
                format!("the biggest, {name:?}, is {} as {by} gives it", bytes(size))
            }
            None => "what is left to unpack".to_string(),
        })
    }

    /// Counts an entry nothing needs against [`SKIP_LIMIT`].
    fn skip(&mut self, size: u64) -> anyhow::Result<()> {
        self.skipped = self.skipped.saturating_add(size);
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

/// The room on a disk: bytes free for us, and how many of them to leave free.
struct Space {
    free: u64,
    margin: u64,
}

impl Space {
    fn usable(&self) -> u64 {
        self.free.saturating_sub(self.margin)
    }
}

/// What unpacking leaves free on its disk: 1% of the disk, at least 64 MiB. A disk filled to
/// its last byte fails whatever else writes there (logs, the registry we push to, when local)
/// and leaves no room for the blocks a file system needs beyond its files' bytes.
fn margin(disk: u64) -> u64 {
    (disk / 100).max(64 << 20)
}

/// The room on the disk holding `dir`, as it is now.
#[cfg(unix)]
fn space(dir: &Path) -> Option<Space> {
    let s = rustix::fs::statvfs(dir).ok()?;
    Some(Space {
        free: s.f_bavail.saturating_mul(s.f_frsize),
        margin: margin(s.f_blocks.saturating_mul(s.f_frsize)),
    })
}

#[cfg(not(unix))]
fn space(_dir: &Path) -> Option<Space> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs `blobs`, each `size` bytes, once `index` has been read; nothing else.
    struct Wants {
        index_read: bool,
        blobs: &'static [&'static str],
        size: u64,
    }

    impl Default for Wants {
        /// `a`, 3 bytes.
        fn default() -> Wants {
            Wants::of(&["a"], 3)
        }
    }

    impl Wants {
        fn of(blobs: &'static [&'static str], size: u64) -> Wants {
            Wants {
                index_read: false,
                blobs,
                size,
            }
        }
    }

    impl Needs for Wants {
        fn need(&self, name: &str) -> Need {
            match (name, self.index_read) {
                ("index", _) => Need::Yes(Size::AtMost(100)),
                (n, true) if self.blobs.contains(&n) => Need::Yes(Size::Exactly {
                    size: self.size,
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
            std::iter::once("index")
                .chain(self.blobs.iter().copied())
                .map(String::from)
                .collect()
        }
        fn needed_count(&self) -> usize {
            1 + self.blobs.len()
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

    /// A tar header of a regular entry `name` of `size` bytes.
    fn header(name: &str, size: u64) -> Vec<u8> {
        let mut h = tar::Header::new_gnu();
        h.set_path(name).unwrap();
        h.set_size(size);
        h.set_mode(0o644);
        h.set_cksum();
        h.as_bytes().to_vec()
    }

    /// `len` zero bytes (a multiple of 512) as zstd frames of RLE blocks, 4 bytes per 128 KiB.
    fn zstd_zeros(out: &mut Vec<u8>, mut len: u64) {
        const BLOCK: u64 = 128 << 10;
        while len > 0 {
            out.extend_from_slice(&[0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38]);
            let mut in_frame = len.min(1 << 30);
            len -= in_frame;
            while in_frame > 0 {
                let n = in_frame.min(BLOCK);
                in_frame -= n;
                let header = ((n as u32) << 3) | (1 << 1) | u32::from(in_frame == 0);
                out.extend_from_slice(&header.to_le_bytes()[..3]);
                out.push(0);
            }
        }
    }

    /// A `.tar.zst` of entries `name` of `size` zero bytes each, then the end marker.
    fn zeros_tar_zst(entries: &[(&str, u64)]) -> tempfile::NamedTempFile {
        let mut out = Vec::new();
        for (name, size) in entries {
            out.extend(zstd::encode_all(&header(name, *size)[..], 1).unwrap());
            zstd_zeros(&mut out, *size);
        }
        out.extend(zstd::encode_all(&[0u8; 1024][..], 1).unwrap());
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(&out).unwrap();
        file
    }

    /// Never learns anything: every entry stays of unknown need (an archive without its
    /// index, or a docker archive before its `manifest.json`).
    struct Blind;

    impl Needs for Blind {
        fn need(&self, _name: &str) -> Need {
            Need::Unknown
        }
        fn reads(&self, _name: &str, _size: u64) -> bool {
            false
        }
        fn learn(&mut self, _name: &str, _content: &[u8]) -> anyhow::Result<()> {
            Ok(())
        }
        fn found(&self) -> bool {
            false
        }
        fn settled(&self) -> bool {
            false
        }
        fn needed(&self) -> Vec<String> {
            Vec::new()
        }
        fn needed_count(&self) -> usize {
            0
        }
    }

    #[test]
    fn entries_passed_over_count_together_against_free_space_and_the_skip_limit() {
        // Each 512 MiB entry is under both bounds; the third takes the three past 256 MiB
        // free plus the 1 GiB of unused entries, and is refused at its header.
        let file = zeros_tar_zst(&[("a", 512 << 20), ("b", 512 << 20), ("c", 512 << 20)]);
        let space = |_: &Path| {
            Some(Space {
                free: 256 << 20,
                margin: 0,
            })
        };
        let err = unpack_with(file.path(), Compression::Zstd, false, &mut Blind, space)
            .err()
            .expect("refused");
        let text = format!("{err:#}");
        assert!(
            text.contains("entry 2 \"c\"")
                && text.contains("to 1610612736 bytes (1.5 GiB)")
                && text.contains("decompression bomb"),
            "{text}"
        );
    }

    #[test]
    fn the_declared_total_is_checked_before_the_first_blob_is_written() {
        // 12 GiB needed, 10 GiB free: refused once the index is read, before "a" is written
        // (the stream holds only its header: writing it would fail as truncated instead).
        let mut stream = zstd::encode_all(&header("index", 2)[..], 1).unwrap();
        let mut body = b"{}".to_vec();
        body.resize(512, 0);
        body.extend(header("a", 4 << 30));
        stream.extend(zstd::encode_all(&body[..], 1).unwrap());
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(&stream).unwrap();
        let space = |_: &Path| {
            Some(Space {
                free: 10 << 30,
                margin: 64 << 20,
            })
        };
        // `index` first, then three blobs of 4 GiB each.
        let mut needs = Wants::of(&["a", "b", "c"], 4 << 30);
        let err = unpack_with(file.path(), Compression::Zstd, false, &mut needs, space)
            .err()
            .expect("refused");
        let text = format!("{err:#}");
        assert!(
            text.contains("needs 12884901890 bytes (12.0 GiB) unpacked in all")
                && text.contains("10737418240 bytes (10.0 GiB) free")
                && text.contains("67108864 bytes (64.0 MiB) is to be left free"),
            "{text}"
        );
    }

    #[test]
    fn a_margin_is_left_free() {
        assert_eq!(margin(1 << 40), (1 << 40) / 100);
        assert_eq!(margin(1 << 30), 64 << 20);
    }

    #[test]
    fn sizes_read_as_bytes_and_gib() {
        assert_eq!(bytes(512), "512 bytes");
        assert_eq!(bytes(20 << 30), "21474836480 bytes (20.0 GiB)");
    }
}
