from types import SimpleNamespace

from hfserve.hardware import cpuinfo


def test_x86_with_amx_has_bfloat16(fakes: SimpleNamespace) -> None:
    features = cpuinfo.parse(fakes.x86_cpuinfo, "x86_64")
    assert features.name == "Intel(R) Xeon(R) Platinum 8480+"
    assert features.dtypes == ("float32", "bfloat16")
    assert {"avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"} <= set(
        features.isa
    )
    assert "fpu" not in features.isa


def test_only_the_first_processor_block_is_read(fakes: SimpleNamespace) -> None:
    features = cpuinfo.parse(fakes.x86_cpuinfo, "x86_64")
    assert "amx_int8" in features.flags


def test_isa_keeps_display_order(fakes: SimpleNamespace) -> None:
    isa = cpuinfo.parse(fakes.x86_cpuinfo, "x86_64").isa
    assert list(isa) == [flag for flag in cpuinfo.ISA_FLAGS if flag in isa]


def test_older_x86_is_float32_only(fakes: SimpleNamespace) -> None:
    features = cpuinfo.parse(fakes.old_x86_cpuinfo, "x86_64")
    assert features.dtypes == ("float32",)
    assert "avx512f" not in features.isa
    assert "avx2" in features.isa


def test_avx512_fp16_gives_float16() -> None:
    text = "model name : Sapphire\nflags : avx512f avx512_fp16\n"
    assert cpuinfo.parse(text, "x86_64").dtypes == ("float32", "float16")


def test_arm_features_neon_alias_and_dtypes(fakes: SimpleNamespace) -> None:
    features = cpuinfo.parse(fakes.arm_cpuinfo, "aarch64", fallback_name="Neoverse V2")
    assert features.name == "Neoverse V2"
    assert {"neon", "asimd", "sve2", "bf16", "i8mm"} <= set(features.isa)
    assert features.dtypes == ("float32", "bfloat16", "float16")


def test_arm_bf16_flag_counts_only_on_arm() -> None:
    text = "flags : bf16\n"
    assert cpuinfo.parse(text, "aarch64").dtypes == ("float32", "bfloat16")
    assert cpuinfo.parse(text, "x86_64").dtypes == ("float32",)


def test_empty_cpuinfo_falls_back_to_arch() -> None:
    features = cpuinfo.parse("", "arm64")
    assert features.name == "arm64"
    assert features.isa == ()
    assert features.dtypes == ("float32",)


def test_each_bfloat16_flag_alone_is_enough() -> None:
    for flag in ("avx512_bf16", "amx_bf16"):
        assert cpuinfo.parse(f"flags : avx2 {flag}\n", "x86_64").dtypes == (
            "float32",
            "bfloat16",
        )
