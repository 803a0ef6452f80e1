//! Real registries for tests: Debian's `docker-registry` on a free loopback port, in plain, TLS,
//! htpasswd and token-auth variants; images generated here and pushed with `skopeo`; a token
//! issuer and a fault-injecting proxy written for the tests. Everything listens on 127.0.0.1
//! and is stopped and deleted on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::{Digest as _, Sha256};

pub const USER: &str = "tester";
pub const PASSWORD: &str = "s3cret-Pa55word";

/// `kubectl-airgap COMMAND --registry HOST --insecure-registry HOST`: a command against a
/// plain-HTTP test registry.
pub fn against(command: &str, host: &str) -> assert_cmd::Command {
    let mut c = super::airgap();
    c.args([command, "--registry", host, "--insecure-registry", host]);
    c
}

/// `push --from FROM EXTRA...` into `mirror`: (exit code, stdout, stderr).
pub fn push_from(
    mirror: &TestRegistry,
    from: impl AsRef<std::ffi::OsStr>,
    extra: &[&str],
) -> (i32, String, String) {
    let out = against("push", &mirror.host())
        .arg("--from")
        .arg(from)
        .args(extra)
        .output()
        .unwrap();
    super::outcome(out)
}

/// A tool the tests need, or a failure that says how to get it.
pub fn require_tool(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "`{name}` is not installed; run scripts/install-test-deps (Debian: apt-get install docker-registry skopeo podman containerd openssl apache2-utils)"
        )
    })
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until the registry says it listens (`true`), or exits (`false`: the port was taken
/// between `free_port` and its bind, by another test's listener; the caller retries). A TCP
/// connect alone would be answered by that other listener.
fn wait_for_registry(port: u16, child: &mut Child, log: &Path) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    let listening = format!("listening on 127.0.0.1:{port}");
    while Instant::now() < deadline {
        if std::fs::read_to_string(log).is_ok_and(|l| l.contains(&listening)) {
            return true;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            if text.contains("address already in use") {
                return false;
            }
            panic!("docker-registry exited ({status}) before listening: {text}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("docker-registry did not listen on 127.0.0.1:{port} within 20 s");
}

/// Runs openssl in `dir`, failing the test with its message; returns what it printed.
fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    require_tool("openssl");
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `<stem>.key` and a self-signed `<stem>.crt` for `cn`, valid two days.
fn self_signed(dir: &Path, cn: &str, stem: &str) {
    let (subject, key, cert) = (
        format!("/CN={cn}"),
        format!("{stem}.key"),
        format!("{stem}.crt"),
    );
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", &subject,
            "-keyout", &key, "-out", &cert,
        ],
    );
}

/// Names other than `localhost` that /etc/hosts gives 127.0.0.1 (the machine's own name, as
/// most systems list it). Helm 3 speaks plain HTTP to `localhost` and loopback addresses
/// whatever the registry serves, so a test of Helm 3 against a TLS registry on 127.0.0.1 reaches
/// it by one of these; the test certificates name them all.
pub fn loopback_names() -> Vec<String> {
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let mut names = Vec::new();
    for line in hosts.lines() {
        let mut words = line.split('#').next().unwrap_or("").split_whitespace();
        if words.next() == Some("127.0.0.1") {
            names.extend(
                words
                    .filter(|w| {
                        *w != "localhost"
                            && w.chars()
                                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
                    })
                    .map(str::to_string),
            );
        }
    }
    names
}

/// Test CA and a server certificate for 127.0.0.1, made with openssl.
pub struct Pki {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// A client certificate the same CA signed, for mutual TLS.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        let run = |args: &[&str]| openssl(dir, args);
        self_signed(dir, "airgap test CA", "ca");
        let names: String = loopback_names()
            .iter()
            .map(|n| format!(",DNS:{n}"))
            .collect();
        std::fs::write(
            dir.join("san.ext"),
            format!(
                "subjectAltName=IP:127.0.0.1,DNS:localhost{names}\nextendedKeyUsage=serverAuth,clientAuth\n"
            ),
        )
        .unwrap();
        for (stem, cn) in [("server", "127.0.0.1"), ("client", "airgap test client")] {
            let (subject, key, csr, cert) = (
                format!("/CN={cn}"),
                format!("{stem}.key"),
                format!("{stem}.csr"),
                format!("{stem}.crt"),
            );
            run(&[
                "req", "-newkey", "rsa:2048", "-nodes", "-subj", &subject, "-keyout", &key, "-out",
                &csr,
            ]);
            run(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "san.ext",
                "-out",
                &cert,
            ]);
        }
        Pki {
            dir: dir.to_path_buf(),
            ca: dir.join("ca.crt"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.crt"),
            client_key: dir.join("client.key"),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tls {
    Off,
    Server,
    Mutual,
}

pub enum Auth {
    None,
    Htpasswd,
    Token(TokenIssuer),
}

/// A running `docker-registry`.
pub struct TestRegistry {
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub pki: Option<Pki>,
    pub auth: Auth,
    child: Child,
}

impl TestRegistry {
    pub fn plain() -> TestRegistry {
        Self::start(Tls::Off, Auth::None)
    }

    pub fn tls() -> TestRegistry {
        Self::start(Tls::Server, Auth::None)
    }

    /// TLS that also demands a client certificate signed by the test CA.
    pub fn mutual_tls() -> TestRegistry {
        Self::start(Tls::Mutual, Auth::None)
    }

    pub fn htpasswd() -> TestRegistry {
        Self::start(Tls::Off, Auth::Htpasswd)
    }

    /// TLS (a test CA) and htpasswd, as a production mirror is set up.
    pub fn tls_htpasswd() -> TestRegistry {
        Self::start(Tls::Server, Auth::Htpasswd)
    }

    pub fn token() -> TestRegistry {
        Self::start(Tls::Off, Auth::Token(TokenIssuer::start()))
    }

    /// Plain HTTP and token auth, its challenge naming `realm` (a proxy in front of `issuer`,
    /// say) as the token service.
    pub fn token_at(issuer: TokenIssuer, realm: &str) -> TestRegistry {
        Self::start_with(Tls::Off, Auth::Token(issuer), Some(realm), None)
    }

    fn start(tls: Tls, auth: Auth) -> TestRegistry {
        Self::start_with(tls, auth, None, None)
    }

    /// `realm`, when given, is the token service the registry names in its challenges instead
    /// of the issuer's own address (the issuer's certificate still signs the tokens it trusts).
    /// `make_pki`, when given, makes the certificates in the registry's directory instead of
    /// [`Pki::new`].
    fn start_with(
        tls: Tls,
        auth: Auth,
        realm: Option<&str>,
        make_pki: Option<&dyn Fn(&Path) -> Pki>,
    ) -> TestRegistry {
        let registry = require_tool("docker-registry");
        require_tool("skopeo");
        let dir = tempfile::tempdir().unwrap();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:PORT\n",
            dir.path().join("storage").display()
        );
        let pki = (tls != Tls::Off).then(|| match make_pki {
            Some(make) => make(dir.path()),
            None => Pki::new(dir.path()),
        });
        if let Some(p) = &pki {
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                p.server_cert.display(),
                p.server_key.display()
            ));
            if tls == Tls::Mutual {
                config.push_str(&format!("    clientcas:\n      - {}\n", p.ca.display()));
            }
        }
        match &auth {
            Auth::None => {}
            Auth::Htpasswd => {
                require_tool("htpasswd");
                let file = dir.path().join("htpasswd");
                let out = Command::new("htpasswd")
                    .args(["-Bbc"])
                    .arg(&file)
                    .args([USER, PASSWORD])
                    .output()
                    .unwrap();
                assert!(out.status.success());
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: airgap-test\n    path: {}\n",
                    file.display()
                ));
            }
            Auth::Token(issuer) => config.push_str(&format!(
                "auth:\n  token:\n    realm: {}\n    service: airgap-test-registry\n    issuer: airgap-test-issuer\n    rootcertbundle: {}\n",
                realm.map_or_else(|| format!("http://127.0.0.1:{}/token", issuer.port), String::from),
                issuer.cert.display()
            )),
        }
        let config_path = dir.path().join("config.yml");
        let log = dir.path().join("registry.err");
        for _ in 0..5 {
            let port = free_port();
            std::fs::write(
                &config_path,
                config.replace("127.0.0.1:PORT", &format!("127.0.0.1:{port}")),
            )
            .unwrap();
            let mut child = Command::new(&registry)
                .arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
            if wait_for_registry(port, &mut child, &log) {
                return TestRegistry {
                    port,
                    dir,
                    pki,
                    auth,
                    child,
                };
            }
        }
        panic!("docker-registry found no free port in 5 tries");
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Pushes an OCI layout's image to `repo:tag` with skopeo (every platform of an index).
    pub fn push(&self, layout: &Path, repo: &str, tag: &str) {
        self.push_named(layout, "latest", repo, tag)
    }

    /// Pushes the image a layout names `ref_name` (`org.opencontainers.image.ref.name`).
    pub fn push_named(&self, layout: &Path, ref_name: &str, repo: &str, tag: &str) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--quiet", "--all", "--preserve-digests"]);
        self.skopeo_options(&mut cmd, "--dest-");
        let out = cmd
            .arg(format!("oci:{}:{ref_name}", layout.display()))
            .arg(format!("docker://{}/{repo}:{tag}", self.host()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skopeo copy to {repo}:{tag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl TestRegistry {
    /// TLS and credential options for skopeo talking to this registry (`prefix` is `--`, or
    /// `--dest-`/`--src-` for `skopeo copy`).
    fn skopeo_options(&self, cmd: &mut Command, prefix: &str) {
        match &self.pki {
            Some(p) => {
                let certs = self.dir.path().join("skopeo-certs");
                std::fs::create_dir_all(&certs).unwrap();
                std::fs::copy(&p.ca, certs.join("ca.crt")).unwrap();
                // skopeo (containers/image) reads a client pair as <name>.cert + <name>.key.
                std::fs::copy(&p.client_cert, certs.join("client.cert")).unwrap();
                std::fs::copy(&p.client_key, certs.join("client.key")).unwrap();
                cmd.arg(format!("{prefix}cert-dir")).arg(certs);
            }
            None => {
                cmd.arg(format!("{prefix}tls-verify=false"));
            }
        }
        if !matches!(self.auth, Auth::None) {
            cmd.arg(format!("{prefix}creds={USER}:{PASSWORD}"));
        }
        cmd.env(
            "REGISTRY_AUTH_FILE",
            self.dir.path().join("skopeo-auth.json"),
        );
    }

    /// `skopeo VERB [TLS and credentials] docker://REFERENCE`, e.g. `inspect --raw`, `delete`.
    pub fn skopeo(&self, verb: &[&str], reference: &str) -> std::process::Output {
        let mut cmd = Command::new("skopeo");
        cmd.args(verb);
        self.skopeo_options(&mut cmd, "--");
        cmd.arg(format!("docker://{reference}")).output().unwrap()
    }

    /// A docker config directory (as `docker login` leaves it) with this registry's login.
    pub fn docker_config(&self, dir: &Path) -> PathBuf {
        let auth = STANDARD.encode(format!("{USER}:{PASSWORD}"));
        let config = serde_json::json!({"auths": {self.host(): {"auth": auth}}});
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
        dir.to_path_buf()
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An OCI image layout with generated content: one image, or an index of several platforms.
pub struct Layout {
    pub dir: tempfile::TempDir,
    /// The digest skopeo will push as the tag's manifest (the index for multi-platform).
    pub digest: String,
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn write_blob(dir: &Path, bytes: &[u8]) -> (String, usize) {
    let digest = sha256_digest(bytes);
    let path = dir.join("blobs/sha256").join(&digest["sha256:".len()..]);
    std::fs::write(path, bytes).unwrap();
    (digest, bytes.len())
}

/// A tar with one file of random bytes: a real layer skopeo can carry.
fn random_layer(seed: u64) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let data: Vec<u8> = (0..4096)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
            (state >> 33) as u8
        })
        .collect();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, format!("data-{seed}.bin"), &data[..])
        .unwrap();
    b.into_inner().unwrap()
}

fn image_manifest(dir: &Path, seed: u64, os: &str, arch: &str) -> (String, usize) {
    let layer = random_layer(seed);
    let (layer_digest, layer_size) = write_blob(dir, &layer);
    let diff_id = format!("sha256:{}", hex::encode(Sha256::digest(&layer)));
    let config = serde_json::json!({
        "architecture": arch, "os": os,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "config": {}
    });
    let (config_digest, config_size) = write_blob(dir, config.to_string().as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size}]
    });
    write_blob(dir, manifest.to_string().as_bytes())
}

