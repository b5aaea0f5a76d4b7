"""Speed and memory: DiverseEmbedder against the CLAP audio tower, from files and from arrays,
idle and next to a busy process; per-branch cost; FAISS.

    python -m benchmarks.speed                         # writes benchmarks/results/speed.{json,md}
    python -m benchmarks.speed --skip-faiss --skip-memory --repeats 3 --output /tmp/speed   # quick look

Throughput is seconds of audio embedded per second of wall time. Three measurements, each with
both systems in turn run by run (A, B, A, B, ...: a slow spell of a shared machine hits both), the
median of --repeats runs after a warm-up, once on an idle machine and once next to a busy
neighbour (a `while True: pass` process this benchmark starts and stops; it takes one core):

- From files: --files ten-second WAV files at 44.1 kHz (written once to a temporary folder), all
  of them in one call. DiverseEmbedder: `model.embed_files(paths)` with the library's plan
  (decoding, resampling to 16 kHz, chunking, the model). CLAP: the same files decoded by
  soundfile, resampled to 48 kHz by torchaudio, its own preprocessing (`ClapFeatureExtractor`:
  mel, 10-s windows) and the tower, all files in one call.
- The command, as a whole process: `diverse-embed embed FOLDER -o x.npz` against a process that
  does CLAP's part above for the same folder and saves the vectors (`clap_command` here), start-up
  included (importing torch, building the model).
- From arrays: `embed_batch` on waveforms already in memory (16 kHz for DiverseEmbedder, 48 kHz
  for CLAP), --batches clips per call.
- Where the processor has native bfloat16 (precision.native_bfloat16), from files and the command
  are measured a third way too: the same model with `--precision bfloat16`, the opt-in lever, beside
  the float32 default; and "start-up", a process that only imports the package and loads the model,
  the floor under the command's time.

DiverseEmbedder is the bundled default checkpoint. CLAP is `ClapAudioModelWithProjection` with
`ClapAudioConfig()`, the architecture of laion/clap-htsat-unfused, random weights (they do not
change the compute), run with torch's default threads, as a user of transformers runs it. Peak
memory is measured in a fresh process per system and batch (peak resident memory, and its rise
over the same process once it has embedded one clip).

FAISS: for each size in --faiss-sizes, vectors of dimension 256 drawn around 1,000 random
centres (embeddings cluster; uniform random vectors are the hardest case and unlike real ones),
L2-normalised; the indexes `diverse_embed.search.backends.build_faiss_index` builds (flat, HNSW, IVF-PQ,
with the settings the library uses); build time, single-query latency p50 and p99 over
--faiss-queries held-out queries, recall@10 against exact search, bytes per vector.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
import soundfile as sf
import torch

from diverse_embed import resolve_model
from diverse_embed.audio import load_audio
from diverse_embed.config import DEFAULT_MODEL
from diverse_embed.parallel import torch_threads
from diverse_embed.precision import native_bfloat16
from diverse_embed.search.backends import build_faiss_index, index_kind

from .systems import machine, write_results

CLIP_SECONDS = 10


def taking_turns(runs: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each run (name -> function), after a warm-up, the runs taking turns."""
    for run in runs.values():
        run()  # warm-up
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            if torch.cuda.is_available():
                torch.cuda.synchronize()  # GPU work is asynchronous: count it whole
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def median_seconds(run, repeats: int) -> float:
    return taking_turns({"run": run}, repeats)["run"]


# ----- the two systems ---------------------------------------------------------------------------


class DiverseSystem:
    name = f"DiverseEmbedder (fused, 256-d, {DEFAULT_MODEL})"
    sample_rate = 16000

    def __init__(self, device: str, precision: str = "float32"):
        # The bundled model: the architecture users get (its config.json fixes frame rates and strides).
        self.model = resolve_model(DEFAULT_MODEL)[0].to(device)
        self.model.precision = precision

    def parameters(self) -> int:
        return self.model.num_parameters()["total"]

    def embed(self, clips: list[np.ndarray]) -> None:
        self.model.embed_batch(clips, self.sample_rate)  # the library's default chunks per forward pass

    def embed_files(self, paths: list[Path]) -> np.ndarray:
        return self.model.embed_files(paths, progress=False)  # the library's plan of threads


