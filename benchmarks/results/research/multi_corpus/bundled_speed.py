"""Bundled models that are not the default against the default and the CLAP tower, from files, in
one process: `python -m benchmarks.speed`'s from-files measurement (its systems, its 32 ten-second
44.1-kHz WAVs, taking turns, idle and with one core busy) with each MODEL as one more system.

    python benchmarks/results/research/multi_corpus/bundled_speed.py [REPEATS] [MODEL ...]

MODEL defaults to diverse-embed-multi-v3. Prints seconds of audio per second and the ratios; writes
VERSIONS_speed.json beside this file (v3_speed.json for diverse-embed-multi-v3, v3_v4_speed.json
for v3 and v4).
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


def main(repeats: int, candidates: list[str]) -> None:
    systems = {name: DiverseSystem("cpu") for name in [*candidates, DEFAULT_MODEL]} | {"clap": ClapTower("cpu")}
    for name in candidates:
        systems[name].model = resolve_model(name)[0]
    with tempfile.TemporaryDirectory() as folder:
        throughput = from_files(systems, write_wav_files(Path(folder), 32), ["idle", "busy"], repeats)
    ratios = {
        condition: {name: round(seconds[name] / seconds["clap"], 2) for name in [*candidates, DEFAULT_MODEL]}
        for condition, seconds in throughput.items()
    }
    print(json.dumps(ratios))
    report = {"machine": machine(), "repeats": repeats, "seconds_per_second": throughput, "ratio_to_clap": ratios}
    versions = "_".join(name.rsplit("-", 1)[-1] for name in candidates)
    (HERE / f"{versions}_speed.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5, sys.argv[2:] or ["diverse-embed-multi-v3"])
