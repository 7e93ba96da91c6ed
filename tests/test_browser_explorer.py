"""The explorer notebook in a real JupyterLab, driven by headless Chromium: run all cells, move the k_sft slider,
check the readout and the rendered figure change, keep a screenshot (runs/screenshots/explorer.png)."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from lrmerge.runs import runs_root

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "06_sign_conflicts.ipynb"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def lab_command(port: int, root: Path, token: str) -> list[str]:
    """JupyterLab on 127.0.0.1 behind a random token (any local process could start a kernel on a tokenless one);
    --allow-root only where the tests run as root (CI containers)."""
    if not token:
        raise ValueError("a JupyterLab token is required")
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip", "127.0.0.1", f"--port={port}",
               f"--IdentityProvider.token={token}", "--ServerApp.password=", f"--ServerApp.root_dir={root}"]
    return command + (["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])


def start_lab(tmp_path: Path, root: Path, env: dict) -> tuple[subprocess.Popen, str, str]:
    """(server, url, token) once the server answers an authenticated status request."""
    token = secrets.token_urlsafe(24)
    port = free_port()
    log = open(tmp_path / "lab.log", "w")
    server = subprocess.Popen(lab_command(port, root, token), env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(urllib.request.Request(f"{url}/api/status",
                                                          headers={"Authorization": f"token {token}"}), timeout=2)
            return server, url, token
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                stop_lab(server)
                raise RuntimeError(f"JupyterLab did not start: {(tmp_path / 'lab.log').read_text()[-2000:]}")
            time.sleep(0.5)


def stop_lab(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGTERM)  # the server and its kernels (its own session, started above)
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)


def lab_env(tmp_path: Path) -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "LRMERGE_RUNS": str(tmp_path / "runs"),
            "JUPYTER_CONFIG_DIR": str(tmp_path / "jcfg"), "JUPYTER_DATA_DIR": str(tmp_path / "jdata"),
            "JUPYTER_RUNTIME_DIR": str(tmp_path / "jrun"), "IPYTHONDIR": str(tmp_path / "ipython"),
            "OMP_NUM_THREADS": "1"}


@pytest.fixture()
def lab(tmp_path):
    """A JupyterLab server rooted in tmp_path holding a parameterised copy of the notebook; yields its URL."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (run scripts/install_browser.sh)")
    pytest.importorskip("playwright.sync_api", reason="playwright (python) not installed")
    import papermill

    root = tmp_path / "root"
    root.mkdir()
    papermill.execute_notebook(str(NOTEBOOK), str(root / "explorer.ipynb"), prepare_only=True,
                               parameters={"synthetic_checkpoints": 3, "out_dir": str(tmp_path / "out"), "device": "cpu"})
    server, url, token = start_lab(tmp_path, root, lab_env(tmp_path))
    try:
        yield url, tmp_path / "out", token
    finally:
        stop_lab(server)


def test_explorer_slider_changes_the_figure(lab):
    from playwright.sync_api import sync_playwright

    lab, out, token = lab

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage",
                  "--disable-extensions", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            page.goto(f"{lab}/lab/workspaces/explorer-test/tree/explorer.ipynb?reset&token={token}")
            page.locator(".jp-Notebook:visible").wait_for(timeout=30_000)
            # a fresh JupyterLab may ask which kernel to use (no stored preference in the tmp config dirs)
            select = page.locator(".jp-Dialog button:has-text('Select')")
            try:
                select.wait_for(timeout=8_000)
                select.click()
            except Exception:
                pass  # no dialog: the notebook's kernelspec was taken as is
            page.locator(".lm-MenuBar-itemLabel:text-is('Run')").click()
            page.locator(".lm-Menu-itemLabel:text-is('Run All Cells')").click()
            readout = page.locator(".lrmerge-readout:visible")
            try:
                readout.wait_for(timeout=75_000)
            except Exception as error:  # keep what the page showed, to tell a slow kernel from a failing cell
                shots = runs_root() / "screenshots"
                shots.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(shots / "explorer_failure.png"), full_page=True)
                outputs = page.locator(".jp-OutputArea-output").all_inner_texts()
                raise AssertionError(f"explorer never appeared; cell outputs: {outputs[-3:]}") from error
            figure = page.locator("img.lrmerge-figure:visible")
            figure.wait_for(timeout=10_000)
            before_text, before_image = readout.inner_text(), figure.screenshot()
            assert "k_sft=0.20" in before_text and "SFT entries kept" in before_text

            handle = page.locator(".lrmerge-density-sft .noUi-handle:visible")
            handle.focus()
            for _ in range(2):
                page.keyboard.press("ArrowRight")  # two steps of 0.05
            page.wait_for_function(
                "() => document.querySelector('.lrmerge-readout').innerText.includes('k_sft=0.30')", timeout=20_000)
            after_text = readout.inner_text()
            page.wait_for_timeout(300)  # let the new PNG paint
            after_image = figure.screenshot()
            assert after_text != before_text
            assert after_image != before_image
            shots = runs_root() / "screenshots"
            shots.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shots / "explorer.png"), full_page=True)
            # the last cell writes the table, figures and resolved parameters into the notebook's out folder
            page.wait_for_function(
                "() => [...document.querySelectorAll('.jp-OutputArea-output')]"
                ".some(e => e.innerText.includes('parameters.json'))", timeout=30_000)
        finally:
            browser.close()
    assert (runs_root() / "screenshots" / "explorer.png").stat().st_size > 10_000
    assert (out / "sign_conflicts.csv").exists() and (out / "figures" / "figure4_sft_discarded.png").exists()
