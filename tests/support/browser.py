"""Headless Chromium (the Debian package, driven by its chromedriver through Selenium) and the labelling
app served in this process, for the tests that use the page as a person does."""

import contextlib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from rlhf_ray.labelling.app import create_app

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# A closed network refuses Chromium's own background connections: none of them is needed.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
)


@contextlib.contextmanager
def headless_chromium():
    """A fresh browser (its own profile: its own remembered labeller name)."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        try:
            yield driver
        finally:
            driver.quit()


@contextlib.contextmanager
def served(session, token=None):
    """The app over ``session`` on a free loopback port, in a thread; yields its URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(session, token, True), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise TimeoutError("the labelling app did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join()


def text_of(driver, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).text


def wait_for(driver, condition, timeout: float = 20):
    """The truthy value ``condition(driver)`` comes to return within ``timeout`` seconds."""
    return WebDriverWait(driver, timeout, poll_frequency=0.02).until(condition)


def shown_item(driver) -> int | None:
    """The index of the item the page shows (None: none yet)."""
    value = driver.execute_script("return document.body.dataset.item")
    return None if value is None else int(value)


def next_item_shown(driver, before: int | None):
    """Wait until the page shows an item other than ``before``; returns its index."""
    return wait_for(driver, lambda d: (shown_item(d),) if shown_item(d) != before else None)[0]


def sign_in(driver, url: str, name: str) -> None:
    """Open the page and give ``name`` when it asks (the first visit)."""
    driver.get(url)
    form = wait_for(driver, lambda d: d.find_element(By.ID, "name-form"))
    wait_for(driver, lambda d: form.is_displayed())
    driver.find_element(By.ID, "name-input").send_keys(name + "\n")
    wait_for(driver, lambda d: shown_item(d) is not None)


@contextlib.contextmanager
def label_server(config, port: int, *overrides: str):
    """``rlhf-ray label serve CONFIG --port PORT`` in a process of its own, once it listens; yields the process."""
    command = [str(Path(sys.executable).with_name("rlhf-ray")), "label", "serve", str(config), "--port", str(port)]
    process = subprocess.Popen([*command, *overrides], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    said = []
    try:
        for line in process.stdout:
            said.append(line)
            if line.startswith("open http"):
                break
        else:
            raise RuntimeError(f"rlhf-ray label serve ended (code {process.wait()}):\n{''.join(said)}")
        yield process
    finally:
        process.kill()
        process.wait()
        process.stdout.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def shown_responses(driver) -> list[str]:
    """The responses as the page holds them, character for character."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#responses .card .text'), (e) => e.textContent)"
    )
