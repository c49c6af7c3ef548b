"""crnn_names.py - the tensor names and shapes of the ocrkd network (SPEC
"Checkpoint file"), without PyTorch: what crnn_torch.CRNN(**arch).state_dict()
holds, as a dict name -> shape, and the architecture inferred back from a
state_dict's names and shapes.

For: torch2ocrkd.py (its --dry-run works where torch is not installed) and
crnn_torch.py. Not for: building or running a model (crnn_torch.py does).
num_batches_tracked buffers are left out (ocrkd does not store them).
"""
import re

DEPTHS = {
    18: ("basic", [2, 2, 2, 2]),
    34: ("basic", [3, 4, 6, 3]),
    50: ("bottleneck", [3, 4, 6, 3]),
    101: ("bottleneck", [3, 4, 23, 3]),
    152: ("bottleneck", [3, 8, 36, 3]),
}
# First-block stride of layer1..layer4, (height, width).
STAGE_STRIDES = [(2, 2), (2, 2), (2, 1), (2, 1)]


def _bn(out, prefix, c):
    for k in ("weight", "bias", "running_mean", "running_var"):
        out[prefix + "." + k] = (c,)


def _block(out, prefix, block, cin, planes, stride):
    """torchvision BasicBlock / Bottleneck tensors; returns the output channels."""
    if block == "bottleneck":
        cout = planes * 4
        out[prefix + ".conv1.weight"] = (planes, cin, 1, 1)
        _bn(out, prefix + ".bn1", planes)
        out[prefix + ".conv2.weight"] = (planes, planes, 3, 3)
        _bn(out, prefix + ".bn2", planes)
        out[prefix + ".conv3.weight"] = (cout, planes, 1, 1)
        _bn(out, prefix + ".bn3", cout)
    else:
        cout = planes
        out[prefix + ".conv1.weight"] = (planes, cin, 3, 3)
        _bn(out, prefix + ".bn1", planes)
        out[prefix + ".conv2.weight"] = (planes, planes, 3, 3)
        _bn(out, prefix + ".bn2", planes)
    if stride != (1, 1) or cin != cout:
        out[prefix + ".downsample.0.weight"] = (cout, cin, 1, 1)
        _bn(out, prefix + ".downsample.1", cout)
    return cout


def stage_planes(width, i):
    """Planes of stage i: width[i] when width is a list of 4 (model.extractor.widths),
    else width << i; the stem has stage_planes(width, 0) channels."""
    return int(width[i]) if isinstance(width, (list, tuple)) else int(width) << i


def expected_shapes(arch):
    """name -> shape tuple for CRNN(**arch), in state_dict order."""
    out = {}
    w = stage_planes(arch["width"], 0)
    out["extractor.conv1.weight"] = (w, 1, 3, 3)
    _bn(out, "extractor.bn1", w)
    cin = w
    for i, (n, stride) in enumerate(zip(arch["blocks"], STAGE_STRIDES)):
        for j in range(n):
            cin = _block(out, "extractor.layer%d.%d" % (i + 1, j), arch["block"], cin,
                         stage_planes(arch["width"], i), stride if j == 0 else (1, 1))
    d, h = arch["feature_dim"], arch["enc_hidden"]
    out["extractor.neck.weight"] = (d, cin)
    out["extractor.neck.bias"] = (d,)
    for layer in range(arch["enc_layers"]):
        din = d if layer == 0 else 2 * h
        for sfx in ("", "_reverse"):
            out["encoder.weight_ih_l%d%s" % (layer, sfx)] = (4 * h, din)
            out["encoder.weight_hh_l%d%s" % (layer, sfx)] = (4 * h, h)
            out["encoder.bias_ih_l%d%s" % (layer, sfx)] = (4 * h,)
            out["encoder.bias_hh_l%d%s" % (layer, sfx)] = (4 * h,)
    out["classifier.weight"] = (arch["num_classes"], 2 * h)
    out["classifier.bias"] = (arch["num_classes"],)
    return out


def arch_from_state_dict(sd):
    """Infers CRNN(**arch) keyword arguments from tensor names and shapes.
    Raises ValueError naming what is missing."""
    def get(name):
        if name not in sd:
            raise ValueError("state_dict has no tensor %r" % name)
        return sd[name]

    width = get("extractor.conv1.weight").shape[0]
    block = "bottleneck" if "extractor.layer1.0.conv3.weight" in sd else "basic"
    blocks = []
    for i in range(1, 5):
        pat = re.compile(r"^extractor\.layer%d\.(\d+)\." % i)
        idx = {int(m.group(1)) for m in map(pat.match, sd) if m}
        if not idx or idx != set(range(len(idx))):
            raise ValueError("state_dict: blocks of extractor.layer%d missing or not 0..n-1" % i)
        blocks.append(len(idx))
    planes = [get("extractor.layer%d.0.conv1.weight" % (i + 1)).shape[0] for i in range(4)]
    if any(int(p) != int(width) << i for i, p in enumerate(planes)):
        width = [int(p) for p in planes]  # model.extractor.widths
    layers = 0
    while "encoder.weight_ih_l%d" % layers in sd:
        layers += 1
    if layers == 0:
        raise ValueError("state_dict has no tensor 'encoder.weight_ih_l0'")
    return dict(blocks=blocks, block=block, width=width if isinstance(width, list) else int(width),
                feature_dim=int(get("extractor.neck.weight").shape[0]),
                enc_layers=layers,
                enc_hidden=int(get("encoder.weight_hh_l0").shape[1]),
                num_classes=int(get("classifier.weight").shape[0]))
