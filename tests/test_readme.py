"""The README's promises that can drift: the commands CI runs and the API example."""

import re
import subprocess
import sys

import pytest

from conftest import REPO


def quick_start_commands() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_quick_start_is_two_commands_and_ci_runs_the_test_one_verbatim():
    commands = quick_start_commands()
    assert len(commands) == 2 and all("\n" not in c for c in commands)
    assert "pytest" in commands[1]
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert commands[0] in ci and commands[1] in ci  # the plain-install command too, in a fresh copy


def test_the_main_job_command_is_the_demo():
    main_job = quick_start_commands()[0]
    assert main_job.endswith("diverse-embed demo")
    assert any((REPO / "diverse_embed" / "samples").glob("*.wav"))


def test_demo_runs_offline_and_shows_ranked_hits(capsys):
    from diverse_embed.cli import main

    assert main(["demo"]) == 0
    out = capsys.readouterr()
    assert "UNTRAINED" not in out.err and "untrained model" not in out.out  # the bundled model by default
    ranks = [line.split()[0] for line in out.out.splitlines() if line.strip()[:1].isdigit()]
    assert ranks == ["1", "2", "3", "4", "5"]


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.+?)```", (REPO / "README.md").read_text(), re.S)


@pytest.mark.slow
@pytest.mark.parametrize("number", range(4))
def test_every_python_block_of_the_readme_runs_alone_as_a_script(number, tmp_path):
    """Each block as a reader copies it: into a file of its own, run by a fresh Python in an empty
    folder (its imports its own); the package's sample sounds stand in for the reader's files."""
    blocks = python_blocks()
    assert len(blocks) == 4 and not any(placeholder in "".join(blocks) for placeholder in ("path/to", "dog.flac"))
    script = tmp_path / f"readme_block_{number + 1}.py"
    script.write_text(blocks[number])
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, f"README python block {number + 1} failed:\n{blocks[number]}\n{out.stderr[-3000:]}"
    expected = ["(256,)", "esc50/", "clicks_4_per_second.wav", ""][number]  # what each block prints
    assert expected in out.stdout
    if number == 3:  # the training block: a tagger that knows the samples' first words
        from diverse_embed import DiverseEmbedder

        tagger = DiverseEmbedder.from_pretrained(tmp_path / "my-tagger")
        assert tagger.config.id2label[0] == "clicks" and (tmp_path / "my-tagger" / "README.md").is_file()
