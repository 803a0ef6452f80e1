"""The `check` benchmark of issue 4: 1,000 references (100 repositories x 10 tags, half of them
missing) against a local docker-registry, checked three ways in one run:

- kubectl-airgap check (--concurrency 16, the default: a tag list per repository, then a HEAD
  per present tag);
- a `skopeo inspect --raw` loop over the same references (how people script it today);
- curl's parallel mode, HEAD with keep-alive and 16 transfers at once: the registry's own limit
  for this request mix, with no logic at all.

One image is pushed with skopeo; the registry's filesystem storage then gets the other tags and
repositories as copies of its link files (the blobs are shared), which takes a second where 500
skopeo pushes would take minutes.
"""
import hashlib, io, json, os, shutil, socket, statistics, subprocess, tarfile, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/kubectl-airgap")
# An earlier build to run beside this one (the post-render section reads the same variable).
BEFORE_BIN = os.environ.get("BENCH_BEFORE_BIN") or None
RUNS = int(os.environ.get("BENCH_RUNS", "7"))
REPOS, TAGS, PRESENT_TAGS = 100, 10, 5
ACCEPT = ("application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
          "application/vnd.docker.distribution.manifest.list.v2+json, "
          "application/vnd.docker.distribution.manifest.v2+json")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs/sha256", digest), "wb") as f:
        f.write(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def make_layout(layout):
    os.makedirs(os.path.join(layout, "blobs/sha256"))
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        data = os.urandom(4096)
        info = tarfile.TarInfo("data.bin")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    layer = buf.getvalue()
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(layer).hexdigest()}"]}})
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **blob(layout, config.encode())},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **blob(layout, layer)}]})
    m = blob(layout, manifest.encode())
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", **m,
            "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}, f)


def start_registry(work):
    port = free_port()
    storage = os.path.join(work, "storage")
    config = os.path.join(work, "registry.yml")
    with open(config, "w") as f:
        f.write(f"version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
                f"storage:\n  filesystem:\n    rootdirectory: {storage}\n"
                f"http:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen(["docker-registry", "serve", config], stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(work, "registry.err"), "w"))
    for _ in range(500):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return proc, port, storage
        except OSError:
            time.sleep(0.02)
    proc.kill()
    raise RuntimeError("docker-registry did not start")


def populate(work, host, storage):
    layout = os.path.join(work, "layout")
    make_layout(layout)
    subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:latest",
                    f"docker://{host}/bench.example/r000:t0"], check=True)
    repos = os.path.join(storage, "docker/registry/v2/repositories/bench.example")
    tags = os.path.join(repos, "r000/_manifests/tags")
    for t in range(1, PRESENT_TAGS):
        shutil.copytree(os.path.join(tags, "t0"), os.path.join(tags, f"t{t}"))
    for r in range(1, REPOS):
        shutil.copytree(os.path.join(repos, "r000"), os.path.join(repos, f"r{r:03}"))


def check_section():
    work = tempfile.mkdtemp(prefix="airgap-check-bench-")
    proc = None
    try:
        proc, port, storage = start_registry(work)
        host = f"127.0.0.1:{port}"
        populate(work, host, storage)
        refs = [f"bench.example/r{r:03}:t{t}" for r in range(REPOS) for t in range(TAGS)]
        manifests = os.path.join(work, "pods.yaml")
        with open(manifests, "w") as f:
            for r in range(REPOS):
                f.write(f"---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: p{r}\nspec:\n  containers:\n")
                for t in range(TAGS):
                    f.write(f"  - name: c{t}\n    image: bench.example/r{r:03}:t{t}\n")

        def ours(bin=BIN):
            p = subprocess.run([bin, "check", "-f", manifests, "--registry", host, "--insecure-registry", host,
                                "-o", "json"], capture_output=True,
                               env={**os.environ, "DOCKER_CONFIG": "/nonexistent"})
            report = json.loads(p.stdout)
            s = report["summary"]
            assert p.returncode == 1 and s["present"] == 500 and s["missing"] == 500, (p.returncode, s, p.stderr[-500:])

        urls = os.path.join(work, "curl.cfg")
        with open(urls, "w") as f:
            for ref in refs:
                name, tag = ref.rsplit(":", 1)
                f.write(f'url = "http://{host}/v2/bench.example/{name.split("/", 1)[1]}/manifests/{tag}"\n'
                        "output = /dev/null\n")

        def curl():
            p = subprocess.run(["curl", "-s", "-I", "-Z", "--parallel-max", "16", "-H", f"Accept: {ACCEPT}",
                                "-w", "%{http_code}\n", "--config", urls], capture_output=True, text=True)
            codes = p.stdout.split()
            assert codes.count("200") == 500 and codes.count("404") == 500, codes[:5]

        def skopeo():
            found = 0
            for ref in refs:
                p = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                                    f"docker://{host}/{ref}"], capture_output=True)
                found += p.returncode == 0
            assert found == 500, found

        def timed(fn, runs):
            times = []
            for _ in range(runs):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
            return statistics.median(times)

        ours_s = timed(ours, RUNS)
        before_s = timed(lambda: ours(BEFORE_BIN), RUNS) if BEFORE_BIN else None
        curl_s = timed(curl, RUNS)
        skopeo_s = timed(skopeo, 1)
    finally:
        if proc:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)

    n = len(refs)
    rate = lambda s: n / s
    lines = [
        "## check (issue 4)",
        "",
        f"{n} references ({REPOS} repositories x {TAGS} tags, {REPOS * PRESENT_TAGS} present, the rest missing) "
        "against Debian's docker-registry 2.8 on loopback (plain HTTP, filesystem storage), on the same machine.",
        f"Median of {RUNS} runs (the skopeo loop: 1 run).",
        "",
        "| tool | median s | references/s | note |",
        "|---|---:|---:|---|",
        f"| kubectl-airgap check (--concurrency 16) | {ours_s:.3f} | {rate(ours_s):.0f} | one tag list per repository, a HEAD per present tag; JSON report |",
        f"| curl -Z --parallel-max 16, HEAD | {curl_s:.3f} | {rate(curl_s):.0f} | the registry's limit: no auth, no logic |",
        f"| skopeo inspect --raw loop | {skopeo_s:.3f} | {rate(skopeo_s):.0f} | one process per reference |",
        *([f"| kubectl-airgap check (before: {os.path.relpath(BEFORE_BIN, ROOT)}) | {before_s:.3f} | {rate(before_s):.0f} | the same, by the earlier build |",
           f"| **now / before** | | **{before_s / ours_s:.2f}x** | above 1x: faster now |"] if before_s else []),
        f"| **check / skopeo loop** | | **{skopeo_s / ours_s:.1f}x** | target >= 10x |",
        f"| **check / parallel HEAD** | | **{curl_s / ours_s * 100:.0f}%** | target >= 80% |",
        f"| **check rate** | | **{rate(ours_s):.0f}/s** | target >= 1,000/s |",
    ]
    return lines
