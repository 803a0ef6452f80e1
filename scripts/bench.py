"""Runs the comparisons named in issue 3 side by side and writes bench/results.md.

Inputs: (a) the rendered chart corpus concatenated, (b) a generated stream of 20,000 Deployments,
(c) a generated 1 GB stream (peak memory; BENCH_BIG_MB sets its size, 0 leaves it out). Tools: cat,
kubectl-airgap post-render, and kustomize's `images` transformer (`kubectl kustomize` from the
Helm 4 npm package, one `images:` entry per distinct image). Kustomize refuses the concatenated
corpus (two charts share resource ids), so on (a) it runs once per corpus file and its times are
summed.

On (a) and (b) two more rows put post-render in proportion: a bare saphyr-parser event parse of
the same bytes (examples/saphyr_events.rs, no tree, no output), and, when BENCH_BEFORE_BIN names
another kubectl-airgap binary (say one built from an earlier commit), post-render run by that
binary, so one run shows a change's effect on the same machine under the same load.
"""
import json, os, platform, shutil, statistics, subprocess, sys, tempfile, time

import check_bench
import delta_bench
import push_bench
import save_bench
import serve_bench

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/kubectl-airgap")
SAPHYR = os.path.join(ROOT, "target/release/examples/saphyr_events")
BEFORE_BIN = os.environ.get("BENCH_BEFORE_BIN") or None


def before_note():
    """The (before) row's note: the binary, and the commit a COMMIT file beside it names."""
    path = os.path.join(os.path.dirname(BEFORE_BIN), "COMMIT")
    commit = open(path).read().strip()[:12] if os.path.exists(path) else None
    shown = os.path.relpath(BEFORE_BIN, ROOT) if BEFORE_BIN.startswith(ROOT + "/") else BEFORE_BIN
    return shown + (f" (commit {commit})" if commit else "")
KUBECTL = os.path.join(ROOT, ".tools/helm4/kubectl/kubectl")
CORPUS = os.path.join(ROOT, "../shared/corpus/rendered")
MIRROR = "reg.local:5000"
RUNS = int(os.environ.get("BENCH_RUNS", "7"))
BIG_MB = int(os.environ.get("BENCH_BIG_MB", "1024"))


KUSTOMIZE_LIMIT = int(os.environ.get("BENCH_KUSTOMIZE_LIMIT", "240"))


class TimedOut(Exception):
    pass


def run(cmd, stdin_path=None, cwd=None, limit=None):
    """Wall seconds and peak RSS (KiB) of one run; output discarded."""
    with open(stdin_path or os.devnull, "rb") as stdin, open(os.devnull, "wb") as out:
        t = time.perf_counter()
        # Its own process group, so that a timeout ends time and the tool under it, and nothing
        # else (killing by name would also hit the same tool started by someone else).
        p = subprocess.Popen(["/usr/bin/time", "-f", "%M", *cmd], stdin=stdin, stdout=out,
                             stderr=subprocess.PIPE, cwd=cwd, start_new_session=True)
        try:
            _, err = p.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, 9)
            p.communicate()
            raise TimedOut()
        elapsed = time.perf_counter() - t
    if p.returncode != 0:
        raise RuntimeError(f"{cmd} failed: {err.decode()[-500:]}")
    peak = int(err.decode().strip().splitlines()[-1])
    return elapsed, peak


def median_run(cmd, stdin_path=None, cwd=None, runs=RUNS, limit=None):
    results = [run(cmd, stdin_path, cwd, limit) for _ in range(runs)]
    return statistics.median(r[0] for r in results), max(r[1] for r in results)


def deployment(i, images):
    a, b = images[i % len(images)], images[(i * 7 + 3) % len(images)]
    return f"""---
# Source: gen/templates/deployment-{i}.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-{i}
  namespace: ns-{i % 17}
  labels:
    app.kubernetes.io/name: app-{i}
    app.kubernetes.io/managed-by: Helm
spec:
  replicas: 2
  selector:
    matchLabels:
      app.kubernetes.io/name: app-{i}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: app-{i}
    spec:
      initContainers:
        - name: init
          image: "{b}"
          command: ["sh", "-c", "echo ready"]
      containers:
        - name: main
          image: {a}
          args:
            - --port=8080
            - --log-level=info
          ports:
            - containerPort: 8080
              name: http
          resources:
            limits: {{cpu: 500m, memory: 256Mi}}
"""


