"""The embedding model's transformer run by OpenVINO instead of torch (VKPP_EMBEDDING_RUNTIME).

Only the transformer changes: it is converted in memory from the checked PyTorch model every time the model
is loaded (nothing is downloaded), and sentence-transformers still tokenizes, pools and normalises. The int8
model is quantised from that conversion by nncf once, and kept in the user's cache folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

RUNTIMES = ("auto", "torch", "openvino")
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
# OpenVINO's names for our precisions (its CPU plugin runs bfloat16 on AVX512-BF16 and AMX). The int8 model
# carries its own int8 operations; what nncf leaves in floating point (layer norms, softmax) runs in float32.
OPENVINO_PRECISIONS = {"float32": "f32", "bfloat16": "bf16", "int8": "f32"}
# How the int8 model is made. Part of its cache key with the weights, the calibration passages and the nncf and
# OpenVINO versions: change any of them and the model is made again. Static int8 activations with SmoothQuant
# (nncf's transformer defaults) ran 2.1 to 2.6 times faster than float32, vectors at cosine 0.998 of float32's;
# int8 weights alone (nncf.compress_weights) only 1.5 to 1.8 times, at 0.9994 (docs/tagging.md, Speed).
INT8_RECIPE = "nncf.quantize preset=mixed model_type=transformer, calibration batches as encode makes them"
# Review passages the int8 model is calibrated on, shipped with the package: every 17th passage of the written
# training reviews (corpus_samples/training, files in name order), 258 passages from 88 reviews.
CALIBRATION = "data/embedding_calibration.jsonl"
log = logging.getLogger(__name__)


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


def run_with_openvino(model: Any, precision: str, weights_sha256: str, batch_size: int) -> None:
    """Make the SentenceTransformer `model` compute its transformer with OpenVINO in `precision`.

    On the model itself, so every caller of load_model (search queries, topics) gets the same vectors. int8 needs
    the SHA-256 of the model's weights (its cache key) and encode's batch size (its calibration batches)."""
    try:
        import_openvino()
    except ImportError:
        from vkpp_learning.errors import MissingDependency

        raise MissingDependency(
            "VKPP_EMBEDDING_RUNTIME=openvino needs OpenVINO, one of the project's dependencies: "
            "pip install -e . (or set VKPP_EMBEDDING_RUNTIME=torch)"
        ) from None
    transformer = model[0].model
    converted = int8_model(model, weights_sha256, batch_size) if precision == "int8" else convert(transformer)
    transformer.forward = OpenVINOTransformer(converted, precision)


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


def int8_model(model: Any, weights_sha256: str, batch_size: int, root: Path | None = None) -> Any:
    """The int8 OpenVINO model of `model`'s transformer: the one kept in the cache folder (`root`, default
    cache_root()), or made (about 15 s on two cores) and kept there when it is missing or damaged."""
    directory = int8_model_dir(weights_sha256, root)
    kept = read_kept(directory)
    if kept is not None:
        return kept
    log.info("making the int8 embedding model in %s (once)", directory)
    made = quantize(model, batch_size)
    keep(made, directory)
    return made


def cache_root() -> Path:
    """vkpp-learning's folder in the user's cache ($XDG_CACHE_HOME, else ~/.cache)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vkpp-learning"


def int8_model_dir(weights_sha256: str, root: Path | None = None) -> Path:
    """The folder of the int8 model made from these weights with these versions, passages and recipe."""
    try:
        versions = [metadata.version("nncf"), metadata.version("openvino")]
    except metadata.PackageNotFoundError as exc:
        raise missing_nncf() from exc
    parts = [weights_sha256, *versions, hashlib.sha256(calibration_file().read_bytes()).hexdigest(), INT8_RECIPE]
    key = hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()
    return (root or cache_root()) / f"embedding-int8-{key[:20]}"


def calibration_file() -> Any:
    from importlib.resources import files

    return files("vkpp_learning").joinpath(CALIBRATION)


def calibration_texts() -> list[str]:
    lines = calibration_file().read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines if line.strip()]


