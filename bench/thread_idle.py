#!/usr/bin/env python3
"""thread_idle.py - where the two threads of one rank wait for each other.

Reads `perf script -F tid,time,ip,sym` output of a 2-thread ocrkd run
(awk '{print $1, $2, $4}' of it: tid, time, symbol) and prints, for the
pool's worker (the thread with more samples in `worker`) and the caller,
the share of samples spent idle, and the other thread's symbol nearest in
time (within 0.5 ms) to each idle sample: what the busy thread was doing
while the other waited (doc/bench.md, stop 32).

  OCRKD_THREADS=2 perf record -F 4000 -o /tmp/t2.perf bin/ocrkd bench \\
      conf/experiment-distill.yaml --steps 40 --set data.batch_size=32
  perf script -i /tmp/t2.perf -F tid,time,ip,sym | awk '{print $1, $2, $4}' >/tmp/t2.txt
  python3 bench/thread_idle.py /tmp/t2.txt [TOP]
"""
import bisect
import collections
import sys

WORKER_IDLE = {"worker", "spin_relax"}
CALLER_IDLE = {"pool_run", "spin_relax", "sched_yield"}


def read(path):
    samples = collections.defaultdict(list)
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 3:
                continue
            try:
                tid, t = int(parts[0]), float(parts[1].rstrip(":"))
            except ValueError:
                continue
            samples[tid].append((t, parts[2]))
    return samples


def share(s, names):
    return sum(1 for _, x in s if x in names) / max(1, len(s))


def nearest(times, s, t):
    i = bisect.bisect_left(times, t)
    best = None
    for j in (i - 1, i):
        if 0 <= j < len(times) and abs(times[j] - t) < 5e-4:
            if best is None or abs(times[j] - t) < abs(times[best] - t):
                best = j
    return None if best is None else s[best][1]


def report(title, idle, idle_names, busy, top):
    times = [t for t, _ in busy]
    hist = collections.Counter()
    for t, sym in idle:
        if sym in idle_names:
            other = nearest(times, busy, t)
            if other:
                hist[other] += 1
    total = sum(hist.values())
    print("%s (%d samples):" % (title, total))
    for sym, n in hist.most_common(top):
        print("  %6d %5.1f %%  %s" % (n, 100.0 * n / max(1, total), sym))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    try:
        samples = read(sys.argv[1])
    except OSError as e:
        sys.exit("thread_idle.py: cannot read %s: %s" % (sys.argv[1], e.strerror))
    tids = sorted(samples, key=lambda k: -len(samples[k]))[:2]
    if len(tids) < 2:
        sys.exit("%s: fewer than two threads with samples" % sys.argv[1])
    w = max(tids, key=lambda k: share(samples[k], WORKER_IDLE))
    c = tids[0] if tids[1] == w else tids[1]
    print("caller %d: %d samples, waiting %.1f %%" %
          (c, len(samples[c]), 100 * share(samples[c], CALLER_IDLE)))
    print("worker %d: %d samples, idle %.1f %%" %
          (w, len(samples[w]), 100 * share(samples[w], WORKER_IDLE)))
    report("the caller's symbols while the worker idles", samples[w], WORKER_IDLE, samples[c], top)
    report("the worker's symbols while the caller waits", samples[c], CALLER_IDLE, samples[w], top)


if __name__ == "__main__":
    main()