impl Layout {
    fn empty() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
        std::fs::write(
            dir.path().join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        dir
    }

    fn finish(dir: tempfile::TempDir, media_type: &str, digest: String, size: usize) -> Layout {
        let index = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": media_type, "digest": digest, "size": size,
                "annotations": {"org.opencontainers.image.ref.name": "latest"}}]
        });
        std::fs::write(dir.path().join("index.json"), index.to_string()).unwrap();
        Layout { dir, digest }
    }

    /// One linux/amd64 image whose content depends on `seed`.
    pub fn single(seed: u64) -> Layout {
        let dir = Self::empty();
        let (digest, size) = image_manifest(dir.path(), seed, "linux", "amd64");
        Self::finish(
            dir,
            "application/vnd.oci.image.manifest.v1+json",
            digest,
            size,
        )
    }

    /// An index of linux/amd64 and linux/arm64 images.
    pub fn multi_arch(seed: u64) -> Layout {
        let dir = Self::empty();
        let mut entries = Vec::new();
        for (i, arch) in ["amd64", "arm64"].iter().enumerate() {
            let (digest, size) = image_manifest(dir.path(), seed * 10 + i as u64, "linux", arch);
            entries.push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest, "size": size,
                "platform": {"os": "linux", "architecture": arch}
            }));
        }
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": entries
        });
        let (digest, size) = write_blob(dir.path(), index.to_string().as_bytes());
        Self::finish(dir, "application/vnd.oci.image.index.v1+json", digest, size)
    }
}

