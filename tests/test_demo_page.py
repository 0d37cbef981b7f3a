"""The demo page in a real browser: the real server on a free port, driven through headless Chromium."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from socketio.packet import BINARY_EVENT, CONNECT, CONNECT_ERROR, DISCONNECT, EVENT, Packet

from browser import missing_browser_reason
from server_process import ServerProcess, free_port
from support import CATEGORIES, base_config, chromium, edit_config, write_config

_missing = missing_browser_reason()
if _missing is not None:
    # A developer without Chromium gets a skip; CI must always run these tests.
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true, so the browser tests must run, but {_missing}", pytrace=False)
    pytest.skip(_missing, allow_module_level=True)

from playwright.sync_api import Browser, Locator, Page, Request, Route, WebSocket, expect  # noqa: E402

pytestmark = pytest.mark.browser

CATEGORY_NAMES = [name for _, name in CATEGORIES]
SPARKLINE_POINTS = 60
LOG_LIMIT = 200


# A replay of a plain-text, a binary and a JSON frame (recorded-file syntax, sent one per interval).
MIXED_FRAMES = (
    '{"t": 0, "text": "plain <i>text</i>"}\n'
    '{"t": 1, "b64": "AAEC/w=="}\n'
    '{"t": 2, "data": {"after": "json"}}\n'
)


def write_demo_config(folder: Path) -> Path:
    """The default streams' shape at test speed, plus a non-stats stream, a very fast one and a mixed replay."""
    (folder / "mixed.jsonl").write_text(MIXED_FRAMES, encoding="utf-8")
    data = edit_config(base_config(), stats={"interval_ms": 30}, replay=None)
    data["streams"] += [
        {"name": "other", "path": "/other", "source": "random", "interval_ms": 50,
         "template": {"seq": {"$seq": True}, "level": {"$choice": ["low", "high"]}, "markup": "<b>bold</b>"}},
        {"name": "fast", "path": "/fast", "source": "random", "interval_ms": 10, "template": {"seq": {"$seq": True}}},
        {"name": "mixed", "path": "/mixed", "source": "replay", "file": "mixed.jsonl", "interval_ms": 50},
    ]
    return write_config(folder, data)


THOUSANDS = re.compile(r"^\d{1,3}(,\d{3})*$")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


def serving(tmp_path_factory: pytest.TempPathFactory, name: str,
            write: Callable[[Path], Path]) -> Iterator[ServerProcess]:
    """`python server.py` on the config ``write`` puts in a fresh folder, for a module's tests."""
    folder = tmp_path_factory.mktemp(name)
    with ServerProcess(write(folder), free_port(), folder / "server.log") as server:
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from serving(tmp_path_factory, "demo-server", write_demo_config)


SUBSCRIBE = '{"method":"SUBSCRIBE","params":["ticker"],"id":1}'
UNSUBSCRIBE = '{"method":"UNSUBSCRIBE","params":["ticker"],"id":2}'
STOMP_SUBSCRIBE = "SUBSCRIBE\r\nid:0\r\ndestination:/topic/ticker\r\n\r\n\0"
TOKEN = "letmein"


def write_rules_config(folder: Path) -> Path:
    """Paths that answer by rules: a JSON subscribe endpoint, a STOMP-ish one, one that needs a token, a stream."""
    envelope = {"stream": {"$stream": True}, "data": {"$frame": True}}
    data = edit_config(base_config(), stats={"interval_ms": 1000}, replay=None)
    data["streams"] += [
        {"name": "ticker", "source": "random", "interval_ms": 30, "template": {"seq": {"$seq": True}}},  # a topic
        {"name": "chat", "path": "/chat", "source": "random", "interval_ms": 1000, "template": {"n": 1},
         "rules": [{"match": {"text": "ping"}, "example": "ping", "do": [{"reply": "pong"}]}]},
    ]
    data["endpoints"] = [
        {"path": "/ws", "rules": [
            {"match": {"json": {"method": "SUBSCRIBE"}}, "example": json.loads(SUBSCRIBE), "do": [
                {"subscribe": {"stream": "{{message.params.0}}", "envelope": envelope}},
                {"reply": {"result": None, "id": {"$message": "id"}}}]},
            {"match": {"json": {"method": "UNSUBSCRIBE"}}, "example": json.loads(UNSUBSCRIBE), "do": [
                {"unsubscribe": {"stream": "{{message.params.0}}"}},
                {"reply": {"result": None, "id": {"$message": "id"}}}]},
        ]},
        {"path": "/stomp", "rules": [
            {"match": {"regex": "^SUBSCRIBE\r\n"}, "example": STOMP_SUBSCRIBE, "do": [{"reply": "RECEIPT"}]},
        ], "fallback": [{"reply": "ERROR {{message}}"}]},
        {"path": "/secure", "auth": {"query": "token", "values": [TOKEN]},
         "rules": [{"match": {"text": "hi"}, "example": "hi", "do": [{"reply": "hello"}]}]},
    ]
    return write_config(folder, data)


@pytest.fixture(scope="module")
def rules_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from serving(tmp_path_factory, "rules-server", write_rules_config)


@contextmanager
def open_page(browser: Browser, **context_options: Any) -> Iterator[Page]:
    """A page in a fresh browser context (en-US, 1280x900 unless overridden); fails on uncaught page errors."""
    options = {"locale": "en-US", "viewport": {"width": 1280, "height": 900}, **context_options}
    context = browser.new_context(**options)
    errors: list[Exception] = []
    try:
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(error))
        yield page
    finally:
        context.close()
    assert errors == [], f"uncaught errors in the page: {errors}"


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    with open_page(browser) as page:
        yield page


class SocketRecorder:
    """Every WebSocket the page opens, and the text frames each one received."""

    def __init__(self, page: Page) -> None:
        self.sockets: list[WebSocket] = []
        self.frames: dict[str, list[str]] = {}
        page.on("websocket", self._opened)

    def _opened(self, socket: WebSocket) -> None:
        self.sockets.append(socket)
        received = self.frames.setdefault(socket.url, [])
        socket.on("framereceived", lambda payload: received.append(payload))

    def urls(self) -> list[str]:
        return [socket.url for socket in self.sockets]


def status(page: Page) -> Locator:
    return page.get_by_test_id("connection-status")


def sparkline_point_counts(page: Page) -> list[int]:
    return page.eval_on_selector_all(
        "[data-testid=sparkline-line]",
        "lines => lines.map(l => (l.getAttribute('points') || '').trim().split(/\\s+/).filter(Boolean).length)",
    )


def test_page_lists_the_streams_and_connects_to_the_first(page: Page, server: ServerProcess) -> None:
    sockets = SocketRecorder(page)
    page.goto(server.url)

    picker = page.get_by_test_id("stream-picker")
    expect(picker.locator("option")).to_have_text(["stats (/)", "other (/other)", "fast (/fast)", "mixed (/mixed)"])
    expect(picker).to_have_value("stats")
    expect(status(page)).to_have_attribute("data-state", "open")
    expect(status(page)).to_have_text("open")
    assert sockets.urls() == [f"ws://127.0.0.1:{server.port}/"]
    expect(page.get_by_test_id("fact-interval")).to_have_text("every 30 ms")
    expect(page.get_by_test_id("snippet-code")).to_contain_text(f"new WebSocket('ws://127.0.0.1:{server.port}/');")


