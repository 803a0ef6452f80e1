//! `serve`: a bundle `save` wrote, served as a registry and read back by real clients (skopeo,
//! containerd's `ctr`, podman, Helm), over plain HTTP and over TLS with htpasswd; a real
//! registry filled from it by `push --from registry --source-mirror`; pushes, bad paths and
//! bad digests refused; a stop that lets a download in flight finish.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

use crate::common::helm::Helm;
use crate::common::registry::{
    Bundle, Layout, Pki, TestRegistry, free_port, pod_manifests, require_tool,
};
use crate::common::tools::{Containerd, Podman};
use crate::common::{airgap, airgap_child, stdout_of_success};

const USER: &str = "puller";
const PASSWORD: &str = "s3cret-pull";

/// A `kubectl-airgap serve` child on a free port, killed and reaped when dropped.
pub(crate) struct Served {
    child: Child,
    port: u16,
    logs: tempfile::TempDir,
    scheme: &'static str,
}

impl Served {
    /// Starts `serve ARGS --addr 127.0.0.1:PORT` and waits until it answers `/v2/`.
    pub(crate) fn start(args: &[&str]) -> Served {
        let tls = args.contains(&"--tls-cert");
        let scheme = if tls { "https" } else { "http" };
        for _ in 0..5 {
            let logs = tempfile::tempdir().unwrap();
            let port = free_port();
            let child = airgap_child(logs.path())
                .arg("serve")
                .args(args)
                .args(["--addr", &format!("127.0.0.1:{port}")])
                .spawn()
                .unwrap();
            let mut served = Served {
                child,
                port,
                logs,
                scheme,
            };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(status)) = served.child.try_wait() {
                    let log = served.log();
                    if log.contains("cannot listen there") {
                        break; // the port was taken since free_port: try another
                    }
                    panic!("serve exited ({status}) before listening: {log}");
                }
                if served
                    .log()
                    .contains(&format!("{scheme}://127.0.0.1:{port}"))
                {
                    let (status, _, _) = served.curl(&["-k"], "/v2/");
                    if status == 200 || status == 401 {
                        return served;
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if served.child.try_wait().unwrap().is_none() {
                panic!("serve did not answer /v2/ within 20 s: {}", served.log());
            }
        }
        panic!("serve found no free port in 5 tries");
    }

    pub(crate) fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Its stderr so far: the start line and one line a request.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.logs.path().join("stderr")).unwrap_or_default()
    }

    /// `curl EXTRA URL-of-PATH` (the path sent as written): status, headers, body.
    fn curl(&self, extra: &[&str], path: &str) -> (u16, String, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let (headers, body) = (dir.path().join("h"), dir.path().join("b"));
        let out = Command::new("curl")
            .args(["-s", "--path-as-is", "-o"])
            .arg(&body)
            .arg("-D")
            .arg(&headers)
            .args(["-w", "%{http_code}"])
            .args(extra)
            .arg(format!("{}://{}{path}", self.scheme, self.host()))
            .output()
            .unwrap();
        let status = String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0);
        (
            status,
            std::fs::read_to_string(&headers)
                .unwrap_or_default()
                .to_ascii_lowercase(),
            std::fs::read(&body).unwrap_or_default(),
        )
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The OCI error code of an error body.
fn error_code(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    v["errors"][0]["code"].as_str().unwrap_or("").to_string()
}

/// A source registry holding a single-platform image, a two-platform index and (with
/// `chart`) the test chart pushed by Helm, and a bundle `save` made of them.
struct Saved {
    source: TestRegistry,
    work: tempfile::TempDir,
    manifests: PathBuf,
    bundle: PathBuf,
    /// (source reference, manifest digest): the image, the index, then the chart.
    images: Vec<(String, String)>,
    chart_tgz: Option<PathBuf>,
}

