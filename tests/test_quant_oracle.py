"""tests/test_quant_oracle.py - engine/quant.c against the `gguf` Python package.

The pip package `gguf` (the format's own Python reader) dequantizes every
tensor type in numpy, written independently of our C. For each type we make
random block bytes (f16 scale fields replaced by sane finite values so no
NaN/inf appears), dequantize them with our C through tests/tools/quant_dump
and with gguf.quants.dequantize, and require the same floats (exact, or
within 1e-6 relative for the few types whose float evaluation order could
differ). A second set of cases quantizes random data with our
quantize_row_ref and requires gguf to read the blocks back to the same
values, so our quantizer writes the layout the format defines.
"""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from testlib import Skip, case, run_all  # noqa: E402

try:
    import numpy as np
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType
    from gguf import quants as gguf_quants
except ImportError as e:  # the oracle is optional on a bare machine
    np = None
    IMPORT_ERROR = str(e)

TOOL = os.path.join(os.environ.get("TOOL_BIN_DIR", "build/tools"), "quant_dump")

# type name -> (gguf type id, byte offsets of the f16 scale fields in one block)
TYPES = {
    "F32": (0, []),
    "F16": (1, []),
    "BF16": (30, []),
    "Q4_0": (2, [0]),
    "Q4_1": (3, [0, 2]),
    "Q5_0": (6, [0]),
    "Q5_1": (7, [0, 2]),
    "Q8_0": (8, [0]),
    "Q2_K": (10, [80, 82]),
    "Q3_K": (11, [108]),
    "Q4_K": (12, [0, 2]),
    "Q5_K": (13, [0, 2]),
    "Q6_K": (14, [208]),
    "IQ4_NL": (20, [0]),
    "IQ4_XS": (23, [0]),
}
FLOAT_TYPES = ("F32", "F16", "BF16")

# quantize_row_ref round trip: allowed rms error as a fraction of rms(x) for
# gaussian data (with a quiet and an off-centre super-block). Measured errors
# are about 0.7 of these; a wrong bit layout gives errors around 1.0 or more.
ROUNDTRIP_RMS = {
    "F32": 0.0, "F16": 5e-4, "BF16": 3e-3, "Q8_0": 0.008, "Q4_0": 0.12, "Q4_1": 0.11,
    "Q5_0": 0.06, "Q5_1": 0.055, "IQ4_NL": 0.11, "Q2_K": 0.42, "Q3_K": 0.21,
    "Q4_K": 0.11, "Q5_K": 0.055, "Q6_K": 0.027, "IQ4_XS": 0.11,
}


def require_oracle():
    if np is None:
        raise Skip(f"python gguf/numpy not available ({IMPORT_ERROR})")
    if not os.access(TOOL, os.X_OK):
        raise AssertionError(f"{TOOL} not built (make tests-build builds it)")


