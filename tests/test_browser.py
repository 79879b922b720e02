"""End to end: the explorer served by Voila, driven in headless Chromium through Playwright.

Starts ``voila notebooks/02_explore.ipynb`` on 127.0.0.1 (a free port, fast mode, an empty Numba
cache: the kernels are cold, as on a first visit), opens it in Debian's Chromium
(``/usr/bin/chromium``, installed by ``.ci/install-browser.sh``; Playwright's own browser
downloads are never used), checks that the page says it is compiling within
``STATUS_TIMEOUT`` seconds of loading, moves the guest-RAM slider with the keyboard as a user
would, and checks that the numbers and the figure on the page changed.  Screenshots before and
after go to ``artifacts/`` (git-ignored) as test artifacts.

Skipped, with the reason, when Chromium, Playwright or Voila is missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "02_explore.ipynb"
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = os.environ.get("FPHINT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: seconds for Voila to execute the notebook (the first update may compile Numba kernels)
LOAD_TIMEOUT = float(os.environ.get("FPHINT_BROWSER_TIMEOUT", "300"))
#: seconds for one update after a control moved
UPDATE_TIMEOUT = 120.0
#: seconds from the page's load event until the panel's status line is on screen
STATUS_TIMEOUT = float(os.environ.get("FPHINT_STATUS_TIMEOUT", "2"))


def _require():
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(
            f"no Chromium at {CHROMIUM}: run .ci/install-browser.sh (Debian package chromium)"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright (Python) is not installed: pip install playwright")
    try:
        import voila  # noqa: F401
    except ImportError:
        pytest.skip("voila is not installed: pip install voila")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_env(numba_cache: Path) -> dict:
    """Voila's environment (kernels inherit it): fast mode, the package importable, an empty
    Numba cache (the first update compiles the kernels)."""
    import fphint_kernels

    env = dict(os.environ)
    paths = [str(Path(fphint_kernels.__file__).resolve().parents[1]), str(ROOT)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env.update(
        FPHINT_FAST="1",
        MPLBACKEND="Agg",
        PYTHONPATH=os.pathsep.join(dict.fromkeys(paths)),
        NUMBA_CACHE_DIR=str(numba_cache),
    )
    return env


@pytest.fixture(scope="module")
def voila_url(tmp_path_factory):
    """A Voila server rendering the explorer notebook; stopped after the module's tests."""
    _require()
    port = _free_port()
    log = tmp_path_factory.mktemp("voila") / "voila.log"
    env = _server_env(tmp_path_factory.mktemp("numba-cache"))
    cmd = [
        sys.executable, "-m", "voila", str(NOTEBOOK), "--no-browser", f"--port={port}",
        "--Voila.ip=127.0.0.1", "--Voila.port_retries=0", "--show_tracebacks=True",
    ]  # fmt: skip
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=fh)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"voila exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                # the tree page answers as soon as the server listens (the notebook page would
                # wait for the whole notebook to run)
                with urllib.request.urlopen(url + "voila/static/", timeout=2):
                    break
            except OSError as exc:
                if getattr(exc, "code", None):  # an HTTP error: the server is up
                    break
                if time.monotonic() > deadline:
                    pytest.fail(f"voila did not listen on {url}:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture(scope="module")
def browser():
    _require()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def _image_src(page, selector: str) -> str:
    return page.locator(f"{selector} img, img{selector}").first.get_attribute("src") or ""


def test_explorer_in_chromium(voila_url, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    t_open = time.monotonic()
    page.goto(voila_url, timeout=LOAD_TIMEOUT * 1000, wait_until="load")
    t_load = time.monotonic()
    # the notebook ran without waiting for the kernels: the panel tells what it is doing
    page.wait_for_function(
        "document.querySelector('.fphint-status') && "
        "document.querySelector('.fphint-status').innerText.includes("
        "'compiling the simulation kernels (once, about 30 s)')",
        timeout=LOAD_TIMEOUT * 1000,
    )
    t_status = time.monotonic()
    sys.stderr.write(
        f"explorer page: loaded {t_load - t_open:.1f} s after opening, status on screen "
        f"{t_status - t_load:.1f} s after loading\n"
    )
    assert t_status - t_load <= STATUS_TIMEOUT, (t_load - t_open, t_status - t_load)
    page.wait_for_selector(".fphint-numbers table", timeout=LOAD_TIMEOUT * 1000)
    page.wait_for_function(
        "document.querySelector('.fphint-status').innerText.includes('updated in')",
        timeout=LOAD_TIMEOUT * 1000,
    )
    panel = page.locator(".fphint-explorer")
    panel.scroll_into_view_if_needed()
    numbers_before = page.inner_text(".fphint-numbers")
    status_before = page.inner_text(".fphint-status")
    figure_before = page.locator(".fphint-figure").screenshot()
    src_before = _image_src(page, ".fphint-figure")
    panel.screenshot(path=str(ARTIFACTS / "explorer-before.png"))
    assert "hinting saves" in numbers_before
    assert "1.00 GiB" in status_before  # fast mode starts from 1 GiB

    # move the guest-RAM slider one step to the right, as with the keyboard: 1 GiB -> 2 GiB
    handle = page.locator(".fphint-memory .noUi-handle")
    handle.focus()
    handle.press("ArrowRight")
    page.wait_for_function(
        "document.querySelector('.fphint-status').innerText.includes('2.00 GiB')",
        timeout=UPDATE_TIMEOUT * 1000,
    )
    page.wait_for_function(
        f"(() => {{ const i = document.querySelector('.fphint-figure'); "
        f"const img = i.tagName === 'IMG' ? i : i.querySelector('img'); "
        f"return img && img.getAttribute('src') !== {src_before!r}; }})()",
        timeout=UPDATE_TIMEOUT * 1000,
    )
    page.wait_for_timeout(300)  # let the new image paint
    assert "2 GiB" in page.inner_text(".fphint-memory")
    numbers_after = page.inner_text(".fphint-numbers")
    assert numbers_after != numbers_before
    assert page.locator(".fphint-figure").screenshot() != figure_before
    panel.screenshot(path=str(ARTIFACTS / "explorer.png"))
    assert (ARTIFACTS / "explorer.png").stat().st_size > 10_000

    # updates run in a worker thread: its widget updates must reach the page too
    for _ in range(4):  # 2 -> 4 -> 8 -> 16 -> 32 GiB
        handle.press("ArrowRight")
    page.wait_for_function(
        "document.querySelector('.fphint-status').innerText.includes('32.00 GiB: updated')",
        timeout=UPDATE_TIMEOUT * 1000,
    )
    assert "32 GiB" in page.inner_text(".fphint-memory")
    assert page.inner_text(".fphint-numbers") != numbers_after
    panel.screenshot(path=str(ARTIFACTS / "explorer-32g.png"))
    assert not errors, errors
    page.close()


def test_chromium_skip_reason_is_clear(monkeypatch):
    """Without Chromium the browser tests skip and say how to install it."""
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", "/nonexistent/chromium")
    with pytest.raises(pytest.skip.Exception, match="install-browser.sh"):
        _require()


def test_install_script_is_idempotent_shell():
    """The install script parses and checks for an existing browser before installing."""
    script = ROOT / ".ci" / "install-browser.sh"
    text = script.read_text()
    assert "apt-get install" in text and "chromium" in text
    assert "playwright install" not in text.replace("`playwright install`", "")
    bash = shutil.which("bash")
    if bash:
        subprocess.run([bash, "-n", str(script)], check=True)
