// The Stampede binary as a child process for the @stomp/stompjs tests: free ports, JSON logs,
// ready once it logs its `ready` event (the STOMP address is in it); killed by stop().
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

const REPO = resolve(import.meta.dirname, '..', '..');
export const BINARY = process.env.STAMPEDE_BIN || join(REPO, 'target', 'debug', 'stampede');

/** `printf PASSWORD | stampede passwd`. */
export function passwd(password) {
  return execFileSync(BINARY, ['passwd'], { input: password }).toString().trim();
}

/** Starts a broker with `config` (TOML text) as its --config file; resolves to {host, port,
 * http (HOST:PORT of the HTTP listener), stop}. */
export function start(config = '') {
  const dir = mkdtempSync(join(tmpdir(), 'stampede-stompjs-'));
  const file = join(dir, 'broker.toml');
  writeFileSync(file, config);
  const child = spawn(
    BINARY,
    ['serve', '--log-format', 'json', '--data-dir', join(dir, 'data'), '--config', file],
    {
      env: {
        ...process.env,
        STAMPEDE__LISTENERS__STOMP__BIND: '127.0.0.1:0',
        STAMPEDE__LISTENERS__HTTP__BIND: '127.0.0.1:0',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const output = [];
  child.stderr.on('data', d => output.push(d.toString()));
  const stop = () => {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  return new Promise((ready, fail) => {
    const timer = setTimeout(() => {
      stop();
      fail(new Error(`no ready event within 10 s:\n${output.join('')}`));
    }, 10_000);
    createInterface({ input: child.stdout }).on('line', line => {
      output.push(line + '\n');
      let fields;
      try {
        fields = JSON.parse(line).fields;
      } catch {
        return;
      }
      if (fields?.message === 'ready') {
        clearTimeout(timer);
        const [host, port] = fields.stomp.split(':');
        ready({ host, port: Number(port), http: fields.http, stop, output });
      }
    });
    child.on('exit', code => {
      clearTimeout(timer);
      fail(new Error(`stampede exited (${code}) before ready:\n${output.join('')}`));
    });
  });
}
