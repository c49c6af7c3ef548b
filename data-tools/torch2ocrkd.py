#!/usr/bin/python3
"""torch2ocrkd.py - a PyTorch CRNN (state_dict .pt, or a whole pickled module)
-> an ocrkd checkpoint (SPEC "Checkpoint file").

    /usr/bin/python3 data-tools/torch2ocrkd.py model.pt out.h5 --alphabet 0123456789 \
        [--kind teacher|student] [--step N] [--epoch N]

The architecture is inferred from tensor names and shapes (crnn_torch.py
naming); the alphabet must have exactly K-1 symbols (class 0 is the blank).
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
    ext = "{blocks: [%s], block: %s, width: %d}" % (
        ", ".join(str(b) for b in arch["blocks"]), arch["block"], arch["width"])
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
    """A .pt holding a state_dict, {'state_dict': ...}, or a pickled module."""
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


def main():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import crnn_torch
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="PyTorch .pt: state_dict or pickled CRNN module")
    ap.add_argument("out", help="ocrkd checkpoint to write (.h5)")
    ap.add_argument("--alphabet", required=True, help="the K-1 symbols of classes 1..K-1")
    ap.add_argument("--kind", default="teacher", choices=["teacher", "student"])
    ap.add_argument("--step", type=int, default=0)
    ap.add_argument("--epoch", type=int, default=0)
    a = ap.parse_args()
    try:
        sd = load_state_dict(a.model)
        arch = crnn_torch.arch_from_state_dict(sd)
        want = crnn_torch.CRNN(**arch).state_dict()
        for k, v in want.items():
            if k.endswith("num_batches_tracked"):
                continue
            if k not in sd:
                raise ValueError("tensor %r missing from %s" % (k, a.model))
            if tuple(sd[k].shape) != tuple(v.shape):
                raise ValueError("tensor %r has shape %s, the inferred architecture needs %s"
                                 % (k, tuple(sd[k].shape), tuple(v.shape)))
        extra = sorted(k for k in sd if k not in want)
        if extra:
            raise ValueError("tensors not in a CRNN: %s" % ", ".join(extra[:5]))
        write_checkpoint(a.out, {k: sd[k] for k in want if k in sd}, arch, a.alphabet,
                         a.kind, a.step, a.epoch)
    except (ValueError, OSError, RuntimeError) as e:
        sys.exit("torch2ocrkd: %s: %s" % (a.model, e))
    print("wrote %s: %s, %d tensors" % (a.out, json.dumps(arch), len(want)))


if __name__ == "__main__":
    main()
