#!/usr/bin/env node
/* global fetch, AbortSignal, setTimeout, clearTimeout, Buffer */
// Health check of the ferry image, run by Docker's HEALTHCHECK. It uses Node's standard library
// only, so that it also works when the application cannot load. Exit code 0 means healthy.
//
// FERRY_ROLE=api: GET /healthz of the API on this container (FERRY_HEALTH_URL, default
//   http://127.0.0.1:8080/healthz), which itself checks Redis.
// FERRY_ROLE=worker (the default): PING the worker's Redis (FERRY_REDIS_URL, then REDIS_URL).
//   NOTE: this shows that the worker can reach its queue, not that the worker process is busy
//   or making progress.
import { connect as connectTcp } from 'node:net';
import { connect as connectTls } from 'node:tls';

const timeoutMs = 4_000;

function fail(message) {
  console.error(`ferry healthcheck: ${message}`);
  process.exit(1);
}

async function checkApi() {
  const url = process.env.FERRY_HEALTH_URL ?? 'http://127.0.0.1:8080/healthz';
  let response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (error) {
    fail(`${url} did not answer (${error.message})`);
  }
  if (response.status !== 200) fail(`${url} answered ${response.status}`);
}

/** Encodes a Redis command in RESP. */
function command(...parts) {
  return `*${parts.length}\r\n${parts.map((part) => `$${Buffer.byteLength(part)}\r\n${part}\r\n`).join('')}`;
}

function checkRedis() {
  const text = process.env.FERRY_REDIS_URL || process.env.REDIS_URL || 'redis://127.0.0.1:6379';
  let url;
  try {
    url = new URL(text);
  } catch {
    fail('the Redis URL is not a URL');
  }
  const port = Number(url.port || 6379);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const secure = url.protocol === 'rediss:';
  const socket = secure ? connectTls({ host, port, servername: host }) : connectTcp({ host, port });

  let request = '';
  if (url.password !== '') {
    const password = decodeURIComponent(url.password);
    request +=
      url.username === ''
        ? command('AUTH', password)
        : command('AUTH', decodeURIComponent(url.username), password);
  }
  request += command('PING');

  const timer = setTimeout(() => fail(`Redis at ${host}:${port} did not answer in time`), timeoutMs);
  let answer = '';
  socket.on(secure ? 'secureConnect' : 'connect', () => socket.write(request));
  socket.on('data', (chunk) => {
    answer += chunk.toString('latin1');
    const refusal = answer.split('\r\n').find((line) => line.startsWith('-'));
    if (refusal !== undefined) fail(`Redis at ${host}:${port} refused: ${refusal}`);
    if (answer.includes('+PONG')) {
      clearTimeout(timer);
      socket.end();
      process.exit(0);
    }
  });
  socket.on('error', (error) => fail(`Redis at ${host}:${port} is unreachable (${error.message})`));
}

const role = process.env.FERRY_ROLE ?? 'worker';
if (role === 'api') await checkApi();
else if (role === 'worker') checkRedis();
else fail(`unknown FERRY_ROLE ${JSON.stringify(role)}: use api or worker`);
