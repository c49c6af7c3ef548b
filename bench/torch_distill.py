#!/usr/bin/python3
"""torch_distill.py - the PyTorch yardstick for `ocrkd bench`: builds the same
teacher and student as an ocrkd config (data-tools/crnn_torch.py) and times,
on random images of the same batch and width, after a warm-up:
  teacher    teacher forward (eval mode, no_grad)
  train      student training step, CTC only, every parameter trainable
  distill    full distillation step: teacher forward + student forward/backward
             on sum_d w_d D_d(E_t, E_s) + ctc_weight * CTC, student encoder
             (and classifier unless distill.train lists it) frozen, one
             optimizer step on the trainable part
  distill_student   the distillation step without the teacher forward
and prints images/s for each (--json: one JSON object).

    /usr/bin/python3 bench/torch_distill.py bench/small.yaml \
        [--teacher-config bench/small-teacher.yaml | --teacher CKPT.h5] \
        [--batch B] [--width W] [--threads 1] [--steps 10] [--warmup 2] \
        [--data FILE.h5] [--set KEY=VALUE]... [--json]

The teacher's shape comes from --teacher-config (its `model` section), else
from the tensor shapes of --teacher or the config's teacher.checkpoint. The
alphabet (hence K) comes from model.alphabet, else --data, else the teacher
checkpoint, else the 36 lowercase letters and digits. Weights are random: only
time is measured. Not for: accuracy, or parity with ocrkd (tests/ref does that).
Needs python3-torch and python3-yaml (Debian); h5py only with --data/--teacher.
"""
import argparse
import json
import os
import sys
import time
import types

import torch
import torch.nn.functional as F
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "data-tools"))
import crnn_torch  # noqa: E402

DEFAULT_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
LABEL_LEN = 8  # characters per random label; CTC is a small part of a step


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("config", help="ocrkd YAML config (the student, as for `ocrkd distill`)")
    p.add_argument("--teacher-config", help="ocrkd YAML config whose model section is the teacher")
    p.add_argument("--teacher", help="teacher checkpoint (default: the config's teacher.checkpoint)")
    p.add_argument("--data", help="dataset .h5 giving width and alphabet")
    p.add_argument("--batch", type=int, help="batch size (default data.batch_size)")
    p.add_argument("--width", type=int, help="image width (default --data's, else 128)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--only", default="teacher,train,distill",
                   help="comma-separated subset of teacher,train,distill")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key by its dotted path, as ocrkd --set")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p.parse_args(argv)


def load_config(path, sets):
    with open(path, encoding="utf-8") as f:
        cfg = yaml.safe_load(f) or {}
    for s in sets:
        key, eq, value = s.partition("=")
        if not eq:
            sys.exit("torch_distill: --set %s: expected KEY=VALUE" % s)
        node = cfg
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(value) if value else ""
    return cfg


def extractor_arch(ext):
    """model.extractor -> (block, blocks, width); width is a list with widths."""
    width = [int(w) for w in ext["widths"]] if "widths" in ext else int(ext.get("width", 64))
    if "blocks" in ext:
        return ext.get("block", "basic"), [int(b) for b in ext["blocks"]], width
    block, blocks = crnn_torch.arch_from_depth(int(ext.get("depth", 18)))
    return block, blocks, width


def arch_from_model(model, num_classes):
    """A config's model section -> CRNN(**arch) keyword arguments."""
    block, blocks, width = extractor_arch(model.get("extractor", {}))
    enc = model.get("encoder", {})
    return dict(blocks=blocks, block=block, width=width,
                feature_dim=int(model.get("feature_dim", 256)),
                enc_layers=int(enc.get("layers", 2)), enc_hidden=int(enc.get("hidden", 256)),
                num_classes=num_classes)


