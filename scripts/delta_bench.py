"""The delta benchmark of issue 19: the next release's bundle, whole and as a delta, in one run.

Release 1 is the push benchmark's bundle (10 images quay.io/bench/imgN:v1, a 40 MiB base layer
shared by all, a 36 MiB layer of each image's own); release 2 changes 2 of them (img0:v2 and
img1:v2, the same base and a new 36 MiB layer each). Both are put into one local docker-registry,
release 1 is saved once (its images.lock.yaml is the base), and then the same 12 images are saved
into a fresh directory per run two ways:

- kubectl-airgap save IMAGE... -o DIR (the whole bundle);
- kubectl-airgap save IMAGE... --have bundle1/images.lock.yaml -o DIR (the delta).

Reported: blob bytes of each (every file under blobs/sha256, manifests included) beside the
bytes of the new layers, and the median save times.
"""
import json, os, shutil, statistics, subprocess, tempfile

from check_bench import blob as write_blob, start_registry
from push_bench import IMAGES, BASE_MB, OWN_MB, make_bundle, timed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/kubectl-airgap")
RUNS = int(os.environ.get("BENCH_DELTA_RUNS", "3"))
CHANGED = 2


def next_release(layout, base_layout):
    """A layout of img0:v2 and img1:v2: release 1's base layer and a new layer each."""
    os.makedirs(os.path.join(layout, "blobs/sha256"))
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    first = json.load(open(os.path.join(base_layout, "index.json")))["manifests"][0]
    manifest = json.load(open(os.path.join(base_layout, "blobs/sha256", first["digest"][7:])))
    base = manifest["layers"][0]
    shutil.copy(os.path.join(base_layout, "blobs/sha256", base["digest"][7:]),
                os.path.join(layout, "blobs/sha256", base["digest"][7:]))
    entries, new_bytes = [], 0
    for i in range(CHANGED):
        own = {"mediaType": base["mediaType"], **write_blob(layout, os.urandom(OWN_MB << 20))}
        config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": {"v": "2", "n": str(i)}},
                             "rootfs": {"type": "layers", "diff_ids": [base["digest"], own["digest"]]}})
        cfg = write_blob(layout, config.encode())
        new_bytes += own["size"] + cfg["size"]
        m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **cfg},
                        "layers": [base, own]})
        entries.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", **write_blob(layout, m.encode()),
                        "annotations": {"io.containerd.image.name": f"quay.io/bench/img{i}:v2",
                                        "org.opencontainers.image.ref.name": f"img{i}"}})
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": entries}, f)
    return new_bytes


def blob_bytes(layout):
    d = os.path.join(layout, "blobs/sha256")
    return sum(os.path.getsize(os.path.join(d, n)) for n in os.listdir(d))


def delta_section():
    work = tempfile.mkdtemp(prefix="airgap-delta-bench-")
    env = {**os.environ, "DOCKER_CONFIG": "/nonexistent"}
    v1, v2 = os.path.join(work, "v1"), os.path.join(work, "v2")
    make_bundle(v1)
    new_bytes = next_release(v2, v1)
    os.makedirs(os.path.join(work, "registry"))
    proc, port, _ = start_registry(os.path.join(work, "registry"))
    host = f"127.0.0.1:{port}"
    release1 = [f"quay.io/bench/img{i}:v1" for i in range(IMAGES)]
    release2 = release1 + [f"quay.io/bench/img{i}:v2" for i in range(CHANGED)]
    times = {"full": [], "delta": []}
    sizes = {}
    try:
        for layout in (v1, v2):
            p = subprocess.run([BIN, "push", "--from", layout, "--registry", host, "--naming", "strip",
                                "--insecure-registry", host], capture_output=True, text=True, env=env)
            assert p.returncode == 0, p.stdout + p.stderr
        save = [BIN, "save", "--source-mirror", f"quay.io=http://{host}"]
        b1 = os.path.join(work, "bundle1")
        p = subprocess.run([*save, *release1, "-o", b1], capture_output=True, text=True, env=env)
        assert p.returncode == 0, p.stdout + p.stderr
        have = os.path.join(b1, "images.lock.yaml")
        for _ in range(RUNS):
            for kind, extra in (("full", []), ("delta", ["--have", have])):
                out = os.path.join(work, kind)
                shutil.rmtree(out, ignore_errors=True)

                def one():
                    p = subprocess.run([*save, *release2, "-o", out, *extra], capture_output=True, text=True, env=env)
                    assert p.returncode == 0 and f"{len(release2)} images: {len(release2)} copied" in p.stdout, \
                        p.stdout + p.stderr
                times[kind].append(timed(one))
                sizes[kind] = blob_bytes(out)
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in times.items()}
    return [
        "## delta bundles (issue 19)",
        "",
        f"Release 1: {IMAGES} images (a {BASE_MB} MiB base layer shared by all, a {OWN_MB} MiB layer of each "
        f"image's own; random bytes, uncompressed OCI layers); release 2 changes {CHANGED} of them (new tags, "
        f"the same base, a new {OWN_MB} MiB layer each). One docker-registry 2.8 on loopback (plain HTTP, same "
        f"machine) holds both; the same {len(release2)} images are saved into a fresh directory per run, whole "
        f"and with --have release 1's images.lock.yaml. Median of {RUNS} runs. Bytes: every file under "
        "blobs/sha256 (manifests included); new layers: the changed images' new layers and configs.",
        "",
        "| bundle | blob bytes | / new layers | median save s |",
        "|---|---:|---:|---:|",
        f"| whole (`save IMAGE... -o DIR`) | {sizes['full']:,} | {sizes['full'] / new_bytes:.2f}x | {med['full']:.2f} |",
        f"| delta (`save IMAGE... --have bundle1/images.lock.yaml -o DIR`) | {sizes['delta']:,} | "
        f"{sizes['delta'] / new_bytes:.4f}x | {med['delta']:.2f} |",
        f"| new layers and configs | {new_bytes:,} | 1x | |",
        f"| **delta / whole** | **{sizes['delta'] / sizes['full'] * 100:.1f}%** | | "
        f"**{med['delta'] / med['full'] * 100:.0f}%** of the time |",
    ]