def test_stats_frames_show_one_card_per_category_with_a_60_point_sparkline(page: Page, server: ServerProcess) -> None:
    page.goto(server.url)

    cards = page.get_by_test_id("card")
    expect(cards).to_have_count(len(CATEGORY_NAMES))
    expect(cards.get_by_test_id("card-name")).to_have_text(CATEGORY_NAMES)
    first_value = cards.first.get_by_test_id("card-today").text_content()
    expect(cards.first.get_by_test_id("card-today")).not_to_have_text(first_value)  # it updates

    # Every sparkline reaches 60 points, and stays at 60 (the last 60 frames) as more frames arrive.
    page.wait_for_function(
        "n => [...document.querySelectorAll('[data-testid=sparkline-line]')]"
        ".every(l => l.getAttribute('points').trim().split(/\\s+/).length === n)",
        arg=SPARKLINE_POINTS,
        timeout=10_000,
    )
    frames_then = int(page.get_by_test_id("count-in").text_content().replace(",", ""))
    page.wait_for_function(
        "n => Number(document.querySelector('[data-testid=count-in]').textContent.replace(/,/g, '')) >= n",
        arg=frames_then + 10,
    )
    assert sparkline_point_counts(page) == [SPARKLINE_POINTS] * len(CATEGORY_NAMES)


