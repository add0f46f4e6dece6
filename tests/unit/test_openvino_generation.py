"""The OpenVINO generation skill's pipeline settings (no pipeline is built here)."""

from hfserve.skills.openvino_generation import batched_tokens


def test_prompts_go_in_parts_of_512_tokens_on_a_cpu_and_2048_elsewhere() -> None:
    assert batched_tokens({"ov_device": "CPU"}, 32) == 512
    assert batched_tokens({}, 32) == 512
    assert batched_tokens({"ov_device": "GPU.0"}, 32) == 2048


def test_the_configured_budget_wins_but_leaves_a_decode_token_per_sequence() -> None:
    assert batched_tokens({"max_prefill_tokens": 4096, "ov_device": "CPU"}, 32) == 4096
    assert batched_tokens({"max_prefill_tokens": 8}, 32) == 32
