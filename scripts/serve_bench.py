"""The `serve` benchmark of issue 18: the push benchmark's bundle (10 images, ~400 MB, one 40 MiB
base layer shared by all), tarred as `save -o FILE.tar` writes it, pulled by 8 concurrent
`skopeo copy` processes (one image each, from a queue of the 10) from two servers in one run:

- kubectl-airgap serve BUNDLE.tar (the tar read in place, by its entries' offsets);
- docker-registry 2.8 holding the same images under the same names (pushed with
  kubectl-airgap push --from BUNDLE, filesystem storage);

alternating which goes first in each run. serve's peak resident memory is its VmHWM (from
/proc/PID/status) after every run, so it covers every pull.
"""
import concurrent.futures, os, shutil, statistics, subprocess, tarfile, tempfile, time, urllib.request

from check_bench import free_port, start_registry
from push_bench import IMAGES, BASE_MB, OWN_MB, make_bundle, timed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/kubectl-airgap")
RUNS = int(os.environ.get("BENCH_SERVE_RUNS", "7"))
CLIENTS = 8


def start_serve(bundle, work):
    """`serve BUNDLE` on a free port, once it answers /v2/."""
    port = free_port()
    log = open(os.path.join(work, "serve.log"), "w")
    proc = subprocess.Popen([BIN, "serve", bundle, "--addr", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=log,
                            env={**os.environ, "XDG_CONFIG_HOME": "/nonexistent"})
    for _ in range(500):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1).read()
            return proc, port
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited: {open(os.path.join(work, 'serve.log')).read()}")
            time.sleep(0.02)
    proc.kill()
    raise RuntimeError("serve did not answer /v2/")


def status_kb(pid, field):
    """A VmHWM/VmRSS line of /proc/PID/status, in kB."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def pull_all(port, out):
    """8 concurrent skopeo copies, the 10 images queued among them, each into a dir: of its own."""
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)

    def one(i):
        subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                        f"docker://127.0.0.1:{port}/quay.io/bench/img{i}:v1", f"dir:{out}/img{i}"],
                       check=True)
    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(one, range(IMAGES)))


def serve_section():
    work = tempfile.mkdtemp(prefix="airgap-serve-bench-")
    layout = os.path.join(work, "bundle")
    blobs, total = make_bundle(layout)
    # Pulled bytes: every image's layers and config, the shared base once per image.
    pulled = sum(os.path.getsize(os.path.join(layout, "blobs/sha256", n)) for n in blobs) + (IMAGES - 1) * (BASE_MB << 20)
    tar = os.path.join(work, "bundle.tar")
    with tarfile.open(tar, "w") as t:
        for name in sorted(os.listdir(layout)):
            t.add(os.path.join(layout, name), arcname=name)
    env = {**os.environ, "DOCKER_CONFIG": "/nonexistent", "XDG_CONFIG_HOME": "/nonexistent"}
    times = {"serve": [], "registry": []}
    hwm, registry_hwm = 0, 0
    os.makedirs(os.path.join(work, "registry"))
    registry, reg_port, _ = start_registry(os.path.join(work, "registry"))
    serve, serve_port = start_serve(tar, work)
    try:
        host = f"127.0.0.1:{reg_port}"
        subprocess.run([BIN, "push", "--from", layout, "--registry", host, "--insecure-registry", host],
                       check=True, capture_output=True, env=env)
        # The same names at both: nested naming, quay.io/bench/imgN under either host.
        out = os.path.join(work, "pulled")
        contenders = [("serve", serve_port), ("registry", reg_port)]
        for run in range(RUNS):
            for name, port in (contenders if run % 2 == 0 else contenders[::-1]):
                times[name].append(timed(lambda: pull_all(port, out)))
            hwm = max(hwm, status_kb(serve.pid, "VmHWM"))
            registry_hwm = max(registry_hwm, status_kb(registry.pid, "VmHWM"))
    finally:
        for p in (serve, registry):
            p.terminate()
            p.wait()
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in times.items()}
    mbs = lambda s: pulled / s / 1e6
    return [
        "## serve (issue 18)",
        "",
        f"One bundle: the push benchmark's OCI layout ({IMAGES} images, {len(blobs)} unique blobs, "
        f"{total / 1e6:.0f} MB: a {BASE_MB} MiB base layer shared by all, a {OWN_MB} MiB layer of each "
        "image's own; random bytes, uncompressed layers), as one plain tar. Pulled by "
        f"{CLIENTS} concurrent `skopeo copy docker://… dir:…` processes, the {IMAGES} images queued "
        "among them, from `kubectl-airgap serve BUNDLE.tar` and from docker-registry 2.8 (filesystem "
        "storage, filled by `push --from`) holding the same images under the same names, both on "
        f"loopback, plain HTTP, in the same run (order alternating); median of {RUNS} runs each. "
        f"MB/s = bytes pulled ({pulled / 1e6:.0f} MB: the base layer once per image) / seconds. "
        "Peak RSS is VmHWM from /proc/PID/status after all runs.",
        "",
        "| server | median s | MB/s | peak RSS |",
        "|---|---:|---:|---:|",
        f"| kubectl-airgap serve BUNDLE.tar | {med['serve']:.2f} | {mbs(med['serve']):.0f} | {hwm / 1024:.1f} MiB |",
        f"| docker-registry | {med['registry']:.2f} | {mbs(med['registry']):.0f} | {registry_hwm / 1024:.1f} MiB |",
        f"| **serve / docker-registry** | | **{med['registry'] / med['serve']:.2f}x** | target >= 1x (above: serve faster) |",
        f"| **serve peak RSS** | | | **{hwm / 1024:.1f} MiB** (target < 64 MiB) |",
        "",
        "Runs, seconds: serve " + ", ".join(f"{t:.2f}" for t in times["serve"])
        + "; docker-registry " + ", ".join(f"{t:.2f}" for t in times["registry"]) + ".",
    ]
