"""Causal-LM text generation on torch: chat templates, prefill and per-step decode with the
model's own KV cache. The runtime's scheduler drives the loop."""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar

from hfserve.backends.placement import Placement
from hfserve.backends.torch_backend import load_torch_model
from hfserve.engines.torch_lm import sampling
from hfserve.engines.torch_lm.grouped_attention import NAME as GROUPED
from hfserve.engines.torch_lm.grouped_attention import use_grouped_decode
from hfserve.engines.torch_lm.kv_batch import Group, KVBatch, Row, zero_padding
from hfserve.engines.torch_lm.lora import LoraAdapters
from hfserve.engines.torch_lm.prefill_graphs import HELD_BYTES, PrefillGraphs
from hfserve.engines.torch_lm.sampling import TorchSampling
from hfserve.engines.torch_lm.slot_kv import MIN_COLUMNS, SlotKV
from hfserve.skills.base import GenerativeSkill
from hfserve.text.codec import HFTextCodec
from hfserve.types import Constraint, Task, TokenChoice

log = logging.getLogger(__name__)

# The share of the device memory free after the weights load that the KV-cache slots may take
# by default, as vLLM's gpu_memory_utilization: the rest is for activations, the captured
# graphs' memory pools and prefill.
KV_SHARE = 0.9


def _cache_kwarg(model: Any) -> str:
    """The keyword ``model`` takes its cache by: state-space models (Mamba) take
    ``cache_params`` (a cache given by another name is silently ignored, and every step would
    forget the prompt); transformers renamed ``past_key_values`` to ``cache``, and the output
    type tells which this installed version takes. The cache is updated in place either way."""
    import inspect

    from transformers.modeling_outputs import CausalLMOutputWithPast

    if "cache_params" in inspect.signature(model.forward).parameters:
        return "cache_params"
    return "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ \
        else "past_key_values"


def _batchable(cache: Any) -> bool:
    """Only plain full-attention caches can be padded and stacked."""
    from transformers.cache_utils import DynamicLayer

    return all(type(layer) is DynamicLayer for layer in getattr(cache, "layers", [None]))


