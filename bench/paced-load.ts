/**
 * An open-loop load generator for latency at a fixed rate: request i is due at start + i/rate,
 * evenly spaced, whatever the answers before it did, over at most `connections` keep-alive
 * sockets. Latency runs from the due time, not the send: a request the generator sent late,
 * or that waited for a free socket, counts its wait (no coordinated omission).
 *
 * Why not autocannon's `overallRate`: each of its connections sends its whole per-second
 * quota back to back at the top of every second, so "500 req/s over 20 connections" is a
 * burst of 500 requests each second followed by silence, and its p99 is the queue of that
 * burst, not what a webhook arriving at 500/s waits.
 */
import { spawn } from 'node:child_process';
import { Agent, request } from 'node:http';
import { fileURLToPath } from 'node:url';

const SELF = fileURLToPath(import.meta.url);

export interface PacedRequest {
  body: string;
  headers: Record<string, string>;
}

export interface PacedResult {
  sent: number;
  /** Milliseconds from due time to the end of the answer. */
  p50: number;
  p99: number;
  max: number;
  non2xx: number;
  errors: number;
}

function percentile(sorted: Float64Array, fraction: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(fraction * sorted.length) - 1)]!;
}

export async function pacedLoad(options: {
  url: string;
  path: string;
  rate: number;
  seconds: number;
  connections: number;
  /** Sent first at the same pace and not counted: a cold JIT and new sockets are not the server's. */
  warmupSeconds?: number;
  /** Built before the run starts, so building them takes no time from it. */
  makeRequest(): PacedRequest;
}): Promise<PacedResult> {
  const warmup = Math.round(options.rate * (options.warmupSeconds ?? 1));
  const total = warmup + Math.round(options.rate * options.seconds);
  const requests = Array.from({ length: total }, () => options.makeRequest());
  const agent = new Agent({ keepAlive: true, maxSockets: options.connections });
  const target = new URL(options.path, options.url);
  const latencies = new Float64Array(total);
  let non2xx = 0;
  let errors = 0;
  let finished = 0;
  const intervalMs = 1000 / options.rate;
  const start = performance.now() + 50;

  await new Promise<void>((resolveAll) => {
    const send = (index: number): void => {
      const due = start + index * intervalMs;
      const { body, headers } = requests[index]!;
      const done = (ok: boolean, status?: number): void => {
        latencies[index] = performance.now() - due;
        if (!ok) errors++;
        else if (status === undefined || status < 200 || status >= 300) non2xx++;
        if (++finished === total) resolveAll();
      };
      const req = request(
        target,
        { method: 'POST', agent, headers: { ...headers, 'content-length': Buffer.byteLength(body) } },
        (res) => {
          res.on('data', () => undefined);
          res.on('end', () => done(true, res.statusCode));
          res.on('error', () => done(false));
        },
      );
      req.on('error', () => done(false));
      req.end(body);
    };
    let next = 0;
    const tick = (): void => {
      const now = performance.now();
      while (next < total && start + next * intervalMs <= now) send(next++);
      if (next < total) setTimeout(tick, Math.max(0, start + next * intervalMs - performance.now()));
    };
    setTimeout(tick, Math.max(0, start - performance.now()));
  });
  agent.destroy();
  const sorted = latencies.slice(warmup).sort();
  return {
    sent: total - warmup,
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    max: sorted[sorted.length - 1] ?? NaN,
    non2xx,
    errors,
  };
}

export type PacedOptions = Omit<Parameters<typeof pacedLoad>[0], 'makeRequest'>;

/**
 * One paced run in a fresh node process: in the bench's own process, whose heap holds every
 * earlier run, its collector's pauses delayed sends and counted as server latency (p99 25 ms
 * for every server, where a fresh process saw 6–9 ms).
 */
export function pacedLoadInChild(options: PacedOptions): Promise<PacedResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SELF, JSON.stringify(options)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    child.once('error', reject);
    child.once('close', (code) => {
      if (code !== 0) reject(new Error(`paced load exited with ${code}`));
      else resolve(JSON.parse(out) as PacedResult);
    });
  });
}

// `node dist/bench/paced-load.js <options JSON>`: one run of signed pushes, its result as JSON.
if (process.argv[1] === SELF && process.argv[2]) {
  const options = JSON.parse(process.argv[2]) as PacedOptions;
  const { signedPush } = await import('./signed-push.js');
  const result = await pacedLoad({ ...options, makeRequest: signedPush });
  process.stdout.write(JSON.stringify(result));
}
