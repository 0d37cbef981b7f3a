"""The browser's own EventSource against the server: same origin, another origin, and resume after a drop."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from server_process import ServerProcess, free_port
from support import base_config, chromium, write_config

# a shared timeline whose clients lose their connection every ~0.4 s; EventSource comes back 50 ms later
FLAKY = {"name": "flaky", "path": "/flaky", "source": "random", "interval_ms": 40, "timeline": "shared",
         "sse_retry_ms": 50, "history": 100, "template": {"t": {"$seq": True}},
         "faults": {"disconnect_every_s": 0.4}}
NAMED = {"name": "named", "path": "/named", "source": "random", "interval_ms": 40, "sse_event": "stats",
         "template": {"n": {"$seq": True}}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("sse-browser")
    data = base_config()
    data["streams"] += [FLAKY, NAMED]
    with ServerProcess(write_config(folder, data), free_port(), folder / "server.log") as process:
        yield process


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


# Listen to an EventSource until `count` events of `type` arrived; report their ids and data, and the opens.
LISTEN = """
([url, type, count]) => new Promise((resolve) => {
  const events = new EventSource(url);
  const seen = [];
  let opens = 0;
  const timer = setTimeout(() => { events.close(); resolve({outcome: 'timeout', seen, opens}); }, 10000);
  events.onopen = () => { opens += 1; };
  events.addEventListener(type, (event) => {
    seen.push({id: event.lastEventId, data: JSON.parse(event.data), origin: event.origin});
    if (seen.length === count) { clearTimeout(timer); events.close(); resolve({outcome: 'done', seen, opens}); }
  });
})
"""


def listen(page, url: str, event_type: str = "message", count: int = 3) -> dict[str, Any]:
    return page.evaluate(LISTEN, [url, event_type, count])


@pytest.mark.browser
def test_eventsource_on_the_servers_own_page_gets_the_stats(browser, server):
    page = browser.new_page()
    page.goto(server.url)  # the demo page: same origin
    result = listen(page, "/")
    assert result["outcome"] == "done"
    assert [event["id"] for event in result["seen"]] == ["1", "2", "3"]
    assert {"face", "car", "wifi"} <= set(result["seen"][0]["data"])
    page.close()


class DashboardPage(BaseHTTPRequestHandler):
    """A front-end dev server's page (another port: another origin)."""

    def do_GET(self) -> None:
        body = b"<!doctype html><p>dashboard</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the signature http.server calls
        pass


@pytest.fixture(scope="module")
def other_origin() -> Iterator[str]:
    """The URL of a page served from another port of this machine, like a Vite or webpack dev server."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), DashboardPage)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.browser
def test_eventsource_from_another_origin_gets_named_events(browser, server, other_origin):
    """A page of a front-end dev server on another port: CORS lets it read the stream."""
    page = browser.new_page()
    page.goto(other_origin)
    result = listen(page, server.url + "named", "stats")
    assert result["outcome"] == "done"
    assert [event["data"]["n"] for event in result["seen"]] == [1, 2, 3]
    page.close()


@pytest.mark.browser
def test_eventsource_resumes_after_disconnects_without_losing_or_repeating_a_frame(browser, server):
    """Disconnect faults drop the connection several times; EventSource reconnects with Last-Event-ID and the
    shared timeline's history fills the gap: every number exactly once, in order."""
    page = browser.new_page()
    page.goto(server.url)
    result = listen(page, "/flaky", count=40)
    assert result["outcome"] == "done", result
    assert result["opens"] >= 3  # it did reconnect (a drop every 0.4 s, 40 frames at 40 ms)
    numbers = [int(event["id"]) for event in result["seen"]]
    assert numbers == list(range(numbers[0], numbers[0] + 40))
    assert [event["data"]["t"] for event in result["seen"]] == numbers
    page.close()