impl Saved {
    fn new(output: &str, chart: bool) -> Saved {
        let source = TestRegistry::plain();
        let work = tempfile::tempdir().unwrap();
        let single = Layout::single(71);
        let multi = Layout::multi_arch(72);
        source.push(single.dir.path(), "app/single", "v1");
        source.push(multi.dir.path(), "app/multi", "v2");
        let mut images = vec![
            (format!("{}/app/single:v1", source.host()), single.digest),
            (format!("{}/app/multi:v2", source.host()), multi.digest),
        ];
        let mut chart_tgz = None;
        if chart {
            let helm = Helm::new(3);
            let out = helm
                .cmd(&["package", "testdata/charts/shop", "-d"])
                .arg(work.path())
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .output()
                .unwrap();
            stdout_of_success(&out);
            let tgz = work.path().join("shop-0.1.0.tgz");
            let oci = format!("oci://{}/charts", source.host());
            let out = helm
                .cmd(&["push", tgz.to_str().unwrap(), &oci, "--plain-http"])
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            let pushed = String::from_utf8_lossy(&out.stderr).into_owned();
            let digest = pushed
                .lines()
                .find_map(|l| l.strip_prefix("Digest: "))
                .unwrap_or_else(|| panic!("helm push said no digest: {pushed}"))
                .trim()
                .to_string();
            images.push((format!("{}/charts/shop:0.1.0", source.host()), digest));
            chart_tgz = Some(tgz);
        }
        let refs: Vec<&str> = images.iter().map(|(r, _)| r.as_str()).collect();
        let manifests = pod_manifests(work.path(), &refs, None);
        let bundle = work.path().join(output);
        let out = airgap()
            .args(["save", "-f"])
            .arg(&manifests)
            .arg("-o")
            .arg(&bundle)
            .args(["--insecure-registry", &source.host()])
            .output()
            .unwrap();
        stdout_of_success(&out);
        Saved {
            source,
            work,
            manifests,
            bundle,
            images,
            chart_tgz,
        }
    }
}

/// The image references `post-render --registry HOST` writes into the saved manifests, in
/// the order the manifests list them.
fn post_rendered(manifests: &Path, host: &str) -> Vec<String> {
    let text = std::fs::read_to_string(manifests).unwrap();
    let out = airgap()
        .args(["post-render", "--registry", host])
        .write_stdin(text)
        .output()
        .unwrap();
    stdout_of_success(&out)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("image: "))
        .map(|s| s.trim_matches('"').to_string())
        .collect()
}

