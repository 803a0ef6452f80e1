"""The `push` benchmark of issue 5: one generated bundle (an OCI layout of 10 images, ~400 MB,
one 40 MB base layer shared by all) pushed into an empty local docker-registry three ways, in
one run, each into a fresh registry:

- kubectl-airgap push --from BUNDLE (default --concurrency 16);
- a `skopeo copy --preserve-digests oci:BUNDLE:imgN docker://…` loop, one image after another
  (how offline packages script it today; --preserve-digests so skopeo moves the same bytes
  rather than gzipping every layer on the way);
- a plain parallel monolithic upload of the same unique blobs (POST, then one PUT each, 16 at a
  time, into one repository): the registry's own limit, with no manifests and no logic;

and then kubectl-airgap push again into the filled registry (the no-op rerun).
"""
import concurrent.futures, hashlib, http.client, json, os, shutil, statistics, subprocess, tempfile, time
import urllib.parse

from check_bench import blob as write_blob, start_registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/kubectl-airgap")
# An earlier build to run beside this one (the post-render section reads the same variable).
BEFORE_BIN = os.environ.get("BENCH_BEFORE_BIN") or None
RUNS = int(os.environ.get("BENCH_PUSH_RUNS", "3"))
IMAGES, BASE_MB, OWN_MB = 10, 40, 36


def make_bundle(layout):
    os.makedirs(os.path.join(layout, "blobs/sha256"))
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    layer_type = "application/vnd.oci.image.layer.v1.tar"
    base = {"mediaType": layer_type, **write_blob(layout, os.urandom(BASE_MB << 20))}
    entries = []
    for i in range(IMAGES):
        own = {"mediaType": layer_type, **write_blob(layout, os.urandom(OWN_MB << 20))}
        config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": {"n": str(i)}},
                             "rootfs": {"type": "layers", "diff_ids": [base["digest"], own["digest"]]}})
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       **write_blob(layout, config.encode())},
            "layers": [base, own]})
        entries.append({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                        **write_blob(layout, manifest.encode()),
                        "annotations": {"io.containerd.image.name": f"quay.io/bench/img{i}:v1",
                                        "org.opencontainers.image.ref.name": f"img{i}"}})
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": entries}, f)
    manifests = {e["digest"] for e in entries}
    blobs = [n for n in os.listdir(os.path.join(layout, "blobs/sha256")) if f"sha256:{n}" not in manifests]
    total = sum(os.path.getsize(os.path.join(layout, "blobs/sha256", n)) for n in blobs)
    return blobs, total


def timed(fn):
    """Seconds `fn()` took."""
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def plain_upload(layout, blobs, port):
    """POST + one streamed PUT per blob, 16 at a time, keep-alive per worker thread."""
    def one(name):
        path = os.path.join(layout, "blobs/sha256", name)
        conn = http.client.HTTPConnection("127.0.0.1", port)
        conn.request("POST", "/v2/bench/plain/blobs/uploads/", body=b"")
        r = conn.getresponse()
        r.read()
        assert r.status == 202, r.status
        loc = urllib.parse.urlsplit(r.getheader("Location"))
        sep = "&" if loc.query else ""
        url = f"{loc.path}?{loc.query}{sep}digest=sha256:{name}"
        with open(path, "rb") as f:
            conn.request("PUT", url, body=f, headers={"Content-Length": str(os.path.getsize(path)),
                                                     "Content-Type": "application/octet-stream"})
            r = conn.getresponse()
            r.read()
        assert r.status == 201, r.status
        conn.close()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(one, blobs))


