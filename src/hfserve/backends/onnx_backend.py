"""ONNX Runtime: export with torch's own ONNX exporter once, cache the file, run it on the
execution provider of the chosen device (CPU, CUDA, or Qualcomm QNN).

optimum's ONNX exporter pins transformers 4.x, which cannot sit beside the transformers 5
this server needs, so the export goes through ``torch.onnx.export`` directly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hfserve.backends.export_cache import export_dir, is_complete, mark_complete, run_isolated
from hfserve.backends.placement import Placement
from hfserve.backends.pretrained import model_kwargs, tokenizer_kwargs
from hfserve.types import ModelSpec

PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "qnn": ["QNNExecutionProvider", "CPUExecutionProvider"],
}


class OnnxEncoder:
    """Callable like a transformers encoder: inputs dict -> last hidden state (torch)."""

    def __init__(self, session: Any, input_names: list[str]) -> None:
        self.session = session
        self.input_names = input_names

    def __call__(self, **features: Any) -> Any:
        import torch

        feeds = {name: features[name].cpu().numpy() for name in self.input_names
                 if name in features}
        out = self.session.run(None, feeds)[0]
        return torch.from_numpy(out)


def _export_encoder(spec: ModelSpec, path: str) -> list[str]:
    import torch
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(str(spec.path), gguf_file=spec.gguf_file,
                                      **model_kwargs(spec)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(spec.path), gguf_file=spec.gguf_file,
                                              **tokenizer_kwargs(spec))
    sample = dict(tokenizer(["an example sentence", "another"], padding=True,
                            return_tensors="pt"))
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]

    class Hidden(torch.nn.Module):
        """A fixed signature for the exporter; token_type_ids only where the model has them."""

        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None
                    ) -> Any:
            extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              **extra).last_hidden_state

    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    torch.onnx.export(Hidden(model).eval(), tuple(sample[n] for n in names), path,
                      input_names=names, output_names=["last_hidden_state"],
                      dynamic_shapes={n: {0: batch, 1: seq} for n in names}, dynamo=True,
                      verbose=False)
    return names


def _export_to(spec: ModelSpec, target: Path) -> None:
    import json

    target.mkdir(parents=True, exist_ok=True)
    names = _export_encoder(spec, str(target / "model.onnx"))
    (target / "inputs.json").write_text(json.dumps(names))
    mark_complete(target)


def load_onnx_encoder(spec: ModelSpec, placement: Placement, device_kind: str) -> OnnxEncoder:
    import json

    import onnxruntime as ort

    target = export_dir(placement.options.cache_dir, spec, "onnx", kind="encoder")
    model_file, names_file = target / "model.onnx", target / "inputs.json"
    if not is_complete(target):
        run_isolated(_export_to, spec, target)
    options = ort.SessionOptions()
    if placement.threads:
        options.intra_op_num_threads = placement.threads
    providers = [p for p in PROVIDERS[device_kind] if p in ort.get_available_providers()]
    session = ort.InferenceSession(str(model_file), options, providers=providers)
    return OnnxEncoder(session, json.loads(names_file.read_text()))
