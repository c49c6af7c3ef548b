#!/usr/bin/python3
"""ocrkd2torch.py - an ocrkd checkpoint -> a PyTorch state_dict (.pt) for
crnn_torch.CRNN, optionally an ONNX export.

    /usr/bin/python3 data-tools/ocrkd2torch.py ckpt.h5 out.pt [--onnx out.onnx] [--width 128]

Every tensor of /params is loaded into crnn_torch.CRNN with strict=True (so
the file provably fits the PyTorch model); BatchNorm num_batches_tracked is
added. The .pt also works as torch2ocrkd.py input. The alphabet is printed
and saved next to the weights as out.pt.alphabet (UTF-8).
For: using an ocrkd-trained model in PyTorch or ONNX runtimes.
Not for: resuming training (optimizer state is not converted).
"""
import argparse
import json
import os
import sys

import h5py
import numpy as np


def read_checkpoint(path):
    """Returns (tensors name -> numpy float32, root attributes as a dict)."""
    with h5py.File(path, "r") as f:
        fmt = f.attrs.get("format")
        fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
        if fmt != "ocrkd-checkpoint":
            raise ValueError("format attribute is %r, not 'ocrkd-checkpoint'" % (fmt,))
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        if "params" not in f:
            raise ValueError("no /params group")
        tensors = {k: np.asarray(d[()], dtype=np.float32) for k, d in f["params"].items()}
    return tensors, attrs


def to_module(tensors):
    """A crnn_torch.CRNN holding tensors (strict load), in eval mode."""
    import torch
    import crnn_torch
    arch = crnn_torch.arch_from_state_dict(tensors)
    model = crnn_torch.CRNN(**arch)
    sd = {k: torch.from_numpy(v) for k, v in tensors.items()}
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked"):
            sd[k] = torch.zeros_like(v)
    model.load_state_dict(sd, strict=True)  # raises naming missing/unexpected/mis-shaped
    return model.eval()


def export_onnx(model, path, width):
    import torch
    x = torch.rand(1, 1, 32, width)
    torch.onnx.export(model, (x,), path, input_names=["images"],
                      output_names=["log_probs", "encoder"], opset_version=13,
                      dynamic_axes={"images": {0: "batch", 3: "width"},
                                    "log_probs": {0: "time", 1: "batch"},
                                    "encoder": {0: "time", 1: "batch"}})


def main():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ckpt", help="ocrkd checkpoint (.h5)")
    ap.add_argument("out", help="PyTorch state_dict to write (.pt)")
    ap.add_argument("--onnx", metavar="OUT.onnx", help="also export to ONNX")
    ap.add_argument("--width", type=int, default=128, help="example image width for --onnx")
    a = ap.parse_args()
    try:
        tensors, attrs = read_checkpoint(a.ckpt)
        model = to_module(tensors)
    except (ValueError, OSError, RuntimeError, KeyError) as e:
        sys.exit("ocrkd2torch: %s: %s" % (a.ckpt, e))
    torch.save(model.state_dict(), a.out)
    alphabet = attrs.get("alphabet", "")
    with open(a.out + ".alphabet", "w", encoding="utf-8") as f:
        f.write(alphabet)
    print("wrote %s: %s, alphabet %s" % (a.out, json.dumps(model.arch), json.dumps(alphabet)))
    if a.onnx:
        try:
            export_onnx(model, a.onnx, a.width)
        except Exception as e:  # the exporter raises many types; report and fail
            sys.exit("ocrkd2torch: ONNX export to %s failed: %s" % (a.onnx, e))
        print("wrote %s" % a.onnx)


if __name__ == "__main__":
    main()