def read_checkpoint_arch(path):
    """(arch, alphabet) from a checkpoint's /params shapes, no weights read."""
    import h5py
    with h5py.File(path, "r") as f:
        shapes = {name: types.SimpleNamespace(shape=ds.shape) for name, ds in f["params"].items()}
        alphabet = f.attrs.get("alphabet", "")
    if isinstance(alphabet, bytes):
        alphabet = alphabet.decode("utf-8")
    return crnn_torch.arch_from_state_dict(shapes), str(alphabet)


def read_data_info(path):
    """(width, alphabet) of a dataset file."""
    import h5py
    with h5py.File(path, "r") as f:
        alphabet = f.attrs["alphabet"]
        width = int(f.attrs["width"])
    if isinstance(alphabet, bytes):
        alphabet = alphabet.decode("utf-8")
    return width, str(alphabet)


def build_models(args, cfg):
    """(teacher, student, width) as the config describes them."""
    model = cfg.get("model", {}) or {}
    alphabet = model.get("alphabet") or ""
    width = args.width
    if args.data:
        data_width, data_alphabet = read_data_info(args.data)
        alphabet = alphabet or data_alphabet
        width = width or data_width
    teacher_arch = None
    if args.teacher_config:
        tmodel = load_config(args.teacher_config, [])["model"]
        alphabet = alphabet or tmodel.get("alphabet") or ""
    else:
        ckpt = args.teacher or (cfg.get("teacher") or {}).get("checkpoint")
        if not ckpt or not os.path.exists(ckpt):
            sys.exit("torch_distill: no teacher: give --teacher-config, or --teacher / "
                     "teacher.checkpoint naming an existing checkpoint (got %r)" % ckpt)
        teacher_arch, ckpt_alphabet = read_checkpoint_arch(ckpt)
        alphabet = alphabet or ckpt_alphabet
    num_classes = len(alphabet or DEFAULT_ALPHABET) + 1
    if teacher_arch is None:
        teacher_arch = arch_from_model(tmodel, num_classes)
    if teacher_arch["num_classes"] != num_classes:
        sys.exit("torch_distill: teacher has %d classes, the alphabet gives %d"
                 % (teacher_arch["num_classes"], num_classes))
    student = crnn_torch.CRNN(**arch_from_model(model, num_classes))
    teacher = crnn_torch.CRNN(**teacher_arch)
    return teacher, student, width or 128


def distance_loss(kind, et, es, temperature):
    """SPEC method step 5: et, es (T,B,2H); means as ocrkd's distances."""
    if kind == "l1":
        return (es - et).abs().mean()
    if kind == "l2":
        return ((es - et) ** 2).mean()
    if kind == "cosine":
        return (1 - F.cosine_similarity(es, et, dim=-1, eps=1e-8)).mean()
    if kind == "kl":
        pt = F.log_softmax(et / temperature, dim=-1)
        ps = F.log_softmax(es / temperature, dim=-1)
        kl = (pt.exp() * (pt - ps)).sum(-1)
        return temperature ** 2 * kl.mean()
    sys.exit("torch_distill: unknown distance %r" % kind)


def make_optimizer(params, optim):
    name = optim.get("name", "adam")
    lr = float(optim.get("lr", 1e-3))
    wd = float(optim.get("weight_decay", 0.0))
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=float(optim.get("momentum", 0.9)),
                               weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    return torch.optim.Adam(params, lr=lr, weight_decay=wd)