IMAGES = [f"quay.io/org{i % 5}/service-{i}:v1.{i}.0" for i in range(40)] + \
    [f"nginx:1.{i}" for i in range(10)]


def generate(path, count=None, size_mb=None):
    with open(path, "w") as f:
        written, i = 0, 0
        while (count is not None and i < count) or (size_mb is not None and written < size_mb << 20):
            doc = deployment(i, IMAGES)
            f.write(doc)
            written += len(doc)
            i += 1
    return i


def kustomize_dir(work, name, source_file):
    d = os.path.join(work, name)
    os.makedirs(d, exist_ok=True)
    shutil.copy(source_file, os.path.join(d, "input.yaml"))
    found = json.loads(subprocess.check_output([BIN, "images", "-f", source_file, "-o", "json"]))
    names = set()
    for img in found["images"]:
        s = img["source"].split("@")[0]
        last = s.rsplit("/", 1)[-1]
        names.add(s.rsplit(":", 1)[0] if ":" in last else s)
    with open(os.path.join(d, "kustomization.yaml"), "w") as f:
        f.write("resources:\n- input.yaml\nimages:\n")
        for n in sorted(names):
            f.write(f"- name: {n}\n  newName: {MIRROR}/{n}\n")
    return d


def kustomize_ok(d):
    return subprocess.run([KUBECTL, "kustomize", d], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def post_render_section():
    work = tempfile.mkdtemp(prefix="airgap-bench-")
    rows = []
    try:
        corpus_files = sorted(os.path.join(CORPUS, f) for f in os.listdir(CORPUS) if f.endswith(".yaml"))
        corpus = os.path.join(work, "corpus.yaml")
        with open(corpus, "wb") as out:
            for f in corpus_files:
                out.write(open(f, "rb").read())
        deployments = os.path.join(work, "deployments.yaml")
        generate(deployments, count=20000)
        small = os.path.join(work, "deployments-2000.yaml")
        generate(small, count=2000)

        ours = [BIN, "post-render", "--registry", MIRROR]
        before = [BEFORE_BIN, "post-render", "--registry", MIRROR] if BEFORE_BIN else None
        for label, path in [("(a) corpus, 17 charts", corpus),
                            ("(b) 20,000 Deployments", deployments),
                            ("(b') 2,000 Deployments", small)]:
            size = os.path.getsize(path)
            cat_s, cat_kb = median_run(["cat"], path)
            our_s, our_kb = median_run(ours, path)
            our_mbs = size / our_s / 1e6
            extra, summaries = [], []
            if path != small:
                sa_s, sa_kb = median_run([SAPHYR], path)
                sa_mbs = size / sa_s / 1e6
                extra.append(("saphyr event parse (baseline)", sa_s, sa_mbs, sa_kb,
                              "examples/saphyr_events: events only, no tree, no output"))
                summaries.append(("post-render / saphyr parse", f"{our_mbs / sa_mbs:.2f}x"))
                if before:
                    b_s, b_kb = median_run(before, path)
                    b_mbs = size / b_s / 1e6
                    extra.append(("kubectl-airgap post-render (before)", b_s, b_mbs, b_kb,
                                  before_note()))
                    summaries.append(("post-render / saphyr parse (before)",
                                      f"{b_mbs / sa_mbs:.2f}x"))
                    summaries.append(("post-render after / before", f"{our_mbs / b_mbs:.2f}x"))
                else:
                    extra.append(("kubectl-airgap post-render (before)", None, None, 0,
                                  "not run: BENCH_BEFORE_BIN unset"))
            if path == corpus:
                dirs = [kustomize_dir(work, f"k{i}", f) for i, f in enumerate(corpus_files)]
                usable = [d for d in dirs if kustomize_ok(d)]
                k_bytes = sum(os.path.getsize(os.path.join(d, "input.yaml")) for d in usable)
                times, peaks = [], []
                for _ in range(3):
                    runs = [run([KUBECTL, "kustomize", d]) for d in usable]
                    times.append(sum(r[0] for r in runs))
                    peaks.append(max(r[1] for r in runs))
                k_s, k_kb = statistics.median(times), max(peaks)
                k_note = f"{len(usable)} of {len(dirs)} files (kustomize rejects the others)"
                k_mbs = k_bytes / k_s / 1e6
            elif path == deployments:
                d = kustomize_dir(work, "kdeploy", path)
                try:
                    k_s, k_kb = median_run([KUBECTL, "kustomize", d], runs=1, limit=KUSTOMIZE_LIMIT)
                    k_note = "whole stream, 1 run"
                except TimedOut:
                    k_s, k_kb = float(KUSTOMIZE_LIMIT), 0
                    k_note = f"did not finish in {KUSTOMIZE_LIMIT} s: time and ratio are bounds"
                k_mbs = size / k_s / 1e6
            else:
                d = kustomize_dir(work, "ksmall", path)
                k_s, k_kb = median_run([KUBECTL, "kustomize", d], runs=3)
                k_note = "whole stream"
                k_mbs = size / k_s / 1e6
            bound = ">" if "did not finish" in k_note else ""
            rows.append((label, size, [
                ("cat", cat_s, size / cat_s / 1e6, cat_kb, ""),
                ("kubectl-airgap post-render", our_s, our_mbs, our_kb, ""),
                *extra,
                ("kubectl kustomize (images)", k_s, k_mbs, k_kb, k_note),
            ], [("kubectl-airgap / kustomize", f"{bound}{our_mbs / k_mbs:.0f}x"), *summaries]))

        if BIG_MB > 0:
            big = os.path.join(work, "big.yaml")
            generate(big, size_mb=BIG_MB)
            size = os.path.getsize(big)
            cat_s, cat_kb = median_run(["cat"], big, runs=1)
            our_s, our_kb = median_run(ours, big, runs=1)
            rows.append((f"(c) generated {size >> 20} MiB stream", size, [
                ("cat", cat_s, size / cat_s / 1e6, cat_kb, ""),
                ("kubectl-airgap post-render", our_s, size / our_s / 1e6, our_kb, ""),
            ], []))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    lines = [
        "## post-render (issue 3)",
        "",
        f"Median of {RUNS} runs (kustomize: 3, or 1 on 20,000 Deployments; the 1 GB stream: 1).",
        "Peak memory is the maximum resident set size of the process (GNU time %M).",
        "The saphyr row is a bare event parse of the same bytes (examples/saphyr_events.rs); the",
        "(before) row is post-render run by the binary BENCH_BEFORE_BIN names. Ratios are of MB/s:",
        "above 1x the first-named is faster.",
        *([] if BIG_MB > 0 else ["", "The 1 GB stream (c) was left out (BENCH_BIG_MB=0)."]),
        "",
        "| input | bytes | tool | median s | MB/s | peak RSS MiB | note |",
        "|---|---:|---|---:|---:|---:|---|",
    ]
    for label, size, tools, summaries in rows:
        for name, s, mbs, kb, note in tools:
            peak = f"{kb / 1024:.1f}" if kb else "-"
            s_text = "-" if s is None else f"{s:.3f}"
            mbs_text = "-" if mbs is None else f"{mbs:.1f}"
            lines.append(f"| {label} | {size} | {name} | {s_text} | {mbs_text} | {peak} | {note} |")
        for name, value in summaries:
            lines.append(f"| {label} | | **{name}** | | **{value}** | | |")
    return lines


SECTIONS = {"post-render": post_render_section, "check": check_bench.check_section,
            "push": push_bench.push_section, "save": save_bench.save_section,
            "serve": serve_bench.serve_section, "delta": delta_bench.delta_section}


def main():
    """Runs the sections named in BENCH_SECTIONS (default: all), keeps the last results of the
    others, and writes bench/results.md."""
    wanted = os.environ.get("BENCH_SECTIONS", ",".join(SECTIONS)).split(",")
    os.makedirs(os.path.join(ROOT, "bench"), exist_ok=True)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")), "0")
    machine = (f"Machine: {cpu}, {os.cpu_count()} cores, {int(mem) >> 20} GiB RAM, "
               f"{platform.system()} {platform.release()}. "
               f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.")
    for name in wanted:
        lines = SECTIONS[name]()
        with open(os.path.join(ROOT, f"bench/{name}.md"), "w") as f:
            f.write("\n".join([*lines, "", machine]) + "\n")
    parts = ["# Benchmark results", "", "Written by scripts/bench; each section names the machine and date it ran on.", ""]
    for name in SECTIONS:
        path = os.path.join(ROOT, f"bench/{name}.md")
        if os.path.exists(path):
            parts.append(open(path).read())
    text = "\n".join(parts)
    with open(os.path.join(ROOT, "bench/results.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
