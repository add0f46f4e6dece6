"""A skill file in the seed ecosystem's format: BERT sentence embeddings (mean pooling) on
the CPU, batched. Served by hfserve through its seed adapter."""

import asyncio


class hf_bert:  # noqa: N801 - the seed's naming
    def __init__(self, resources=None, metadata=None):
        self.resources = resources or {}
        self.metadata = metadata or {}
        self.torch = self.resources["torch"]
        self.transformers = self.resources["transformers"]

    def init_cpu(self, model, device, cpu_label):
        tokenizer = self.transformers.AutoTokenizer.from_pretrained(model)
        endpoint = self.transformers.AutoModel.from_pretrained(model).eval()
        handler = self.create_cpu_text_embedding_endpoint_handler(endpoint, cpu_label,
                                                                  tokenizer)
        return endpoint, tokenizer, handler, asyncio.Queue(32), 8

    def create_cpu_text_embedding_endpoint_handler(self, endpoint, cpu_label, tokenizer):
        torch = self.torch

        def handler(text):
            texts = [text] if isinstance(text, str) else list(text)
            tokens = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
            with torch.no_grad():
                hidden = endpoint(**tokens).last_hidden_state
            mask = tokens["attention_mask"].unsqueeze(-1).float()
            return (hidden * mask).sum(1) / mask.sum(1)

        return handler