class Batch:
    """Random images (B,1,32,W) in [0,1] and random CTC targets."""

    def __init__(self, batch, width, num_classes, gen):
        self.images = torch.rand(batch, 1, crnn_torch.IMAGE_H, width, generator=gen)
        steps = crnn_torch.time_steps(width)
        length = max(1, min(LABEL_LEN, steps // 2))
        self.targets = torch.randint(1, num_classes, (batch, length), generator=gen)
        self.input_lengths = torch.full((batch,), steps, dtype=torch.long)
        self.target_lengths = torch.full((batch,), length, dtype=torch.long)

    def ctc(self, logp):
        return F.ctc_loss(logp, self.targets, self.input_lengths, self.target_lengths,
                          blank=0, reduction="mean", zero_infinity=True)


def seconds_per_step(fn, warmup, steps):
    """Seconds per call of fn, after warm-up calls."""
    for _ in range(warmup):
        fn()
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t0) / steps


def bench_teacher(teacher, batch):
    teacher.eval()

    def step():
        with torch.no_grad():
            teacher(batch.images)
    return step


def bench_train(student, batch, cfg):
    """CTC training of the whole student (as `ocrkd train`)."""
    student.train()
    for p in student.parameters():
        p.requires_grad_(True)
    optim = cfg.get("optim", {}) or {}
    opt = make_optimizer(list(student.parameters()), optim)
    clip = float(optim.get("grad_clip", 0.0))

    def step():
        opt.zero_grad(set_to_none=True)
        logp, _ = student(batch.images)
        batch.ctc(logp).backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(student.parameters(), clip)
        opt.step()
    return step


def bench_distill(teacher, student, batch, cfg, with_teacher):
    """One distillation step; without the teacher its output is computed once."""
    dcfg = cfg.get("distill", {}) or {}
    parts = dcfg.get("train", ["extractor"]) or ["extractor"]
    distances = dcfg.get("distance", {"l2": 1.0}) or {"l2": 1.0}
    tau = float(dcfg.get("temperature", 1.0))
    ctc_weight = float(dcfg.get("ctc_weight", 0.1))
    optim = cfg.get("optim", {}) or {}
    clip = float(optim.get("grad_clip", 0.0))
    teacher.eval()
    student.train()
    trainable = []
    for name, module in (("extractor", student.extractor), ("encoder", student.encoder),
                         ("classifier", student.classifier)):
        on = name in parts
        for p in module.parameters():
            p.requires_grad_(on)
            if on:
                trainable.append(p)
    opt = make_optimizer(trainable, optim)
    with torch.no_grad():
        cached = teacher(batch.images)[1]

    def step():
        if with_teacher:
            with torch.no_grad():
                et = teacher(batch.images)[1]
        else:
            et = cached
        opt.zero_grad(set_to_none=True)
        logp, es = student(batch.images)
        loss = ctc_weight * batch.ctc(logp)
        for kind, weight in distances.items():
            loss = loss + float(weight) * distance_loss(kind, et, es, tau)
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(trainable, clip)
        opt.step()
    return step


def count(module):
    return sum(p.numel() for p in module.parameters())


def main(argv):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cfg = load_config(args.config, args.set)
    teacher, student, width = build_models(args, cfg)
    batch_size = args.batch or int((cfg.get("data") or {}).get("batch_size", 64))
    gen = torch.Generator().manual_seed(args.seed)
    batch = Batch(batch_size, width, student.classifier.out_features, gen)
    only = set(args.only.split(","))
    result = dict(batch=batch_size, width=width, threads=args.threads, steps=args.steps,
                  torch=torch.__version__, teacher_params=count(teacher),
                  student_params=count(student))
    plan = [("teacher", lambda: bench_teacher(teacher, batch)),
            ("train", lambda: bench_train(student, batch, cfg)),
            ("distill", lambda: bench_distill(teacher, student, batch, cfg, True)),
            ("distill_student", lambda: bench_distill(teacher, student, batch, cfg, False))]
    for name, make in plan:
        if name.split("_")[0] not in only:
            continue
        sec = seconds_per_step(make(), args.warmup, args.steps)
        result[name] = batch_size / sec
        if not args.json:
            print("torch    %-16s %8.1f images/s (%.1f ms/step)" % (name, batch_size / sec,
                                                                     1e3 * sec), flush=True)
    if args.json:
        print(json.dumps(result))
    else:
        print("torch    %s, batch %d x width %d, %d thread(s); teacher %d params, student %d"
              % (torch.__version__, batch_size, width, args.threads,
                 result["teacher_params"], result["student_params"]))


if __name__ == "__main__":
    main(sys.argv[1:])