/// `sha256:<hex>` of `bytes`, computed here rather than by the code under test.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A token service for `auth: token`: checks Basic credentials and signs JWTs (RS256, with
/// the certificate in `x5c`) with a key whose certificate the registry trusts.
pub struct TokenIssuer {
    pub port: u16,
    pub cert: PathBuf,
    pub requests: Arc<AtomicUsize>,
    _dir: tempfile::TempDir,
}

impl TokenIssuer {
    pub fn start() -> TokenIssuer {
        let dir = tempfile::tempdir().unwrap();
        self_signed(dir.path(), "airgap test token issuer", "issuer");
        let der = openssl(
            dir.path(),
            &["x509", "-in", "issuer.crt", "-outform", "DER"],
        );
        let x5c = STANDARD.encode(der);
        let key = dir.path().join("issuer.key");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                counter.fetch_add(1, Ordering::SeqCst);
                let (x5c, key) = (x5c.clone(), key.clone());
                std::thread::spawn(move || serve_token(stream, &x5c, &key));
            }
        });
        TokenIssuer {
            port,
            cert: dir.path().join("issuer.crt"),
            requests,
            _dir: dir,
        }
    }
}

/// Reads a request head: the request line and headers.
pub fn read_head(reader: &mut impl BufRead) -> Option<(String, Vec<(String, String)>)> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let request_line = line.trim_end().to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    Some((request_line, headers))
}

