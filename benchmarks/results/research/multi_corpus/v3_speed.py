"""diverse-embed-multi-v3 (the neuralogram with 0.5 s of context) against the default and the CLAP
tower, from files, in one process: `python -m benchmarks.speed`'s from-files measurement (its
systems, its 32 ten-second 44.1-kHz WAVs, taking turns, idle and with one core busy) with v3 as a
third system.

    python benchmarks/results/research/multi_corpus/v3_speed.py [REPEATS]

Prints seconds of audio per second and the ratios; writes v3_speed.json beside this file.
"""

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[3]))  # the repository root, for `benchmarks`

from benchmarks.speed import ClapTower, DiverseSystem, from_files, write_wav_files  # noqa: E402
from benchmarks.systems import machine  # noqa: E402
from diverse_embed import DEFAULT_MODEL, resolve_model  # noqa: E402

CANDIDATE = "diverse-embed-multi-v3"


def main(repeats: int) -> None:
    systems = {CANDIDATE: DiverseSystem("cpu"), DEFAULT_MODEL: DiverseSystem("cpu"), "clap": ClapTower("cpu")}
    systems[CANDIDATE].model = resolve_model(CANDIDATE)[0]
    with tempfile.TemporaryDirectory() as folder:
        throughput = from_files(systems, write_wav_files(Path(folder), 32), ["idle", "busy"], repeats)
    ratios = {
        condition: {name: round(seconds[name] / seconds["clap"], 2) for name in (CANDIDATE, DEFAULT_MODEL)}
        for condition, seconds in throughput.items()
    }
    print(json.dumps(ratios))
    report = {"machine": machine(), "repeats": repeats, "seconds_per_second": throughput, "ratio_to_clap": ratios}
    (HERE / "v3_speed.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
