"""test_model_refusals.py - a model the engine would compute wrongly is refused, by name.

Each case copies one of the test models with one thing changed (a tensor of
its architecture left out or misshapen, an extra tensor nothing reads, a
metadata key whose math the engine does not do, an unknown architecture),
then `prbot logits` must fail with one line that names what is wrong. The
copy is written with the `gguf` package, so the file is otherwise valid.
"""
import os
import subprocess
import tempfile

from testlib import PRBOT, TESTDATA, Skip, case, run_all

try:
    import numpy as np
    import gguf
except ImportError:  # pragma: no cover - .ci/run installs them
    gguf = None


def copy_model(src, dst, drop=None, reshape=None, extra_tensor=None, set_kv=None, arch=None):
    """src -> dst with tensor `drop` left out, tensor reshape=(name, n) cut to n values,
    extra_tensor=(name, n) added, set_kv={key: value} added, or the architecture renamed."""
    r = gguf.GGUFReader(src)
    old_arch = r.fields["general.architecture"].contents()
    w = gguf.GGUFWriter(dst, arch or old_arch)
    for key, f in r.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture" or key in (set_kv or {}):
            continue
        if arch and key.startswith(old_arch + "."):
            key = arch + key[len(old_arch):]
        vtype = f.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            w.add_array(key, f.contents())
        else:
            w.add_key_value(key, f.contents(), vtype)
    for key, value in (set_kv or {}).items():
        if isinstance(value, str):
            w.add_string(key, value)
        elif isinstance(value, float):
            w.add_float32(key, value)
        else:
            w.add_uint32(key, value)
    for t in r.tensors:
        if t.name == drop:
            continue
        data = np.array(t.data)
        if reshape and t.name == reshape[0]:
            data = data[: reshape[1]]
        shape = [int(x) for x in reversed(t.shape)] if data.ndim > 1 else [data.shape[0]]
        w.add_tensor(t.name, data, raw_shape=shape if data.ndim > 1 else None, raw_dtype=t.tensor_type)
    if extra_tensor:
        w.add_tensor(extra_tensor[0], np.zeros(extra_tensor[1], dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def refused(model, expect):
    run = subprocess.run([PRBOT, "logits", "--model", model, "--tokens", "1,2,3", "--out", os.devnull],
                         capture_output=True, text=True)
    err = run.stderr.strip()
    assert run.returncode != 0, f"loaded although it should not: {err}"
    assert expect in err, f"error does not say '{expect}': {err}"
    assert len(err.splitlines()) == 1, f"more than one line: {err}"


def check(src, expect, **change):
    if gguf is None:
        raise Skip("numpy/gguf not installed")
    with tempfile.TemporaryDirectory() as tmp:
        dst = os.path.join(tmp, "changed.gguf")
        copy_model(f"{TESTDATA}/models/{src}.gguf", dst, **change)
        refused(dst, expect)


@case
def missing_qk_norm_is_named():
    check("tiny-qwen3-F16", "tensor blk.1.attn_k_norm.weight is missing", drop="blk.1.attn_k_norm.weight")


@case
def misshapen_qk_norm_is_named():
    check("tiny-qwen3-F16", "tensor blk.1.attn_k_norm.weight has shape [64, 1], expected [128, 1]",
          reshape=("blk.1.attn_k_norm.weight", 64))


@case
def missing_post_norm_is_named():
    check("tiny-gemma3-F16", "tensor blk.4.post_ffw_norm.weight is missing", drop="blk.4.post_ffw_norm.weight")


@case
def unused_tensor_is_named():
    check("tiny-llama3-F16", "tensor blk.0.attn_output.bias is not used by the llama architecture",
          extra_tensor=("blk.0.attn_output.bias", 256))


@case
def unknown_architecture_names_the_supported_ones():
    check("tiny-llama3-F16", "unsupported architecture 'mamba' (supported: llama, qwen2, qwen3, gemma3, phi3",
          arch="mamba")


@case
def yarn_rope_scaling_is_refused():
    check("tiny-qwen3-F16", "rope.scaling.type 'yarn' is not supported", set_kv={"qwen3.rope.scaling.type": "yarn"})


@case
def logit_softcapping_is_refused():
    check("tiny-gemma3-F16", "metadata gemma3.final_logit_softcapping is not supported",
          set_kv={"gemma3.final_logit_softcapping": 30.0})


@case
def attention_softcapping_is_refused():
    check("tiny-gemma3-F16", "metadata gemma3.attn_logit_softcapping is not supported",
          set_kv={"gemma3.attn_logit_softcapping": 50.0})


@case
def experts_are_refused():
    check("tiny-qwen3-F16", "metadata qwen3.expert_count is not supported", set_kv={"qwen3.expert_count": 8})


@case
def rope_factors_of_the_wrong_length_are_named():
    check("tiny-llama3-F16", "tensor rope_freqs.weight has shape", reshape=("rope_freqs.weight", 10))


@case
def unknown_pre_tokenizer_names_the_supported_ones():
    # tekken is a name the reference knows, with rules prbot does not implement
    check("tiny-llama3-F16", "tokenizer.ggml.pre 'tekken' is not supported (supported: default, gpt-2,",
          set_kv={"tokenizer.ggml.pre": "tekken"})


@case
def gpt4o_pre_tokenizer_loads():
    if gguf is None:
        raise Skip("numpy/gguf not installed")
    with tempfile.TemporaryDirectory() as tmp:
        dst = os.path.join(tmp, "changed.gguf")
        copy_model(f"{TESTDATA}/models/tiny-llama3-F16.gguf", dst, set_kv={"tokenizer.ggml.pre": "gpt-4o"})
        run = subprocess.run([PRBOT, "tokenize", "--model", dst, "--raw", "camelCase"], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr.strip()


run_all()
