//! Hostile and damaged bundles: a truncated plain tar is named truncated and tags nothing.

mod common;

use common::registry::{Bundle, TestRegistry, against, catalog};

/// One tar entry (a GNU header, the data, padding to 512 bytes), without the end-of-archive
/// marker, so entries can be laid out in any order and compressed piecewise.
fn tar_entry(name: &str, data: &[u8]) -> Vec<u8> {
    let mut out = tar_header(name, data.len() as u64);
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

fn tar_header(name: &str, size: u64) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_path(name).unwrap();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    h.as_bytes().to_vec()
}

/// tar's end-of-archive marker: two zero blocks.
const TRAILER: [u8; 1024] = [0; 1024];

/// A bundle's files parent first: oci-layout, index.json, then each image's manifest, config
/// and layers, as (name inside the layout, bytes).
fn parent_first(bundle: &Bundle) -> Vec<(String, Vec<u8>)> {
    let dir = bundle.dir.path();
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
    let blob = |digest: &str| format!("blobs/sha256/{}", &digest[7..]);
    let mut out = vec![
        ("oci-layout".to_string(), read("oci-layout")),
        ("index.json".to_string(), read("index.json")),
    ];
    let mut seen = std::collections::HashSet::new();
    for (_, manifest, _) in &bundle.images {
        let bytes = read(&blob(manifest));
        let m: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        out.push((blob(manifest), bytes));
        let children = std::iter::once(&m["config"]).chain(m["layers"].as_array().unwrap());
        for d in children {
            let name = blob(d["digest"].as_str().unwrap());
            if seen.insert(name.clone()) {
                let bytes = read(&name);
                out.push((name, bytes));
            }
        }
    }
    out
}

#[test]
fn a_truncated_plain_tar_is_named_truncated_and_tags_nothing() {
    let bundle = Bundle::new(&[
        ("quay.io/org/first:v1", &[(11, 20_000)]),
        ("quay.io/org/second:v1", &[(12, 300_000)]),
    ]);
    let files = parent_first(&bundle);
    let mut bytes = Vec::new();
    for (name, data) in &files {
        bytes.extend(tar_entry(name, data));
    }
    bytes.extend_from_slice(&TRAILER);
    // Cut in the middle of the last entry: the second image's 300 KB layer.
    let last = tar_entry(&files.last().unwrap().0, &files.last().unwrap().1);
    let cut = bytes.len() - TRAILER.len() - last.len() / 2;
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("cut.tar");
    std::fs::write(&path, &bytes[..cut]).unwrap();

    let mirror = TestRegistry::plain();
    let out = against("push", &mirror.host())
        .args(["--from", path.to_str().unwrap()])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!("truncated at byte {cut}")) && stderr.contains("cut.tar"),
        "{stdout}{stderr}"
    );
    assert_eq!(catalog(&mirror.host()), Vec::<String>::new(), "{stdout}");

    // Cut between two entries, the end-of-archive marker gone with the rest.
    let whole_entries: usize = files[..files.len() - 1]
        .iter()
        .map(|(n, d)| tar_entry(n, d).len())
        .sum();
    std::fs::write(&path, &bytes[..whole_entries]).unwrap();
    let out = against("push", &mirror.host())
        .args(["--from", path.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("truncated at byte {whole_entries}")),
        "{stderr}"
    );
    assert_eq!(catalog(&mirror.host()), Vec::<String>::new());
}