def push_section():
    work = tempfile.mkdtemp(prefix="airgap-push-bench-")
    layout = os.path.join(work, "bundle")
    blobs, total = make_bundle(layout)
    env = {**os.environ, "DOCKER_CONFIG": "/nonexistent"}
    times = {"ours": [], "skopeo": [], "plain": [], "noop": [], "before": []}

    def fresh(tag):
        d = os.path.join(work, tag)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        return start_registry(d)

    try:
        for _ in range(RUNS):
            proc, port, _ = fresh("ours")
            host = f"127.0.0.1:{port}"
            cmd = [BIN, "push", "--from", layout, "--registry", host, "--insecure-registry", host]

            def ours():
                p = subprocess.run(cmd, capture_output=True, text=True, env=env)
                assert p.returncode == 0 and f"{IMAGES} images: {IMAGES} copied" in p.stdout, p.stdout[-800:]
            times["ours"].append(timed(ours))

            def noop():
                p = subprocess.run(cmd, capture_output=True, text=True, env=env)
                assert p.returncode == 0 and f"0 copied, {IMAGES} already present" in p.stdout, p.stdout[-500:]
            for _ in range(3):
                times["noop"].append(timed(noop))
            proc.kill()
            proc.wait()

            if BEFORE_BIN:
                proc, port, _ = fresh("before")
                host = f"127.0.0.1:{port}"
                before = [BEFORE_BIN, "push", "--from", layout, "--registry", host, "--insecure-registry", host]

                def earlier():
                    p = subprocess.run(before, capture_output=True, text=True, env=env)
                    assert p.returncode == 0 and f"{IMAGES} images: {IMAGES} copied" in p.stdout, p.stdout[-800:]
                times["before"].append(timed(earlier))
                proc.kill()
                proc.wait()

            proc, port, _ = fresh("plain")
            times["plain"].append(timed(lambda: plain_upload(layout, blobs, port)))
            proc.kill()
            proc.wait()

            proc, port, _ = fresh("skopeo")

            def skopeo():
                for i in range(IMAGES):
                    subprocess.run(["skopeo", "copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false",
                                    f"oci:{layout}:img{i}", f"docker://127.0.0.1:{port}/quay.io/bench/img{i}:v1"],
                                   check=True)
            times["skopeo"].append(timed(skopeo))
            proc.kill()
            proc.wait()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in times.items() if v}
    mbs = lambda s: total / s / 1e6
    return [
        "## push (issue 5)",
        "",
        f"One bundle: an OCI layout of {IMAGES} images, {len(blobs)} unique blobs, {total / 1e6:.0f} MB "
        f"(a {BASE_MB} MiB base layer shared by all, a {OWN_MB} MiB layer of each image's own; random bytes, "
        "uncompressed OCI layers), pushed into an empty docker-registry 2.8 on loopback (plain HTTP, "
        f"filesystem storage) on the same machine. Every contender gets a fresh registry per run; "
        f"median of {RUNS} runs (the no-op: {len(times['noop'])}). MB/s = unique bundle bytes / seconds.",
        "",
        "| contender | median s | MB/s | note |",
        "|---|---:|---:|---|",
        f"| kubectl-airgap push --from bundle | {med['ours']:.2f} | {mbs(med['ours']):.0f} | concurrency 16; base layer uploaded once, mounted 9 times |",
        f"| plain parallel monolithic upload | {med['plain']:.2f} | {mbs(med['plain']):.0f} | Python, 16 threads, POST + PUT per blob, no manifests: the registry's limit |",
        f"| skopeo copy --preserve-digests loop | {med['skopeo']:.2f} | {mbs(med['skopeo']):.0f} | one image after another |",
        f"| kubectl-airgap push, all present | {med['noop']:.3f} | | the no-op rerun |",
        *([f"| kubectl-airgap push (before: {os.path.relpath(BEFORE_BIN, ROOT)}) | {med['before']:.2f} | {mbs(med['before']):.0f} | the same, by the earlier build |",
           f"| **now / before** | | **{med['before'] / med['ours']:.2f}x** | above 1x: faster now |"] if "before" in med else []),
        f"| **push / skopeo loop** | | **{med['skopeo'] / med['ours']:.1f}x** | target >= 1.5x |",
        f"| **push / plain upload** | | **{med['plain'] / med['ours'] * 100:.0f}%** | target >= 80% |",
        f"| **no-op rerun** | **{med['noop']:.3f} s** | | target < 1 s |",
    ]
