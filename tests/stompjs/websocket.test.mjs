// @stomp/stompjs over a real WebSocket (the `ws` package, as Node 20 has no WebSocket of its own)
// to Stampede's /ws: the subprotocol, text and binary bodies both ways, and heart-beats.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@stomp/stompjs';
import WebSocket from 'ws';
import { start } from './stampede.mjs';

let broker;

before(async () => {
  broker = await start();
});

after(() => broker?.stop());

/** Resolves with [client, CONNECTED frame, the socket] once connected; rejects on an ERROR. */
function connect(options = {}) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('not connected within 10 s')), 10_000);
    let socket;
    const client = new Client({
      webSocketFactory: () => {
        socket = new WebSocket(`ws://${broker.http}/ws`, ['v12.stomp', 'v11.stomp', 'v10.stomp']);
        return socket;
      },
      reconnectDelay: 0,
      heartbeatIncoming: 0,
      heartbeatOutgoing: 0,
      ...options,
      onConnect: frame => {
        clearTimeout(timer);
        resolve([client, frame, socket]);
      },
      onStompError: frame => {
        clearTimeout(timer);
        reject(new Error(`ERROR: ${frame.headers.message}`));
      },
    });
    client.activate();
  });
}

/** The next message on `destination`. */
function next(client, destination) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no message on ${destination}`)), 10_000);
    const sub = client.subscribe(
      destination,
      m => {
        clearTimeout(timer);
        sub.unsubscribe();
        resolve(m);
      },
      { receipt: `sub-${destination}` },
    );
  });
}

/** Resolves once the broker has confirmed the receipt `id`. */
function receipt(client, id) {
  return new Promise(resolve => client.watchForReceipt(id, resolve));
}

test('stompjs connects over /ws with v12.stomp and sends and receives text and binary', async () => {
  const [client, connected, socket] = await connect();
  assert.equal(socket.protocol, 'v12.stomp');
  assert.equal(connected.headers.version, '1.2');
  const queue = `/queue/stompjs-ws-${process.pid}`;

  const subscribed = receipt(client, `sub-${queue}`);
  const gotText = next(client, queue);
  await subscribed;
  client.publish({ destination: queue, body: 'héllo over WebSocket' });
  assert.equal((await gotText).body, 'héllo over WebSocket');

  const bytes = new Uint8Array([0, 1, 2, 0xff, 0xfe, 0, 10]);
  const again = receipt(client, `sub-${queue}`);
  const gotBinary = next(client, queue);
  await again;
  client.publish({
    destination: queue,
    binaryBody: bytes,
    headers: { 'content-type': 'application/octet-stream' },
  });
  const m = await gotBinary;
  assert.deepEqual(Array.from(m.binaryBody), Array.from(bytes));
  assert.equal(m.headers['content-type'], 'application/octet-stream');
  await client.deactivate();
});

test('heart-beats flow both ways over /ws', async () => {
  const seen = [];
  let pong;
  let count = 0;
  const pongs = new Promise(resolve => {
    pong = resolve;
  });
  const [client, connected] = await connect({
    heartbeatIncoming: 500,
    heartbeatOutgoing: 500,
    debug: line => {
      seen.push(line);
      // stompjs logs every heart-beat it receives as "<<< PONG". Four of them, 500 ms apart, are
      // well past the 750 ms after which the broker drops a client whose heart-beats it misses.
      if (line.includes('<<< PONG') && ++count === 4) pong();
    },
  });
  const [sx, sy] = connected.headers['heart-beat'].split(',').map(Number);
  assert.equal(sx, 500, 'the broker sends every 500 ms');
  assert.equal(sy, 500, 'and expects the same');
  let closed = false;
  client.onWebSocketClose = () => {
    closed = true;
  };
  await pongs;
  assert.equal(closed, false, seen.join('\n'));
  assert.equal(client.connected, true, seen.join('\n'));
  await client.deactivate();
});
