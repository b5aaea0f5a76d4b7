"""Held-out speech for the tagging benchmark: 24 sentences in 8 languages, synthesised with
Debian's espeak-ng (downloaded with `apt-get download`, unpacked, never installed).

    python scripts/espeak_speech.py --output ESPEAK   # ESPEAK/speech.csv and ESPEAK/speech/*.wav

No model here was trained on synthetic speech, so the set tests whether `tag` says "speech" of
voices, languages and a synthesiser it never heard. espeak-ng is GPL-3.0 (its `copyright` files
are copied to ESPEAK/licences/); the sentences are this script's own.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

# espeak-ng and what it loads that a bare Debian machine lacks: PulseAudio's client (linked in though
# only files are written) and the audio libraries libsndfile needs.
PACKAGES = ["espeak-ng", "espeak-ng-data", "libespeak-ng1", "libpcaudio0", "libsonic0", "libpulse0", "libasyncns0"]
PACKAGES += [
    "libsndfile1",
    "libflac12",
    "libvorbis0a",
    "libvorbisenc2",
    "libopus0",
    "libogg0",
    "libmpg123-0",
    "libmp3lame0",
]
SENTENCES = {  # three per language, numbered 1-24 across languages as the files are named
    "en": [
        "The train leaves at seven in the morning.",
        "Please close the window before it rains.",
        "My sister bought three green apples at the market.",
    ],
    "de": [
        "Der Zug fährt um sieben Uhr morgens ab.",
        "Bitte schließ das Fenster, bevor es regnet.",
        "Meine Schwester hat drei grüne Äpfel gekauft.",
    ],
    "fr": [
        "Le train part à sept heures du matin.",
        "Ferme la fenêtre avant qu'il pleuve, s'il te plaît.",
        "Ma sœur a acheté trois pommes vertes au marché.",
    ],
    "es": [
        "El tren sale a las siete de la mañana.",
        "Por favor, cierra la ventana antes de que llueva.",
        "Mi hermana compró tres manzanas verdes en el mercado.",
    ],
    "it": [
        "Il treno parte alle sette del mattino.",
        "Per favore chiudi la finestra prima che piova.",
        "Mia sorella ha comprato tre mele verdi al mercato.",
    ],
    "pt": [
        "O comboio parte às sete da manhã.",
        "Por favor, fecha a janela antes que chova.",
        "A minha irmã comprou três maçãs verdes no mercado.",
    ],
    "ru": [
        "Поезд отправляется в семь утра.",
        "Пожалуйста, закрой окно, пока не пошёл дождь.",
        "Моя сестра купила на рынке три зелёных яблока.",
    ],
    "pl": [
        "Pociąg odjeżdża o siódmej rano.",
        "Proszę, zamknij okno, zanim zacznie padać.",
        "Moja siostra kupiła na targu trzy zielone jabłka.",
    ],
}


def unpack_espeak(folder: Path) -> Path:
    """Download and unpack the packages into folder/root; returns the espeak-ng program."""
    debs = folder / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", *PACKAGES], cwd=debs, check=True)
    for deb in sorted(debs.glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(folder / "root")], check=True)
    return folder / "root" / "usr" / "bin" / "espeak-ng"


def synthesise(program: Path, output: Path) -> list[tuple[str, str]]:
    """One WAV per sentence in output/speech; returns the (path, label) rows of speech.csv."""
    libraries = program.parents[1] / "lib" / "x86_64-linux-gnu"
    env = {
        **os.environ,
        "LD_LIBRARY_PATH": f"{libraries}:{libraries / 'pulseaudio'}",
        "ESPEAK_DATA_PATH": str(libraries),
    }
    (output / "speech").mkdir(parents=True, exist_ok=True)
    rows, number = [], 0
    for language, sentences in SENTENCES.items():
        for sentence in sentences:
            number += 1
            name = f"speech/s_{language}_{number}.wav"
            subprocess.run([str(program), "-v", language, "-w", str(output / name), sentence], env=env, check=True)
            rows.append((name, "speech"))
    return sorted(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", required=True, help="folder for speech.csv, speech/ and licences/")
    args = parser.parse_args(argv)
    output = Path(args.output)
    with tempfile.TemporaryDirectory() as scratch:
        program = unpack_espeak(Path(scratch))
        rows = synthesise(program, output)
        (output / "licences").mkdir(parents=True, exist_ok=True)
        for notice in (Path(scratch) / "root" / "usr" / "share" / "doc").glob("*/copyright"):
            shutil.copy(notice, output / "licences" / f"{notice.parent.name}.copyright")
    with open(output / "speech.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "labels"])
        writer.writerows(rows)
    print(f"{output / 'speech.csv'}: {len(rows)} sentences in {len(SENTENCES)} languages")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
