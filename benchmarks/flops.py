"""How far the model is from what the machine can do: floating-point operations per second of
audio, per part, against the measured peak.

    python -m benchmarks.flops [--model M] [--batch 64] [--repeats 20] [--context-seconds S --name N]

For each part of the model (each branch's front end and transformer, the neuralogram's log-mel and
MobileNet apart, the head): FLOPs per 1-s chunk, counted by torch's FlopCounterMode (matrix
products, convolutions) plus the FFTs by hand (2.5 N log2 N per real frame of N points, which
FlopCounterMode cannot see); its time per chunk (median of --repeats forward passes of --batch
chunks, one thread, after a warm-up); and the achieved GFLOP/s. The peak: a 2048 x 2048 float32
matrix product on one thread and on all, and bfloat16 where the CPU has it natively; there, each
part's time with `--precision bfloat16` too (the networks under autocast, precision.py). Elementwise work
(layer norms, softmax, GELU, peak picking) is not counted as FLOPs: it shows as time the
arithmetic does not explain. Also the cost of what comes before the model: decoding a 44.1-kHz
WAV and resampling it to 16 kHz. Writes NAME.json/.md (default flops) to --output-dir. A model
whose neuralogram hears blocks of chunks (the default) is measured on ten-second clips, its
log-mel and MobileNet once over each clip's blocks, as embedding runs them.
"""

from __future__ import annotations

import argparse
import math
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.flop_counter import FlopCounterMode

from diverse_embed import DEFAULT_MODEL
from diverse_embed.audio import blocks, cut, load_audio
from diverse_embed.parallel import available_cores, torch_threads
from diverse_embed.precision import native_bfloat16, networks_in
from diverse_embed.resolve import resolve_model

from .systems import machine, write_results

CLIP_CHUNKS = 10  # a model that hears blocks is measured on ten-second clips