class GenerationSkill(HFTextCodec, TorchSampling, GenerativeSkill):
    task: ClassVar[Task] = Task.TEXT_GENERATION
    own_process: ClassVar[bool] = True
    serves_adapters: ClassVar[bool] = True
    # The transformers auto class the weights load with.
    auto_class: ClassVar[str] = "AutoModelForCausalLM"
    _grammars: Any = None
    lora: LoraAdapters | None = None

    def load(self, placement: Placement) -> None:
        import transformers

        self.placement = placement
        self.model = load_torch_model(getattr(transformers, self.auto_class), self.spec,
                                      placement)
        self.cache_kwarg = _cache_kwarg(self.model)
        self.eos_token_ids = self.load_tokenizer(self.spec,
                                                 self.model.generation_config.eos_token_id,
                                                 placement.options.cache_dir)
        self.max_context = self.spec.max_context or 2048
        self.lora = LoraAdapters(self.model)
        for name, path in placement.options.adapters.items():
            self.lora.add(name, path)
        self.start_batching(self.tokenizer.pad_token_id or 0)

    def start_batching(self, pad_id: int) -> None:
        """Batching choices for the loaded model on its device."""
        from transformers import DynamicCache

        if self.lora is None:           # every forward goes through it, adapters or none
            self.lora = LoraAdapters(self.model)
        self.batched = _batchable(DynamicCache(config=self.model.config))
        if use_grouped_decode(self.model):
            log.info("decode attention over grouped key/value heads without repeating them")
        gpu = not self.placement.device.startswith("cpu")
        # A GPU has room to prefill many prompts in one forward; a CPU core does not, and
        # prefilling less per step keeps running streams flowing there.
        self.max_prefill_batch = (256 if gpu else 16) if self.batched else 1
        # A long prompt's cache grows part by part as one row; only stackable caches do.
        self.chunked_prefill = self.batched
        budget = self.placement.options.max_prefill_tokens
        self.prefill_budget = (8192 if gpu else 512) if budget is None else int(budget)
        # A GPU prefill is bound by launching kernels, so it costs about as much for one
        # prompt as for thirty: gathering newcomers saves whole forwards there. A CPU's
        # prefill costs by the token, so gathering would only add latency.
        wait = self.placement.options.prefill_wait_steps
        self.prefill_wait_steps = (16 if gpu else 0) if wait is None else int(wait)
        # A CUDA device computes while the host turns the previous step into text; a CPU
        # runs the step itself, so there is nothing to overlap with.
        self.overlap_steps = self.placement.device.startswith("cuda")
        self.pad_id = pad_id
        self.fixed_prefill: PrefillGraphs | None = None
        self.running = self._running_batch()
        if isinstance(self.running, SlotKV) and not self._slots_work():
            self.running = KVBatch(self._forward, self.placement.device)
        self.fixed_prefill = self._fixed_prefill()
        # The slots take a step's tokens from where sampling left them on the device, so
        # that the next step is queued before these reach the host: the device never waits
        # for the host's bookkeeping between two steps.
        self.feeds_tokens = self.overlap_steps and isinstance(self.running, SlotKV)
        # With many streams the host's work per step (launch, events, a message per stream)
        # bounds the rate on a GPU, so several steps share it.
        steps = self.placement.options.decode_steps
        self.decode_steps = (4 if self.feeds_tokens else 1) if steps is None else int(steps)
        self._capture_graphs()

    def _capture_graphs(self) -> None:
        """Capture the decode step of every slot bucket and the common prefill buckets now,
        as vLLM captures its graphs at start-up: one captured on first use stalls every
        running stream for three forwards (first captures were half the prefill time of a
        256-stream run on an H100, docs/benchmarks.md)."""
        running, fixed = self.running, self.fixed_prefill
        if not (isinstance(running, SlotKV) and running.graphs):
            return
        import torch

        start = time.perf_counter()
        try:
            with torch.inference_mode():
                decode = running.capture_all()
                prefill = fixed.capture_common(running.slots) if fixed is not None else 0
        except Exception as exc:  # e.g. out of memory: the model serves, graphs come later
            log.warning("CUDA graphs are captured on first use: capturing them at load "
                        "failed: %s: %s", type(exc).__name__, exc)
            return
        log.info("captured %d decode and %d prefill graphs in %.1f s", decode, prefill,
                 time.perf_counter() - start)

    def _running_batch(self) -> KVBatch | SlotKV:
        """Fixed cache slots (replayed as CUDA graphs on CUDA) where ``cuda_graphs`` is on,
        which it is by default on CUDA; else a growing left-padded batch."""
        wanted = self.placement.options.cuda_graphs
        if wanted is None:
            wanted = self.placement.device.startswith("cuda")
        # A graph replays the adapters of the rows it was captured with; peft picks each
        # row's adapter on the host, so with adapters every step is eager.
        wanted = wanted and not self.lora.active
        attention = getattr(self.model.config, "_attn_implementation", None) or "sdpa"
        if not (wanted and self.batched and attention in ("sdpa", "eager", GROUPED)):
            return KVBatch(self._forward, self.placement.device)
        slots = int(self.placement.options.max_concurrent)
        columns = self._slot_columns(slots)
        if columns < min(MIN_COLUMNS, self.max_context + 1):
            log.warning("decode without fixed cache slots: %d slots of even %d columns do not "
                        "fit in the KV-cache memory", slots, min(MIN_COLUMNS,
                                                                self.max_context + 1))
            return KVBatch(self._forward, self.placement.device)
        if columns <= self.max_context:
            log.warning("context shortened from %d to %d tokens: %d sequences of the whole "
                        "context do not fit in the KV-cache memory (kv_cache_memory)",
                        self.max_context, columns - 1, slots)
            self.max_context = columns - 1
        return SlotKV(self._forward, device=self.placement.device, slots=slots,
                      max_columns=columns, pad_id=self.pad_id,
                      bool_mask=attention != "eager", graphs=True)

    def _fixed_prefill(self) -> PrefillGraphs | None:
        """Prefill at fixed shapes, captured as CUDA graphs, where the running rows live in
        cache slots: the ``prefill_graphs`` option, on by default where the slots' steps are
        captured (on a CPU the fixed shapes would only add padding). A model whose forward
        fails on it (a probe prompt) keeps the eager prefill."""
        running = self.running
        wanted = self.placement.options.prefill_graphs
        if not isinstance(running, SlotKV) or not (running.graphs if wanted is None
                                                   else wanted) or self.lora.active:
            return None
        fixed = PrefillGraphs(self._forward, device=self.placement.device,
                              layers=self.model.config.get_text_config().num_hidden_layers,
                              pad_id=self.pad_id,
                              bool_mask=running.bool_mask, dtype=self.model.dtype, graphs=True,
                              max_tokens=self.prefill_budget,
                              token_bytes=self._kv_bytes_per_token())
        try:
            import torch

            with torch.inference_mode():
                fixed.prefill([[self.pad_id, self.pad_id]])
        except Exception as exc:
            log.warning("prefill stays eager: the model failed on fixed shapes: %s: %s",
                        type(exc).__name__, exc)
            return None
        return fixed

    def info(self) -> dict[str, Any]:
        running = self.running
        if not isinstance(running, SlotKV):
            return super().info()
        size = running.slots * running.max_columns * self._kv_bytes_per_token()
        fixed = self.fixed_prefill
        return {**super().info(), "max_context": self.max_context, "kv_cache": {
            "slots": running.slots, "max_tokens_per_slot": running.max_columns,
            "max_bytes": size}, "steps": {
            "decode_graphs": running.graphs, "prefill_graphs": bool(fixed and fixed.graphs),
            "fixed_shape_prefill": fixed is not None, "decode_steps": self.decode_steps}}

    def _slot_columns(self, slots: int) -> int:
        """How many columns (token positions) the slots may grow to: the whole context,
        unless ``slots`` rows of it would not fit in the KV-cache memory (the
        ``kv_cache_memory`` option, else ``KV_SHARE`` of what the device has free now that
        the weights are in, less what captured prefill buckets may hold on CUDA); then as
        many as fit. The slots grow on demand, so without this cap a long context on many
        slots ran the device out of memory mid-service."""
        per_column = self._kv_bytes_per_token() * slots
        if not per_column:
            return self.max_context + 1
        budget = self.placement.options.kv_cache_memory
        if budget is None:
            budget = KV_SHARE * _free_memory(self.placement.device)
            if self.placement.device.startswith("cuda") and \
                    self.placement.options.prefill_graphs is not False:
                budget = max(0, budget - HELD_BYTES)
        return min(self.max_context + 1, int(budget // per_column))

    def _kv_bytes_per_token(self) -> int:
        """Key and value bytes one token of one sequence takes over all layers (0: unknown).
        A vision-language model's cache is its language model's."""
        config = self.model.config.get_text_config()
        layers = getattr(config, "num_hidden_layers", None)
        heads = getattr(config, "num_attention_heads", None)
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
        dim = getattr(config, "head_dim", None) or (
            config.hidden_size // heads if heads and getattr(config, "hidden_size", None)
            else None)
        if not (layers and kv_heads and dim):
            return 0
        return 2 * layers * kv_heads * dim * self.model.dtype.itemsize

    def _slots_work(self) -> bool:
        """Decode one probe prompt for two steps in the slots (capturing their first graph
        on CUDA). A model whose forward does not take a slot cache (transformers versions
        differ in what they ask of a cache) keeps the growing batch instead of failing
        every request."""
        states, logits, _ = self.prefill([[self.pad_id, self.pad_id]], [None])
        try:
            for _ in range(2):
                token = int(logits[0].argmax())
                logits = self.decode(states, [token])
        except Exception as exc:
            log.warning("decode without fixed cache slots: the model failed on them: %s: %s",
                        type(exc).__name__, exc)
            return False
        finally:
            self.release(states[0])
        return True

    def unload(self) -> None:
        self.model = None
        self.running = None
        self.lora = None

    # --- adapters (on the worker's thread, between steps) ------------------------------
    def add_adapter(self, name: str, path: str) -> None:
        """Load a LoRA adapter; the first one turns captured graphs off (they would replay
        the base model for every row) and later steps run eagerly."""
        self.lora.add(name, path)
        self.fixed_prefill = None
        running = self.running
        if isinstance(running, SlotKV) and running.graphs:
            log.info("decode steps run eagerly from now on: a LoRA adapter is loaded")
            running.stay_eager()

    def remove_adapter(self, name: str) -> None:
        self.lora.remove(name)

    def adapter_names(self) -> list[str]:
        return list(self.lora.paths)

    # --- model stages ----------------------------------------------------------------
    def prefill(self, prompts: list[list[int]], prompt_logprobs: list[int | None],
                adapters: list[str | None] | None = None,
                media: list[dict[str, Any] | None] | None = None
                ) -> tuple[list[Any], Any, list[list[TokenChoice] | None]]:
        """All prompts in one forward, left-padded to the longest (at fixed shapes where
        they fit, no prompt logprobs are asked for, no prompt has media and none an
        adapter); ``adapters``: each prompt's LoRA adapter (None: the base model), kept with
        its sequence; ``media``: each prompt's media inputs (None: none)."""
        if media is not None and any(m is not None for m in media):
            return self._prefill(prompts, prompt_logprobs, None, adapters,
                                 self._media_inputs(media))
        fixed = self.fixed_prefill
        if fixed is not None and fixed.fits(prompts) and all(
                k is None for k in prompt_logprobs) and not any(adapters or ()):
            import torch

            with torch.inference_mode():
                rows, logits = fixed.prefill(prompts)
            return rows, logits, [None] * len(prompts)
        return self._prefill(prompts, prompt_logprobs, None, adapters)

    def prefill_part(self, partial: Row | None, ids: list[int],
                     adapter: str | None = None) -> Row:
        states, _, _ = self._prefill([ids], [None], partial, [adapter])
        return states[0]

    def finish_prefill(self, partial: Row, ids: list[int]
                       ) -> tuple[list[Any], Any, list[list[TokenChoice] | None]]:
        return self._prefill([ids], [None], partial)

    def _media_inputs(self, media: list[dict[str, Any] | None]) -> dict[str, Any]:
        """The prompts' media inputs as one batch of model inputs: each input's arrays of
        all prompts that have it, concatenated in prompt order (a prompt's images are rows
        of ``pixel_values``, and the model fills its image tokens from them in that
        order), on the device, floating ones in the model's dtype."""
        import numpy as np
        import torch

        names = dict.fromkeys(k for m in media if m is not None for k in m)
        inputs = {}
        for name in names:
            value = torch.from_numpy(np.concatenate(
                [m[name] for m in media if m is not None and name in m]))
            value = value.to(self.placement.device)
            inputs[name] = value.to(self.model.dtype) if value.is_floating_point() else value
        return inputs

    def _prefill(self, prompts: list[list[int]], prompt_logprobs: list[int | None],
                 partial: Row | None, adapters: list[str | None] | None = None,
                 inputs: dict[str, Any] | None = None
                 ) -> tuple[list[Any], Any, list[list[TokenChoice] | None]]:
        """``prompts`` in one forward, left-padded to the longest; with ``partial`` (a row
        whose cache holds the start of the one prompt given), continuing it with its
        adapter; ``inputs``: model inputs besides the ids (``_media_inputs``)."""
        import torch
        from transformers import DynamicCache

        device = self.placement.device
        width = max(map(len, prompts))
        done = partial.length if partial is not None else 0
        ids = torch.tensor([[self.pad_id] * (width - len(p)) + p for p in prompts],
                           device=device)
        mask = torch.tensor([[1] * done + [0] * (width - len(p)) + [1] * len(p)
                             for p in prompts], device=device)
        positions = ((mask.cumsum(-1) - 1).clamp(min=0))[:, done:]
        cache = partial.group.cache if partial is not None else DynamicCache(
            config=self.model.config)
        full = any(k is not None for k in prompt_logprobs)
        if partial is not None:
            adapters = [partial.adapter]
        adapters = adapters or [None] * len(prompts)
        with torch.inference_mode():
            out = self.lora(adapters, input_ids=ids, attention_mask=mask,
                            position_ids=positions, use_cache=True,
                            **{self.cache_kwarg: cache}, logits_to_keep=0 if full else 1,
                            **(inputs or {}))
        lengths = [done + len(p) for p in prompts]
        if min(lengths) < done + width:
            zero_padding(cache, lengths)
        group = Group(cache)
        group.rows = [Row(length=n, group=group, index=i, adapter=a)
                      for i, (n, a) in enumerate(zip(lengths, adapters, strict=True))]
        choices: list[list[TokenChoice] | None] = []
        for i, (p, k) in enumerate(zip(prompts, prompt_logprobs, strict=True)):
            choices.append(None if k is None else sampling.prompt_choices(
                out.logits[i, width - len(p):-1], p, k))
        return list(group.rows), out.logits[:, -1], choices

    def decode(self, states: list[Any], last_tokens: list[int],
               fed: tuple[Any, list[int]] | None = None) -> Any:
        import torch

        with torch.inference_mode():
            if not self.batched:
                return torch.cat([self._decode_alone(s, t)
                                  for s, t in zip(states, last_tokens, strict=True)])
            if fed is None:
                return self.running.decode(states, last_tokens)
            pending, indices = fed
            return self.running.decode(states, last_tokens, (pending.tokens, indices))

    def _forward(self, ids: Any, mask: Any, positions: Any, cache: Any) -> Any:
        """One step of the running batch, or a fixed-shape prefill: each row's next-token
        logits. The running batch's rows are in the order of the forward's (by slot in
        ``SlotKV``), so each takes its own adapter."""
        adapters = [r.adapter for r in self.running.rows] if self.lora.active else []
        out = self.lora(adapters, input_ids=ids, attention_mask=mask, position_ids=positions,
                        use_cache=True, **{self.cache_kwarg: cache}, logits_to_keep=1)
        return out.logits[:, -1]

    def _decode_alone(self, row: Row, token: int) -> Any:
        """A model whose cache cannot be stacked (sliding-window or hybrid layers): each
        sequence steps on its own prefill group's cache."""
        import torch

        out = self.lora([row.adapter],
                        input_ids=torch.tensor([[token]], device=self.placement.device),
                        use_cache=True, **{self.cache_kwarg: row.group.cache})
        row.length += 1
        return out.logits[:, -1]

    def release(self, state: Any) -> None:
        state.alive = False
        if self.running is not None:
            self.running.clear_if_idle()

    def copy_state(self, state: Any) -> Any:
        if not self.batched:
            import copy

            group = Group(copy.deepcopy(state.group.cache))
            return Row(length=state.length, group=group, index=0, adapter=state.adapter)
        return Row(length=state.length, group=state.group, index=state.index,
                   adapter=state.adapter)

    def guide(self, constraint: Constraint) -> Any:
        from hfserve.text.grammar import Grammars

        if self._grammars is None:      # the vocabulary's index: built on first use
            self._grammars = Grammars(self.tokenizer, self.eos_token_ids)
        return self._grammars.guide(constraint)


def _free_memory(device: str) -> int:
    """Bytes free on a torch device now (host memory for the CPU)."""
    import torch

    if device.startswith("cuda"):
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)
