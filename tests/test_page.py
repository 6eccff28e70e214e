"""The page (``GET /``) in a real browser: Debian's headless Chromium driven by Selenium through
Debian's chromedriver (``make browser`` installs both), against real functions-framework servers
(hibari and Kokoro, a local-folder store, an event instance that runs the jobs' parts). Each
state's screenshot is kept under tests/artifacts/page/ (gitignored) to be looked at."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from function import auth
from function.local import REPO, cpu_model
from tests.audio_checks import assert_speech, decode, longest_silence_s
from tests.browser import fill, load, milliseconds, open_browser, played, speak, stats
from tests.conftest import FunctionServer, ServerFactory
from tests.jobs_fleet import document

ARTIFACTS = REPO / "tests" / "artifacts" / "page"
KOKORO_RATE = 24_000
# Three sentences: the first is heard while the others are synthesized.
CHINESE = "今天天气很好。我们一起去公园散步吧。晚上再回家吃饭，好不好？"
LEXICONS = REPO / "tests" / "data" / "lexicons"


@pytest.fixture(scope="module")
def deployment(start_server: ServerFactory, tmp_path_factory: pytest.TempPathFactory) -> FunctionServer:
    """The default engines (hibari, Kokoro), the tests' lexicons, and jobs pushed to an event instance."""
    env = {
        "TTS_OUTPUT_URI": str(tmp_path_factory.mktemp("page-out")),
        "TTS_JOB_PART_CHARS": "300",
        "TTS_LEXICON_DIR": str(LEXICONS),
    }
    worker = start_server("synthesize_event", **env)
    return start_server(**env, TTS_JOBS_PUSH_URLS=worker.url)


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    driver = open_browser(1000, 1400)
    yield driver
    driver.quit()


def screenshot(browser: WebDriver, name: str) -> Path:
    """The whole page, not only the window, as a PNG under ARTIFACTS."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = browser.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    path = ARTIFACTS / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def console_errors(browser: WebDriver) -> list[dict]:
    return [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def load_averages() -> str:
    return " ".join(f"{load:.2f}" for load in os.getloadavg())


class Markup(HTMLParser):
    """What the CSP forbids that the HTML could still hold: inline scripts, styles and handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_script = tag == "script"
        if tag == "script":
            self.scripts.append(dict(attrs))
        if tag == "style":
            self.inline.append("<style>")
        self.inline += [name for name, _ in attrs if name == "style" or name.startswith("on")]

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append(f"script body {data[:40]!r}")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False