#[test]
fn a_saved_tar_served_over_http_is_pulled_by_skopeo_ctr_podman_and_helm() {
    require_tool("curl");
    let saved = Saved::new("bundle.tar", true);
    let served = Served::start(&[saved.bundle.to_str().unwrap()]);
    let host = served.host();
    // The names post-render points a cluster at are the names served.
    let names = post_rendered(&saved.manifests, &host);
    assert_eq!(names.len(), saved.images.len(), "{names:?}");

    for (i, (name, (source, digest))) in names.iter().zip(&saved.images).enumerate() {
        let out = Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{name}"))
            .output()
            .unwrap();
        let raw = stdout_of_success(&out);
        assert_eq!(&sha256(raw.as_bytes()), digest, "{name} (from {source})");
        let copy = saved.work.path().join(format!("copy-{i}"));
        let out = Command::new("skopeo")
            .args(["copy", "--quiet", "--all", "--preserve-digests"])
            .arg("--src-tls-verify=false")
            .arg(format!("docker://{name}"))
            .arg(format!("oci:{}:x", copy.display()))
            .output()
            .unwrap();
        stdout_of_success(&out);
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(copy.join("index.json")).unwrap()).unwrap();
        assert_eq!(index["manifests"][0]["digest"], digest.as_str(), "{name}");
    }

    // containerd and podman pull the two-platform index (and unpack their own platform).
    let (multi, multi_digest) = (&names[1], &saved.images[1].1);
    ctr_and_podman_pull(
        multi,
        multi_digest,
        &["--plain-http"],
        &["--tls-verify=false"],
    );

    // Helm pulls the chart the bundle holds, byte for byte what was packaged.
    let helm = Helm::new(3);
    let into = saved.work.path().join("pulled");
    std::fs::create_dir_all(&into).unwrap();
    let chart = names[2].rsplit_once(':').unwrap().0;
    let out = helm
        .cmd(&["pull", &format!("oci://{chart}"), "--version", "0.1.0"])
        .args(["--plain-http", "-d", into.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        std::fs::read(into.join("shop-0.1.0.tgz")).unwrap(),
        std::fs::read(saved.chart_tgz.as_ref().unwrap()).unwrap()
    );

    // Lists, pages and ranges, as a registry answers them.
    let (status, headers, body) = served.curl(&[], "/v2/_catalog?n=1");
    assert_eq!(status, 200);
    let first: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let first = first["repositories"][0].as_str().unwrap().to_string();
    assert!(headers.contains("link: </v2/_catalog?last="), "{headers}");
    let (_, _, body) = served.curl(&[], &format!("/v2/_catalog?n=10&last={first}"));
    let rest: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(rest["repositories"].as_array().unwrap().len(), 2, "{rest}");
    let repo = multi.rsplit_once(':').unwrap().0.split_once('/').unwrap().1;
    let (status, _, body) = served.curl(&[], &format!("/v2/{repo}/tags/list"));
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()["tags"],
        serde_json::json!(["v2"])
    );
    let (_, headers, _) = served.curl(&["-I"], &format!("/v2/{repo}/manifests/v2"));
    assert!(
        headers.contains(&format!("docker-content-digest: {multi_digest}"))
            && headers.contains("content-type: application/vnd.oci.image.index.v1+json"),
        "{headers}"
    );
    let index: serde_json::Value = serde_json::from_slice(
        &served
            .curl(&[], &format!("/v2/{repo}/manifests/{multi_digest}"))
            .2,
    )
    .unwrap();
    let child = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&served.curl(&[], &format!("/v2/{repo}/manifests/{child}")).2)
            .unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let whole = served.curl(&[], &format!("/v2/{repo}/blobs/{layer}")).2;
    assert_eq!(sha256(&whole), layer);
    let (status, headers, part) = served.curl(
        &["-H", "Range: bytes=100-1123"],
        &format!("/v2/{repo}/blobs/{layer}"),
    );
    assert_eq!(status, 206);
    assert_eq!(part, whole[100..1124]);
    assert!(
        headers.contains(&format!("content-range: bytes 100-1123/{}", whole.len())),
        "{headers}"
    );
    let (status, _, _) = served.curl(
        &["-H", "Range: bytes=999999999-"],
        &format!("/v2/{repo}/blobs/{layer}"),
    );
    assert_eq!(status, 416);
    // A blob is served only under a repository whose manifests name it.
    let other = names[0]
        .rsplit_once(':')
        .unwrap()
        .0
        .split_once('/')
        .unwrap()
        .1;
    let (status, _, body) = served.curl(&[], &format!("/v2/{other}/blobs/{layer}"));
    assert_eq!((status, error_code(&body).as_str()), (404, "BLOB_UNKNOWN"));
    let (status, headers, body) = served.curl(&[], &format!("/v2/{repo}/referrers/{multi_digest}"));
    assert_eq!(status, 200);
    assert!(headers.contains("content-type: application/vnd.oci.image.index.v1+json"));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()["manifests"],
        serde_json::json!([])
    );

    // Pushes are refused with 405 UNSUPPORTED, by skopeo's upload and by a bare PUT.
    let local = Layout::single(73);
    let out = Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:latest", local.dir.path().display()))
        .arg(format!("docker://{host}/pushed/here:v1"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        served
            .log()
            .contains("POST /v2/pushed/here/blobs/uploads/ 405"),
        "{}",
        served.log()
    );
    let (status, _, body) = served.curl(
        &["-X", "PUT", "--data", "{}"],
        &format!("/v2/{repo}/manifests/v9"),
    );
    assert_eq!((status, error_code(&body).as_str()), (405, "UNSUPPORTED"));

    // `..` and bad digests are refused from the path alone: 400, and the bundle is not even
    // opened (inotify on the tar sees nothing, where a good request is seen opening it).
    let bad = [
        ("/v2/../../../../etc/passwd".to_string(), "NAME_INVALID"),
        (
            format!("/v2/{repo}/blobs/sha256:../../../../etc/passwd"),
            "NAME_INVALID",
        ),
        (
            format!("/v2/{repo}/blobs/%2e%2e%2fetc%2fpasswd"),
            "DIGEST_INVALID",
        ),
        (format!("/v2/{repo}/blobs/sha256:ABCDEF"), "DIGEST_INVALID"),
        (format!("/v2/{repo}/manifests/sha256:xyz"), "DIGEST_INVALID"),
        (
            "/v2/%2e%2e/etc/manifests/passwd".to_string(),
            "NAME_INVALID",
        ),
    ];
    let touched = touches(&saved.bundle, || {
        for (path, code) in &bad {
            let (status, _, body) = served.curl(&[], path);
            assert_eq!((status, error_code(&body).as_str()), (400, *code), "{path}");
            assert!(!String::from_utf8_lossy(&body).contains("root:"), "{path}");
        }
    });
    assert_eq!(touched, 0, "bad paths opened or read the bundle");
    let touched = touches(&saved.bundle, || {
        assert_eq!(
            served.curl(&[], &format!("/v2/{repo}/blobs/{layer}")).0,
            200
        );
    });
    assert!(
        touched > 0,
        "inotify saw no read of the bundle for a good request"
    );
    let zeros = format!("sha256:{}", "0".repeat(64));
    let (status, _, body) = served.curl(&[], &format!("/v2/{repo}/manifests/{zeros}"));
    assert_eq!(
        (status, error_code(&body).as_str()),
        (404, "MANIFEST_UNKNOWN")
    );
    let (status, _, body) = served.curl(&[], "/v2/no/such/repo/tags/list");
    assert_eq!((status, error_code(&body).as_str()), (404, "NAME_UNKNOWN"));

    // One log line a request: method, path, status, bytes, milliseconds.
    let log = served.log();
    let line = log
        .lines()
        .find(|l| l.contains(&format!("GET /v2/{repo}/blobs/{layer} 200 ")))
        .unwrap_or_else(|| panic!("{log}"));
    let fields: Vec<&str> = line.split(' ').collect();
    assert_eq!(fields[4], whole.len().to_string(), "{line}");
    assert!(fields[5].ends_with("ms"), "{line}");
}

