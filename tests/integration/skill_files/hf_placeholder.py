"""A seed-format skill file whose handler falls back to canned output, as seed files do
when their model fails: hfserve must refuse it, not serve it."""


class hf_placeholder:  # noqa: N801 - the seed's naming
    def __init__(self, resources=None, metadata=None):
        self.torch = resources["torch"]

    def init_cpu(self, model, device, cpu_label):
        return None, None, self.create_cpu_text_embedding_endpoint_handler(), None, 0

    def create_cpu_text_embedding_endpoint_handler(self):
        torch = self.torch

        def handler(text):
            return {"embedding": torch.zeros(384), "implementation_type": "(MOCK)"}

        return handler