fn serve_token(stream: TcpStream, x5c: &str, key: &Path) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let Some((request_line, headers)) = read_head(&mut reader) else {
        return;
    };
    let expected = format!("Basic {}", STANDARD.encode(format!("{USER}:{PASSWORD}")));
    let authorized = headers
        .iter()
        .any(|(k, v)| k == "authorization" && *v == expected);
    if !authorized {
        let _ = writer.write_all(
            b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: 28\r\nConnection: close\r\n\r\n{\"details\":\"bad credentials\"}",
        );
        return;
    }
    let target = request_line.split(' ').nth(1).unwrap_or("");
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let mut access = Vec::new();
    for pair in query.split('&') {
        if let Some(scope) = pair.strip_prefix("scope=") {
            let scope = scope
                .replace("%3A", ":")
                .replace("%2F", "/")
                .replace("%2C", ",");
            let parts: Vec<&str> = scope.split(':').collect();
            if parts.len() == 3 {
                access.push(serde_json::json!({
                    "type": parts[0], "name": parts[1],
                    "actions": parts[2].split(',').collect::<Vec<_>>()
                }));
            }
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [x5c]});
    let claims = serde_json::json!({
        "iss": "airgap-test-issuer", "sub": USER, "aud": "airgap-test-registry",
        "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", access.len()),
        "access": access
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut openssl = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    openssl
        .stdin
        .take()
        .unwrap()
        .write_all(signing_input.as_bytes())
        .unwrap();
    let signature = openssl.wait_with_output().unwrap().stdout;
    let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature));
    let body = serde_json::json!({"token": token, "expires_in": 300}).to_string();
    let _ = write!(
        writer,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// What the fault proxy does with each request, in order; when the script runs out, it
/// forwards.
#[derive(Debug, Clone)]
pub enum Fault {
    Status500,
    TooManyRequests {
        retry_after_secs: u64,
    },
    /// Half a status line, then the connection closes.
    Drop,
}

/// A proxy in front of a registry that answers from a script of faults, then forwards.
pub struct FaultProxy {
    pub port: u16,
    pub requests: Arc<AtomicUsize>,
    /// Every request line seen (`GET /v2/... HTTP/1.1`), in order.
    pub lines: Arc<Mutex<Vec<String>>>,
}

/// What a [`FaultProxy`] does besides its script.
#[derive(Clone, Default)]
struct Rules {
    always: bool,
    /// Answers 413 to a request body over this many bytes.
    max_body: Option<u64>,
    /// Answers 403 DENIED to every upload it is asked to start.
    deny_uploads: bool,
    /// Answers 405 to every HEAD, as some registries and proxies do.
    refuse_head: bool,
    /// Drops `mount=` from every upload start, so the registry starts a plain upload (202), as
    /// registries without cross-repository mounts answer.
    no_mount: bool,
}

impl FaultProxy {
    /// `always`: repeat the last fault forever instead of recovering.
    pub fn start(upstream: u16, script: Vec<Fault>, always: bool) -> FaultProxy {
        let rules = Rules {
            always,
            ..Rules::default()
        };
        Self::start_with(upstream, script, rules)
    }

    /// A proxy that forwards everything but answers 413 to a request body over `max` bytes,
    /// as nginx does with its default `client_max_body_size 1m`.
    pub fn body_limit(upstream: u16, max: u64) -> FaultProxy {
        let rules = Rules {
            max_body: Some(max),
            ..Rules::default()
        };
        Self::start_with(upstream, Vec::new(), rules)
    }

    /// A proxy that forwards reads but denies every upload (`POST .../blobs/uploads/`) with
    /// 403 and an OCI `DENIED` error, as a registry does to a robot account without push rights.
    pub fn deny_uploads(upstream: u16) -> FaultProxy {
        let rules = Rules {
            deny_uploads: true,
            ..Rules::default()
        };
        Self::start_with(upstream, Vec::new(), rules)
    }

    /// A proxy that forwards everything but a HEAD, which it answers 405 Method Not Allowed.
    pub fn refuse_head(upstream: u16) -> FaultProxy {
        let rules = Rules {
            refuse_head: true,
            ..Rules::default()
        };
        Self::start_with(upstream, Vec::new(), rules)
    }

    /// A proxy that forwards everything, but turns each cross-repository mount into a plain
    /// upload start, as a registry without mounts (or a token without pull on the source
    /// repository) answers.
    pub fn no_mount(upstream: u16) -> FaultProxy {
        let rules = Rules {
            no_mount: true,
            ..Rules::default()
        };
        Self::start_with(upstream, Vec::new(), rules)
    }

    /// How many request lines seen so far contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        let lines = self.lines.lock().unwrap();
        lines.iter().filter(|l| l.contains(needle)).count()
    }

    fn start_with(upstream: u16, script: Vec<Fault>, rules: Rules) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (counter, seen) = (requests.clone(), lines.clone());
        let script = Arc::new(Mutex::new(script));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                let (counter, seen, script) = (counter.clone(), seen.clone(), script.clone());
                let rules = rules.clone();
                std::thread::spawn(move || {
                    proxy_connection(stream, upstream, &counter, &seen, &script, &rules)
                });
            }
        });
        FaultProxy {
            port,
            requests,
            lines,
        }
    }
}