#[test]
fn a_saved_dir_served_over_tls_with_htpasswd_fills_an_empty_registry() {
    require_tool("htpasswd");
    let saved = Saved::new("bundle", false);
    let source_host = saved.source.host();
    let Saved {
        source,
        work,
        manifests,
        bundle,
        images,
        ..
    } = saved;
    // From here on the images exist only in the bundle.
    drop(source);
    let pki = Pki::new(work.path());
    let htpasswd = work.path().join("htpasswd");
    let out = Command::new("htpasswd")
        .arg("-Bbc")
        .arg(&htpasswd)
        .args([USER, PASSWORD])
        .output()
        .unwrap();
    assert!(out.status.success());
    // strip: the source's own paths, which `push --source-mirror` asks a stand-in for.
    let served = Served::start(&[
        bundle.to_str().unwrap(),
        "--naming",
        "strip",
        "--tls-cert",
        pki.server_cert.to_str().unwrap(),
        "--tls-key",
        pki.server_key.to_str().unwrap(),
        "--htpasswd",
        htpasswd.to_str().unwrap(),
    ]);
    let host = served.host();
    let ca = pki.ca.to_str().unwrap();

    let (status, headers, body) = served.curl(&["--cacert", ca], "/v2/");
    assert_eq!((status, error_code(&body).as_str()), (401, "UNAUTHORIZED"));
    assert!(
        headers.contains("www-authenticate: basic realm="),
        "{headers}"
    );
    let wrong = format!("{USER}:nope");
    assert_eq!(served.curl(&["--cacert", ca, "-u", &wrong], "/v2/").0, 401);
    let creds = format!("{USER}:{PASSWORD}");
    assert_eq!(served.curl(&["--cacert", ca, "-u", &creds], "/v2/").0, 200);
    assert!(!served.log().contains(PASSWORD));

    let certs = work.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(&pki.ca, certs.join("ca.crt")).unwrap();
    let served_name = |source: &str| source.replacen(&source_host, &host, 1);
    for (source, digest) in &images {
        let out = Command::new("skopeo")
            .args(["inspect", "--raw", "--creds", &creds, "--cert-dir"])
            .arg(&certs)
            .arg(format!("docker://{}", served_name(source)))
            .env("REGISTRY_AUTH_FILE", work.path().join("auth.json"))
            .output()
            .unwrap();
        assert_eq!(
            &sha256(stdout_of_success(&out).as_bytes()),
            digest,
            "{source}"
        );
    }

    let (multi, multi_digest) = (served_name(&images[1].0), &images[1].1);
    // containerd trusts the test CA through a hosts directory.
    let hosts = work.path().join("hosts.d");
    std::fs::create_dir_all(hosts.join(&host)).unwrap();
    std::fs::write(
        hosts.join(&host).join("hosts.toml"),
        format!("server = \"https://{host}\"\n\n[host.\"https://{host}\"]\n  ca = \"{ca}\"\n"),
    )
    .unwrap();
    let hosts = hosts.to_str().unwrap();
    let certs_dir = certs.to_str().unwrap();
    ctr_and_podman_pull(
        &multi,
        multi_digest,
        &["--hosts-dir", hosts, "--user", &creds],
        &["--creds", &creds, "--cert-dir", certs_dir],
    );

    // Fill an empty registry from the served bundle, as from the images' own registry.
    let target = TestRegistry::plain();
    let docker = work.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let auth = base64_encode(&creds);
    std::fs::write(
        docker.join("config.json"),
        serde_json::json!({"auths": {&host: {"auth": auth}}}).to_string(),
    )
    .unwrap();
    let config = work.path().join("config.yaml");
    std::fs::write(
        &config,
        format!("registries:\n  \"{host}\":\n    caFile: {ca}\n"),
    )
    .unwrap();
    let out = airgap()
        .args(["push", "--from", "registry", "-f"])
        .arg(&manifests)
        .args(["--source-mirror", &format!("{source_host}=https://{host}")])
        .args([
            "--registry",
            &target.host(),
            "--insecure-registry",
            &target.host(),
        ])
        .arg("--config")
        .arg(&config)
        .env("DOCKER_CONFIG", &docker)
        .output()
        .unwrap();
    stdout_of_success(&out);
    for (source, digest) in &images {
        let mirrored = source.replacen(
            &source_host,
            &format!("{}/{}", target.host(), source_host.replace(':', "_")),
            1,
        );
        let out = target.skopeo(&["inspect", "--raw"], &mirrored);
        assert_eq!(
            &sha256(stdout_of_success(&out).as_bytes()),
            digest,
            "{mirrored}"
        );
    }
}

