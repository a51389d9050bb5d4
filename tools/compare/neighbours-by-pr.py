#!/usr/bin/env python3
"""Neighbours latency where PRs are audited many times: 20,000 verdicts over 2,000 PRs (ten
audits each, six claims shared by a PR's audits, drawn from 300 phrases of a 35-word
vocabulary, and one of its own), then 200 `POST /neighbors` queries of limits 5 to 1,000 and
30 `GET /prs/{n}/neighbors?limit=50`, timed against each server binary given, one after
another on fresh data directories. Standard library only.

    tools/compare/neighbours-by-pr.py OLD_BINARY NEW_BINARY [--dir DIR] [--port PORT]
"""
import argparse, json, os, random, shutil, signal, subprocess, tempfile, time, urllib.request


def request(port, method, path, body=None, ctype="application/json"):
    r = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method,
                               headers={"content-type": ctype})
    with urllib.request.urlopen(r, timeout=120) as answer:
        return json.loads(answer.read())


def workload(seed=7):
    rnd = random.Random(seed)
    words = ("upload retry backoff cache index query parser token auth session config logger "
             "metrics export import schema migration test handler router worker queue batch "
             "commit rollback lock timeout buffer stream socket client server").split()
    pool = [" ".join(rnd.sample(words, 6)) for _ in range(300)]
    verdicts, n = [], 0
    for pr in range(1, 2001):
        shared = rnd.sample(pool, 6)
        for audit in range(10):
            n += 1
            verdicts.append({
                "pr_number": pr, "head_sha": "%040x" % (0xabc00000 + n),
                "overall": rnd.choice(["approve", "request_changes", "block"]),
                "one_liner": f"pr{pr} audit {n}", "claims": shared + [f"pr {pr} specific change {audit}"],
                "metrics": {"findings_block": 0, "findings_warn": 0},
                "audited_at": "2026-05-01T00:00:%02d.%03dZ" % (n // 1000 % 60, n % 1000)})
    queries = [{"claims": rnd.sample(pool, 4) + [" ".join(rnd.sample(words, 5))],
                "limit": rnd.choice([5, 10, 50, 1000])} for _ in range(200)]
    prs = rnd.sample(range(1, 2001), 30)
    return verdicts, queries, prs


def percentile(samples, p):
    samples = sorted(samples)
    return 1000 * samples[min(len(samples) - 1, int(len(samples) * p))]


def measure(binary, data, port, verdicts, queries, prs):
    os.makedirs(data)
    server = subprocess.Popen([binary, "serve", "--data", data, "--bind", f"127.0.0.1:{port}",
                               "--log", "warn"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(400):
            try:
                request(port, "GET", "/healthz")
                break
            except Exception:
                time.sleep(0.05)
        for i in range(0, len(verdicts), 1000):
            body = "".join(json.dumps(v) + "\n" for v in verdicts[i:i + 1000]).encode()
            request(port, "POST", "/verdicts", body, "application/x-ndjson")
        for q in queries[:5]:
            request(port, "POST", "/neighbors", json.dumps(q).encode())
        posted, by_limit, distinct = [], {}, {}
        for q in queries:
            start = time.perf_counter()
            answer = request(port, "POST", "/neighbors", json.dumps(q).encode())
            took = time.perf_counter() - start
            posted.append(took)
            by_limit.setdefault(q["limit"], []).append(took)
            distinct.setdefault(q["limit"], len({n["pr_number"] for n in answer["neighbors"]}))
        got = []
        for pr in prs:
            start = time.perf_counter()
            request(port, "GET", f"/prs/{pr}/neighbors?limit=50")
            got.append(time.perf_counter() - start)
        return posted, by_limit, distinct, got
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binaries", nargs="+")
    parser.add_argument("--dir", default=None)
    parser.add_argument("--port", type=int, default=31900)
    args = parser.parse_args()
    verdicts, queries, prs = workload()
    root = tempfile.mkdtemp(dir=args.dir)
    try:
        print("| binary | POST p50 | POST p99 | limit 1,000 p50 | GET p50 | distinct PRs for limit 50 / 1,000 |")
        print("|---|---|---|---|---|---|")
        for i, binary in enumerate(args.binaries):
            posted, by_limit, distinct, got = measure(binary, os.path.join(root, str(i)), args.port,
                                                      verdicts, queries, prs)
            print(f"| {binary} | {percentile(posted, 0.5):.1f} ms | {percentile(posted, 0.99):.1f} ms "
                  f"| {percentile(by_limit[1000], 0.5):.1f} ms | {percentile(got, 0.5):.1f} ms "
                  f"| {distinct[50]} / {distinct[1000]} |", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
