#!/usr/bin/python3
"""h5_to_lmdb.py - an ocrkd dataset (SPEC.md "Dataset file") as an LMDB dataset
in the layout deep-text-recognition-benchmark, PaddleOCR and MMOCR read, for
users who go back to those tools; `ocrkd-pack --lmdb` reads it again.

Keys (indices from 1): `image-%09d` a grey PNG of the image's used width
(/widths, else the full width), `label-%09d` the UTF-8 label, `num-samples`
the count as decimal ASCII. The LMDB is written to OUT_DIR.tmp and renamed
to OUT_DIR at the end, so an error leaves nothing half-written.

  h5_to_lmdb.py IN.h5 OUT_DIR [--limit N]

Needs python3-h5py, python3-numpy and python3-lmdb (Debian). Exit 2 on a
usage error, 3 on a bad input file (unlabeled, not an ocrkd dataset).
Not for: training ocrkd (it reads HDF5; `ocrkd-pack --lmdb` converts back).
"""
import argparse
import os
import shutil
import struct
import sys
import zlib


def die(msg, code=3):
    sys.stderr.write("h5_to_lmdb.py: error: %s\n" % msg)
    sys.exit(code)


def png_grey(rows):
    """A 2-D uint8 array as the bytes of an 8-bit greyscale PNG."""
    h, w = rows.shape

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\0" + rows[y].tobytes() for y in range(h))  # filter 0 per row
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input", help="ocrkd dataset (.h5) with /labels")
    ap.add_argument("out", help="LMDB directory to create (must not exist)")
    ap.add_argument("--limit", type=int, default=0, help="write only the first N samples")
    a = ap.parse_args()
    try:
        import h5py
        import lmdb
        import numpy as np
    except ImportError as e:
        die("%s (install python3-h5py python3-numpy python3-lmdb)" % e, 2)
    if os.path.exists(a.out):
        die("%s exists; give a new directory" % a.out, 2)
    try:
        f = h5py.File(a.input, "r")
    except OSError as e:
        die("%s: cannot open as HDF5: %s" % (a.input, e))
    with f:
        fmt = f.attrs.get("format")
        if isinstance(fmt, bytes):
            fmt = fmt.decode()
        if fmt != "ocrkd-dataset" or "images" not in f:
            die("%s: not an ocrkd dataset (format attribute %r)" % (a.input, fmt))
        if "labels" not in f:
            die("%s: unlabeled dataset (no /labels): nothing to write as label-%%09d" % a.input)
        images, labels = f["images"], f["labels"]
        n = images.shape[0] if a.limit <= 0 else min(a.limit, images.shape[0])
        widths = f["widths"][:n] if "widths" in f else np.full(n, images.shape[2], np.int32)
        tmp = a.out.rstrip("/") + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        # PNG of grey text is smaller than its pixels; twice them plus slack is ample
        env = lmdb.open(tmp, map_size=2 * n * images.shape[1] * images.shape[2] + (64 << 20))
        try:
            with env.begin(write=True) as txn:
                for i in range(n):
                    lab = labels[i]
                    lab = lab if isinstance(lab, bytes) else lab.encode("utf-8")
                    w = max(1, min(int(widths[i]), images.shape[2]))
                    txn.put(b"image-%09d" % (i + 1), png_grey(np.ascontiguousarray(images[i, :, :w])))
                    txn.put(b"label-%09d" % (i + 1), lab)
                txn.put(b"num-samples", str(n).encode())
            env.close()
            os.rename(tmp, a.out)
        except BaseException:
            env.close()
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    sys.stderr.write("h5_to_lmdb.py: wrote %d samples to %s\n" % (n, a.out))


if __name__ == "__main__":
    main()
