//! A packaged chart whose bytes depend on its files only.
//!
//! `helm package` stamps every tar entry with the time it ran, so packaging the same chart twice
//! gives two digests, and the bundle, the mirror and the lock would disagree with the next
//! release's run for nothing. We let Helm package (it knows `.helmignore` and how subcharts
//! are laid out) and then write its archive again: regular files only, sorted by path, mtime 0,
//! owner 0, mode 0644, and a gzip header with no time and no name.

use std::io::{Read, Write};

use anyhow::Context;

/// Bytes of a packaged chart unpacked at the most: charts are kilobytes; this bounds a hostile
/// archive, not a real chart.
const MAX_UNPACKED: u64 = 256 << 20;

/// `tgz` written again deterministically.
pub(crate) fn normalize(tgz: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut total = 0u64;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tgz));
    for entry in archive.entries().context("reading the packaged chart")? {
        let mut entry = entry.context("reading the packaged chart")?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path()?.to_string_lossy().into_owned();
        total += entry.size();
        if total > MAX_UNPACKED {
            anyhow::bail!("the packaged chart unpacks to over {MAX_UNPACKED} bytes");
        }
        let mut data = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut data)?;
        files.push((path, data));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let gz = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), flate2::Compression::default());
    let mut builder = tar::Builder::new(gz);
    builder.mode(tar::HeaderMode::Deterministic);
    for (path, data) in &files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, path, data.as_slice())
            .with_context(|| format!("packaging {path}"))?;
    }
    let mut gz = builder.into_inner()?;
    gz.flush()?;
    Ok(gz.finish()?)
}

/// One file of a packaged chart (`NAME/Chart.yaml`), by its path inside the chart directory.
pub(crate) fn read_file(tgz: &[u8], inside: &str) -> anyhow::Result<Option<Vec<u8>>> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tgz));
    for entry in archive.entries().context("reading the packaged chart")? {
        let entry = entry.context("reading the packaged chart")?;
        let path = entry.path()?.to_string_lossy().into_owned();
        // The chart's own file, not a subchart's: `NAME/Chart.yaml`, one level deep.
        if path.split_once('/').map(|(_, rest)| rest) == Some(inside) {
            let mut data = Vec::new();
            entry.take(MAX_UNPACKED).read_to_end(&mut data)?;
            return Ok(Some(data));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tgz(files: &[(&str, &str, u64)]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        for (path, text, mtime) in files {
            let mut h = tar::Header::new_ustar();
            h.set_size(text.len() as u64);
            h.set_mode(0o600);
            h.set_mtime(*mtime);
            b.append_data(&mut h, path, text.as_bytes()).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn the_same_files_give_the_same_bytes() {
        let a = tgz(&[("c/Chart.yaml", "name: c\n", 100), ("c/values.yaml", "", 5)]);
        let b = tgz(&[("c/values.yaml", "", 99), ("c/Chart.yaml", "name: c\n", 7)]);
        assert_ne!(a, b);
        let (na, nb) = (normalize(&a).unwrap(), normalize(&b).unwrap());
        assert_eq!(na, nb);
        assert_eq!(normalize(&na).unwrap(), na, "normalizing is idempotent");
        assert_eq!(
            read_file(&na, "Chart.yaml").unwrap().as_deref(),
            Some(&b"name: c\n"[..])
        );
        let changed = normalize(&tgz(&[("c/Chart.yaml", "name: d\n", 0)])).unwrap();
        assert_ne!(changed, na);
    }
}