def counted_flops(function, x: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter:
        function(x)
    return counter.get_total_flops()


def fft_flops(frames: int, n_fft: int) -> float:
    """A real FFT of n_fft points: about 2.5 n log2 n operations."""
    return frames * 2.5 * n_fft * math.log2(n_fft)


def seconds_per_call(function, x: torch.Tensor, repeats: int) -> float:
    for _ in range(3):  # warm-up: the allocator keeps its large blocks only after a few rounds
        function(x)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function(x)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def parts(model) -> dict[str, tuple]:
    """name -> (function of the previous output, function's input maker, FFT FLOPs per chunk). The
    input makers take the model's input, each chunk with its context (window_samples); the branches
    but the neuralogram hear the chunk alone."""
    config, branches = model.config, model.branches
    frames = config.chunk_samples // config.frame_hop_samples + 1  # centred STFT frames per chunk
    window_frames = config.window_samples // config.frame_hop_samples + 1  # what the log-mel frames
    alone = model.chunk_alone  # what every branch but the neuralogram hears
    mel = branches["neuralogram"].front_end[0] if "neuralogram" in branches else None
    found = {}
    for name, branch in branches.items():
        if name == "neuralogram":
            fft = fft_flops(window_frames, mel.mel.spectrogram.spectrogram.n_fft)
            found["neuralogram: log-mel"] = (mel, None, fft)
            found["neuralogram: MobileNet"] = (branch.front_end[1], mel, 0.0)
            found["neuralogram: transformer"] = (branch.transformer, branch.front_end, 0.0)
        else:
            n_fft = {"pitch": config.pitch.n_fft, "timbre": config.samples(config.timbre.window_ms)}.get(
                name
            )  # None: no FFT
            fft = fft_flops(frames, n_fft) if n_fft else 0.0
            found[f"{name}: front end"] = (branch.front_end, alone, fft)
            found[f"{name}: transformer"] = (branch.transformer, lambda x, b=branch: b.front_end(alone(x)), 0.0)
    return found


def peak(threads: int, dtype: torch.dtype, repeats: int = 5) -> float:
    """GFLOP/s of a 2048 x 2048 matrix product."""
    a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
    with torch_threads(threads):
        seconds = seconds_per_call(lambda _: a @ b, a, repeats)
    return 2 * 2048**3 / seconds / 1e9


def before_the_model(repeats: int) -> dict[str, float]:
    """Seconds per second of audio: decoding a 10-s 44.1-kHz WAV, and that plus resampling to 16 kHz."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip.wav"
        sf.write(
            path, (np.random.default_rng(0).standard_normal(441000) * 0.1).astype(np.float32), 44100, subtype="PCM_16"
        )
        with torch_threads(1):
            decode = seconds_per_call(lambda _: sf.read(path, dtype="float32"), None, repeats) / 10
            both = seconds_per_call(lambda _: load_audio(path), None, repeats) / 10
    return {"decode": decode, "resample": both - decode}


def block_tokens(model, spans: list) -> torch.Tensor:
    """Every chunk's neuralogram tokens, one front-end pass a block of `spans` (`audio.blocks`), in
    this thread: (chunks, T, features)."""
    return torch.cat([model.block_tokens(block, m, model.config.hop_samples) for block, m in spans])


def block_parts(model, spans: list) -> dict[str, tuple]:
    """The neuralogram's parts for a model that hears blocks (`neuralogram.block_chunks`), as embed
    runs them: name -> (function of a list, the list, FFT FLOPs over all the blocks). Each list holds
    one item per block of `spans` (`audio.blocks`: the block's audio and its chunk count)."""
    config, branch = model.config, model.branches["neuralogram"]
    mel, mobilenet = branch.front_end
    audio = [block[None] for block, _ in spans]  # each (1, block_samples)
    n_fft = mel.mel.spectrogram.spectrogram.n_fft
    fft = sum(fft_flops(block.shape[-1] // config.frame_hop_samples + 1, n_fft) for block in audio)
    log_mels = [mel(block) for block in audio]
    tokens = [block_tokens(model, spans)]
    return {
        "neuralogram: log-mel": (lambda xs: [mel(x) for x in xs], audio, fft),
        "neuralogram: MobileNet": (lambda xs: [mobilenet(x) for x in xs], log_mels, 0.0),
        "neuralogram: transformer": (lambda xs: [branch.transformer(x) for x in xs], tokens, 0.0),
    }


def measure(model, batch: int, repeats: int, dtype: torch.dtype | None = None) -> dict:
    """Per part: MFLOP and ms per second of audio, achieved GFLOP/s; the networks in `dtype`
    (None: float32). A model that hears blocks: `batch` chunks as ten-second clips, the neuralogram
    over each clip's blocks as embed cuts them."""
    config = model.config
    chunks = torch.randn(batch, config.window_samples) * 0.1  # each chunk with its context
    found = parts(model)
    whole = model
    if config.block_chunks > 1:  # ten-second clips, as benchmarks.speed's files: batch // 10 of them
        samples = (CLIP_CHUNKS - 1) * config.hop_samples + config.chunk_samples  # CLIP_CHUNKS chunks
        clips = [torch.randn(samples) * 0.1 for _ in range(max(1, batch // CLIP_CHUNKS))]
        spans = [span for clip in clips for span in blocks(clip, config)]
        chunks = torch.cat([cut(clip, config.chunk_samples, config.hop_samples, CLIP_CHUNKS) for clip in clips])
        batch = len(chunks)  # (batch, chunk_samples)
        found |= block_parts(model, spans)

        def whole(x):  # the blocks' tokens, then every chunk
            return model(x, block_tokens(model, spans))

    rows, fft_per_chunk = {}, 0.0
    with torch.no_grad(), torch_threads(1), networks_in(dtype, "cpu"):
        for name, (function, feed, fft) in found.items():
            if isinstance(feed, list):  # a block part: its whole list, then per chunk
                fft /= batch
                flops = counted_flops(function, feed) / batch + fft
                seconds = seconds_per_call(function, feed, repeats) / batch
            else:
                x = feed(chunks) if feed is not None else chunks
                flops = counted_flops(function, x[:1]) + fft  # per chunk
                seconds = seconds_per_call(function, x, repeats) / batch  # per chunk
            fft_per_chunk += fft
            rows[name] = {
                "mflop_per_second_of_audio": flops / 1e6 / config.chunk_seconds,
                "ms_per_second_of_audio": 1000 * seconds / config.chunk_seconds,
                "gflop_per_s": flops / seconds / 1e9,
            }
        seconds = seconds_per_call(whole, chunks, repeats) / batch
        counted = counted_flops(whole, chunks) / batch if config.block_chunks > 1 else counted_flops(whole, chunks[:1])
    flops = counted + fft_per_chunk
    rows["whole model"] = {
        "mflop_per_second_of_audio": flops / 1e6 / config.chunk_seconds,
        "ms_per_second_of_audio": 1000 * seconds / config.chunk_seconds,
        "gflop_per_s": flops / seconds / 1e9,
    }
    return rows


def markdown(report: dict) -> str:
    p = report["peak_gflop_per_s"]
    bf16 = report.get("parts_bfloat16")
    lines = [
        "# FLOPs per second of audio, and the distance to the machine's peak",
        "",
        f"Command: `{report['command']}`  ",
        f"Machine: {report['machine']}  ",
        f"Model: {report['model']}",
        "",
        "Peak (2048 x 2048 matrix product): " + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in p.items()) + ".",
        "",
        f"Each part on one thread, batches of {report['batch']} chunks (1 s each, with their context), "
        f"median of {report['repeats']}. "
        + (
            f"The neuralogram hears blocks of up to {report['block_chunks']} chunks: its log-mel, MobileNet "
            "and transformer (and the whole model) are measured on ten-second clips, the MobileNet once "
            "over each clip's blocks, as embedding runs it. "
            if report.get("block_chunks", 1) > 1
            else ""
        )
        + "FLOPs: matrix products and convolutions (FlopCounterMode) and FFTs (by hand); elementwise work is "
        "not counted, so a part that is mostly elementwise shows a low rate.",
        "",
        "| part | MFLOP per s of audio | ms per s of audio | GFLOP/s | share of 1-thread fp32 peak |"
        + (" ms, bfloat16 | GFLOP/s, bfloat16 | share of 1-thread bf16 peak |" if bf16 else ""),
        "|---|---|---|---|---|" + "---|---|---|" * bool(bf16),
    ]
    one = p["float32, 1 thread"]
    for name, r in report["parts"].items():
        extra = ""
        if bf16:
            h = bf16[name]
            share = h["gflop_per_s"] / p["bfloat16, 1 thread"]
            extra = f" {h['ms_per_second_of_audio']:.2f} | {h['gflop_per_s']:.1f} | {share:.1%} |"
        lines.append(
            f"| {name} | {r['mflop_per_second_of_audio']:.1f} | {r['ms_per_second_of_audio']:.2f} | "
            f"{r['gflop_per_s']:.1f} | {r['gflop_per_s'] / one:.1%} |{extra}"
        )
    b = report["before_the_model"]
    whole = report["parts"]["whole model"]["ms_per_second_of_audio"]
    lines += [
        "",
        "Before the model, per second of audio (one thread): decoding a 44.1-kHz 16-bit WAV "
        f"{1000 * b['decode']:.2f} ms, resampling it to 16 kHz {1000 * b['resample']:.2f} ms "
        f"(the model: {whole:.2f} ms).",
        "",
    ]
    return "\n".join(lines)


def with_context(model, seconds: float):
    """The same weights, the neuralogram hearing `seconds` of audio each side of each chunk."""
    changed = type(model)(model.config.with_context(seconds))
    changed.load_state_dict(model.state_dict())
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--output-dir", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--name", default="flops", help="output file name without extension")
    parser.add_argument(
        "--context-seconds",
        type=float,
        default=None,
        help="the model's weights with this neuralogram context instead of its own (no weight depends on it)",
    )
    args = parser.parse_args(argv)
    model, _ = resolve_model(args.model)
    if args.context_seconds is not None:
        model = with_context(model, args.context_seconds)
    model.eval()
    if model.config.block_chunks > 1:  # whole ten-second clips
        args.batch = CLIP_CHUNKS * max(1, args.batch // CLIP_CHUNKS)
    cores = available_cores()
    peaks = {"float32, 1 thread": peak(1, torch.float32), f"float32, {cores} threads": peak(cores, torch.float32)}
    bfloat16 = native_bfloat16("cpu")
    if bfloat16:
        peaks["bfloat16, 1 thread"] = peak(1, torch.bfloat16)
    report = {
        "command": "python -m benchmarks.flops " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
        "machine": machine(),
        "model": f"{args.model} (fingerprint {model.fingerprint()}), neuralogram context "
        f"{model.config.neuralogram.context_seconds:g} s each side",
        "batch": args.batch,
        "block_chunks": model.config.block_chunks,
        "repeats": args.repeats,
        "peak_gflop_per_s": peaks,
        "parts": measure(model, args.batch, args.repeats),
        **({"parts_bfloat16": measure(model, args.batch, args.repeats, torch.bfloat16)} if bfloat16 else {}),
        "before_the_model": before_the_model(5),
    }
    write_results(args.output_dir / args.name, report, markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
