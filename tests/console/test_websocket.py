"""STOMP over WebSocket from the console's origin, in the browser: @stomp/stompjs's UMD bundle
(the pinned copy tests/stompjs installs, read from disk and injected, never fetched) connects to
ws://HOST/ws, sends and receives a text and a binary body, and trades heart-beats both ways.
The page's Content-Security-Policy is in force, so this also shows it lets the page reach /ws."""

import pytest

from conftest import REPO, unique

BUNDLE = REPO / "tests" / "stompjs" / "node_modules" / "@stomp" / "stompjs" / "bundles" / "stomp.umd.js"

# Runs in the page after the bundle; answers through the async script callback.
ROUND_TRIP = r"""
const [url, destination] = arguments;
const done = arguments[arguments.length - 1];
const seen = { ping: false, pong: false };
const got = [];
let result = null;
let finished = false;
function finish(answer) {
  if (finished) return;
  finished = true;
  client.deactivate().then(() => done(answer));
}
// Done once both bodies are back and a heart-beat went each way.
function settle() {
  if (result && seen.ping && seen.pong) finish(result);
}
const client = new StompJs.Client({
  brokerURL: url,
  connectHeaders: { login: 'guest', passcode: 'guest' },
  heartbeatIncoming: 500,
  heartbeatOutgoing: 500,
  reconnectDelay: 0,
  debug: line => {
    if (line.includes('>>> PING')) seen.ping = true;
    if (line.includes('<<< PONG')) seen.pong = true;
    settle();
  },
});
client.onStompError = f => finish({ error: 'ERROR frame: ' + f.headers.message + ' ' + f.body });
client.onWebSocketError = () => finish({ error: 'the WebSocket failed' });
client.onWebSocketClose = e => finish({ error: 'the WebSocket closed: ' + e.code });
client.onConnect = connected => {
  client.subscribe(destination, m => {
    got.push(m);
    if (got.length < 2) return;
    result = {
      version: connected.headers.version,
      heartBeat: connected.headers['heart-beat'],
      text: got[0].body,
      binary: Array.from(got[1].binaryBody),
      contentType: got[1].headers['content-type'],
    };
    settle();
  });
  client.publish({ destination, body: 'hello over /ws' });
  client.publish({
    destination,
    binaryBody: new Uint8Array([0, 1, 2, 0, 255, 10, 0]),
    headers: { 'content-type': 'application/octet-stream' },
  });
};
client.activate();
"""


def test_stompjs_in_the_page_speaks_stomp_over_websocket(driver, broker, console_log):
    if not BUNDLE.is_file():
        pytest.skip("%s is missing: scripts/node-env tests/stompjs installs it" % BUNDLE)
    driver.get(broker.http + "/#/queues")
    driver.set_script_timeout(15)
    answer = driver.execute_async_script(BUNDLE.read_text() + "\n;" + ROUND_TRIP,
                                         broker.ws, "/queue/" + unique("console.ws"))
    assert "error" not in answer, answer["error"]
    assert answer["version"] == "1.2"
    assert answer["heartBeat"] != "0,0"
    assert answer["text"] == "hello over /ws"
    assert answer["binary"] == [0, 1, 2, 0, 255, 10, 0]
    assert answer["contentType"] == "application/octet-stream"