def run_tool(*args):
    r = subprocess.run([TOOL, *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"quant_dump {' '.join(args[:2])} failed: {r.stderr.strip()}"


def c_dequantize(type_id, data):
    with tempfile.TemporaryDirectory() as d:
        src, dst = os.path.join(d, "in"), os.path.join(d, "out")
        with open(src, "wb") as f:
            f.write(np.uint32(type_id).tobytes() + data.tobytes())
        run_tool("dequant", src, dst)
        return np.fromfile(dst, dtype=np.float32)


def c_quantize(type_id, values):
    with tempfile.TemporaryDirectory() as d:
        src, dst = os.path.join(d, "in"), os.path.join(d, "out")
        values.astype(np.float32).tofile(src)
        run_tool("quantize", str(type_id), src, dst)
        return np.fromfile(dst, dtype=np.uint8)


def random_blocks(name, n_blocks, rng):
    """Random bytes for n_blocks blocks, scale fields set to f16 values of magnitude 1e-3..1e-1."""
    type_id, scale_offsets = TYPES[name]
    _, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(type_id)]
    blocks = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    for off in scale_offsets:
        mag = rng.uniform(1e-3, 1e-1, size=n_blocks) * rng.choice([-1.0, 1.0], size=n_blocks)
        blocks[:, off:off + 2] = mag.astype(np.float16).view(np.uint8).reshape(n_blocks, 2)
    return blocks.reshape(-1)


def assert_same_floats(ours, ref, what):
    assert ours.shape == ref.shape, f"{what}: {ours.shape} values, gguf gives {ref.shape}"
    nan_ours, nan_ref = np.isnan(ours), np.isnan(ref)
    assert np.array_equal(nan_ours, nan_ref), f"{what}: NaN at different positions"
    ours, ref = ours[~nan_ours], ref[~nan_ref]
    if np.array_equal(ours, ref):
        return
    finite = np.isfinite(ref)
    assert np.array_equal(ours[~finite], ref[~finite]), f"{what}: infinities differ"
    scale = max(float(np.max(np.abs(ref[finite]), initial=0.0)), 1e-30)
    err = np.abs(ours[finite] - ref[finite])
    bad = np.flatnonzero(err > 1e-6 * np.maximum(np.abs(ref[finite]), 1e-3 * scale))
    assert bad.size == 0, (f"{what}: {bad.size} values differ, first at {bad[0]}: "
                           f"ours {ours[finite][bad[0]]!r} gguf {ref[finite][bad[0]]!r}")


def make_dequant_case(name):
    def check():
        require_oracle()
        type_id = TYPES[name][0]
        rng = np.random.default_rng(1000 + type_id)
        block_size, _ = GGML_QUANT_SIZES[GGMLQuantizationType(type_id)]
        n_blocks = 4096 if block_size == 1 else 64
        data = random_blocks(name, n_blocks, rng)
        ours = c_dequantize(type_id, data)
        ref = gguf_quants.dequantize(data, GGMLQuantizationType(type_id)).astype(np.float32).reshape(-1)
        assert_same_floats(ours, ref, name)
    check.__name__ = f"dequant_matches_gguf_{name}"
    return check


def make_roundtrip_case(name):
    def check():
        require_oracle()
        type_id = TYPES[name][0]
        rng = np.random.default_rng(2000 + type_id)
        x = rng.standard_normal(256 * 16).astype(np.float32)
        x[:256] *= 0.01  # a quiet super-block, as in real weights
        x[256:512] += 0.5  # and an off-centre one
        blocks = c_quantize(type_id, x)
        _, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(type_id)]
        block_size, _ = GGML_QUANT_SIZES[GGMLQuantizationType(type_id)]
        assert blocks.size == x.size // block_size * type_size, f"{name}: wrote {blocks.size} bytes"
        ref = gguf_quants.dequantize(blocks, GGMLQuantizationType(type_id)).astype(np.float32).reshape(-1)
        assert_same_floats(c_dequantize(type_id, blocks), ref, name)
        rms = float(np.sqrt(np.mean((ref - x) ** 2)) / np.sqrt(np.mean(x ** 2)))
        assert rms <= ROUNDTRIP_RMS[name], f"{name}: relative rms error {rms:.4f} > {ROUNDTRIP_RMS[name]}"
    check.__name__ = f"quantize_readable_by_gguf_{name}"
    return check


@case
def f16_bf16_conversion_matches_numpy():
    """f32 -> f16/bf16 rounding on awkward values: ties, subnormals, overflow, NaN."""
    require_oracle()
    rng = np.random.default_rng(7)
    specials = np.array([0.0, -0.0, 1.0, 65504.0, 65519.99, 65520.0, 1e6, -1e6, 6.1035156e-05, 5.9604645e-08,
                         2.9802322e-08, 2.9802326e-08, 1e-10, np.inf, -np.inf, np.nan, 1.0009766, 1.0004883,
                         3.0e38, -3.4028235e38], dtype=np.float32)
    bits = rng.integers(0, 2 ** 32, size=20000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    scaled = (rng.standard_normal(20000) * np.exp2(rng.integers(-30, 20, 20000))).astype(np.float32)
    low_payload_nan = np.array([0x7F800001, 0xFF800001], dtype=np.uint32).view(np.float32)
    x = np.concatenate([specials, low_payload_nan, bits, scaled]).astype(np.float32)
    x = x[: x.size // 256 * 256]
    f16 = c_quantize(1, x).view(np.uint16)
    with np.errstate(over="ignore"):
        ref16 = x.astype(np.float16).view(np.uint16)
    nan = np.isnan(x)
    assert np.all(np.isnan(f16[nan].view(np.float16))), "NaN did not stay NaN in f16"
    diff = np.flatnonzero(f16[~nan] != ref16[~nan])
    assert diff.size == 0, f"f16: {diff.size} differ, e.g. {x[~nan][diff[0]]!r} -> {f16[~nan][diff[0]]:#06x}" \
                           f" numpy {ref16[~nan][diff[0]]:#06x}"
    bf = c_quantize(30, x).view(np.uint16)
    refbf = gguf_quants.quantize(x, GGMLQuantizationType.BF16).view(np.uint16)
    assert np.all(np.isnan((bf[nan].astype(np.uint32) << 16).view(np.float32))), "NaN did not stay NaN in bf16"
    diff = np.flatnonzero(bf[~nan] != refbf[~nan])
    assert diff.size == 0, f"bf16: {diff.size} differ, e.g. {x[~nan][diff[0]]!r}"


for _name in TYPES:
    case(make_dequant_case(_name))
for _name in TYPES:
    case(make_roundtrip_case(_name))

if __name__ == "__main__":
    run_all()