def test_the_page_and_its_files_carry_a_strict_csp_and_no_inline_code(deployment: FunctionServer) -> None:
    page = requests.get(deployment.url, timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    markup = Markup()
    markup.feed(page.text)
    assert markup.inline == []
    assert markup.scripts and all(script.get("src", "").startswith("/page/") for script in markup.scripts)
    for path in ("/", "/page/app.js", "/page/player.js", "/page/style.css", "/page/config.json"):
        policy = requests.get(deployment.url + path, timeout=10).headers["Content-Security-Policy"]
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
        assert directives["default-src"] == "'self'" and "unsafe" not in policy
        assert "script-src" not in directives and "style-src" not in directives  # 'self' only
    # Nothing from elsewhere: every URL the files name is this origin's.
    for path in ("/", "/page/app.js", "/page/style.css"):
        text = requests.get(deployment.url + path, timeout=10).text
        assert "http://" not in text and "https://" not in text, path


def test_the_page_loads_without_console_errors_and_lists_voices_by_language(
    browser: WebDriver, deployment: FunctionServer
) -> None:
    load(browser, deployment.url)
    groups = {
        group.get_attribute("label"): [
            o.get_attribute("value") for o in group.find_elements(By.TAG_NAME, "option")
        ]
        for group in browser.find_elements(By.CSS_SELECTOR, "#voice optgroup")
    }
    voices = requests.get(f"{deployment.url}/voices", timeout=10).json()
    assert len(groups) == len(voices["languages"])
    mandarin = next(ids for label, ids in groups.items() if "(zh-CN)" in label)
    assert "zf_xiaobei" in mandarin and "heart" not in mandarin
    assert any("heart" in ids for label, ids in groups.items() if "(en-US)" in label)
    Select(browser.find_element(By.ID, "voice")).select_by_value("zf_xiaobei")
    assert "Mandarin Chinese" in browser.find_element(By.ID, "voice-description").text
    screenshot(browser, "01-loaded")
    assert console_errors(browser) == []


def test_chinese_text_plays_as_it_streams_and_shows_what_it_cost(
    browser: WebDriver, deployment: FunctionServer
) -> None:
    load(browser, deployment.url)
    speak(browser, "zf_xiaobei", CHINESE)
    seconds = played(browser)
    screenshot(browser, "02-played-chinese")
    shown = stats(browser)
    assert shown["Engine"] == "kokoro" and shown["Voice"] == "zf_xiaobei"
    assert shown["Characters"] == str(len(CHINESE))
    assert shown["Cached"] == "no"
    first_sound, total = milliseconds(shown["Time to first sound"]), milliseconds(shown["Synthesis time"])
    print(
        f"Kokoro, 3 Mandarin sentences, in Chromium: first byte {shown['Time to first byte']}, first sound "
        f"{first_sound:.0f} ms, last byte {total:.0f} ms, {seconds:.2f} s of audio, cold start "
        f"{shown['Cold start']}; {cpu_model()}, load averages {load_averages()}"
    )
    assert first_sound < total, "the first sentence should sound before the last is synthesized"
    assert shown["Estimated cost"].startswith("$") and float(shown["Estimated cost"][1:].split()[0]) > 0

    # What played is the stored audio, whole: the same duration, and speech.
    name = browser.find_element(By.ID, "download").get_attribute("download")
    stored = decode(requests.get(f"{deployment.url}/audio/{name}", timeout=10).content)
    assert_speech(stored, KOKORO_RATE, min_s=2)
    assert seconds == pytest.approx(stored.duration_s, abs=0.001)
    # The replay element holds it too, and plays to its end.
    replayed = browser.execute_async_script(
        """const done = arguments[arguments.length - 1];
        const audio = document.getElementById("replay");
        audio.playbackRate = 4;
        audio.addEventListener("ended", () => done(audio.duration), { once: true });
        audio.play().catch((error) => done(String(error)));"""
    )
    assert replayed == pytest.approx(stored.duration_s, abs=0.01)
    # Spoken again: from storage.
    speak(browser, "zf_xiaobei", CHINESE)
    assert played(browser) == pytest.approx(seconds, abs=0.001)
    assert stats(browser)["Cached"].startswith("yes")
    assert console_errors(browser) == []


# pcm streams through Web Audio as wav does (no header to skip), and replays wrapped in a WAV;
# mp3 and flac (sent whole) play in the audio element once stored. mp3's decoders disagree on
# its padding by a few tens of ms.
@pytest.mark.parametrize(("fmt", "tolerance_s"), [("pcm", 0.001), ("mp3", 0.05), ("flac", 0.001)])
def test_every_format_plays_with_the_stored_duration(
    browser: WebDriver, deployment: FunctionServer, fmt: str, tolerance_s: float
) -> None:
    load(browser, deployment.url)
    speak(browser, "heart", f"This {fmt} file is played, then kept for download.", fmt=fmt)
    seconds = played(browser)
    name = browser.find_element(By.ID, "download").get_attribute("download")
    assert name.endswith(f".{fmt}")
    stored = decode(requests.get(f"{deployment.url}/audio/{name}", timeout=10).content, fmt, pcm_rate=24_000)
    assert_speech(stored, 24_000, min_s=1)
    assert seconds == pytest.approx(stored.duration_s, abs=tolerance_s)
    replayed = browser.execute_async_script(
        """const done = arguments[arguments.length - 1];
        const audio = document.getElementById("replay");
        if (audio.readyState >= 1) done(audio.duration);
        else audio.addEventListener("loadedmetadata", () => done(audio.duration), { once: true });"""
    )
    assert replayed == pytest.approx(stored.duration_s, abs=tolerance_s)
    assert stats(browser)["Engine"] == "hibari"
    assert console_errors(browser) == []


def test_an_unsupported_language_shows_the_apis_own_error(
    browser: WebDriver, deployment: FunctionServer
) -> None:
    load(browser, deployment.url)
    speak(browser, "", "Привет, как у тебя сегодня дела?")
    error = browser.find_element(By.ID, "error")
    WebDriverWait(browser, 30).until(lambda _: error.is_displayed())
    refusal = requests.post(
        f"{deployment.url}/synthesize", json={"text": "Привет, как у тебя сегодня дела?"}, timeout=10
    ).json()["error"]
    assert refusal["code"] == "unsupported_language" and "ru" in refusal["detected"]
    assert refusal["message"] in error.text and "unsupported_language" in error.text
    assert not browser.find_element(By.ID, "result").is_displayed()  # no blank player
    screenshot(browser, "03-unsupported-language")


def test_ssml_and_lexicons_are_sent_as_the_caller_marked_them_up(
    browser: WebDriver, deployment: FunctionServer
) -> None:
    load(browser, deployment.url)
    browser.find_element(By.ID, "ssml").click()
    speak(browser, "heart", '<speak>Ready.<break time="1500ms"/>Go.</speak>')
    seconds = played(browser)
    name = browser.find_element(By.ID, "download").get_attribute("download")
    stored = decode(requests.get(f"{deployment.url}/audio/{name}", timeout=10).content)
    assert seconds == pytest.approx(stored.duration_s, abs=0.001)
    # The break is in the audio: silence about as long as the one asked for (10 ms windows).
    assert longest_silence_s(stored.samples, 24_000) >= 1.45
    # Markup the API refuses shows its own error, naming the element; so does an unknown lexicon.
    speak(browser, "heart", "<speak>Hello <blink>there</blink>.</speak>")
    error = browser.find_element(By.ID, "error")
    WebDriverWait(browser, 30).until(lambda _: error.is_displayed())
    assert "invalid_ssml" in error.text and "blink" in error.text
    browser.find_element(By.ID, "ssml").click()
    fill(browser, "lexicons", "names, nowhere")
    speak(browser, "heart", "The W3C writes the standards.")
    WebDriverWait(browser, 30).until(lambda _: "unknown_lexicon" in error.text)
    assert "nowhere" in error.text
    # With the lexicons it has, the alias is read: longer than the letters.
    fill(browser, "lexicons", "names")
    speak(browser, "heart", "The W3C writes the standards.")
    with_alias = played(browser)
    fill(browser, "lexicons", "")
    speak(browser, "heart", "The W3C writes the standards.")
    assert with_alias > played(browser) + 0.5
    # The refusals above are logged by the browser as failed loads (400s): no script error beside them.
    assert [e for e in console_errors(browser) if e["source"] != "network"] == []


def test_a_job_shows_its_progress_until_the_audio_is_ready(
    browser: WebDriver, deployment: FunctionServer
) -> None:
    load(browser, deployment.url)
    Select(browser.find_element(By.ID, "voice")).select_by_value("heart")
    Select(browser.find_element(By.ID, "format")).select_by_value("wav")
    browser.execute_script(
        """window.jobStatuses = [];
        const status = document.getElementById("job-status");
        new MutationObserver(() => jobStatuses.push(status.textContent))
          .observe(status, { childList: true, characterData: true, subtree: true });"""
    )
    browser.execute_script("document.getElementById('job-text').value = arguments[0]", document(8))
    browser.find_element(By.ID, "submit-job").click()
    status = browser.find_element(By.ID, "job-status")
    WebDriverWait(browser, 120).until(lambda _: "is ready" in status.text or "failed" in status.text)
    assert not browser.find_element(By.ID, "job-error").is_displayed(), browser.find_element(
        By.ID, "job-error"
    ).text
    screenshot(browser, "04-job-done")
    progress = browser.find_element(By.ID, "job-progress")
    parts = int(progress.get_attribute("max"))
    assert parts >= 2 and int(progress.get_attribute("value")) == parts
    statuses = browser.execute_script("return jobStatuses")
    assert any("(running)" in text for text in statuses), statuses
    job_id = status.text.split()[1].rstrip(":")
    manifest = requests.get(f"{deployment.url}/jobs/{job_id}", timeout=10).json()
    duration = browser.execute_async_script(
        """const done = arguments[arguments.length - 1];
        const audio = document.getElementById("job-audio");
        if (audio.readyState >= 1) done(audio.duration);
        else audio.addEventListener("loadedmetadata", () => done(audio.duration), { once: true });"""
    )
    assert duration == pytest.approx(manifest["duration_s"], abs=0.01)
    assert console_errors(browser) == []


def test_on_a_phone_the_page_fits_and_is_usable_by_keyboard(deployment: FunctionServer) -> None:
    phone = open_browser(390, 844, phone=True)
    try:
        load(phone, deployment.url)
        assert phone.execute_script("return window.innerWidth") == 390
        assert phone.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
        screenshot(phone, "05-phone")
        unlabelled = phone.execute_script(
            "return [...document.querySelectorAll('input, select, textarea')]"
            ".filter((e) => !e.labels.length).map((e) => e.id)"
        )
        assert unlabelled == []
        # Tab goes through the controls in reading order.
        order = []
        body = phone.find_element(By.TAG_NAME, "body")
        body.send_keys(Keys.TAB)
        for _ in range(11):
            order.append(phone.switch_to.active_element.get_attribute("id"))
            phone.switch_to.active_element.send_keys(Keys.TAB)
        assert order == [
            "key",
            "use-key",
            "voice",
            "text",
            "ssml",
            "lexicons",
            "format",
            "speed",
            "speak",
            "job-text",
            "submit-job",
        ]
        assert phone.execute_script(CONTRAST) == []
    finally:
        phone.quit()


# Text whose contrast against its background is below 4.5:1 (WCAG AA), as "selector ratio".
CONTRAST = """
const luminance = (rgb) => {
  const [r, g, b] = rgb.match(/[\\d.]+/g).slice(0, 3).map((c) => {
    c /= 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
};
const background = (element) => {
  for (let e = element; e; e = e.parentElement) {
    const colour = getComputedStyle(e).backgroundColor;
    if (!colour.startsWith("rgba(0, 0, 0, 0)")) return colour;
  }
  return "rgb(255, 255, 255)";
};
const low = [];
const texts = "h1, h2, p, label, .hint, button, select, textarea, input, .error, dt, dd";
for (const e of document.querySelectorAll(texts)) {
  const [a, b] = [luminance(getComputedStyle(e).color), luminance(background(e))];
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  if (ratio < 4.5) low.push(`${e.tagName}#${e.id}.${e.className} ${ratio.toFixed(2)}`);
}
return low;
"""


@pytest.fixture(scope="module")
def keyed(
    start_server: ServerFactory, tmp_path_factory: pytest.TempPathFactory
) -> tuple[FunctionServer, str]:
    """A deployment with an API key (hibari only), and the key."""
    key, key_id = auth.new_key()
    keys = json.dumps({"keys": [{"id": key_id, "sha256": auth.digest(key)}]})
    out = tmp_path_factory.mktemp("page-keyed-out")
    return start_server(TTS_OUTPUT_URI=str(out), TTS_ENGINES="hibari", TTS_API_KEYS=keys), key


def test_with_keys_the_page_refuses_without_one_and_works_with_it(
    browser: WebDriver, keyed: tuple[FunctionServer, str]
) -> None:
    server, key = keyed
    assert requests.get(server.url, timeout=10).status_code == 200  # the page itself is open
    assert requests.get(f"{server.url}/voices", timeout=10).status_code == 401
    load(browser, server.url)
    browser.execute_script("sessionStorage.clear()")
    load(browser, server.url)
    error = browser.find_element(By.ID, "error")
    assert error.is_displayed() and "missing_api_key" in error.text and "HTTP 401" in error.text
    screenshot(browser, "06-keys-refused")
    assert not browser.find_elements(By.CSS_SELECTOR, "#voice optgroup")

    fill(browser, "key", key)
    browser.find_element(By.ID, "key-form").submit()
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#voice option[value=heart]"))
    assert browser.execute_script("return sessionStorage.getItem('serverless-tts.key')") == key
    speak(browser, "heart", "The key opened the door. Then the page spoke.")
    assert played(browser) > 1
    screenshot(browser, "07-keys-played")

    fill(browser, "key", "")
    browser.find_element(By.ID, "key-form").submit()
    speak(browser, "", "Without the key it is refused.")
    WebDriverWait(browser, 10).until(lambda _: "missing_api_key" in error.text)
    # Only the browser's own note of the 401s: nothing the page did wrong.
    assert all("401" in entry["message"] for entry in console_errors(browser))


def test_a_deployment_can_turn_the_page_off(start_server: ServerFactory, local_out: Path) -> None:
    server = start_server(TTS_OUTPUT_URI=str(local_out), TTS_ENGINES="hibari", TTS_PAGE="false")
    for path in ("/", "/page/app.js", "/page/config.json", "/audio/" + "0" * 40 + ".wav"):
        response = requests.get(server.url + path, timeout=10)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found", path
    assert requests.get(f"{server.url}/voices", timeout=10).status_code == 200


def test_stored_audio_is_served_by_content_address_only(deployment: FunctionServer) -> None:
    spoken = requests.post(
        f"{deployment.url}/synthesize", json={"text": "Stored.", "voice": "heart"}, timeout=30
    )
    name = spoken.json()["object"]
    stored = requests.get(f"{deployment.url}/audio/{name}", timeout=10)
    assert stored.status_code == 200 and stored.headers["Content-Type"] == "audio/wav"
    assert decode(stored.content).duration_s == pytest.approx(spoken.json()["duration_s"], abs=0.001)
    missing = requests.get(f"{deployment.url}/audio/{'0' * 40}.wav", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "audio_not_found"
    for name in ("job.json", "..%2F..%2Fetc%2Fpasswd", f"{'0' * 40}.exe", f".meta%2F{'0' * 40}.wav"):
        refused = requests.get(f"{deployment.url}/audio/{name}", timeout=10)
        assert refused.status_code in (400, 404), name
        assert refused.json()["error"]["field"] == "name" if refused.status_code == 400 else True


def test_the_marks_hook_highlights_the_sentence_being_heard(
    browser: WebDriver, deployment: FunctionServer
) -> None:
    """The page's highlighting of speech marks (issue 26), which this deployment does not make yet:
    the module is given marks of the shape the marks work stores and a clock the test moves."""
    load(browser, deployment.url)
    highlighted = browser.execute_async_script(
        """const done = arguments[arguments.length - 1];
        import("/page/marks.js").then(({ followMarks, marksSupported }) => {
          const marks = [
            { type: "sentence", start_s: 0, end_s: 1.2, start: 0, end: 7, value: "今天天气很好。" },
            { type: "word", start_s: 0, end_s: 0.4, start: 0, end: 2, value: "今天" },
            { type: "sentence", start_s: 1.2, end_s: 2.5, start: 7, end: 16, value: "我们去公园散步吧。" },
          ];
          const box = document.getElementById("transcript");
          let now = 1.5;
          followMarks(box, "今天天气很好。我们去公园散步吧。", marks, () => now);
          const first = [...box.children].map((s) => [s.textContent, s.classList.contains("spoken")]);
          now = null;
          requestAnimationFrame(() => requestAnimationFrame(() => done({
            first,
            after: [...box.querySelectorAll(".spoken")].length,
            supported: [marksSupported({}), marksSupported(
              { components: { schemas: { SpeakRequest: { properties: { marks: {} } } } } })],
          })));
        });"""
    )
    assert highlighted["first"] == [["今天天气很好。 ", False], ["我们去公园散步吧。 ", True]]
    assert highlighted["after"] == 0  # the clock stopped: nothing is being heard
    assert highlighted["supported"] == [False, True]
