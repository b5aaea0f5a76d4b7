"""The search page, checked in a real headless browser (Debian's Chromium, which .ci/run installs)."""

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO, sine, write_wav

pytestmark = pytest.mark.slow  # subprocesses, an exporter or a browser: seconds each

BROWSER = next(
    (shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)), None
)
# Flags of a browser on a closed network: no background calls home, no sandbox as root.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
    "--disable-background-networking",
    "--disable-component-update",
    "--enable-logging=stderr",
    "--v=0",
]


def cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "diverse_embed.cli", *map(str, args)], capture_output=True, text=True, cwd=REPO
    )


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """An index with segments of four sounds, searched by two queries (one of them 12 s long)."""
    folder = tmp_path_factory.mktemp("page")
    sounds = folder / "sounds"
    sounds.mkdir()
    rng = np.random.default_rng(0)
    for freq in (300, 600, 1200):
        write_wav(sounds / f"tone_{freq}.wav", sine(freq, 3.0, amplitude=0.4))
    write_wav(sounds / "long_noise.wav", (0.1 * rng.standard_normal(12 * 16000)).astype(np.float32))
    assert cli("index", "build", sounds, "--output", folder / "idx", "--segments", "-q").returncode == 0
    query = write_wav(folder / "query.wav", sine(650, 2.0, amplitude=0.3))
    out = cli("search", folder / "idx", query, sounds / "long_noise.wav", "-k", "3", "--html", folder / "hits.html")
    assert out.returncode == 0, out.stderr
    return folder / "hits.html"


def test_page_is_self_contained(page):
    text = page.read_text()
    assert text.count("<audio") == 2 * (1 + 3) and text.count("<svg") == 2 * (1 + 3)
    assert not re.search(r"(src|href)=\"(?!data:)", text), "every source is embedded in the page"
    assert "http://" not in text and "https://" not in text
    assert "default-src 'none'" in text  # and the browser is told to load nothing else


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe: it
    reads commands on fd 3 and answers on fd 4, JSON messages ending in NUL), so a test can wait
    for what the page does in real time."""

    def __init__(self, profile, url: str, size=(1100, 1400)):
        self.to_browser_r, self.to_browser_w = os.pipe()
        self.from_browser_r, self.from_browser_w = os.pipe()
        inside = (self.to_browser_r, self.from_browser_w)

        def onto_fds_3_and_4():  # dup2's copies are inheritable; the pipes' own ends close on exec
            os.dup2(inside[0], 3)
            os.dup2(inside[1], 4)

        self.process = subprocess.Popen(
            [
                BROWSER,
                *FLAGS,
                "--remote-debugging-pipe",
                f"--user-data-dir={profile}",
                f"--window-size={size[0]},{size[1]}",
                url,
            ],
            close_fds=False,
            preexec_fn=onto_fds_3_and_4,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        os.close(self.to_browser_r)
        os.close(self.from_browser_w)
        self.reader = os.fdopen(self.from_browser_r, "rb")
        self.next_id, self.buffer = 0, b""
        pages = [t for t in self.send("Target.getTargets")["targetInfos"] if t["type"] == "page"]
        self.session = self.send("Target.attachToTarget", targetId=pages[0]["targetId"], flatten=True)["sessionId"]

    def send(self, method: str, session: str | None = None, **params) -> dict:
        self.next_id += 1
        message = {
            "id": self.next_id,
            "method": method,
            "params": params,
            **({"sessionId": session} if session else {}),
        }
        os.write(self.to_browser_w, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self.buffer:
                chunk = self.reader.read1(1 << 16)
                assert chunk, "the browser closed its pipe"
                self.buffer += chunk
            raw, self.buffer = self.buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self.next_id:
                assert "error" not in reply, reply["error"]
                return reply["result"]

    def evaluate(self, expression: str):
        return self.send("Runtime.evaluate", self.session, expression=expression, returnByValue=True)["result"].get(
            "value"
        )

    def wait_for(self, expression: str, timeout: float = 60.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.2)
        return self.evaluate(expression)

    def close(self) -> str:
        try:
            self.send("Browser.close")
        except AssertionError:
            pass
        self.process.wait(timeout=30)
        os.close(self.to_browser_w)
        return self.process.stderr.read().decode(errors="replace")


@pytest.mark.skipif(BROWSER is None, reason="no Chromium here: .ci/run installs Debian's chromium package")
def test_page_in_a_real_browser(page, tmp_path):
    browser = Browser(tmp_path / "profile", page.as_uri())
    try:
        players = browser.wait_for("document.readyState === 'complete' && document.querySelectorAll('audio').length")
        assert players == 8
        decoded = browser.wait_for(
            "[...document.querySelectorAll('audio')].every(a => a.dataset.duration) && "
            "[...document.querySelectorAll('audio')].map(a => parseFloat(a.dataset.duration))"
        )
        assert decoded and len(decoded) == 8 and all(0 < d <= 12.01 for d in decoded), decoded
        # each player stands at its hit's matched second: data-start, 0 for a whole clip, within the excerpt
        positions = browser.evaluate(
            "[...document.querySelectorAll('audio')].map(a => [a.currentTime, parseFloat(a.dataset.start)])"
        )
        assert all(abs(now - start) < 0.05 for now, start in positions), positions
        assert any(start > 0 for _, start in positions), "some hits are segments"
        assert browser.evaluate("[...document.querySelectorAll('audio')].filter(a => a.dataset.error).length") == 0
        fetched = browser.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
        assert fetched == [], f"the page fetched {fetched}"
        shot = tmp_path / "hits.png"
        shot.write_bytes(base64.b64decode(browser.send("Page.captureScreenshot", browser.session)["data"]))
    finally:
        log = browser.close()
    assert "Refused to" not in log, "the page tried to load something from outside itself"
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3]  # (height, width, 3) in [0, 1]
    waveform_blue = np.all(np.abs(pixels - np.array([0x3B, 0x6E, 0xA8]) / 255) < 0.05, axis=-1)
    assert waveform_blue.sum() > 8 * 300, "the waveform pictures are drawn"
    if os.environ.get("DIVERSE_EMBED_SCREENSHOT"):  # where to keep the picture, to look at it
        shutil.copy(shot, os.environ["DIVERSE_EMBED_SCREENSHOT"])


def test_page_names_what_cannot_be_played(tmp_path):
    from diverse_embed.search.index import Hit
    from diverse_embed.search.page import search_page

    clip = write_wav(tmp_path / "tone.wav", sine(440, 3.0))
    text = search_page(
        [
            (str(clip), [Hit(1, str(clip), 1.0, None, None), Hit(2, str(tmp_path / "moved_away.wav"), 0.5, 1.0, 2.0)]),
            (str(tmp_path / "broken_query.wav"), "not an audio file"),
        ],
        "a-model",
    )
    assert text.count("<audio") == 2  # the query and its first hit
    assert "cannot play" in text and "moved_away.wav" in text  # a vanished hit is named, not fatal
    assert "not an audio file" in text and "broken_query.wav" in text
    assert 'data-start="2.000"' not in text and 'data-start="0.000"' in text


def test_a_segment_hit_says_where_it_falls_on_the_players_clock():
    from diverse_embed.search.page import where_in_file

    assert where_in_file(3.0, 4.0).startswith("3.0-4.0 s") and "clock 0:02" in where_in_file(3.0, 4.0)
    assert "plays from 1.0 s" in where_in_file(3.0, 4.0)
    assert "clock 0:01" in where_in_file(1.0, 2.0) and "plays from 0.0 s" in where_in_file(1.0, 2.0)  # clipped at 0