class ClapTower:
    name = "CLAP audio tower (HTSAT, ClapAudioConfig defaults)"
    sample_rate = 48000

    def __init__(self, device: str):
        from transformers import ClapAudioConfig, ClapAudioModelWithProjection, ClapFeatureExtractor

        torch.manual_seed(0)
        self.device = device
        self.model = ClapAudioModelWithProjection(ClapAudioConfig()).eval().to(device)
        self.preprocess = ClapFeatureExtractor(truncation="rand_trunc", padding="repeatpad")

    def parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @torch.inference_mode()
    def embed(self, clips: list[np.ndarray]) -> np.ndarray:
        inputs = self.preprocess(clips, sampling_rate=self.sample_rate, return_tensors="pt")
        output = self.model(
            input_features=inputs["input_features"].to(self.device), is_longer=inputs["is_longer"].to(self.device)
        )
        return output.audio_embeds.float().cpu().numpy()  # (clips, 512)

    def embed_files(self, paths: list[Path]) -> np.ndarray:
        return self.embed([load_audio(path, self.sample_rate) for path in paths])  # soundfile, torchaudio resampling


def clap_command(folder: str, output: str) -> None:
    """What `diverse-embed embed FOLDER -o OUTPUT` does, with the CLAP tower: the process the
    benchmark times against the command."""
    tower = ClapTower("cpu")
    paths = sorted(Path(folder).glob("*.wav"))
    np.savez(output, embeddings=tower.embed_files(paths), paths=np.array([str(p) for p in paths]))


SYSTEMS = {"diverse": DiverseSystem, "clap": ClapTower}
BFLOAT16 = "diverse bfloat16"  # the opt-in --precision bfloat16, from files and the command, where native


def clips_for(system, count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [(rng.standard_normal(CLIP_SECONDS * system.sample_rate) * 0.1).astype(np.float32) for _ in range(count)]


def write_wav_files(folder: Path, count: int, rate: int = 44100) -> list[Path]:
    """`count` ten-second 16-bit WAV files at `rate`: tones over noise, different in each file."""
    rng = np.random.default_rng(0)
    t = np.arange(CLIP_SECONDS * rate) / rate
    paths = []
    for i in range(count):
        tone = (
            0.3
            * np.sin(2 * np.pi * rng.uniform(100, 2000) * t)
            * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.2, 3) * t))
        )
        audio = tone + 0.05 * rng.standard_normal(len(t))
        paths.append(folder / f"clip{i:03d}.wav")
        sf.write(paths[-1], np.clip(audio, -1, 1).astype(np.float32), rate, subtype="PCM_16")
    return paths


@contextlib.contextmanager
def condition(name: str):
    """`idle`: nothing else runs. `busy`: a neighbour process keeps one core busy meanwhile."""
    if name == "idle":
        yield
        return
    neighbour = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        yield
    finally:
        neighbour.kill()
        neighbour.wait()


def from_files(systems: dict, paths: list[Path], conditions: list[str], repeats: int) -> dict:
    """Seconds of audio per second, per condition and system: every file in one call."""
    audio_seconds = len(paths) * CLIP_SECONDS
    result = {}
    for name in conditions:
        with condition(name):
            times = taking_turns(
                {key: (lambda s=system: s.embed_files(paths)) for key, system in systems.items()}, repeats
            )
        result[name] = {key: audio_seconds / t for key, t in times.items()}
        print(f"from files, {name}: " + json.dumps(result[name]), flush=True)
    return result


def commands(folder: Path, count: int, conditions: list[str], repeats: int, bfloat16: bool) -> dict:
    """Seconds of audio per second of the whole process: `diverse-embed embed` and `clap_command`;
    "start-up": the seconds of a process that only imports the package and loads the model."""
    cli = Path(sys.executable).with_name("diverse-embed")
    out = folder / "out.npz"
    embed = [str(cli) if cli.exists() else "diverse-embed", "embed", str(folder), "-o", str(out), "-q"]
    argv = {
        "diverse": embed,
        "clap": [
            sys.executable,
            "-c",
            f"from benchmarks.speed import clap_command; clap_command({str(folder)!r}, {str(out)!r})",
        ],
        "start-up": [sys.executable, "-c", "from diverse_embed import resolve_model; resolve_model(None)"],
    }
    if bfloat16:
        argv[BFLOAT16] = [*embed, "--precision", "bfloat16"]
    root = Path(__file__).resolve().parent.parent
    result = {}
    for name in conditions:
        with condition(name):
            times = taking_turns(
                {
                    key: (lambda a=a: subprocess.run(a, check=True, cwd=root, stdout=subprocess.DEVNULL))
                    for key, a in argv.items()
                },
                repeats,
            )
        result[name] = {key: count * CLIP_SECONDS / t for key, t in times.items() if key != "start-up"}
        result[name].update({f"{key} seconds": t for key, t in times.items()})
        print(f"command, {name}: " + json.dumps(result[name]), flush=True)
    return result