fn proxy_connection(
    stream: TcpStream,
    upstream: u16,
    counter: &AtomicUsize,
    seen: &Mutex<Vec<String>>,
    script: &Mutex<Vec<Fault>>,
    rules: &Rules,
) {
    let (always, max_body) = (rules.always, rules.max_body);
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    // One request per connection: every answer closes it, so each request meets the script.
    let Some((request_line, headers)) = read_head(&mut reader) else {
        return;
    };
    counter.fetch_add(1, Ordering::SeqCst);
    seen.lock().unwrap().push(request_line.clone());
    let request_line = match (
        rules.no_mount,
        request_line.split_once("/blobs/uploads/?mount="),
    ) {
        (true, Some((head, rest))) if request_line.starts_with("POST ") => {
            let version = rest.rsplit_once(' ').map_or("HTTP/1.1", |(_, v)| v);
            format!("{head}/blobs/uploads/ {version}")
        }
        _ => request_line,
    };
    if rules.deny_uploads
        && request_line.starts_with("POST ")
        && request_line.contains("/blobs/uploads/")
    {
        let body = r#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#;
        let _ = write!(
            writer,
            "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        return;
    }
    if rules.refuse_head && request_line.starts_with("HEAD ") {
        let _ = write!(
            writer,
            "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        return;
    }
    let fault = {
        let mut s = script.lock().unwrap();
        match s.len() {
            0 => None,
            1 if always => s.first().cloned(),
            _ => Some(s.remove(0)),
        }
    };
    match fault {
        Some(Fault::Status500) => {
            let body = r#"{"errors":[{"code":"UNKNOWN","message":"injected failure"}]}"#;
            let _ = write!(
                writer,
                "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
        Some(Fault::TooManyRequests { retry_after_secs }) => {
            let _ = write!(
                writer,
                "HTTP/1.1 429 Too Many Requests\r\nRetry-After: {retry_after_secs}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
        Some(Fault::Drop) => {
            let _ = writer.write_all(b"HTTP/1.1 200 O");
            let _ = writer.shutdown(Shutdown::Both);
        }
        None => {
            let length: u64 = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            if max_body.is_some_and(|max| length > max) {
                let _ = std::io::copy(&mut (&mut reader).take(length), &mut std::io::sink());
                let _ = write!(
                    writer,
                    "HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                return;
            }
            let mut up = forward_head(upstream, &request_line, &headers);
            let _ = std::io::copy(&mut (&mut reader).take(length), &mut up);
            let mut answer = Vec::new();
            let _ = up.read_to_end(&mut answer);
            let _ = writer.write_all(&answer);
        }
    }
}

/// A Pod using `images`, and, when `hook_image` is given, a pre-install hook Job using it.
pub fn pod_manifests(dir: &Path, images: &[&str], hook_image: Option<&str>) -> std::path::PathBuf {
    let mut text =
        String::from("apiVersion: v1\nkind: Pod\nmetadata:\n  name: app\nspec:\n  containers:\n");
    for (i, image) in images.iter().enumerate() {
        text.push_str(&format!("  - name: c{i}\n    image: {image}\n"));
    }
    if let Some(image) = hook_image {
        text.push_str(&format!(
            "---\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  annotations:\n    helm.sh/hook: pre-install\nspec:\n  template:\n    spec:\n      containers:\n      - name: m\n        image: {image}\n"
        ));
    }
    let path = dir.join("manifests.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `size` pseudo-random bytes from `seed` (xorshift: fast enough for a 200 MB layer).
pub fn random_bytes(seed: u64, size: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(size);
    out
}

/// A layer tar holding one file of `size` random bytes.
pub fn sized_layer(seed: u64, size: usize) -> Vec<u8> {
    let data = random_bytes(seed, size);
    let mut b = tar::Builder::new(Vec::with_capacity(size + 2048));
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, format!("layer-{seed}.bin"), &data[..])
        .unwrap();
    b.into_inner().unwrap()
}

/// An OCI layout holding several named images, as `save` writes it: each image a stack of
/// generated layers `(seed, bytes)`; images that list the same seed share that layer.
pub struct Bundle {
    pub dir: tempfile::TempDir,
    /// (full source reference, manifest digest, config digest)
    pub images: Vec<(String, String, String)>,
    /// Distinct blobs (configs and layers).
    pub blobs: usize,
    pub blob_digests: std::collections::HashSet<String>,
}

impl Bundle {
    pub fn new(images: &[(&str, &[(u64, usize)])]) -> Bundle {
        let dir = Layout::empty();
        let mut entries = Vec::new();
        let mut out = Vec::new();
        let mut blobs = std::collections::HashSet::new();
        for (i, (name, layers)) in images.iter().enumerate() {
            let mut descriptors = Vec::new();
            let mut diff_ids = Vec::new();
            for &(seed, size) in layers.iter() {
                let layer = sized_layer(seed, size);
                let (digest, size) = write_blob(dir.path(), &layer);
                blobs.insert(digest.clone());
                diff_ids.push(digest.clone());
                descriptors.push(serde_json::json!({
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": digest, "size": size}));
            }
            let config = serde_json::json!({
                "architecture": "amd64", "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
                "config": {"Labels": {"image": name}}
            });
            let (config_digest, config_size) =
                write_blob(dir.path(), config.to_string().as_bytes());
            blobs.insert(config_digest.clone());
            let manifest = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config_digest, "size": config_size},
                "layers": descriptors
            });
            let (digest, size) = write_blob(dir.path(), manifest.to_string().as_bytes());
            entries.push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest, "size": size,
                "annotations": {
                    "io.containerd.image.name": name,
                    // skopeo's oci: transport finds images by this name.
                    "org.opencontainers.image.ref.name": format!("img{i}")
                }
            }));
            out.push((name.to_string(), digest, config_digest));
        }
        let index = serde_json::json!({"schemaVersion": 2, "manifests": entries});
        std::fs::write(dir.path().join("index.json"), index.to_string()).unwrap();
        Bundle {
            dir,
            images: out,
            blobs: blobs.len(),
            blob_digests: blobs,
        }
    }
}

/// The repositories a registry holds (`GET /v2/_catalog`), read with curl.
pub fn catalog(host: &str) -> Vec<String> {
    let out = Command::new("curl")
        .args(["-sf", &format!("http://{host}/v2/_catalog")])
        .output()
        .unwrap();
    assert!(out.status.success(), "curl {host}/v2/_catalog failed");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["repositories"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

impl TestRegistry {
    /// TLS (a test CA) and token auth, its Bearer challenge naming `realm` as the token service.
    pub fn tls_token_at(realm: &str) -> TestRegistry {
        Self::start_with(
            Tls::Server,
            Auth::Token(TokenIssuer::start()),
            Some(realm),
            None,
        )
    }
}

/// A plain-HTTP listener that keeps every byte it receives and answers each request 401: a
/// token service that must never be sent a credential.
pub struct Recorder {
    pub port: u16,
    pub received: Arc<Mutex<Vec<u8>>>,
    pub connections: Arc<AtomicUsize>,
}

impl Recorder {
    pub fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (log, count) = (received.clone(), connections.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { break };
                count.fetch_add(1, Ordering::SeqCst);
                let log = log.clone();
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut mine = Vec::new();
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = stream.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        mine.extend_from_slice(&buf[..n]);
                        log.lock().unwrap().extend_from_slice(&buf[..n]);
                        if mine.windows(4).any(|w| w == b"\r\n\r\n") {
                            let _ = stream.write_all(
                                b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                            );
                            break;
                        }
                    }
                });
            }
        });
        Recorder {
            port,
            received,
            connections,
        }
    }

    /// Everything received so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.received.lock().unwrap()).into_owned()
    }
}

