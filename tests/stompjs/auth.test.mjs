// @stomp/stompjs against a users-mode Stampede (docs/security.md), over TCP with
// @stomp/tcp-wrapper: the library's own "should not connect with invalid credentials" expectation
// — a wrong login gets an ERROR frame and no connection — and guest/guest works.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@stomp/stompjs';
import { TCPWrapper } from '@stomp/tcp-wrapper';
import { start, passwd } from './stampede.mjs';

let broker;

before(async () => {
  broker = await start(
    `[auth]\nmode = "users"\n[auth.users.guest]\npassword_hash = "${passwd('guest')}"\n`,
  );
});

after(() => broker?.stop());

/** A client that does not reconnect, so each test sees exactly one attempt. */
function client(login, passcode, handlers) {
  return new Client({
    webSocketFactory: () => new TCPWrapper(broker.host, broker.port),
    connectHeaders: { login, passcode },
    reconnectDelay: 0,
    heartbeatIncoming: 0,
    heartbeatOutgoing: 0,
    ...handlers,
  });
}

test('should not connect with invalid credentials', async () => {
  for (const [login, passcode] of [['guest', 'wrong'], ['nobody', 'guest']]) {
    let connected = false;
    const error = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no ERROR frame within 10 s')), 10_000);
      const c = client(login, passcode, {
        onConnect: () => {
          connected = true;
        },
        onStompError: frame => {
          clearTimeout(timer);
          c.deactivate();
          resolve(frame);
        },
      });
      c.activate();
    });
    assert.equal(connected, false, `${login} must not connect`);
    assert.equal(error.headers.message, 'authentication failed');
  }
});

test('guest/guest connects, publishes and receives', async () => {
  const body = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no message within 10 s')), 10_000);
    const c = client('guest', 'guest', {
      onConnect: () => {
        c.subscribe('/queue/stompjs-auth', message => {
          clearTimeout(timer);
          c.deactivate();
          resolve(message.body);
        });
        c.publish({ destination: '/queue/stompjs-auth', body: 'hello from stompjs' });
      },
      onStompError: frame => reject(new Error(frame.headers.message)),
    });
    c.activate();
  });
  assert.equal(body, 'hello from stompjs');
});
