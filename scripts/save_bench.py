"""The `save` benchmark of issue 15: the push benchmark's bundle (10 images, ~400 MB, one 40 MiB
base layer shared by all) put once into a local docker-registry, then fetched into a fresh OCI
layout three ways, in one run:

- kubectl-airgap save -f PODS -o DIR (images named quay.io/bench/imgN:v1, fetched through
  --source-mirror quay.io=http://REGISTRY, so names stay the upstream ones);
- a `skopeo copy --preserve-digests docker://… oci:DIR:quay.io/bench/imgN:v1` loop into one
  layout, one image after another (how offline packages script it today);
- a plain parallel GET of the same unique blobs and manifests (16 threads, written to files,
  no verification, no index): the registry's own limit;

and then kubectl-airgap save again into the filled directory (the no-op rerun: every blob there is
hashed before it is trusted, nothing is fetched).
"""
import concurrent.futures, http.client, json, os, shutil, statistics, subprocess, tempfile

from check_bench import start_registry
from push_bench import IMAGES, BASE_MB, OWN_MB, make_bundle, timed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/kubectl-airgap")
RUNS = int(os.environ.get("BENCH_SAVE_RUNS", "3"))


def pods(path):
    with open(path, "w") as f:
        for i in range(IMAGES):
            f.write(f"---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: p{i}\nspec:\n  containers:\n"
                    f"  - name: c\n    image: quay.io/bench/img{i}:v1\n")


def plain_get(layout, port, out):
    """GET every manifest and unique blob, 16 at a time, keep-alive per request, into files."""
    index = json.load(open(os.path.join(layout, "index.json")))
    jobs = []
    for i, entry in enumerate(index["manifests"]):
        jobs.append((f"/v2/bench/img{i}/manifests/{entry['digest']}", entry["digest"]))
        manifest = json.load(open(os.path.join(layout, "blobs/sha256", entry["digest"][7:])))
        for d in [manifest["config"], *manifest["layers"]]:
            jobs.append((f"/v2/bench/img{i}/blobs/{d['digest']}", d["digest"]))
    unique = {}
    for path, digest in jobs:
        unique.setdefault(digest, path)
    os.makedirs(out)

    def one(item):
        digest, path = item
        conn = http.client.HTTPConnection("127.0.0.1", port)
        conn.request("GET", path, headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
        r = conn.getresponse()
        assert r.status == 200, (path, r.status)
        with open(os.path.join(out, digest[7:]), "wb") as f:
            while chunk := r.read(1 << 20):
                f.write(chunk)
        conn.close()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(one, unique.items()))
    return len(unique)


def save_section():
    work = tempfile.mkdtemp(prefix="airgap-save-bench-")
    layout = os.path.join(work, "bundle")
    _, total = make_bundle(layout)
    env = {**os.environ, "DOCKER_CONFIG": "/nonexistent"}
    manifests = os.path.join(work, "pods.yaml")
    pods(manifests)
    times = {"ours": [], "skopeo": [], "plain": [], "noop": []}
    os.makedirs(os.path.join(work, "registry"))
    proc, port, _ = start_registry(os.path.join(work, "registry"))
    host = f"127.0.0.1:{port}"

    def fresh(name):
        d = os.path.join(work, name)
        shutil.rmtree(d, ignore_errors=True)
        return d

    try:
        p = subprocess.run([BIN, "push", "--from", layout, "--registry", host, "--naming", "strip",
                            "--insecure-registry", host], capture_output=True, text=True, env=env)
        assert p.returncode == 0 and f"{IMAGES} copied" in p.stdout, p.stdout + p.stderr
        for _ in range(RUNS):
            out = fresh("ours")
            cmd = [BIN, "save", "--source-mirror", f"quay.io=http://{host}", "-f", manifests, "-o", out]

            def ours():
                p = subprocess.run(cmd, capture_output=True, text=True, env=env)
                assert p.returncode == 0 and f"{IMAGES} images: {IMAGES} copied" in p.stdout, p.stdout + p.stderr
            times["ours"].append(timed(ours))

            def noop():
                p = subprocess.run(cmd, capture_output=True, text=True, env=env)
                assert p.returncode == 0 and f"0 copied, {IMAGES} already present" in p.stdout, p.stdout + p.stderr
            for _ in range(3):
                times["noop"].append(timed(noop))

            out = fresh("plain")
            blobs = []
            times["plain"].append(timed(lambda: blobs.append(plain_get(layout, port, out))))

            out = fresh("skopeo")

            def skopeo():
                for i in range(IMAGES):
                    subprocess.run(["skopeo", "copy", "--quiet", "--preserve-digests", "--src-tls-verify=false",
                                    f"docker://{host}/bench/img{i}:v1", f"oci:{out}:quay.io/bench/img{i}:v1"],
                                   check=True)
            times["skopeo"].append(timed(skopeo))
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in times.items()}
    mbs = lambda s: total / s / 1e6
    return [
        "## save (issue 15)",
        "",
        f"The push section's bundle ({IMAGES} images, {blobs[0] - IMAGES} unique blobs and {IMAGES} manifests, "
        f"{total / 1e6:.0f} MB: a {BASE_MB} MiB base layer shared by all, a {OWN_MB} MiB layer of each image's own; "
        "random bytes, uncompressed OCI layers) in one docker-registry 2.8 on loopback (plain HTTP, "
        "filesystem storage, same machine), fetched into a fresh OCI layout directory per run; "
        f"median of {RUNS} runs (the no-op: {len(times['noop'])}). MB/s = unique bytes / seconds.",
        "",
        "| contender | median s | MB/s | note |",
        "|---|---:|---:|---|",
        f"| kubectl-airgap save -o DIR | {med['ours']:.2f} | {mbs(med['ours']):.0f} | concurrency 16; each blob fetched once, digest verified while streaming, index and images.lock.yaml written |",
        f"| plain parallel blob GET | {med['plain']:.2f} | {mbs(med['plain']):.0f} | Python, 16 threads, one GET per unique blob and manifest, written to files, nothing verified: the registry's limit |",
        f"| skopeo copy --preserve-digests loop into one layout | {med['skopeo']:.2f} | {mbs(med['skopeo']):.0f} | one image after another |",
        f"| kubectl-airgap save, all there | {med['noop']:.3f} | | the no-op rerun into the same directory: every blob hashed, nothing fetched |",
        f"| **save / skopeo loop** | | **{med['skopeo'] / med['ours']:.1f}x** | faster by |",
        f"| **save / plain GET** | | **{med['plain'] / med['ours'] * 100:.0f}%** | of the registry's limit |",
        f"| **no-op rerun** | **{med['noop']:.3f} s** | | {mbs(med['noop']):.0f} MB/s of hashing |",
    ]