/// `ctr images pull FLAGS NAME` and `podman pull FLAGS NAME`, each into a store of its own;
/// both must hold NAME at `digest`.
fn ctr_and_podman_pull(name: &str, digest: &str, ctr_flags: &[&str], podman_flags: &[&str]) {
    let ctr = Containerd::start();
    let mut args = vec!["images", "pull"];
    args.extend(ctr_flags);
    args.push(name);
    ctr.run(&args);
    let listed = ctr.run(&["images", "ls"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(name) && l.contains(digest)),
        "{listed}"
    );
    let podman = Podman::new();
    let mut args = vec!["pull", "-q"];
    args.extend(podman_flags);
    args.push(name);
    podman.run(&args);
    let pulled = podman.run(&["image", "inspect", "--format", "{{.Digest}}", name]);
    assert_eq!(pulled.trim(), digest, "podman pull {name}");
}

/// How many opens and reads of `path` inotify reports while `f` runs.
fn touches(path: &Path, f: impl FnOnce()) -> usize {
    use rustix::fs::inotify;
    let fd = inotify::init(inotify::CreateFlags::NONBLOCK | inotify::CreateFlags::CLOEXEC).unwrap();
    let watch = inotify::WatchFlags::OPEN | inotify::WatchFlags::ACCESS;
    inotify::add_watch(&fd, path, watch).unwrap();
    f();
    let mut buf = [std::mem::MaybeUninit::uninit(); 8192];
    let mut events = inotify::Reader::new(&fd, &mut buf);
    let mut n = 0;
    while events.next().is_ok() {
        n += 1;
    }
    n
}