/// A TLS front (rustls) for a plain-HTTP test server such as [`TokenIssuer`]: bound first, so
/// that its address can be written into a registry's config before that registry (and the
/// certificate it makes) exists; served once the certificate is there.
pub struct TlsFront {
    pub port: u16,
    listener: TcpListener,
}

impl TlsFront {
    pub fn bind() -> TlsFront {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        TlsFront { port, listener }
    }

    /// Answers TLS with `cert` and `key`, forwarding each connection's one request to
    /// 127.0.0.1:`upstream` and its answer back.
    pub fn serve(self, cert: &Path, key: &Path, upstream: u16) {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let _ = rustls::crypto::ring::default_provider().install_default();
        let certs = CertificateDer::pem_file_iter(cert)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(key).unwrap();
        let config = Arc::new(
            rustls::ServerConfig::builder()
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .unwrap(),
        );
        std::thread::spawn(move || {
            for stream in self.listener.incoming() {
                let Ok(stream) = stream else { break };
                let config = config.clone();
                std::thread::spawn(move || {
                    let conn = rustls::ServerConnection::new(config).unwrap();
                    let mut reader = BufReader::new(rustls::StreamOwned::new(conn, stream));
                    let Some((request_line, headers)) = read_head(&mut reader) else {
                        return;
                    };
                    let mut up = forward_head(upstream, &request_line, &headers);
                    let mut answer = Vec::new();
                    let _ = up.read_to_end(&mut answer);
                    let tls = reader.get_mut();
                    let _ = tls.write_all(&answer);
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                });
            }
        });
    }
}

