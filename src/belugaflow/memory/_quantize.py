"""Make the int8 model of :class:`~belugaflow.memory.LocalEmbedder` from the packaged export.

Run as a script in a child process (``python _quantize.py SOURCE TARGET``), once per cache
directory and onnxruntime version, by :mod:`._local`; it imports nothing from belugaflow. A
child process because the quantizer holds the model as protobuf messages (about 490 MiB at
peak), which a long-running parent would keep, and it logs through the root logger.

The packaged export stores its weights as int8 but multiplies in float32 (``Cast`` and ``Mul``
on every weight at load). Folding those into float32 constants, then quantizing dynamically
(int8 weights per output channel, activations per call), gives int8 matrix products: about
2x the throughput on the project's machines (``benchmarks/embedders.py``), and recall@5 0.6625
instead of 0.669 on the labelled notes (``tests/memory/test_embedders.py``). Per-tensor
weights lose more (0.648) and are no faster.
Both steps are deterministic: the same versions make the same bytes.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path


def quantize(source: Path, target: Path) -> None:
    """Write the int8 model of ``source`` to ``target``, atomically (another process may be
    writing the same file: the last rename wins, and both wrote the same bytes)."""
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".quantize-") as scratch:
        folded = Path(scratch) / "folded.onnx"
        options = ort.SessionOptions()
        # Basic level: constant folding only, nothing specific to this machine's CPU.
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)
        options.log_severity_level = 3
        ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
        done = Path(scratch) / "model.onnx"
        quantize_dynamic(folded, done, weight_type=QuantType.QInt8, per_channel=True)
        os.replace(done, target)


if __name__ == "__main__":
    quantize(Path(sys.argv[1]), Path(sys.argv[2]))
