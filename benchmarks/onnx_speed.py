"""The exported ONNX file under onnxruntime (CPU) against the package, on the same audio.

    python -m benchmarks.onnx_speed            # writes benchmarks/results/onnx_speed.{json,md}

Seconds of audio embedded per second, as benchmarks/speed.py measures it (the systems taking turns
run by run, the median of --repeats runs after a warm-up, idle and next to a process keeping one
core busy), for the bundled default model:

- from arrays: one ten-second 16-kHz clip per call, and 32 per call. The package: `embed_batch`.
  onnxruntime: the clip rule (the package's chunking), every chunk of the call's clips in one `session.run`.
- from files: 32 ten-second 44.1-kHz WAV files. The package: `embed_files` (its decoding threads,
  resampling, the model). onnxruntime: each file decoded and resampled by `diverse_embed.audio.load_audio`
  (as the package does it), then the clip rule; so the two differ in the model's runtime only.

onnxruntime runs on one intra-op thread and on one per core (its default): on this model's many
small operations more threads can be slower.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from diverse_embed import resolve_model
from diverse_embed.audio import chunk, load_audio
from diverse_embed.config import DEFAULT_MODEL
from diverse_embed.export import export_onnx, onnx_session

from .speed import CLIP_SECONDS, condition, taking_turns, write_wav_files
from .systems import machine, write_results


class OnnxClips:
    """The clip rule (the package's `audio.chunk`, as the README writes it out) over an onnxruntime
    session: 16-kHz clips in, clip vectors out."""

    def __init__(self, path: Path, threads: int, config):
        self.session, self.config = onnx_session(path, threads), config

    def embed(self, clips: list[np.ndarray]) -> np.ndarray:
        chunked = [chunk(audio, self.config)[0].numpy() for audio in clips]  # each (n_chunks, chunk_samples)
        counts = [len(c) for c in chunked]
        embeddings = self.session.run(["embedding"], {"chunks": np.concatenate(chunked)})[0]  # (total_chunks, D)
        means = np.stack([rows.mean(axis=0) for rows in np.split(embeddings, np.cumsum(counts)[:-1])])
        return means / np.linalg.norm(means, axis=1, keepdims=True)

    def embed_files(self, paths: list[Path]) -> np.ndarray:
        return self.embed([load_audio(p) for p in paths])


class Package:
    def __init__(self, model):
        self.model = model

    def embed(self, clips: list[np.ndarray]) -> np.ndarray:
        return np.stack([o.embedding for o in self.model.embed_batch(clips, sample_rate=16000)])

    def embed_files(self, paths: list[Path]) -> np.ndarray:
        return self.model.embed_files(paths, progress=False)


def measure(systems: dict, paths: list[Path], batches: list[int], conditions: list[str], repeats: int) -> dict:
    rng = np.random.default_rng(0)
    clips = [(rng.standard_normal(CLIP_SECONDS * 16000) * 0.1).astype(np.float32) for _ in range(max(batches))]
    result = {}
    for name in conditions:
        result[name] = {}
        with condition(name):
            for batch in batches:
                times = taking_turns(
                    {k: (lambda s=s, batch=batch: s.embed(clips[:batch])) for k, s in systems.items()}, repeats
                )
                result[name][f"arrays, {batch} per call"] = {k: batch * CLIP_SECONDS / t for k, t in times.items()}
            times = taking_turns({k: (lambda s=s: s.embed_files(paths)) for k, s in systems.items()}, repeats)
            result[name][f"{len(paths)} files"] = {k: len(paths) * CLIP_SECONDS / t for k, t in times.items()}
        print(name, result[name], flush=True)
    return result


def operator_shares(path: Path, chunks: int = 64) -> dict[str, float]:
    """Each ONNX operator's share of onnxruntime's kernel time (1 thread, `chunks` noise chunks per
    run, 3 runs), from its own profiler; the largest first."""
    import json

    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.enable_profiling = 1, True
    options.profile_file_prefix = str(path.with_name("profile"))
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    batch = (np.random.default_rng(0).standard_normal((chunks, 16000)) * 0.1).astype(np.float32)
    for _ in range(3):
        session.run(None, {"chunks": batch})
    times: dict[str, float] = {}
    for event in json.loads(Path(session.end_profiling()).read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            op = event["args"]["op_name"]
            times[op] = times.get(op, 0.0) + event["dur"]
    total = sum(times.values())
    return {op: t / total for op, t in sorted(times.items(), key=lambda item: -item[1])}


def markdown(report: dict) -> str:
    keys = list(report["systems"])
    lines = [
        f"# onnxruntime against the package ({report['model']})",
        "",
        f"`{report['command']}` on {report['machine']}; onnxruntime {report['onnxruntime']}. Seconds of audio "
        "embedded per second (higher is faster), medians; the ratio is onnxruntime's best over the package.",
        "",
    ]
    for name, rows in report["results"].items():
        lines += [
            f"## {'idle' if name == 'idle' else 'one core busy'}",
            "",
            "| what | " + " | ".join(report["systems"][k] for k in keys) + " | best onnxruntime / package |",
            "|---|" + "---|" * (len(keys) + 1),
        ]
        for what, speeds in rows.items():
            best = max(v for k, v in speeds.items() if k != "package")
            lines.append(
                f"| {what} | " + " | ".join(f"{speeds[k]:.1f}" for k in keys) + f" | {best / speeds['package']:.2f}x |"
            )
        lines.append("")
    shares = ", ".join(f"{op} {share:.0%}" for op, share in list(report["operator_shares"].items())[:5])
    lines += [
        f"Largest difference between the two systems' clip vectors on these clips: {report['max_difference']:.1e}.",
        "",
        f"Where onnxruntime's time goes (its profiler, 1 thread, 64 chunks a run): {shares}. Its STFT "
        "operator runs the front ends' three STFTs in float64 (in float32 it is far less exact than torch's "
        "FFT); the 800-point one (the MFCCs' 50-ms window) is not a power of two.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    import onnxruntime

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--files", type=int, default=32)
    parser.add_argument("--batches", default="1,32", help="ten-second clips per call from arrays")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--conditions", default="idle,busy")
    parser.add_argument("--output", default="benchmarks/results/onnx_speed", help="path stem for .json and .md")
    args = parser.parse_args(argv)
    model, name = resolve_model(args.model)
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as folder:
        path = export_onnx(model, Path(folder) / "model.onnx", name)
        systems = {
            "package": Package(model),
            "onnx 1 thread": OnnxClips(path, 1, model.config),
            f"onnx {cores} threads": OnnxClips(path, cores, model.config),
        }
        paths = write_wav_files(Path(folder), args.files)
        vectors = [s.embed_files(paths) for s in systems.values()]
        batches = [int(b) for b in args.batches.split(",")]
        results = measure(systems, paths, batches, args.conditions.split(","), args.repeats)
        shares = operator_shares(path)
    report = {
        "machine": machine(),
        "model": name,
        "onnxruntime": onnxruntime.__version__,
        "command": " ".join(["python -m benchmarks.onnx_speed", *(argv if argv is not None else sys.argv[1:])]),
        "systems": {
            "package": "package",
            "onnx 1 thread": "onnxruntime, 1 thread",
            f"onnx {cores} threads": f"onnxruntime, {cores} threads",
        },
        "max_difference": float(max(np.abs(v - vectors[0]).max() for v in vectors[1:])),
        "results": results,
        "operator_shares": shares,
    }
    write_results(args.output, report, markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