def missing_nncf() -> Exception:
    from vkpp_learning.errors import MissingDependency

    return MissingDependency(
        "VKPP_EMBEDDING_PRECISION=int8 needs nncf, one of the project's dependencies: pip install -e . "
        "(or set VKPP_EMBEDDING_PRECISION=float32)"
    )


def quantize(model: Any, batch_size: int) -> Any:
    """int8 weights and activations (nncf post-training quantisation), calibrated on the shipped passages."""
    import_openvino()  # first: nncf's usage reports, like OpenVINO's, need openvino-telemetry, kept unimportable
    try:
        import nncf
    except ImportError:
        raise missing_nncf() from None
    feeds = calibration_feeds(model, calibration_texts(), batch_size)
    converted = convert(model[0].model)
    # nncf logs each step and draws progress bars on stdout; a CLI's output (--json) should be its own.
    nncf.set_log_level(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nncf.quantize(
            converted,
            nncf.Dataset(feeds),
            preset=nncf.QuantizationPreset.MIXED,
            model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(feeds),
        )


def calibration_feeds(model: Any, texts: list[str], batch_size: int) -> list[dict[str, Any]]:
    """The transformer's inputs as `model.encode(texts)` makes them (sorted by length, batched, padded), recorded
    without running it: nncf then gathers the statistics of real use."""
    import torch

    transformer, feeds = model[0].model, []
    original = transformer.forward

    def record(input_ids: Any, attention_mask: Any, token_type_ids: Any = None, **_: Any) -> dict[str, Any]:
        feeds.append(as_feeds(input_ids, attention_mask, token_type_ids))
        return {"last_hidden_state": torch.zeros((*input_ids.shape, transformer.config.hidden_size))}

    transformer.forward = record
    try:
        model.encode(texts, batch_size=batch_size, show_progress_bar=False)
    finally:
        transformer.forward = original
    return feeds


def as_feeds(input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> dict[str, Any]:
    """The Hugging Face model's tensors as the OpenVINO model's inputs."""
    import numpy as np
    import torch

    if token_type_ids is None:
        token_type_ids = torch.zeros_like(input_ids)
    return {
        name: np.ascontiguousarray(tensor.numpy(), dtype=np.int64)
        for name, tensor in zip(INPUT_NAMES, (input_ids, attention_mask, token_type_ids), strict=True)
    }


def read_kept(directory: Path) -> Any:
    """The model kept in `directory`, or None when there is none or its files do not match their SHA-256."""
    try:
        if not intact(directory):
            return None
        return import_openvino().Core().read_model(directory / "model.xml")
    except (OSError, RuntimeError):
        return None


def intact(directory: Path) -> bool:
    try:
        return (directory / "sha256").read_text(encoding="utf-8") == checksums(directory)
    except OSError:
        return False


def checksums(directory: Path) -> str:
    """One line per file of the model: its SHA-256 and name (as sha256sum writes them)."""
    lines = []
    for name in ("model.xml", "model.bin"):
        with (directory / name).open("rb") as fh:
            lines.append(f"{hashlib.file_digest(fh, 'sha256').hexdigest()}  {name}\n")
    return "".join(lines)


def keep(converted: Any, directory: Path) -> None:
    """Save the model in `directory` atomically: written beside it, then renamed, so a reader never finds half a
    model. Where the cache cannot be written the model is only used, and made again next time."""
    openvino = import_openvino()
    staging = None
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
        # float32 weights as they are: compressing them to float16 would change the vectors of a kept model.
        openvino.save_model(converted, staging / "model.xml", compress_to_fp16=False)
        (staging / "sha256").write_text(checksums(staging), encoding="utf-8")
        shutil.rmtree(directory, ignore_errors=True)  # a damaged one
        os.replace(staging, directory)
    except OSError as exc:
        if not intact(directory):  # else another process kept the same model first
            warnings.warn(f"the int8 embedding model could not be kept in {directory}: {exc}", stacklevel=2)
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


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

        hidden = self._request().infer(as_feeds(input_ids, attention_mask, token_type_ids))[self.output]
        return {"last_hidden_state": torch.from_numpy(np.asarray(hidden, dtype=np.float32))}

    def _request(self) -> Any:
        request = getattr(self._requests, "request", None)
        if request is None:
            request = self._requests.request = self.compiled.create_infer_request()
        return request