impl Pki {
    /// One self-signed certificate serving as its own CA, as the Docker and distribution docs
    /// make it: `openssl req -x509` gives it `CA:TRUE`. `dates`, when given, are the
    /// `notBefore` and `notAfter` (`YYYYMMDDHHMMSSZ`), for a certificate out of its dates.
    pub fn lone_self_signed(dir: &Path, dates: Option<(&str, &str)>) -> Pki {
        let pki = dir.join("lone");
        std::fs::create_dir_all(&pki).unwrap();
        let run = |args: &[&str]| openssl(&pki, args);
        match dates {
            None => {
                run(&[
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=127.0.0.1",
                    "-addext",
                    "subjectAltName=IP:127.0.0.1",
                    "-keyout",
                    "domain.key",
                    "-out",
                    "domain.crt",
                ]);
            }
            Some((from, until)) => {
                // `req -x509` of OpenSSL 3.0 takes no dates; `ca -selfsign` does.
                std::fs::write(
                    pki.join("ca.cnf"),
                    "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\ndefault_md = sha256\npolicy = p\nx509_extensions = ext\n[p]\ncommonName = supplied\n[ext]\nbasicConstraints = critical,CA:TRUE\nsubjectAltName = IP:127.0.0.1\n",
                )
                .unwrap();
                std::fs::write(pki.join("index.txt"), "").unwrap();
                std::fs::write(pki.join("serial"), "01\n").unwrap();
                run(&[
                    "req",
                    "-new",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-subj",
                    "/CN=127.0.0.1",
                    "-keyout",
                    "domain.key",
                    "-out",
                    "domain.csr",
                ]);
                run(&[
                    "ca",
                    "-batch",
                    "-notext",
                    "-config",
                    "ca.cnf",
                    "-selfsign",
                    "-keyfile",
                    "domain.key",
                    "-in",
                    "domain.csr",
                    "-startdate",
                    from,
                    "-enddate",
                    until,
                    "-out",
                    "domain.crt",
                ]);
            }
        }
        Pki {
            dir: pki.clone(),
            ca: pki.join("domain.crt"),
            server_cert: pki.join("domain.crt"),
            server_key: pki.join("domain.key"),
            // Never asked for (the registry wants no client certificate); skopeo's cert
            // directory gets a copy all the same.
            client_cert: pki.join("domain.crt"),
            client_key: pki.join("domain.key"),
        }
    }
}

impl TestRegistry {
    /// TLS with a lone self-signed certificate (see [`Pki::lone_self_signed`]).
    pub fn tls_self_signed(dates: Option<(&str, &str)>) -> TestRegistry {
        let make = move |dir: &Path| Pki::lone_self_signed(dir, dates);
        Self::start_with(Tls::Server, Auth::None, None, Some(&make))
    }
}

/// A listener that accepts connections and never answers (nor closes them): a registry that
/// hangs.
pub struct Silent {
    pub port: u16,
    pub connections: Arc<AtomicUsize>,
}

impl Silent {
    pub fn start() -> Silent {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                count.fetch_add(1, Ordering::SeqCst);
                held.push(stream);
            }
        });
        Silent { port, connections }
    }
}

/// Opens a connection to the upstream registry and sends it a request's head, closing after one
/// answer, for the proxies that stand between a client and a test registry.
fn forward_head(upstream: u16, request_line: &str, headers: &[(String, String)]) -> TcpStream {
    let mut up = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
    let mut head = format!("{request_line}\r\n");
    for (k, v) in headers.iter().filter(|(k, _)| k != "connection") {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("connection: close\r\n\r\n");
    up.write_all(head.as_bytes()).unwrap();
    up
}