const SIG_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";

/// Adds to layout `dir` a signature-like artifact whose subject is manifest `subject` of
/// `repo`, named as cosign tags one (`REPO:sha256-HEX.sig`); its digest.
fn add_referrer(dir: &Path, repo: &str, subject: &str) -> String {
    let write = |bytes: &[u8]| {
        let digest = sha256(bytes);
        std::fs::write(dir.join("blobs/sha256").join(&digest[7..]), bytes).unwrap();
        (digest, bytes.len())
    };
    let subject_size = std::fs::metadata(dir.join("blobs/sha256").join(&subject[7..]))
        .unwrap()
        .len();
    let (config, config_size) = write(b"{}");
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": SIG_TYPE,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": config_size},
        "layers": [],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject, "size": subject_size},
        "annotations": {"org.example": "signed"}
    });
    let (digest, size) = write(manifest.to_string().as_bytes());
    let index_path = dir.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let name = format!("{repo}:sha256-{}.sig", &subject[7..]);
    index["manifests"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest, "size": size,
            "annotations": {"io.containerd.image.name": name}
        }));
    std::fs::write(&index_path, index.to_string()).unwrap();
    digest
}

fn base64_encode(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn a_stop_finishes_the_download_in_flight_and_compressed_tars_are_refused() {
    require_tool("curl");
    // A 16 MB layer read at 4 MB/s: seconds in flight, more than loopback's socket buffers
    // hold, so the server is still sending when the signal comes.
    let bundle = Bundle::new(&[("quay.io/org/big:v1", &[(91, 16 << 20)])]);
    let sig = add_referrer(bundle.dir.path(), "quay.io/org/big", &bundle.images[0].1);
    let served = Served::start(&[bundle.dir.path().to_str().unwrap()]);
    // The referrers API lists the signature the bundle holds for the image, and filters it.
    let image = &bundle.images[0].1;
    let referrers = format!("/v2/quay.io/org/big/referrers/{image}");
    let (status, _, body) = served.curl(&[], &referrers);
    let listed: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 200);
    assert_eq!(listed["manifests"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["manifests"][0]["digest"], sig.as_str());
    assert_eq!(listed["manifests"][0]["artifactType"], SIG_TYPE);
    let (_, headers, body) = served.curl(&[], &format!("{referrers}?artifactType=text%2Fplain"));
    let listed: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(listed["manifests"], serde_json::json!([]));
    assert!(
        headers.contains("oci-filters-applied: artifacttype"),
        "{headers}"
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&served.curl(&[], "/v2/quay.io/org/big/manifests/v1").2).unwrap();
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let size = manifest["layers"][0]["size"].as_u64().unwrap();
    let out = tempfile::NamedTempFile::new().unwrap();
    let download = Command::new("curl")
        .args(["-s", "--limit-rate", "4M", "-o"])
        .arg(out.path())
        .args(["-w", "%{http_code}"])
        .arg(format!(
            "http://{}/v2/quay.io/org/big/blobs/{layer}",
            served.host()
        ))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let pid = served.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut served = served;
    let status = served.child.wait().unwrap();
    let curl = download.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&curl.stdout), "200");
    let got = std::fs::read(out.path()).unwrap();
    assert_eq!(got.len() as u64, size);
    assert_eq!(sha256(&got), layer);
    assert_eq!(status.code(), Some(0), "{}", served.log());
    let log = served.log();
    assert!(
        log.contains("SIGTERM: accepting no more connections; letting 1 open connection(s) finish"),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "GET /v2/quay.io/org/big/blobs/{layer} 200 {size} "
        )),
        "{log}"
    );

    // A compressed tar cannot be read in place: refused, saying what to do.
    let work = tempfile::tempdir().unwrap();
    let tgz = work.path().join("bundle.tar.gz");
    let tar = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar -C {} -czf {} .",
            bundle.dir.path().display(),
            tgz.display()
        ))
        .status()
        .unwrap();
    assert!(tar.success());
    let (code, stderr) = refused_at_start(&[tgz.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("Gzip-compressed") && stderr.contains("gzip -dk"),
        "{stderr}"
    );
}

