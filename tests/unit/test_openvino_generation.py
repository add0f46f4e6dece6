"""The OpenVINO generation skill's pipeline settings (no pipeline is built here)."""

from hfserve.backends.placement import BackendOptions
from hfserve.skills.openvino_generation import batched_tokens, cache_gib


def test_prompts_go_in_parts_of_512_tokens_on_a_cpu_and_2048_elsewhere() -> None:
    assert batched_tokens(BackendOptions(ov_device="CPU"), 32) == 512
    assert batched_tokens(BackendOptions(), 32) == 512
    assert batched_tokens(BackendOptions(ov_device="GPU.0"), 32) == 2048


def test_the_configured_budget_wins_but_leaves_a_decode_token_per_sequence() -> None:
    assert batched_tokens(BackendOptions(max_prefill_tokens=4096, ov_device="CPU"), 32) == 4096
    assert batched_tokens(BackendOptions(max_prefill_tokens=8), 32) == 32


def test_kv_cache_memory_sizes_the_pipelines_cache_in_whole_gib() -> None:
    assert cache_gib(BackendOptions()) == 1
    assert cache_gib(BackendOptions(kv_cache_memory=None)) == 1
    assert cache_gib(BackendOptions(kv_cache_memory=8 * 2**30)) == 8
    assert cache_gib(BackendOptions(kv_cache_memory=3 * 2**30 + 1)) == 4
    assert cache_gib(BackendOptions(kv_cache_memory=100 * 2**20)) == 1
