"""The labelling page in headless Chromium, used as a person uses it: ranking with the mouse and with keys,
ties, undo, skip and flags, a pick between two, the name asked once, model output shown as text, and two
browsers labelling at once into one file."""

import pytest
import yaml
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from rlhf_ray.labelling.items import LabelItem
from rlhf_ray.labelling.store import read_judgements
from tests.support.browser import (
    free_port,
    headless_chromium,
    label_server,
    next_item_shown,
    served,
    shown_item,
    shown_responses,
    sign_in,
    text_of,
    wait_for,
)
from tests.support.labelling import made_up_session
from tests.support.tiny_roles import role_config

HOSTILE = '<script>window.__ran = "script"</script><img src=x onerror="window.__ran = \'img\'"><b>bold</b>'
"""Markup in model output: shown as these characters, it runs nothing and makes no element."""


def hostile_items(indices, responses=4):
    return [
        LabelItem(i, f"Prompt {i} <i>as typed</i>", [HOSTILE, *(f"Answer {i}.{r}" for r in range(1, responses))], i)
        for i in indices
    ]


@pytest.fixture(scope="module")
def browser():
    with headless_chromium() as driver:
        yield driver


@pytest.fixture
def app(tmp_path):
    """A fresh session of 8 items of four responses (a quarter of them for two labellers), served here."""
    session = made_up_session(tmp_path / "j.jsonl", target=8, overlap=0.25, make=hostile_items)
    with served(session) as url:
        yield url, tmp_path / "j.jsonl"
    session.close()


def cards(driver):
    return driver.find_elements(By.CSS_SELECTOR, "#responses .card")


def press(driver, *keys):
    body = driver.find_element(By.TAG_NAME, "body")
    for key in keys:
        body.send_keys(key)


def rows(path):
    return read_judgements(path)


def test_ranking_with_the_mouse_and_with_keys(browser, app):
    url, path = app
    sign_in(browser, url, "ann")
    assert text_of(browser, "progress") == "0 / 8 items done · you: 0 · labeller: ann"
    first = shown_item(browser)

    # mouse: response 3 best, then 1 tied with 4, then 2; the badges show the ranks as they are given
    for index in (2, 0):
        cards(browser)[index].click()
    browser.find_element(By.ID, "tie").click()
    cards(browser)[3].click()
    assert [card.find_element(By.CLASS_NAME, "rank").text for card in cards(browser)] == ["#2", "", "#1", "#2"]
    assert not browser.find_element(By.ID, "submit").is_enabled()
    cards(browser)[1].click()
    browser.find_element(By.ID, "submit").click()
    second = next_item_shown(browser, first)
    assert rows(path)[-1]["ranking"] == [[2], [0, 3], [1]]

    # keys: 2 = 1 ties the first two, Backspace takes a pick back, Enter submits
    press(browser, "2", "=", "1", "3", Keys.BACKSPACE, "4", "3", Keys.ENTER)
    third = next_item_shown(browser, second)
    assert rows(path)[-1]["ranking"] == [[1, 0], [3], [2]]

    press(browser, "s")  # skip
    fourth = next_item_shown(browser, third)
    press(browser, "u")  # flag as unsafe
    fifth = next_item_shown(browser, fourth)
    browser.find_element(By.ID, "flag-nonsense").click()
    next_item_shown(browser, fifth)

    kept = rows(path)
    assert [row["item"] for row in kept] == [0, 1, 2, 3, 4]
    assert [(row["ranking"], row["flag"]) for row in kept[2:]] == [(None, None), (None, "unsafe"), (None, "nonsense")]
    assert all(row["labeller"] == "ann" and row["seconds"] >= 0 for row in kept)
    assert text_of(browser, "progress").startswith("5 / 8 items done · you: 5")
    assert float(browser.execute_script("return document.body.dataset.latencyMs")) < 200

    browser.refresh()  # the name is remembered; the item shown is still this labeller's
    wait_for(browser, lambda d: shown_item(d) == 5)
    assert not browser.find_element(By.ID, "name-form").is_displayed()


def test_model_output_is_shown_as_text_and_runs_nothing(browser, app):
    url, _ = app
    sign_in(browser, url, "ann")
    assert cards(browser)[0].find_element(By.CLASS_NAME, "text").text == HOSTILE
    assert text_of(browser, "prompt") == "Prompt 0 <i>as typed</i>"
    assert browser.find_elements(By.CSS_SELECTOR, "#responses script, #responses img, #responses b, #prompt i") == []
    assert browser.execute_script("return window.__ran === undefined")


