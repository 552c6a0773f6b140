"""The embedding model's transformer run by OpenVINO instead of torch (VKPP_EMBEDDING_RUNTIME).

Only the transformer changes: it is converted in memory from the checked PyTorch model every time the model
is loaded (nothing is downloaded or written), and sentence-transformers still tokenizes, pools and normalises.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
import warnings
from typing import Any

RUNTIMES = ("auto", "torch", "openvino")
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
# OpenVINO's names for our precisions (its CPU plugin runs bfloat16 on AVX512-BF16 and AMX).
OPENVINO_PRECISIONS = {"float32": "f32", "bfloat16": "bf16"}


def resolve_runtime(chosen: str) -> str:
    """torch or openvino: auto means OpenVINO where it is installed, torch otherwise."""
    if chosen not in RUNTIMES:
        raise ValueError(f"setting VKPP_EMBEDDING_RUNTIME must be one of {', '.join(RUNTIMES)}, got {chosen!r}")
    if chosen == "auto":
        return "openvino" if openvino_installed() else "torch"
    return chosen


def openvino_installed() -> bool:
    try:
        return importlib.util.find_spec("openvino") is not None
    except (ImportError, ValueError):  # a module set to None in sys.modules, or one without a spec
        return False


def run_with_openvino(model: Any, precision: str) -> None:
    """Make the SentenceTransformer `model` compute its transformer with OpenVINO in `precision`.

    On the model itself, so every caller of load_model (search queries, topics) gets the same vectors."""
    try:
        import_openvino()
    except ImportError:
        from vkpp_learning.errors import MissingDependency

        raise MissingDependency(
            "VKPP_EMBEDDING_RUNTIME=openvino needs OpenVINO, one of the project's dependencies: "
            "pip install -e . (or set VKPP_EMBEDDING_RUNTIME=torch)"
        ) from None
    transformer = model[0].model
    transformer.forward = OpenVINOTransformer(convert(transformer), precision)


def import_openvino() -> Any:
    """openvino, without its usage reports. `import openvino` sends an event to an analytics service when
    the openvino-telemetry package (a dependency of openvino) is importable and the user has not opted out;
    OpenVINO's tools use a silent stand-in when it is not, so this process never lets it be imported."""
    sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]
    import openvino

    return openvino


def convert(transformer: Any) -> Any:
    """The transformer as an OpenVINO model with dynamic batch and sequence length, its output the last
    hidden state, sharing the PyTorch model's weights."""
    import torch

    openvino = import_openvino()
    # Two texts of different lengths: the trace then keeps the padding mask general.
    example = {
        "input_ids": torch.tensor([[101, 7592, 2088, 1010, 2023, 2003, 102], [101, 1060, 102, 0, 0, 0, 0]]),
        "attention_mask": torch.tensor([[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0, 0]]),
        "token_type_ids": torch.zeros((2, 7), dtype=torch.int64),
    }
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on Python conditions in transformers' mask code
        return openvino.convert_model(last_hidden_state(transformer).eval(), example_input=example)


def last_hidden_state(transformer: Any) -> Any:
    """A module returning only the token embeddings (no pooler): the part sentence-transformers uses."""
    import torch

    class LastHiddenState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, return_dict=True
            )
            return out.last_hidden_state

    return LastHiddenState()


class OpenVINOTransformer:
    """Stands in for the Hugging Face model's forward: takes its tensors, returns its last_hidden_state."""

    def __init__(self, model: Any, precision: str, threads: int | None = None) -> None:
        self.model, self.precision = model, precision
        self.compile(threads)

    def compile(self, threads: int | None = None) -> None:
        """Compile for this CPU with `threads` threads (default: every core, as torch uses)."""
        openvino = import_openvino()
        config = {
            "INFERENCE_PRECISION_HINT": OPENVINO_PRECISIONS[self.precision],
            "PERFORMANCE_HINT": "LATENCY",  # one stream: a batch uses every thread
            "NUM_STREAMS": 1,
            "INFERENCE_NUM_THREADS": threads or max(1, os.cpu_count() or 1),
        }
        self.compiled = openvino.Core().compile_model(self.model, "CPU", config)
        self.output = self.compiled.output(0)
        self._requests = threading.local()  # a request runs one inference at a time: one per thread

    def __call__(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None, **_: Any) -> dict[str, Any]:
        import numpy as np
        import torch

        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        feeds = {
            name: np.ascontiguousarray(tensor.numpy(), dtype=np.int64)
            for name, tensor in zip(INPUT_NAMES, (input_ids, attention_mask, token_type_ids), strict=True)
        }
        hidden = self._request().infer(feeds)[self.output]
        return {"last_hidden_state": torch.from_numpy(np.asarray(hidden, dtype=np.float32))}

    def _request(self) -> Any:
        request = getattr(self._requests, "request", None)
        if request is None:
            request = self._requests.request = self.compiled.create_infer_request()
        return request
