"""vLLM backend for paper-scale runs on GPUs: an optional extra (`pip install 'selfteach[vllm]'`).

vLLM's automatic prefix caching shares the few-shot prefix between requests. The dedent rule
cannot be written as vLLM stop strings, so each completion runs to the budget (or EOS) and is cut
afterwards; at GPU speed that is cheaper than stopping the batch row by row.
"""

from __future__ import annotations

from selfteach import config
from selfteach.sampling.base import Completion, SamplingParams, finish, prompt_keys, row_seed


class VLLMBackend:
    def __init__(self, model: str, *, dtype: str = config.defaults("sampling")["dtype"]):
        try:
            import vllm
        except ImportError:
            raise ValueError(
                "sampling.backend is vllm but vllm is not installed: pip install 'selfteach[vllm]' "
                "(it needs a CUDA GPU), or choose backend hf"
            ) from None
        self._vllm = vllm
        self.llm = vllm.LLM(model=model, dtype=dtype, enable_prefix_caching=True)
        self.tokenizer = self.llm.get_tokenizer()
        self.max_context = int(self.llm.llm_engine.model_config.max_model_len)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False).input_ids)

    def generate(
        self, prompts: list[str], params: SamplingParams, *, keys: list[str] | None = None
    ) -> list[list[Completion]]:
        keys = prompt_keys(prompts, keys)
        per_prompt = [
            self._vllm.SamplingParams(
                n=params.n,
                temperature=params.temperature,
                top_p=params.top_p,
                top_k=params.top_k if params.top_k else -1,
                max_tokens=params.max_new_tokens,
                seed=row_seed(params.seed, key, 0) >> 32,
            )
            for key in keys
        ]
        outputs = self.llm.generate(prompts, per_prompt, use_tqdm=False)
        return [
            [
                finish(sample.text, len(sample.token_ids), params.stop, ended=sample.finish_reason == "stop")
                for sample in output.outputs
            ]
            for output in outputs
        ]