def test_cards_show_a_received_frame_with_thousands_separators_and_change(page: Page, server: ServerProcess) -> None:
    sockets = SocketRecorder(page)
    page.goto(server.url)
    expect(page.get_by_test_id("card")).to_have_count(len(CATEGORY_NAMES))

    # One snapshot of every card (taken in a single JS task, so all from the same draw) ...
    shown = page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('[data-testid=card]')].map((card) => {
            const text = (id) => card.querySelector(`[data-testid=${id}]`).textContent;
            const change = card.querySelector('[data-testid=card-change]');
            return [card.dataset.key, {name: text('card-name'), today: text('card-today'),
                    yesterday: text('card-yesterday'), change: change.textContent,
                    direction: change.dataset.direction}];
        }))"""
    )
    # ... shows one of the frames the socket received.
    frames = [json.loads(payload) for payload in sockets.frames[f"ws://127.0.0.1:{server.port}/"]]
    matching = [
        frame
        for frame in frames
        if all(f"{frame[key]['toadyValue']:,}" == card["today"] for key, card in shown.items())
    ]
    assert matching, f"no received frame matches the cards {shown}"
    frame = matching[-1]
    assert set(shown) == set(frame) == {key for key, _ in CATEGORIES}

    for key, card in shown.items():
        today, yesterday = frame[key]["toadyValue"], frame[key]["yesterdayValue"]
        assert card["name"] == frame[key]["name"]
        assert THOUSANDS.match(card["today"]) and THOUSANDS.match(card["yesterday"])
        assert card["yesterday"] == f"{yesterday:,}"
        if yesterday == 0:
            assert card["direction"] == "flat"
            continue
        expected_percent = (today - yesterday) / yesterday * 100
        percent = re.fullmatch(r"[▲▼•] ([+-]?[\d,.]+)%", card["change"])
        assert percent, card["change"]
        assert abs(float(percent.group(1).replace(",", "")) - expected_percent) <= 0.05 + 1e-9
        assert card["direction"] == ("up" if today > yesterday else "down" if today < yesterday else "flat")


def test_sent_message_is_echoed_in_the_log_as_text(page: Page, server: ServerProcess) -> None:
    page.goto(server.url)
    expect(status(page)).to_have_attribute("data-state", "open")

    message = 'hello <img src=x onerror="window.injected = true">'
    send_box = page.get_by_test_id("send-input")
    send_box.fill(message)
    send_box.press("Enter")

    log = page.get_by_test_id("log")
    sent = log.locator("[data-direction=out]")
    expect(sent).to_have_count(1)
    expect(sent.get_by_test_id("log-body")).to_have_text(message)
    echo = log.locator("[data-direction=in] [data-testid=log-body]", has_text="web socket 已连接: ")
    expect(echo).to_have_text(f"web socket 已连接: {message}")
    expect(send_box).to_have_value("")
    expect(page.get_by_test_id("count-out")).to_have_text("1")
    # Rendered as text: no element was created from the markup and no handler ran.
    assert log.locator("img").count() == 0
    assert page.evaluate("window.injected") is None


def test_switching_streams_reconnects_and_shows_other_frames_as_json(page: Page, server: ServerProcess) -> None:
    sockets = SocketRecorder(page)
    page.goto(server.url)
    expect(page.get_by_test_id("card")).to_have_count(len(CATEGORY_NAMES))

    with page.expect_websocket(lambda socket: socket.url.endswith("/other")):
        page.get_by_test_id("stream-picker").select_option("other")

    expect(status(page)).to_have_attribute("data-state", "open")
    assert sockets.urls() == [f"ws://127.0.0.1:{server.port}/", f"ws://127.0.0.1:{server.port}/other"]
    if not sockets.sockets[0].is_closed():
        sockets.sockets[0].wait_for_event("close")  # the first stream's socket is closed, not leaked
    expect(page).to_have_url(f"{server.url}other")
    expect(page.get_by_test_id("cards")).to_be_hidden()
    body = page.get_by_test_id("frame-body")
    expect(body).to_be_visible()
    expect(body.locator(".json-key").first).to_have_text('"seq"')
    expect(body).to_contain_text('"markup": "<b>bold</b>"')
    assert body.locator("b").count() == 0
    expect(page.get_by_test_id("snippet-code")).to_contain_text(f"new WebSocket('ws://127.0.0.1:{server.port}/other');")


def test_text_and_binary_frames_are_logged_as_text_with_their_size(page: Page, server: ServerProcess) -> None:
    page.goto(f"{server.url}mixed")

    log = page.get_by_test_id("log")
    text = log.locator("[data-direction=in]", has_text="plain <i>text</i>").first
    expect(text.get_by_test_id("log-body")).to_have_text("plain <i>text</i>")
    expect(text.locator(".log-size")).to_have_text("17 B")
    binary = log.locator("[data-direction=in]", has_text="binary:").first
    expect(binary.get_by_test_id("log-body")).to_have_text("binary: 00 01 02 ff")
    expect(binary.locator(".log-size")).to_have_text("4 B")
    assert log.locator("i").count() == 0
    # Once JSON has arrived the panel keeps showing the latest JSON frame, not the text between.
    expect(page.get_by_test_id("frame-kind")).to_have_text("JSON · 16 B")
    expect(page.get_by_test_id("frame-body")).to_have_text('{\n  "after": "json"\n}')


def test_stream_facts_show_paused_and_enabled_faults_when_the_api_reports_them(page: Page,
                                                                               server: ServerProcess) -> None:
    """The fields come from later server versions; here the API answer is extended in the browser."""

    def with_state(route: Route) -> None:
        streams = route.fetch().json()
        extra = {
            "stats": {"paused": True, "faults": {"drop_rate": 0.25, "delay_ms": 0, "disconnect": False}},
            "other": {"paused": False, "faults": {"drop_rate": 0, "corrupt": False}},
            "fast": {"paused": False, "faults": None},
        }
        route.fulfill(json=[{**stream, **extra.get(stream["name"], {})} for stream in streams])

    page.route("**/api/streams", with_state)
    try:
        page.goto(server.url)
        expect(page.get_by_test_id("fact-paused")).to_have_text("paused")
        expect(page.get_by_test_id("fact-faults")).to_have_text("faults on (drop_rate: 0.25)")
        for name in ("other", "fast"):  # everything off, or no faults at all: no badges
            page.get_by_test_id("stream-picker").select_option(name)
            expect(page.get_by_test_id("fact-source")).to_be_visible()
            expect(page.get_by_test_id("fact-paused")).to_have_count(0)
            expect(page.get_by_test_id("fact-faults")).to_have_count(0)
    finally:
        # The page refreshes the list every few seconds: no handler may run while the page closes.
        page.unroute_all(behavior="wait")


def test_page_opened_at_a_stream_path_preselects_that_stream(page: Page, server: ServerProcess) -> None:
    with page.expect_websocket() as first_socket:
        page.goto(f"{server.url}other")

    expect(page.get_by_test_id("stream-picker")).to_have_value("other")
    assert first_socket.value.url == f"ws://127.0.0.1:{server.port}/other"


def write_params_config(folder: Path) -> Path:
    """A parameterized stream with an enum of values, and one that takes any value (an AsyncAPI import's shape)."""
    return write_config(folder, {"server": base_config()["server"], "streams": [
        {"name": "md", "path": "/v1/marketdata/{symbol}", "source": "random", "interval_ms": 50,
         "params": {"symbol": {"enum": ["BTC-USD", "ETH-USD"]}}, "template": {"symbol": {"$param": "symbol"}}},
        {"name": "rooms", "path": "/rooms/{room}", "source": "random", "interval_ms": 50,
         "template": {"room": {"$param": "room"}}}]})


@pytest.fixture(scope="module")
def params_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from serving(tmp_path_factory, "params-server", write_params_config)


def test_a_parameterized_stream_is_listed_once_per_allowed_value_and_each_connects_to_its_value(
        page: Page, params_server: ServerProcess) -> None:
    sockets = SocketRecorder(page)
    page.goto(params_server.url)
    picker = page.get_by_test_id("stream-picker")
    expect(picker.locator("option")).to_have_text([
        "md (/v1/marketdata/BTC-USD)", "md (/v1/marketdata/ETH-USD)",
        "rooms (/rooms/{room}): open this page at a value's path to watch it"])
    expect(picker.locator("option").nth(2)).to_be_disabled()
    expect(status(page)).to_have_attribute("data-state", "open")
    picker.select_option("/v1/marketdata/ETH-USD")
    expect(page.get_by_test_id("log").get_by_text('{"symbol":"ETH-USD"}').first).to_be_visible()
    base = f"ws://127.0.0.1:{params_server.port}"
    assert sockets.urls() == [f"{base}/v1/marketdata/BTC-USD", f"{base}/v1/marketdata/ETH-USD"]


def test_a_page_opened_at_a_value_of_a_parameterized_stream_watches_that_value(
        page: Page, params_server: ServerProcess) -> None:
    with page.expect_websocket() as first_socket:
        page.goto(f"{params_server.url}rooms/kitchen")
    picker = page.get_by_test_id("stream-picker")
    expect(picker).to_have_value("/rooms/kitchen")
    expect(picker.locator("option")).to_have_text([
        "md (/v1/marketdata/BTC-USD)", "md (/v1/marketdata/ETH-USD)", "rooms (/rooms/kitchen)"])
    expect(page.get_by_test_id("log").get_by_text('{"room":"kitchen"}').first).to_be_visible()
    assert first_socket.value.url == f"ws://127.0.0.1:{params_server.port}/rooms/kitchen"
    page.wait_for_timeout(5500)  # the list is fetched again every 5 s: the value stays listed and selected
    expect(picker).to_have_value("/rooms/kitchen")


def test_a_value_of_a_parameterized_stream_is_watched_over_socketio_in_its_paths_namespace(
        page: Page, params_server: ServerProcess) -> None:
    page.goto(f"{params_server.url}v1/marketdata/BTC-USD?transport=socketio")
    expect(status(page)).to_have_attribute("data-state", "open")
    expect(page.get_by_test_id("log").get_by_text('{"symbol":"BTC-USD"}').first).to_be_visible()
    expect(page.get_by_test_id("snippet-code")).to_contain_text("/v1/marketdata/BTC-USD")


def test_disconnect_stays_closed_until_connect_is_pressed(page: Page, server: ServerProcess) -> None:
    sockets = SocketRecorder(page)
    page.goto(server.url)
    expect(status(page)).to_have_attribute("data-state", "open")
    toggle = page.get_by_test_id("connection-toggle")

    toggle.click()
    expect(status(page)).to_have_attribute("data-state", "closed")
    expect(status(page)).to_contain_text("1000")
    expect(toggle).to_have_text("Connect")
    page.wait_for_timeout(1000)  # twice the longest first backoff delay: an auto-reconnect would have begun
    expect(status(page)).to_have_attribute("data-state", "closed")
    assert len(sockets.sockets) == 1

    toggle.click()
    expect(status(page)).to_have_attribute("data-state", "open")
    expect(toggle).to_have_text("Disconnect")
    assert len(sockets.sockets) == 2


def test_log_keeps_the_200_newest_messages_newest_first(page: Page, server: ServerProcess) -> None:
    page.goto(f"{server.url}fast")
    page.wait_for_function(
        "n => Number(document.querySelector('[data-testid=count-in]').textContent.replace(/,/g, '')) > n",
        arg=LOG_LIMIT + 20,
    )
    page.get_by_test_id("log-pause").click()

    entries = page.get_by_test_id("log-entry")
    expect(entries).to_have_count(LOG_LIMIT)
    first = entries.first
    expect(first).to_have_attribute("data-direction", "in")
    expect(first.locator(".log-time")).to_have_text(re.compile(r"^\d\d:\d\d:\d\d\.\d{3}$"))
    expect(first.locator(".log-size")).to_have_text(re.compile(r"^\d+ B$"))
    bodies = page.locator("[data-direction=in] [data-testid=log-body]").all_text_contents()
    sequence = [json.loads(text)["seq"] for text in bodies]
    # Consecutive frames, newest first, ending at the latest: the oldest were dropped, not the newest.
    assert sequence == list(range(sequence[0], sequence[0] - LOG_LIMIT, -1))
    assert sequence[0] > LOG_LIMIT


def test_log_pause_freezes_it_and_clear_empties_it_while_counters_go_on(page: Page, server: ServerProcess) -> None:
    page.goto(f"{server.url}fast")
    entries = page.get_by_test_id("log-entry")
    expect(entries.nth(10)).to_be_attached()
    pause = page.get_by_test_id("log-pause")

    pause.click()
    expect(pause).to_have_text(re.compile(r"^Resume"))
    frozen = entries.count()
    count_in = page.get_by_test_id("count-in")
    received_then = count_in.text_content()
    expect(count_in).not_to_have_text(received_then)  # still receiving
    assert entries.count() == frozen

    page.get_by_test_id("log-clear").click()
    expect(entries).to_have_count(0)
    page.wait_for_timeout(200)
    expect(entries).to_have_count(0)

    pause.click()
    expect(pause).to_have_text("Pause")
    expect(entries.first).to_be_attached()
    rate = float(page.get_by_test_id("rate").text_content().replace(",", ""))
    assert 10 <= rate <= 150, rate  # the stream pushes every 10 ms


def test_copy_button_puts_the_snippet_on_the_clipboard(browser: Browser, server: ServerProcess) -> None:
    with open_page(browser, permissions=["clipboard-read", "clipboard-write"]) as page:
        page.goto(server.url)
        button = page.get_by_test_id("snippet-copy")
        button.click()
        expect(button).to_have_text("Copied")
        copied = page.evaluate("navigator.clipboard.readText()")
        assert copied == page.get_by_test_id("snippet-code").text_content()
        assert f"new WebSocket('ws://127.0.0.1:{server.port}/')" in copied


def test_restarted_server_shows_closed_then_the_page_reconnects(browser: Browser, tmp_path: Path) -> None:
    """Stopping the server (SIGTERM) closes the page's socket with 1001; it reconnects when the server is back."""
    server = ServerProcess(write_demo_config(tmp_path), free_port(), tmp_path / "server.log")
    try:
        server.start()
        with open_page(browser) as page:
            page.goto(server.url)
            expect(status(page)).to_have_attribute("data-state", "open")
            expect(page.get_by_test_id("card")).to_have_count(len(CATEGORY_NAMES))

            server.stop()
            expect(status(page)).to_have_attribute("data-state", "closed")
            closed = page.locator("[data-direction=event] [data-testid=log-body]", has_text="closed: ")
            expect(closed.last).to_have_text(re.compile(r"^closed: 1001 server shutting down; retrying in \d+\.\d s$"))
            expect(page.get_by_test_id("connection-retry")).to_have_text(re.compile(r"^retrying in \d+\.\d s$"))

            server.start()  # same port
            expect(status(page)).to_have_attribute("data-state", "open", timeout=15_000)
            frame_time = page.get_by_test_id("frame-time").text_content()
            expect(page.get_by_test_id("frame-time")).not_to_have_text(frame_time)  # frames flow again
    finally:
        server.stop()


LAYOUTS = {
    "laptop-light": {"viewport": {"width": 1280, "height": 900}, "color_scheme": "light"},
    "phone-dark": {"viewport": {"width": 390, "height": 844}, "color_scheme": "dark", "is_mobile": True},
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_page_fits_the_screen_without_sideways_scrolling_in_the_chosen_color_scheme(
    browser: Browser, server: ServerProcess, tmp_path: Path, layout: str
) -> None:
    """Also saves a full-page screenshot in the test's temporary folder, to look at when this fails."""
    options = LAYOUTS[layout]
    with open_page(browser, **options) as page:
        page.goto(server.url)
        expect(page.get_by_test_id("card")).to_have_count(len(CATEGORY_NAMES))
        shot = tmp_path / f"{layout}.png"
        page.screenshot(path=shot, full_page=True)
        assert shot.stat().st_size > 10_000

        assert page.evaluate("document.documentElement.scrollWidth") <= options["viewport"]["width"]
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        brightness = sum(int(c) for c in re.findall(r"\d+", background)[:3]) / 3
        if options["color_scheme"] == "dark":
            assert brightness < 64, background
        else:
            assert brightness > 192, background


def received(page: Page) -> list[str]:
    """The log's received messages, newest first."""
    return page.locator("[data-direction=in] [data-testid=log-body]").all_text_contents()


def test_picker_lists_rules_endpoints_but_not_topic_only_streams_and_an_endpoint_path_selects_one(
    page: Page, rules_server: ServerProcess
) -> None:
    with page.expect_websocket() as first_socket:
        page.goto(f"{rules_server.url}ws")

    picker = page.get_by_test_id("stream-picker")
    expect(picker.locator("optgroup")).to_have_count(2)
    expect(picker.locator("optgroup[label=Streams] option")).to_have_text(["stats (/)", "chat (/chat)"])
    expect(picker.locator("optgroup[label='Endpoints with rules'] option")).to_have_text(["/ws", "/stomp", "/secure"])
    expect(picker).to_have_value("/ws")
    assert first_socket.value.url == f"ws://127.0.0.1:{rules_server.port}/ws"
    expect(status(page)).to_have_attribute("data-state", "open")
    expect(page.get_by_test_id("fact-source")).to_have_text("rules endpoint")
    expect(page.get_by_test_id("fact-rules")).to_have_text("answers by 2 rules")
    expect(page.get_by_test_id("frame-empty")).to_contain_text("this endpoint sends what its rules answer")
    # The snippet sends what the endpoint expects, not a greeting it would ignore.
    expect(page.get_by_test_id("snippet-code")).to_contain_text(f"socket.send('{SUBSCRIBE}');")

    with page.expect_websocket(lambda socket: socket.url.endswith("/chat")):
        picker.select_option("chat")
    expect(page).to_have_url(f"{rules_server.url}chat")
    expect(page.get_by_test_id("fact-rules")).to_have_text("answers by 1 rule")
    expect(page.get_by_test_id("example")).to_have_text(["ping"])  # a stream's rules offer their examples too


def test_clicking_a_rule_example_fills_the_send_box_and_sending_it_subscribes(page: Page,
                                                                              rules_server: ServerProcess) -> None:
    """The confirmation arrives first, then the topic's frames in their envelope, until the unsubscribe."""
    page.goto(f"{rules_server.url}ws")
    expect(status(page)).to_have_attribute("data-state", "open")
    examples = page.get_by_test_id("example")
    expect(examples).to_have_text([SUBSCRIBE, UNSUBSCRIBE])
    expect(page.get_by_test_id("examples")).to_contain_text("click one to put it in the box")

    examples.first.click()
    send_box = page.get_by_test_id("send-input")
    expect(send_box).to_have_value(SUBSCRIBE)
    expect(send_box).to_be_focused()
    page.get_by_test_id("send-button").click()

    log = page.get_by_test_id("log")
    expect(log.locator("[data-direction=out] [data-testid=log-body]")).to_have_text([SUBSCRIBE])
    expect(send_box).to_have_value("")
    envelope = '{"stream":"ticker","data":{"seq":%d}}'
    expect(log.locator("[data-direction=in]", has_text=envelope % 3)).to_have_count(1)
    messages = received(page)
    confirmation = messages.index('{"result":null,"id":1}')
    assert messages[confirmation - 3:confirmation] == [envelope % 3, envelope % 2, envelope % 1]
    expect(page.get_by_test_id("frame-body")).to_contain_text('"stream": "ticker"')

    examples.nth(1).click()
    send_box.press("Enter")
    expect(log.locator("[data-direction=in]", has_text='{"result":null,"id":2}')).to_have_count(1)
    after_unsubscribe = len(received(page))
    page.wait_for_timeout(150)  # five intervals of the topic: no envelope may come any more
    assert len(received(page)) == after_unsubscribe


def test_a_multi_line_example_is_shown_on_one_line_and_sent_exactly_as_written(page: Page,
                                                                               rules_server: ServerProcess) -> None:
    """A STOMP frame keeps its CRLF line ends and NUL (a text box alone would turn CRLF into LF)."""
    sockets = SocketRecorder(page)
    page.goto(f"{rules_server.url}stomp")
    expect(status(page)).to_have_attribute("data-state", "open")
    sent: list[str] = []
    sockets.sockets[0].on("framesent", lambda payload: sent.append(payload))

    example = page.get_by_test_id("example")
    expect(example).to_have_text("SUBSCRIBE↵id:0↵destination:/topic/ticker↵↵␀")
    example.click()
    page.get_by_test_id("send-input").press("Enter")
    log = page.get_by_test_id("log")
    expect(log.locator("[data-direction=in] [data-testid=log-body]")).to_have_text(["RECEIPT"])
    assert sent == [STOMP_SUBSCRIBE]

    # Typed text: Shift+Enter is a line break, Enter sends.
    send_box = page.get_by_test_id("send-input")
    send_box.press_sequentially("a")
    send_box.press("Shift+Enter")
    send_box.press_sequentially("b")
    send_box.press("Enter")
    expect(log.locator("[data-direction=in] [data-testid=log-body]").first).to_have_text("ERROR a\nb")
    assert sent == [STOMP_SUBSCRIBE, "a\nb"]


def test_an_endpoint_that_needs_a_token_says_why_it_was_refused_and_takes_the_token_from_the_page_address(
    page: Page, rules_server: ServerProcess
) -> None:
    page.goto(f"{rules_server.url}secure")
    expect(page.get_by_test_id("fact-auth")).to_have_text("needs a token: ?token=")
    hint = page.get_by_test_id("connection-hint")
    expect(hint).to_contain_text("HTTP 401, missing token")
    expect(hint).to_contain_text("Open this page as /secure?token=…")
    expect(status(page)).to_contain_text("1006")

    with page.expect_websocket() as socket:
        page.goto(f"{rules_server.url}secure?token={TOKEN}")
    assert socket.value.url == f"ws://127.0.0.1:{rules_server.port}/secure?token={TOKEN}"
    expect(status(page)).to_have_attribute("data-state", "open")
    expect(hint).to_be_hidden()
    expect(page.get_by_test_id("snippet-code")).to_contain_text(f"/secure?token={TOKEN}')")
    page.get_by_test_id("example").click()
    page.get_by_test_id("send-button").click()
    expect(page.locator("[data-direction=in] [data-testid=log-body]")).to_have_text(["hello"])


def test_streams_without_rule_examples_show_no_example_row(page: Page, rules_server: ServerProcess) -> None:
    """The stats stream answers by its one-line reply, which has no example."""
    page.goto(rules_server.url)
    expect(status(page)).to_have_attribute("data-state", "open")
    expect(page.get_by_test_id("stream-picker")).to_have_value("stats")
    expect(page.get_by_test_id("examples")).to_be_hidden()
    expect(page.get_by_test_id("frame-empty")).to_be_hidden()  # stats frames arrive
    expect(page.get_by_test_id("snippet-code")).to_contain_text("socket.send('hello server!');")


def test_long_rule_examples_fit_a_phone_screen(browser: Browser, rules_server: ServerProcess) -> None:
    with open_page(browser, **LAYOUTS["phone-dark"]) as page:
        page.goto(f"{rules_server.url}ws")
        expect(page.get_by_test_id("example")).to_have_count(2)
        assert page.evaluate("document.documentElement.scrollWidth") <= LAYOUTS["phone-dark"]["viewport"]["width"]


# -- transports: WebSocket, Server-Sent Events (EventSource), Socket.IO


def write_transports_config(folder: Path) -> Path:
    """Streams for the transport switch: named events, a mixed replay, one whose clients are dropped often, one
    that needs a token and one with a Socket.IO namespace, event and rule of its own."""
    (folder / "mixed.jsonl").write_text(MIXED_FRAMES, encoding="utf-8")
    data = edit_config(base_config(), stats={"interval_ms": 30}, replay=None)
    data["streams"] += [
        {"name": "named", "path": "/named", "source": "random", "interval_ms": 30, "sse_event": "tick",
         "template": {"n": {"$seq": True}}},
        {"name": "mixed", "path": "/mixed", "source": "replay", "file": "mixed.jsonl", "interval_ms": 50},
        # dropped every ~0.5 s; EventSource is back 200 ms later
        {"name": "flaky", "path": "/flaky", "source": "random", "interval_ms": 30, "sse_retry_ms": 200,
         "template": {"t": {"$seq": True}}, "faults": {"disconnect_every_s": 0.5}},
        {"name": "secret", "path": "/secret", "source": "random", "interval_ms": 30, "template": {"n": 1},
         "auth": {"query": "token", "values": [TOKEN]}},
        # served over Socket.IO in a namespace and as an event of its own; answers `ping` by a rule
        {"name": "renamed", "path": "/renamed", "source": "random", "interval_ms": 30,
         "template": {"n": {"$seq": True}}, "socketio": {"namespace": "/live", "event": "tick"},
         "rules": [{"match": {"text": "ping"}, "example": "ping", "do": [{"reply": {"pong": {"$seq": True}}}]}]},
    ]
    return write_config(folder, data)


@pytest.fixture(scope="module")
def transports_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from serving(tmp_path_factory, "transports-server", write_transports_config)


def is_event_stream(request: Request) -> bool:
    return request.resource_type == "eventsource"


def transport(page: Page, name: str) -> Locator:
    return page.get_by_test_id(f"transport-{name}")


def snippet(page: Page) -> Locator:
    return page.get_by_test_id("snippet-code")


def test_sse_switch_fills_the_cards_and_log_over_eventsource_and_disables_the_send_box(
    page: Page, server: ServerProcess
) -> None:
    sockets = SocketRecorder(page)
    page.goto(server.url)
    expect(status(page)).to_have_attribute("data-state", "open")
    expect(transport(page, "websocket")).to_be_checked()

    with page.expect_request(is_event_stream) as request:
        transport(page, "sse").check()
    assert request.value.url == server.url
    assert request.value.headers["accept"] == "text/event-stream"
    expect(page).to_have_url(f"{server.url}?transport=sse")
    expect(status(page)).to_have_attribute("data-state", "open")
    expect(status(page)).to_have_text("open")
    if not sockets.sockets[0].is_closed():
        sockets.sockets[0].wait_for_event("close")  # the WebSocket was closed, not left running beside it
    assert len(sockets.sockets) == 1

    expect(page.get_by_test_id("card")).to_have_count(len(CATEGORY_NAMES))
    count_in = page.get_by_test_id("count-in")
    received_then = int(count_in.text_content().replace(",", ""))
    page.wait_for_function(
        "n => Number(document.querySelector('[data-testid=count-in]').textContent.replace(/,/g, '')) >= n",
        arg=received_then + 5,
    )
    assert {"face", "car", "wifi"} <= set(json.loads(received(page)[0]))
    log_events = page.locator("[data-direction=event] [data-testid=log-body]")
    expect(log_events.filter(has_text="open: ").first).to_have_text(f"open: {server.url}")  # newest first

    send_box = page.get_by_test_id("send-input")
    expect(send_box).to_be_disabled()
    expect(page.get_by_test_id("send-button")).to_be_disabled()
    expect(send_box).to_have_attribute("placeholder", re.compile("one-way"))
    expect(page.get_by_test_id("transport-note")).to_have_text(
        "Server-Sent Events are one-way: the page only listens, it cannot send.")
    expect(snippet(page)).to_have_text(
        f"const events = new EventSource('{server.url}');\n\n"
        "// EventSource reconnects by itself after a drop and resumes after event.lastEventId\n"
        "events.onmessage = (event) => {\n"
        "  console.log('message from server', event.lastEventId, event.data);\n"
        "};"
    )

    # Back to WebSocket: the address forgets the choice, and sending works again.
    with page.expect_websocket():
        transport(page, "websocket").check()
    expect(page).to_have_url(server.url)
    expect(status(page)).to_have_attribute("data-state", "open")
    expect(send_box).to_be_enabled()
    expect(page.get_by_test_id("transport-note")).to_be_hidden()
    expect(snippet(page)).to_contain_text(f"new WebSocket('ws://127.0.0.1:{server.port}/');")


def test_page_opened_with_transport_sse_uses_it_and_passes_the_rest_of_the_query_on(page: Page,
                                                                                      server: ServerProcess) -> None:
    """?transport= is the page's own; the stream gets the other fields (a token, say) exactly as typed."""
    sockets = SocketRecorder(page)
    with page.expect_request(is_event_stream) as request:
        page.goto(f"{server.url}other?transport=sse&token=a%20b")

    assert request.value.url == f"{server.url}other?token=a%20b"
    expect(page.get_by_test_id("stream-picker")).to_have_value("other")
    expect(transport(page, "sse")).to_be_checked()
    expect(status(page)).to_have_attribute("data-state", "open")
    expect(page.locator("[data-direction=in]").nth(2)).to_be_attached()
    assert "seq" in json.loads(received(page)[0])
    expect(snippet(page)).to_contain_text(f"new EventSource('{server.url}other?token=a%20b');")
    assert sockets.sockets == []

    # Another stream keeps the choice.
    with page.expect_request(lambda r: is_event_stream(r) and r.url.endswith("/fast?token=a%20b")):
        page.get_by_test_id("stream-picker").select_option("fast")
    expect(page).to_have_url(f"{server.url}fast?transport=sse&token=a%20b")


def test_sse_listens_to_a_streams_named_events_and_decodes_binary_ones(page: Page,
                                                                         transports_server: ServerProcess) -> None:
    page.goto(f"{transports_server.url}named?transport=sse")
    expect(status(page)).to_have_attribute("data-state", "open")
    expect(page.locator("[data-direction=in]").nth(2)).to_be_attached()
    numbers = [json.loads(text)["n"] for text in received(page)]
    assert numbers == list(range(numbers[0], numbers[0] - len(numbers), -1))  # every event, newest first
    expect(snippet(page)).to_contain_text(
        f"const events = new EventSource('{transports_server.url}named');\n\n"
        "// EventSource reconnects by itself after a drop and resumes after event.lastEventId\n"
        "events.addEventListener('tick', (event) => {"
    )

    page.get_by_test_id("stream-picker").select_option("mixed")
    body = page.locator("[data-direction=in] [data-testid=log-body]")
    expect(body.filter(has_text="binary: ").first).to_have_text("binary: 00 01 02 ff")
    expect(body.filter(has_text="plain ").first).to_have_text("plain <i>text</i>")
    expect(page.get_by_test_id("frame-body")).to_have_text('{\n  "after": "json"\n}')


# Every text the status shows, in order (a MutationObserver sees each change, however brief).
RECORD_STATUS = """() => {
  window.statuses = [];
  const status = document.querySelector('[data-testid=connection-status]');
  new MutationObserver(() => window.statuses.push(status.textContent))
    .observe(status, {childList: true, characterData: true, subtree: true});
}"""


def test_sse_shows_the_browsers_own_reconnect_after_a_disconnect_fault(page: Page,
                                                                         transports_server: ServerProcess) -> None:
    page.goto(f"{transports_server.url}flaky?transport=sse")
    expect(status(page)).to_have_attribute("data-state", "open")
    page.evaluate(RECORD_STATUS)

    log_events = page.locator("[data-direction=event] [data-testid=log-body]")
    expect(log_events.filter(has_text="open: ").nth(1)).to_be_attached()  # the first, and one after a drop
    expect(log_events.filter(has_text="closed: ").first).to_have_text(
        "closed: the event stream ended; EventSource reconnects by itself")
    statuses = page.evaluate("window.statuses")
    assert statuses[:2] == ["reconnecting (attempt 1)", "open"], statuses
    frames_then = len(received(page))
    expect(page.locator("[data-direction=in]").nth(frames_then + 2)).to_be_attached()  # frames flow again


def test_sse_after_a_server_restart_reconnects_by_itself_and_shows_the_reset(browser: Browser,
                                                                              tmp_path: Path) -> None:
    """A shared random stream starts a new timeline on restart, so the Last-Event-ID the browser resumes with
    is unknown: the server sends a reset event, which the log shows before the new frames."""
    data = edit_config(base_config(), stats={"interval_ms": 30, "timeline": "shared", "sse_retry_ms": 100},
                       replay=None)
    server = ServerProcess(write_config(tmp_path, data), free_port(), tmp_path / "server.log")
    try:
        server.start()
        with open_page(browser) as page:
            page.goto(f"{server.url}?transport=sse")
            expect(status(page)).to_have_attribute("data-state", "open")
            expect(page.get_by_test_id("card")).to_have_count(len(CATEGORY_NAMES))

            server.stop()
            expect(status(page)).to_have_text(re.compile(r"^reconnecting \(attempt \d+\)$"))
            expect(page.get_by_test_id("connection-retry")).to_have_text("EventSource reconnects by itself")

            server.start()  # same port
            expect(status(page)).to_have_attribute("data-state", "open", timeout=15_000)
            reset = page.locator("[data-direction=event] [data-testid=log-body]", has_text="reset: ")
            expect(reset).to_have_count(1)
            expect(reset).to_contain_text('{"reset":{"since":')
            expect(page.get_by_test_id("card")).to_have_count(len(CATEGORY_NAMES))  # the cards start over
    finally:
        server.stop()


def is_engine_io(url: str) -> bool:
    return "/socket.io/" in url


def test_socketio_switch_joins_the_streams_namespace_and_fills_the_cards_and_log(page: Page,
                                                                                  server: ServerProcess) -> None:
    """The page speaks Engine.IO v4 / Socket.IO v5 over one WebSocket: the namespace is the stream's path, its
    frames the events named after it. Nothing asks /socket.io/ whether it is there (the API says so)."""
    sockets = SocketRecorder(page)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(server.url)
    expect(status(page)).to_have_attribute("data-state", "open")

    with page.expect_websocket(lambda socket: is_engine_io(socket.url)) as engine:
        transport(page, "socketio").check()
    assert engine.value.url == f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket"
    sent: list[str] = []
    engine.value.on("framesent", lambda payload: sent.append(payload))
    expect(page).to_have_url(f"{server.url}?transport=socketio")
    expect(status(page)).to_have_attribute("data-state", "open")
    expect(status(page)).to_have_text("open")
    if not sockets.sockets[0].is_closed():
        sockets.sockets[0].wait_for_event("close")  # the plain WebSocket was closed, not left running beside it
    log_events = page.locator("[data-direction=event] [data-testid=log-body]")
    expect(log_events.filter(has_text="open: ").first).to_have_text(f"open: http://127.0.0.1:{server.port}")

    expect(page.get_by_test_id("card")).to_have_count(len(CATEGORY_NAMES))
    expect(page.locator("[data-direction=in]").nth(5)).to_be_attached()
    received_frames = sockets.frames[engine.value.url]
    assert received_frames[0].startswith('0{"sid":')  # Engine.IO's open packet
    assert received_frames[1].startswith('40{"sid":')  # joined the namespace /
    assert received_frames[2].startswith('42["stats",{')  # a frame, as the event named after the stream
    assert {"face", "car", "wifi"} <= set(json.loads(received(page)[0]))
    expect(page.get_by_test_id("transport-note")).to_have_text(
        "Socket.IO namespace /, event 'stats'; the send box emits 'message' events, and replies come back as "
        "the event they answer.")
    expect(snippet(page)).to_have_text(
        "import { io } from 'socket.io-client';\n\n"
        f"const socket = io('http://127.0.0.1:{server.port}');\n\n"
        "socket.on('stats', (data) => {\n"
        "  console.log('stats from server', data);\n"
        "});"
    )

    # The send box emits a `message` event; the stream's reply comes back as one.
    send_box = page.get_by_test_id("send-input")
    send_box.fill("hello over socket.io")
    send_box.press("Enter")
    expect(page.locator("[data-direction=out] [data-testid=log-body]")).to_have_text(["hello over socket.io"])
    reply = page.locator("[data-direction=in] [data-testid=log-body]", has_text="web socket 已连接: ")
    expect(reply).to_have_text(["web socket 已连接: hello over socket.io"])
    assert '42["message","hello over socket.io"]' in sent

    # Disconnect leaves the namespace and stays closed; Connect joins again on a new connection.
    toggle = page.get_by_test_id("connection-toggle")
    toggle.click()
    expect(status(page)).to_have_text("closed · io client disconnect")
    expect(toggle).to_have_text("Connect")
    assert "41" in sent
    with page.expect_websocket(lambda socket: is_engine_io(socket.url)):
        toggle.click()
    expect(status(page)).to_have_text("open")

    # Another stream keeps the choice: its namespace is its path, its event its name.
    page.get_by_test_id("stream-picker").select_option("other")
    expect(page).to_have_url(f"{server.url}other?transport=socketio")
    expect(snippet(page)).to_contain_text(f"const socket = io('http://127.0.0.1:{server.port}/other');")
    expect(snippet(page)).to_contain_text("socket.on('other', (data) => {")
    expect(page.get_by_test_id("frame-body")).to_contain_text('"markup": "<b>bold</b>"')
    assert not [url for url in requests if "transport=polling" in url]


def test_socketio_follows_the_streams_socketio_block_and_its_rules_answer_the_send_box(
    page: Page, transports_server: ServerProcess
) -> None:
    """`socketio: {namespace: /live, event: tick}` as the API reports it; a rule's example is offered and its
    JSON reply arrives as an event."""
    sockets = SocketRecorder(page)
    page.goto(f"{transports_server.url}renamed?transport=socketio")
    expect(status(page)).to_have_attribute("data-state", "open")
    engine_url = f"ws://127.0.0.1:{transports_server.port}/socket.io/?EIO=4&transport=websocket"
    assert sockets.urls() == [engine_url]
    expect(snippet(page)).to_contain_text(f"const socket = io('http://127.0.0.1:{transports_server.port}/live');")
    expect(snippet(page)).to_contain_text("socket.on('tick', (data) => {")
    expect(page.locator("[data-direction=in]").nth(2)).to_be_attached()
    numbers = [json.loads(text)["n"] for text in received(page)]
    assert numbers == list(range(numbers[0], numbers[0] - len(numbers), -1))  # every event, newest first
    assert any(frame.startswith('42/live,["tick",{"n":') for frame in sockets.frames[engine_url])

    page.get_by_test_id("example").click()
    page.get_by_test_id("send-button").click()
    expect(page.locator("[data-direction=in] [data-testid=log-body]", has_text="pong")).to_have_text(['{"pong":1}'])


def test_socketio_shows_text_and_binary_events_like_frames(page: Page, transports_server: ServerProcess) -> None:
    """A binary frame is a binary event whose attachment follows as a binary WebSocket message."""
    page.goto(f"{transports_server.url}mixed?transport=socketio")
    body = page.locator("[data-direction=in] [data-testid=log-body]")
    expect(body.filter(has_text="binary: ").first).to_have_text("binary: 00 01 02 ff")
    expect(body.filter(has_text="plain ").first).to_have_text("plain <i>text</i>")
    expect(page.get_by_test_id("frame-body")).to_have_text('{\n  "after": "json"\n}')


def test_socketio_refused_connect_shows_the_servers_reason_and_waits_for_connect(
    page: Page, transports_server: ServerProcess
) -> None:
    """A connect_error carries the reason, and socket.io-client does not retry it: neither does the page."""
    sockets = SocketRecorder(page)
    page.goto(f"{transports_server.url}secret?transport=socketio")
    missing = "connect_error: missing token: send it in the query parameter ?token="
    expect(status(page)).to_have_text(f"closed · {missing}")
    hint = page.get_by_test_id("connection-hint")
    expect(hint).to_contain_text("The server refused to join the namespace: missing token")
    expect(hint).to_contain_text("Open this page as /secret?token=…")
    closed = page.locator("[data-direction=event] [data-testid=log-body]", has_text="closed: ")
    expect(closed).to_have_text([f"closed: {missing}"])  # no "retrying in"
    expect(page.get_by_test_id("connection-toggle")).to_have_text("Connect")
    page.wait_for_timeout(1000)  # twice the longest first backoff delay: a retry would have begun
    assert len(sockets.sockets) == 1

    page.goto(f"{transports_server.url}secret?transport=socketio&token=wrong")
    expect(status(page)).to_have_text(re.compile(r"^closed · connect_error: token not accepted"))
    expect(hint).not_to_contain_text("Open this page as")

    with page.expect_websocket(lambda socket: is_engine_io(socket.url)) as engine:
        page.goto(f"{transports_server.url}secret?transport=socketio&token={TOKEN}")
    assert engine.value.url.endswith(f"/socket.io/?EIO=4&transport=websocket&token={TOKEN}")
    expect(status(page)).to_have_attribute("data-state", "open")
    expect(hint).to_be_hidden()
    expect(snippet(page)).to_contain_text(f"io('http://127.0.0.1:{transports_server.port}/secret?token={TOKEN}')")


def test_socketio_after_a_disconnect_fault_reconnects_with_backoff(page: Page,
                                                                   transports_server: ServerProcess) -> None:
    page.goto(f"{transports_server.url}flaky?transport=socketio")
    expect(status(page)).to_have_attribute("data-state", "open")
    page.evaluate(RECORD_STATUS)

    # dropped (the fault), then the page's own backoff, then the namespace joined again
    page.wait_for_function(
        "seq => window.statuses.some((_, i) => seq.every((s, j) => window.statuses[i + j] === s))",
        arg=["closed · transport close", "reconnecting (attempt 1)", "open"],
    )
    log_events = page.locator("[data-direction=event] [data-testid=log-body]")
    expect(log_events.filter(has_text="closed: ").first).to_have_text(
        re.compile(r"^closed: transport close; retrying in \d+\.\d s$"))
    frames_then = len(received(page))
    expect(page.locator("[data-direction=in]").nth(frames_then + 2)).to_be_attached()  # frames flow again


# The page's module, its packets made readable: binary attachments as lists of byte values.
DECODE_PACKETS = """async (packets) => {
  const { decodePacket, withAttachments } = await import('/static/socketio.js');
  const bytes = (hex) => Uint8Array.from(hex.match(/../g) ?? [], (pair) => parseInt(pair, 16)).buffer;
  const show = (v) => v instanceof ArrayBuffer ? {bytes: [...new Uint8Array(v)]}
    : Array.isArray(v) ? v.map(show)
    : v !== null && typeof v === 'object' ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, show(x)])) : v;
  return packets.map(([text, ...attachments]) => {
    const packet = decodePacket(text);
    return {...packet, data: show(withAttachments(packet.data, attachments.map(bytes)))};
  });
}"""
ENCODE_PACKETS = """async (packets) => {
  const { encodePacket } = await import('/static/socketio.js');
  return packets.map(encodePacket);
}"""


def test_the_pages_socketio_packets_are_python_socketios_format_both_ways(page: Page, server: ServerProcess) -> None:
    """Checked against the server's own codec (python-socketio's Packet), including what the server never
    sends the page: ack ids, several attachments, binary inside objects."""
    written = [
        Packet(EVENT, namespace="/live", data=["tick", {"n": 1}], id=7),
        Packet(EVENT, data=["stats", "text"]),
        Packet(CONNECT, data={"sid": "abc"}),
        Packet(CONNECT_ERROR, namespace="/secret", data={"message": "missing token"}),
        Packet(DISCONNECT, namespace="/live"),
        Packet(EVENT, namespace="/mixed", data=["mixed", {"a": b"\x00\x01", "b": [b"\xff"]}]),
    ]
    encoded = [p.encode() for p in written]  # a binary event is [text, attachment, ...]
    page.goto(server.url)
    decoded = page.evaluate(DECODE_PACKETS, [[e] if isinstance(e, str) else [e[0], *(b.hex() for b in e[1:])]
                                             for e in encoded])
    assert [(d["type"], d["namespace"], d["id"]) for d in decoded] == [
        (EVENT, "/live", 7), (EVENT, "/", None), (CONNECT, "/", None), (CONNECT_ERROR, "/secret", None),
        (DISCONNECT, "/live", None), (BINARY_EVENT, "/mixed", None)]
    assert [d["data"] for d in decoded] == [
        ["tick", {"n": 1}], ["stats", "text"], {"sid": "abc"}, {"message": "missing token"}, None,
        ["mixed", {"a": {"bytes": [0, 1]}, "b": [{"bytes": [255]}]}]]
    assert decoded[-1]["attachments"] == 2

    sent = page.evaluate(ENCODE_PACKETS, [{"type": CONNECT, "namespace": "/"}, {"type": CONNECT, "namespace": "/live"},
                                          {"type": EVENT, "namespace": "/live", "data": ["message", "hi, \"you\""]},
                                          {"type": DISCONNECT, "namespace": "/live"}])
    read = [Packet(encoded_packet=text) for text in sent]
    assert [(p.packet_type, p.namespace or "/", p.data) for p in read] == [
        (CONNECT, "/", None), (CONNECT, "/live", None), (EVENT, "/live", ["message", 'hi, "you"']),
        (DISCONNECT, "/live", None)]


def test_socketio_is_off_for_a_stream_in_no_namespace(page: Page, server: ServerProcess) -> None:
    """A stream with a path always has a namespace, so the API answer is changed in the browser here."""

    def without_namespace(route: Route) -> None:
        route.fulfill(json=[{**stream, "socketio": None} for stream in route.fetch().json()])

    page.route("**/api/streams", without_namespace)
    try:
        sockets = SocketRecorder(page)
        page.goto(f"{server.url}?transport=socketio")
        expect(status(page)).to_have_attribute("data-state", "open")
        assert sockets.urls() == [f"ws://127.0.0.1:{server.port}/"]
        expect(transport(page, "websocket")).to_be_checked()
        expect(transport(page, "socketio")).to_be_disabled()
        option = page.locator(".transport-option", has=transport(page, "socketio"))
        expect(option).to_have_attribute("title", "This stream is in no Socket.IO namespace")
    finally:
        page.unroute_all(behavior="wait")


def test_rules_endpoints_speak_websocket_only_whatever_the_choice(page: Page, rules_server: ServerProcess) -> None:
    sockets = SocketRecorder(page)
    page.goto(f"{rules_server.url}ws?transport=sse")
    expect(status(page)).to_have_attribute("data-state", "open")
    assert sockets.urls() == [f"ws://127.0.0.1:{rules_server.port}/ws"]  # without the page's ?transport=
    expect(transport(page, "websocket")).to_be_checked()
    expect(transport(page, "sse")).to_be_disabled()
    expect(transport(page, "socketio")).to_be_disabled()
    expect(page.get_by_test_id("transport-note")).to_contain_text("Rules endpoints speak WebSocket only")
    expect(page.get_by_test_id("example")).to_have_count(2)
    expect(snippet(page)).to_contain_text(f"new WebSocket('ws://127.0.0.1:{rules_server.port}/ws');")

    # A stream gets the remembered choice back; its rule examples go, as nothing can be sent.
    with page.expect_request(lambda r: is_event_stream(r) and r.url.endswith("/chat")):
        page.get_by_test_id("stream-picker").select_option("chat")
    expect(transport(page, "sse")).to_be_checked()
    expect(status(page)).to_have_attribute("data-state", "open")
    expect(page.get_by_test_id("examples")).to_be_hidden()
    expect(page.get_by_test_id("send-input")).to_be_disabled()


def test_sse_to_a_stream_that_needs_a_token_says_why_it_was_refused_and_takes_the_token_from_the_address(
    page: Page, transports_server: ServerProcess
) -> None:
    """The browser's EventSource sees no HTTP 401 either, only an error: the hint is worked out the same way."""
    page.goto(f"{transports_server.url}secret?transport=sse")
    hint = page.get_by_test_id("connection-hint")
    expect(hint).to_contain_text("HTTP 401, missing token")
    expect(hint).to_contain_text("the token is passed on to the EventSource")
    closed = page.locator("[data-direction=event] [data-testid=log-body]", has_text="closed: ").first
    expect(closed).to_have_text(re.compile(r"^closed: refused; retrying in \d+\.\d s$"))

    with page.expect_request(is_event_stream) as request:
        page.goto(f"{transports_server.url}secret?transport=sse&token={TOKEN}")
    assert request.value.url == f"{transports_server.url}secret?token={TOKEN}"
    expect(status(page)).to_have_attribute("data-state", "open")
    expect(hint).to_be_hidden()