def test_a_pick_between_two_is_one_click_or_one_key(browser, tmp_path):
    session = made_up_session(tmp_path / "j.jsonl", target=3, make=lambda indices: hostile_items(indices, 2))
    with served(session) as url:
        sign_in(browser, url, "bo")
        assert not browser.find_element(By.ID, "submit").is_displayed()
        cards(browser)[1].click()
        second = next_item_shown(browser, 0)
        press(browser, "1")
        next_item_shown(browser, second)
        press(browser, "2")
        wait_for(browser, lambda d: d.find_element(By.ID, "finished").is_displayed())
    session.close()
    assert [row["ranking"] for row in rows(tmp_path / "j.jsonl")] == [[[1], [0]], [[0], [1]], [[1], [0]]]


def test_two_browsers_label_at_once_and_the_stats_page_compares_them(browser, app):
    url, path = app
    with headless_chromium() as other:
        sign_in(browser, url, "ann")
        sign_in(other, url, "bob")
        assert {shown_item(browser), shown_item(other)} == {0, 1}  # one item, one labeller
        for _ in range(3):  # both submit, then both wait: the judgements reach the app together
            before = {driver: shown_item(driver) for driver in (browser, other)}
            for driver in (browser, other):
                press(driver, "1", "2", "3", "4", Keys.ENTER)
            for driver in (browser, other):
                next_item_shown(driver, before[driver])
        assert len(rows(path)) == 6
        judged_by = {row["item"]: row["labeller"] for row in rows(path)}
        assert sorted(judged_by) == [0, 1, 2, 3, 4, 5]  # no gap, each item to one labeller
        second = {browser: "ann", other: "bob"}
        [driver] = [d for d in (browser, other) if shown_item(d) == 3]  # the shared item, before any new one
        assert second[driver] != judged_by[3]
        press(driver, "1", "2", "3", "4", Keys.ENTER)
        next_item_shown(driver, 3)
        assert sorted(row["labeller"] for row in rows(path) if row["item"] == 3) == ["ann", "bob"]
        assert len(rows(path)) == 7

        other.get(url + "stats")
        summary = wait_for(other, lambda d: d.find_element(By.ID, "summary").text)
        assert summary == "7 judgements of 6 items; flag rate 0.0%"
        assert text_of(other, "agreement").startswith("Agreement: 100.0% of 6 response pairs")
        table = [row.text for row in other.find_elements(By.CSS_SELECTOR, "#labellers tr")]
        assert sorted(int(line.split()[1]) for line in table) == [3, 4]


@pytest.fixture
def label_config(tiny_dir, tiny_paths, tmp_path):
    """A config labelling 4 items of the tiny policy's responses (4 each) into ``tmp_path/rankings.jsonl``."""
    feedback = {"model_path": tiny_paths.policy, "output_path": str(tmp_path / "rankings.jsonl"), "target": 4}
    rollout = {"engine": "hf", "dtype": "float32", "max_new_tokens": 12, "temperature": 1.0}
    cfg = role_config(tiny_dir, rollout=rollout, feedback=feedback, data={"max_prompt_length": 64})
    path = tmp_path / "label.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    return path, tmp_path / "rankings.jsonl"


@pytest.mark.slow
def test_a_killed_app_restarted_continues_where_it_stopped(browser, label_config):
    config, path = label_config
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with label_server(config, port):
        sign_in(browser, url, "ann")
        for _ in range(2):
            before = shown_item(browser)
            press(browser, "1", "2", "3", "4", Keys.ENTER)
            next_item_shown(browser, before)
        shown = shown_responses(browser)
        # the next item was sampled ahead: it shows at once
        assert float(browser.execute_script("return document.body.dataset.latencyMs")) < 200
    # killed (SIGKILL); a ranking made now is not saved, and the page says so and keeps it
    press(browser, "4", "3", "2", "1", Keys.ENTER)
    wait_for(browser, lambda d: d.find_element(By.ID, "error").is_displayed())
    assert text_of(browser, "error").startswith("Not saved, try again")
    assert [row["item"] for row in rows(path)] == [0, 1]

    with label_server(config, port):
        browser.find_element(By.ID, "submit").click()  # the same ranking, of the same item, sampled again alike
        next_item_shown(browser, 2)
        assert not browser.find_element(By.ID, "error").is_displayed()
        press(browser, "1", "2", "3", "4", Keys.ENTER)
        wait_for(browser, lambda d: d.find_element(By.ID, "finished").is_displayed())
        assert text_of(browser, "progress").startswith("4 / 4 items done")
    kept = rows(path)
    assert [row["item"] for row in kept] == [0, 1, 2, 3]
    assert kept[2]["responses"] == shown and kept[2]["ranking"] == [[3], [2], [1], [0]]
    assert len({row["seed"] for row in kept}) == 4 and all(row["model"] for row in kept)