def throughputs(systems: dict, batches: list[int], conditions: list[str], repeats: int) -> dict:
    """From arrays: seconds of audio per second, per condition, batch and system."""
    result = {}
    for name in conditions:
        result[name] = {}
        with condition(name):
            for batch in batches:
                clips = {key: clips_for(system, batch) for key, system in systems.items()}
                times = taking_turns(
                    {key: (lambda s=system, c=clips[key]: s.embed(c)) for key, system in systems.items()}, repeats
                )
                result[name][f"batch {batch}"] = {key: batch * CLIP_SECONDS / t for key, t in times.items()}
        print(f"from arrays, {name}: " + json.dumps(result[name]), flush=True)
    return result


def peak_memory(system_key: str, batch: int, device: str) -> dict:
    """Peak resident memory (MB) of a fresh process embedding one batch, and its rise over the
    process with the model loaded. Read from /proc (VmHWM, reset through clear_refs): getrusage's
    maxrss would carry over the parent's peak across exec."""
    code = (
        "import json; from benchmarks.speed import SYSTEMS, clips_for, _high_water_mb; "
        f"s = SYSTEMS[{system_key!r}]({device!r}); clips = clips_for(s, {batch}); s.embed(clips[:1]); "
        "loaded = _high_water_mb(reset=True); s.embed(clips); peak = _high_water_mb(); "
        "print(json.dumps({'peak_mb': peak, 'rise_mb': peak - loaded}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _high_water_mb(reset: bool = False) -> float:
    """This process's resident memory now (after reset) or its peak since the last reset, in MB."""
    if reset:
        Path("/proc/self/clear_refs").write_text("5")  # sets the peak to the current resident size
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise OSError("no VmHWM in /proc/self/status")


@torch.inference_mode()
def branch_times(batch_size: int, repeats: int, device: str) -> dict[str, dict[str, float]]:
    """Per branch, milliseconds per batch of `batch_size` chunks on one thread (as each of the
    plan's compute threads runs it): front end alone, and the whole branch."""
    model = DiverseSystem(device).model
    chunks = torch.randn(batch_size, model.config.chunk_samples, device=device) * 0.1
    result = {}
    for name, branch in model.branches.items():
        with torch_threads(1):
            front = median_seconds(lambda branch=branch: branch.front_end(chunks), repeats)
            whole = median_seconds(lambda branch=branch: branch(chunks), repeats)
        result[name] = {
            "features_ms": 1000 * front,
            "network_ms": 1000 * (whole - front),
            "total_ms": 1000 * whole,
            "parameters": sum(p.numel() for p in branch.parameters()),
        }
    return result


# ----- FAISS -------------------------------------------------------------------------------------


def clustered_vectors(n: int, d: int = 256, centres: int = 1000, seed: int = 0) -> np.ndarray:
    """(n, d) float32, L2-normalised, around `centres` random directions."""
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((centres, d)).astype(np.float32)
    out = np.empty((n, d), np.float32)
    for start in range(0, n, 100_000):  # in blocks: a million vectors is 1 GB already
        stop = min(n, start + 100_000)
        block = means[rng.integers(0, centres, stop - start)] + rng.standard_normal((stop - start, d)).astype(
            np.float32
        )
        out[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def faiss_benchmark(sizes: list[int], queries: int, kinds: list[str]) -> list[dict]:
    rows = []
    for n in sizes:
        data = clustered_vectors(n + queries, seed=n)
        base, query = data[:n], data[n:]
        exact = faiss.IndexFlatIP(base.shape[1])
        exact.add(base)
        _, truth = exact.search(query, 10)  # (queries, 10)
        for kind in kinds:
            started = time.perf_counter()
            index = build_faiss_index(base, kind)
            build = time.perf_counter() - started
            latencies, found = [], []
            for q in query:
                t = time.perf_counter()
                _, ids = index.search(q[None], 10)
                latencies.append(1000 * (time.perf_counter() - t))
                found.append(ids[0])
            recall = float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)]))
            rows.append(
                {
                    "vectors": n,
                    "index": kind if index_kind(index) == kind else f"{kind} (fell back to {index_kind(index)})",
                    "build_seconds": round(build, 2),
                    "p50_ms": float(np.percentile(latencies, 50)),
                    "p99_ms": float(np.percentile(latencies, 99)),
                    "recall@10": recall,
                    "bytes_per_vector": len(faiss.serialize_index(index)) / n,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
            del index
    return rows


# ----- report ------------------------------------------------------------------------------------


def markdown(report: dict) -> str:
    lines = [f"# Speed and memory ({report['machine']})", "", f"Command: `{report['command']}`", ""]
    names = {key: s["name"] for key, s in report.get("systems", {}).items()}
    labels = {"idle": "idle", "busy": "one core busy"}

    def ratio(row: dict, key: str = "diverse") -> str:
        return f"**{row[key] / row['clap']:.1f}x**"

    bfloat16 = BFLOAT16 in next(iter(report.get("from_files", {}).values()), {})
    with_bf16 = " | bfloat16 (s/s) | ratio, bfloat16" if bfloat16 else ""

    if "from_files" in report:
        lines += [
            f"From files: {report['files']} ten-second WAV files at 44.1 kHz in one call, seconds of audio per "
            "second (DiverseEmbedder: `embed_files`; CLAP: soundfile, resampling, its preprocessing, the tower):",
            "",
            f"| machine | {names['diverse']} | {names['clap']} | ratio{with_bf16} |",
            "|---|---|---|---|" + "---|---|" * bfloat16,
        ]
        for cond, row in report["from_files"].items():
            extra = f" | {row[BFLOAT16]:.1f} | {ratio(row, BFLOAT16)}" if bfloat16 else ""
            lines.append(f"| {labels[cond]} | {row['diverse']:.1f} | {row['clap']:.1f} | {ratio(row)}{extra} |")
        lines += [
            "",
            "bfloat16: the same model with `--precision bfloat16` (the networks under autocast; "
            "benchmarks/results/precision.md: retrieval within 0.001 of float32), where the processor has it.",
        ] * bfloat16
        lines.append("")
    if "command_process" in report:
        lines += [
            f"The command as a whole process, start-up included, on the same {report['files']} files: "
            "`diverse-embed embed FOLDER -o x.npz` against a process doing CLAP's part (`clap_command`); "
            "start-up: a process that only imports the package and loads the model:",
            "",
            "| machine | diverse-embed embed (s) | CLAP process (s) | diverse-embed (s/s) | CLAP (s/s) | ratio | "
            f"start-up (s){with_bf16} |",
            "|---|---|---|---|---|---|---|" + "---|---|" * bfloat16,
        ]
        for cond, row in report["command_process"].items():
            extra = f" | {row[BFLOAT16]:.1f} | {ratio(row, BFLOAT16)}" if bfloat16 else ""
            lines.append(
                f"| {labels[cond]} | {row['diverse seconds']:.1f} | {row['clap seconds']:.1f} | "
                f"{row['diverse']:.1f} | {row['clap']:.1f} | {ratio(row)} | {row['start-up seconds']:.1f}{extra} |"
            )
        lines.append("")
    if "arrays" in report:
        lines += [
            "From arrays: `embed_batch` on 10-s waveforms in memory (batch = clips per call), seconds of audio per second:",
            "",
            "| machine | batch | DiverseEmbedder | CLAP tower | ratio |",
            "|---|---|---|---|---|",
        ]
        for cond, rows in report["arrays"].items():
            for batch, row in rows.items():
                lines.append(
                    f"| {labels[cond]} | {batch.split()[-1]} | {row['diverse']:.1f} | {row['clap']:.1f} | {ratio(row)} |"
                )
        lines.append("")
    if "memory" in report:
        batches = report["batches"]
        lines += [
            "Size and peak memory (fresh process per system and batch; rise over the process with one clip embedded):",
            "",
            "| system | parameters | " + " | ".join(f"peak MB (rise), batch {b}" for b in batches) + " |",
            "|---|---|" + "---|" * len(batches),
        ]
        for key, system in report["systems"].items():
            memory = report["memory"][key]
            lines.append(
                f"| {system['name']} | {system['parameters']:,} | "
                + " | ".join(
                    f"{memory[f'batch {b}']['peak_mb']:.0f} ({memory[f'batch {b}']['rise_mb']:.0f})" for b in batches
                )
                + " |"
            )
        lines.append("")
    if "branch_ms" in report:
        lines += [
            f"Per branch, one batch of {report['branch_batch']} chunks on one thread (ms); the neuralogram's features are "
            "its log-mel and MobileNet, its network the transformer:",
            "",
            "| branch | parameters | features | network | total |",
            "|---|---|---|---|---|",
        ]
        for name, t in report["branch_ms"].items():
            lines.append(
                f"| {name} | {t['parameters']:,} | {t['features_ms']:.1f} | {t['network_ms']:.1f} | {t['total_ms']:.1f} |"
            )
        lines.append("")
    if report.get("faiss"):
        lines += [
            "FAISS, 256-d clustered vectors, one query at a time, the library's index settings:",
            "",
            "| vectors | index | build (s) | p50 (ms) | p99 (ms) | recall@10 | bytes/vector |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in report["faiss"]:
            lines.append(
                f"| {r['vectors']:,} | {r['index']} | {r['build_seconds']:.1f} | {r['p50_ms']:.2f} | "
                f"{r['p99_ms']:.2f} | {r['recall@10']:.3f} | {r['bytes_per_vector']:.0f} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--files", type=int, default=32, help="WAV files per call, from files and the command (default 32)"
    )
    parser.add_argument("--batches", default="1,32", help="clips per call from arrays (default 1,32)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs after a warm-up; the median counts")
    parser.add_argument("--command-repeats", type=int, default=3, help="timed runs of the whole processes")
    parser.add_argument("--conditions", default="idle,busy", help="idle, busy (one core busy) or both")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--skip-embedding", action="store_true", help="FAISS only")
    parser.add_argument("--skip-command", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-faiss", action="store_true")
    parser.add_argument("--faiss-sizes", default="10000,100000,1000000")
    parser.add_argument("--faiss-queries", type=int, default=500)
    parser.add_argument("--faiss-index", default="flat,hnsw,ivfpq")
    parser.add_argument("--output", default="benchmarks/results/speed", help="path stem for .json and .md")
    args = parser.parse_args(argv)

    batches = [int(b) for b in args.batches.split(",")]
    conditions = args.conditions.split(",")
    report = {
        "machine": machine() + f", device {args.device}",
        "command": " ".join(["python -m benchmarks.speed", *(argv if argv is not None else sys.argv[1:])]),
        "files": args.files,
        "batches": batches,
    }
    if not args.skip_embedding:
        systems = {key: cls(args.device) for key, cls in SYSTEMS.items()}
        report["systems"] = {key: {"name": s.name, "parameters": s.parameters()} for key, s in systems.items()}
        bfloat16 = native_bfloat16(args.device)
        in_bfloat16 = {BFLOAT16: DiverseSystem(args.device, "bfloat16")} if bfloat16 else {}
        with tempfile.TemporaryDirectory() as folder:
            paths = write_wav_files(Path(folder), args.files)
            report["from_files"] = from_files({**systems, **in_bfloat16}, paths, conditions, args.repeats)
            if not args.skip_command and args.device == "cpu":
                report["command_process"] = commands(
                    Path(folder), args.files, conditions, args.command_repeats, bfloat16
                )
        del in_bfloat16
        report["arrays"] = throughputs(systems, batches, conditions, args.repeats)
        del systems
        if not args.skip_memory:
            report["memory"] = {
                key: {f"batch {b}": peak_memory(key, b, args.device) for b in batches} for key in SYSTEMS
            }
        report["branch_batch"] = 32
        report["branch_ms"] = branch_times(32, args.repeats, args.device)
    if not args.skip_faiss:
        report["faiss"] = faiss_benchmark(
            [int(n) for n in args.faiss_sizes.split(",")], args.faiss_queries, args.faiss_index.split(",")
        )
    report["peak_rss_mb_of_this_process"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    write_results(args.output, report, markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
