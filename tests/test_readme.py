"""The README's promises that can drift: the commands CI runs and the API example."""

import re

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


def test_every_python_block_of_the_readme_runs_as_written(tmp_path, monkeypatch, capsys):
    """In the README's order, in one namespace (a later block uses what an earlier one made), in a
    fresh folder: the package's sample sounds stand in for the reader's files."""
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks()
    assert len(blocks) >= 4 and not any(placeholder in "".join(blocks) for placeholder in ("path/to", "dog.flac"))
    namespace: dict = {}
    for number, block in enumerate(blocks, 1):
        try:
            exec(compile(block, f"README.md python block {number}", "exec"), namespace)
        except Exception as err:  # noqa: BLE001 - say which block failed
            raise AssertionError(f"README python block {number} failed: {err!r}\n{block}") from err
    assert namespace["out"].embedding.shape == (256,) and namespace["matrix"].shape == (11, 256)
    assert namespace["hits"][0].path.endswith(namespace["samples"][0].name)
    assert namespace["tagger"].config.id2label[0] == "clicks"