/// `serve ARGS` on a free port that must exit at once: its exit code and stderr.
fn refused_at_start(args: &[&str]) -> (Option<i32>, String) {
    let out = airgap()
        .arg("serve")
        .args(args)
        .args(["--addr", &format!("127.0.0.1:{}", free_port())])
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bundles_that_cannot_be_served_as_given_are_refused_at_start() {
    // A layout skopeo wrote names its image by tag alone: it needs --name, as for push --from.
    let tagged = Layout::single(81);
    let dir = tagged.dir.path().to_str().unwrap();
    let (code, stderr) = refused_at_start(&[dir]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--name TAG=REF"), "{stderr}");
    let served = Served::start(&[dir, "--name", "latest=quay.io/x/y:v1"]);
    let (status, headers, _) = served.curl(&["-I"], "/v2/quay.io/x/y/manifests/v1");
    assert_eq!(status, 200);
    assert!(
        headers.contains(&format!("docker-content-digest: {}", tagged.digest)),
        "{headers}"
    );
    drop(served);

    // One name and tag at two digests in two bundles: which to serve is not ours to guess.
    let a = Bundle::new(&[("quay.io/a/b:v1", &[(1, 1000)])]);
    let b = Bundle::new(&[("quay.io/a/b:v1", &[(2, 1000)])]);
    let (code, stderr) = refused_at_start(&[
        a.dir.path().to_str().unwrap(),
        b.dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("quay.io/a/b:v1 is") && stderr.contains(&b.images[0].1),
        "{stderr}"
    );

    // A bundle that lacks a blob its manifest names is refused, saying which.
    let layer = a
        .blob_digests
        .iter()
        .find(|d| **d != a.images[0].2)
        .unwrap()
        .clone();
    std::fs::remove_file(a.dir.path().join("blobs/sha256").join(&layer[7..])).unwrap();
    let (code, stderr) = refused_at_start(&[a.dir.path().to_str().unwrap()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("lacks blob {layer}")) && stderr.contains("check --bundle"),
        "{stderr}"
    );

    // A blob that is a symbolic link could be any file of this host, served to any client
    // (only its size is known before a client reads it): refused at start, naming it. The
    // link here points at the blob's own bytes outside the bundle, so only the link is wrong.
    let layer = b
        .blob_digests
        .iter()
        .find(|d| **d != b.images[0].2)
        .unwrap()
        .clone();
    let blob = b.dir.path().join("blobs/sha256").join(&layer[7..]);
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("elsewhere");
    std::fs::rename(&blob, &target).unwrap();
    std::os::unix::fs::symlink(&target, &blob).unwrap();
    let (code, stderr) = refused_at_start(&[b.dir.path().to_str().unwrap()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("is a symbolic link"), "{stderr}");
}
