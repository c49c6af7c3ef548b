#!/usr/bin/python3
"""plot_run.py - training curves of one or more ocrkd runs in one PNG.

Reads RUN_DIR/metrics.jsonl of each run (SPEC.md "Outputs of a run"): train
lines (step, loss and its terms such as distance, ctc, feature_distance,
logit_kl; lr; img_per_s; wall = seconds since the run began) and evaluation
lines ("split":"val": word_acc, cer, ned; "model":"teacher" for the
teacher's own val line of a distill run). Draws the loss terms, lr, val word
accuracy against step and against wall time (when lines carry "wall"), val
CER and throughput, the runs overlaid. Lines that do not parse (a partly
written last line of a running job) are skipped; missing keys leave gaps.

  plot_run.py RUN_DIR [RUN_DIR ...] --out FILE.png [--labels a,b] [--csv FILE]
              [--wall-offsets 0,643]

--wall-offsets adds seconds to each run's wall clock: a second phase that
began when the first one ended is drawn where it belongs in time.

Not for: measuring a model (the curves are what the runs logged; `ocrkd
eval` measures a checkpoint). It only reads the runs.
"""
import argparse
import csv
import json
import math
import os
import sys

# keys of a train line that are not loss terms
NOT_LOSS = {"step", "epoch", "lr", "img_per_s", "wall", "split", "model", "word_acc", "cer",
            "ned", "gap_to_teacher", "n", "labeled", "unlabeled"}  # the last two: sample counts


def die(msg, code=2):
    sys.stderr.write("plot_run.py: %s\n" % msg)
    sys.exit(code)


def num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def read_metrics(path):
    """(train lines, val lines, teacher val lines, skipped line count)."""
    train, val, teacher, bad = [], [], [], 0
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().split("\n")
    except OSError as e:
        sys.stderr.write("plot_run.py: %s: %s (no curves for this run)\n" % (path, e.strerror))
        return train, val, teacher, bad
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            o = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if not isinstance(o, dict):
            bad += 1
            continue
        if "split" in o or "word_acc" in o:
            if o.get("split", "val") != "val":
                continue
            (teacher if o.get("model") == "teacher" else val).append(o)
        elif "step" in o and "event" not in o:
            train.append(o)
    return train, val, teacher, bad


def series(rows, x, y):
    pts = [(r[x], r[y]) for r in rows if num(r.get(x)) and num(r.get(y))]
    pts.sort(key=lambda p: p[0])
    return [p[0] for p in pts], [p[1] for p in pts]


def parse_args(argv):
    p = argparse.ArgumentParser(prog="plot_run.py",
                                description="Plots ocrkd runs' metrics.jsonl curves into one PNG.")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR",
                   help="run directories (or metrics.jsonl files)")
    p.add_argument("--out", required=True, help="output PNG")
    p.add_argument("--labels", help="comma-separated run names (default the directory names)")
    p.add_argument("--title", help="figure title")
    p.add_argument("--csv", help="also write the val points as CSV (run,step,wall,word_acc,cer,ned)")
    p.add_argument("--wall-offsets", help="comma-separated seconds added to each run's wall clock")
    return p.parse_args(argv)


def parse_offsets(text, n):
    """The --wall-offsets list: n finite numbers (seconds), or n zeros."""
    if text is None:
        return [0.0] * n
    parts = text.split(",")
    if len(parts) != n:
        die("--wall-offsets has %d values for %d runs" % (len(parts), n))
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        die("--wall-offsets %s: not a list of numbers" % text)
    if not all(math.isfinite(v) for v in vals):
        die("--wall-offsets %s: not a list of finite numbers" % text)
    return vals


def load_runs(run_args, labels, offsets=None):
    """[(name, train lines, val lines, teacher val lines)] of each RUN_DIR
    (or metrics.jsonl file), named by labels or by its directory, its wall
    clock shifted by its offset."""
    if labels is not None and len(labels) != len(run_args):
        die("--labels has %d names for %d runs" % (len(labels), len(run_args)))
    offsets = offsets or [0.0] * len(run_args)
    runs = []
    for k, r in enumerate(run_args):
        if os.path.isdir(r):
            path = os.path.join(r, "metrics.jsonl")
        elif os.path.isfile(r):
            path = r
            r = os.path.dirname(os.path.abspath(r))
        else:
            die("%s: no such run directory" % r)
        name = labels[k] if labels else os.path.basename(os.path.normpath(os.path.abspath(r)))
        train, val, teacher, bad = read_metrics(path)
        if bad:
            sys.stderr.write("plot_run.py: %s: skipped %d line(s) that do not parse\n" % (path, bad))
        if not train and not val:
            sys.stderr.write("plot_run.py: %s: no metrics yet\n" % path)
        for o in train + val + teacher:
            if offsets[k] and num(o.get("wall")):
                o["wall"] += offsets[k]
        runs.append((name, train, val, teacher))
    return runs


