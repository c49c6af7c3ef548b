#!/usr/bin/python3
"""torch2ocrkd.py - a PyTorch CRNN (state_dict .pt, or a whole pickled module)
-> an ocrkd checkpoint (SPEC "Checkpoint file").

    /usr/bin/python3 data-tools/torch2ocrkd.py model.pt out.h5 --alphabet 0123456789 \
        [--kind teacher|student] [--step N] [--epoch N] \
        [--map OLD_PREFIX=NEW_PREFIX]... [--drop PREFIX]... [--dry-run]

The architecture is inferred from tensor names and shapes (crnn_torch.py
naming); the alphabet must have exactly K-1 symbols (class 0 is the blank).
A model built in other code (say a torchvision ResNet as `backbone`, an
nn.LSTM as `rnn`, a Linear as `fc`) is renamed with --map rules, tried in the
order given, the first whose OLD_PREFIX starts the name winning:
    --map backbone.=extractor. --map rnn.=encoder. --map fc.=classifier.
--drop PREFIX leaves tensors out (e.g. --drop backbone.fc. for torchvision's
own classifier). --dry-run prints how every tensor maps and each one that
does not fit ocrkd's network (unknown, missing, or a shape mismatch with both
shapes) and writes nothing; it exits 1 if anything does not fit. The input
may also be a NumPy .npz of named arrays (needs no torch).
For: bringing weights trained elsewhere into ocrkd (a teacher, an init).
Not for: optimizer state or resume data (the file has no /optim or /state,
so it can start a run or be a teacher, not be resumed).
"""
import argparse
import json
import os
import sys

import h5py
import numpy as np

FORMAT = "ocrkd-checkpoint"
VERSION = 1


def model_yaml(arch, alphabet):
    """The config text stored in the checkpoint: the model section."""
    w = arch["width"]
    width = ("widths: [%s]" % ", ".join(str(int(x)) for x in w)
             if isinstance(w, (list, tuple)) else "width: %d" % w)
    ext = "{blocks: [%s], block: %s, %s}" % (
        ", ".join(str(b) for b in arch["blocks"]), arch["block"], width)
    return ("model:\n"
            "  extractor: %s\n"
            "  feature_dim: %d\n"
            "  encoder: {layers: %d, hidden: %d}\n"
            "  alphabet: %s\n") % (ext, arch["feature_dim"], arch["enc_layers"],
                                   arch["enc_hidden"], json.dumps(alphabet, ensure_ascii=False))


def check_alphabet(alphabet, num_classes):
    if len(alphabet) != num_classes - 1:
        raise ValueError("alphabet has %d symbols but the classifier has K = %d classes "
                         "(K - 1 = %d symbols expected; class 0 is the CTC blank)"
                         % (len(alphabet), num_classes, num_classes - 1))
    if len(set(alphabet)) != len(alphabet):
        raise ValueError("alphabet has repeated symbols")


def write_checkpoint(path, tensors, arch, alphabet, kind="student", step=0, epoch=0,
                     world_size=1):
    """tensors: name -> numpy-convertible array (num_batches_tracked skipped).
    Writes PATH.tmp, then renames it to PATH (as ocrkd does). Returns PATH."""
    check_alphabet(alphabet, arch["num_classes"])
    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["version"] = np.int64(VERSION)
        f.attrs["kind"] = kind
        f.attrs["config"] = model_yaml(arch, alphabet)
        f.attrs["alphabet"] = alphabet
        f.attrs["step"] = np.int64(step)
        f.attrs["epoch"] = np.int64(epoch)
        f.attrs["world_size"] = np.int64(world_size)
        g = f.create_group("params")
        for name, t in tensors.items():
            if name.endswith("num_batches_tracked"):
                continue
            a = np.ascontiguousarray(np.asarray(t, dtype=np.float32))
            g.create_dataset(name, data=a, chunks=a.shape if a.size else None,
                             fletcher32=True)
    os.replace(tmp, path)
    return path


def load_state_dict(path):
    """A .pt holding a state_dict, {'state_dict': ...}, or a pickled module;
    or a .npz of named arrays."""
    if path.endswith(".npz"):
        with np.load(path) as z:
            obj = {k: z[k].astype(np.float32) for k in z.files}
        return {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()}
    import torch
    obj = torch.load(path, map_location="cpu")
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ValueError("%s: neither a state_dict nor an nn.Module" % path)
    return {k[len("module."):] if k.startswith("module.") else k: v.detach().float().numpy()
            for k, v in obj.items() if hasattr(v, "detach")}


def parse_map(rule):
    if "=" not in rule:
        raise argparse.ArgumentTypeError("--map wants OLD_PREFIX=NEW_PREFIX, got %r" % rule)
    old, new = rule.split("=", 1)
    if not old:
        raise argparse.ArgumentTypeError("--map %r: OLD_PREFIX is empty" % rule)
    return old, new