def import_pyplot():
    # imported only once the arguments and runs are checked, so that their
    # errors come without matplotlib's start-up time (or matplotlib at all)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        die("needs python3-matplotlib (%s)" % e)
    return plt


def loss_terms(train):
    """The loss terms of the train lines: "loss" first, then by name."""
    return sorted({key for o in train for key, v in o.items() if key not in NOT_LOSS and num(v)},
                  key=lambda t: (t != "loss", t))


def draw_run(axes, color, run, teacher_drawn):
    """Draws one run's curves in color; returns whether any loss term is
    positive (a log scale then suits the loss panel)."""
    a_loss, a_lr, a_ips, a_acc, a_wall, a_cer = axes
    name, train, val, teacher = run
    styles = ["-", "--", ":", "-."]
    positive_loss = False
    for j, term in enumerate(loss_terms(train)):
        xs, ys = series(train, "step", term)
        if xs:
            positive_loss |= any(y > 0 for y in ys)
            a_loss.plot(xs, ys, styles[j % len(styles)], color=color, lw=1.2,
                        label="%s %s" % (name, term))
    # train values as plain lines, val points as markers joined by lines
    for axis, y in ((a_lr, "lr"), (a_ips, "img_per_s")):
        xs, ys = series(train, "step", y)
        if xs:
            axis.plot(xs, ys, color=color, label=name)
    for axis, x, y in ((a_acc, "step", "word_acc"), (a_wall, "wall", "word_acc"),
                       (a_cer, "step", "cer")):
        xs, ys = series(val, x, y)
        if xs:
            axis.plot(xs, ys, "o-", ms=3, color=color, label=name)
    draw_teacher(a_acc, a_wall, a_cer, color, name, teacher, teacher_drawn)
    return positive_loss


def draw_teacher(a_acc, a_wall, a_cer, color, name, teacher, teacher_drawn):
    """The teacher's val lines as dashed horizontal lines; a teacher accuracy
    already drawn for another run (the same teacher) gets no second legend
    entry. teacher_drawn: the accuracies drawn so far, updated."""
    for t in teacher:
        if num(t.get("word_acc")):
            lab = "teacher (%s)" % name
            key = round(t["word_acc"], 6)
            if key in teacher_drawn:
                lab = None
            teacher_drawn.add(key)
            for axis in (a_acc, a_wall):
                axis.axhline(t["word_acc"], color=color, ls="--", lw=0.9, alpha=0.7, label=lab)
            if num(t.get("cer")):
                a_cer.axhline(t["cer"], color=color, ls="--", lw=0.9, alpha=0.7, label=lab)


def label_axes(ax, positive_loss, any_wall):
    """Titles, scales, grids and legends; "no data" on an empty panel."""
    (a_loss, a_lr, a_ips), (a_acc, a_wall, a_cer) = ax
    a_loss.set(title="loss terms", xlabel="step")
    if positive_loss:
        a_loss.set_yscale("log")
    a_lr.set(title="learning rate", xlabel="step")
    a_ips.set(title="training throughput", xlabel="step", ylabel="images/s")
    a_acc.set(title="val word accuracy", xlabel="step")
    a_wall.set(title="val word accuracy vs wall time", xlabel="wall seconds")
    a_cer.set(title="val CER", xlabel="step")
    if not any_wall:
        a_wall.text(0.5, 0.5, "no \"wall\" in these metrics", ha="center", va="center",
                    transform=a_wall.transAxes, color="grey")
    for axis in ax.flat:
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7, loc="best")
        elif axis is not a_wall or any_wall:
            axis.text(0.5, 0.5, "no data", ha="center", va="center", transform=axis.transAxes,
                      color="grey")


def write_csv(path, runs):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["run", "step", "wall", "word_acc", "cer", "ned"])
        for name, _, val, _ in runs:
            for o in val:
                w.writerow([name] + [o.get(k, "") for k in ("step", "wall", "word_acc", "cer", "ned")])


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    runs = load_runs(a.runs, a.labels.split(",") if a.labels else None,
                     parse_offsets(a.wall_offsets, len(a.runs)))
    plt = import_pyplot()
    fig, ax = plt.subplots(2, 3, figsize=(16, 8.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    any_wall = any(num(o.get("wall")) for _, t, v, _ in runs for o in t + v)
    positive_loss = False
    teacher_drawn = set()
    for k, run in enumerate(runs):
        positive_loss |= draw_run(ax.flat, colors[k % len(colors)], run, teacher_drawn)
    label_axes(ax, positive_loss, any_wall)
    fig.suptitle(a.title or "ocrkd runs: " + ", ".join(n for n, _, _, _ in runs))
    fig.tight_layout()
    out_dir = os.path.dirname(os.path.abspath(a.out))
    if not os.path.isdir(out_dir):
        die("--out %s: no directory %s" % (a.out, out_dir))
    fig.savefig(a.out, dpi=90)
    plt.close(fig)
    if a.csv:
        write_csv(a.csv, runs)
    print(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