def rename(name, rules, drops):
    """The ocrkd name for a source tensor, or None when dropped."""
    if any(name.startswith(d) for d in drops):
        return None
    for old, new in rules:
        if name.startswith(old):
            return new + name[len(old):]
    return name


def plan(sd, rules, drops):
    """Maps every source tensor and checks the result against the network
    inferred from it. Returns (rows, mapped, arch, problems): rows are
    (source, target or None, shape, note) in source order."""
    import crnn_names
    rows, mapped, problems, seen = [], {}, [], {}
    for src, v in sd.items():
        if src.endswith("num_batches_tracked"):
            continue
        dst = rename(src, rules, drops)
        if dst is not None and dst in seen:
            problems.append("%s and %s both map to %s" % (seen[dst], src, dst))
        if dst is not None:
            seen[dst] = src
            mapped[dst] = v
        rows.append([src, dst, tuple(v.shape), "dropped" if dst is None else ""])
    try:
        arch = crnn_names.arch_from_state_dict(mapped)
    except ValueError as e:
        problems.append("cannot infer the network: %s (add --map rules)" % e)
        return rows, mapped, None, problems
    want = crnn_names.expected_shapes(arch)
    for row in rows:
        src, dst, shape, note = row
        if dst is None:
            continue
        if dst not in want:
            row[3] = "NOT IN ocrkd's network"
            problems.append("%s -> %s: not a tensor of ocrkd's network" % (src, dst))
        elif tuple(want[dst]) != shape:
            row[3] = "SHAPE MISMATCH: %s, ocrkd needs %s" % (shape, tuple(want[dst]))
            problems.append("%s -> %s: shape %s, ocrkd's network needs %s"
                            % (src, dst, shape, tuple(want[dst])))
        else:
            row[3] = "ok"
    for dst, shape in want.items():
        if dst not in mapped:
            rows.append([None, dst, tuple(shape), "MISSING from the input"])
            problems.append("%s %s: missing from the input" % (dst, tuple(shape)))
    return rows, mapped, arch, problems


def print_plan(rows, arch, problems, out=sys.stdout):
    width = max([len(r[0] or "(missing)") for r in rows] + [10])
    for src, dst, shape, note in rows:
        print("%-*s -> %-40s %-18s %s" % (width, src or "(missing)", dst or "-",
                                            "x".join(str(d) for d in shape) or "scalar", note),
              file=out)
    if arch:
        print("network: %s" % json.dumps(arch), file=out)
    for p in problems:
        print("problem: %s" % p, file=out)
    print("%d tensors, %d problems" % (len(rows), len(problems)), file=out)


def main():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="PyTorch .pt (state_dict or pickled CRNN module) or .npz")
    ap.add_argument("out", nargs="?", help="ocrkd checkpoint to write (.h5); not with --dry-run")
    ap.add_argument("--alphabet", help="the K-1 symbols of classes 1..K-1 (needed to write)")
    ap.add_argument("--kind", default="teacher", choices=["teacher", "student"])
    ap.add_argument("--step", type=int, default=0)
    ap.add_argument("--epoch", type=int, default=0)
    ap.add_argument("--map", type=parse_map, action="append", default=[],
                    metavar="OLD_PREFIX=NEW_PREFIX", help="rename tensors (repeatable)")
    ap.add_argument("--drop", action="append", default=[], metavar="PREFIX",
                    help="leave out tensors whose name starts with PREFIX (repeatable)")
    ap.add_argument("--dry-run", action="store_true",
                    help="list how every tensor maps and what does not fit; write nothing")
    a = ap.parse_args()
    if not a.dry_run and (not a.out or a.alphabet is None):
        ap.error("OUT and --alphabet are required unless --dry-run")
    try:
        sd = load_state_dict(a.model)
        rows, mapped, arch, problems = plan(sd, a.map, a.drop)
        if a.dry_run:
            print_plan(rows, arch, problems)
            sys.exit(1 if problems else 0)
        if problems:
            raise ValueError("%d tensors do not fit ocrkd's network (see --dry-run): %s"
                             % (len(problems), "; ".join(problems[:5])))
        import crnn_names
        order = crnn_names.expected_shapes(arch)  # state_dict order
        write_checkpoint(a.out, {k: mapped[k] for k in order}, arch, a.alphabet, a.kind,
                         a.step, a.epoch)
    except (ValueError, OSError, RuntimeError, KeyError) as e:
        sys.exit("torch2ocrkd: %s: %s" % (a.model, e))
    print("wrote %s: %s, %d tensors" % (a.out, json.dumps(arch), len(mapped)))


if __name__ == "__main__":
    main()
