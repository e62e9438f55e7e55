/**
 * Ingest benchmark: how many signed GitHub pushes per second `pushgate serve` turns into
 * durable jobs, against a raw baseline (node:http + HMAC check + one Redis write) on the
 * same private redis-server. Writes its section of BENCHMARKS.md.
 *
 *   npm run bench -- ingest
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage } from 'node:http';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { DEPLOY_JOB_NAME, DEPLOY_JOB_OPTIONS, DEPLOY_QUEUE } from '../src/queue/job-data.js';
import { INGEST_NOTES } from './ingest-notes.js';
import { machineFacts, writeBenchSection } from './report.js';
import { pacedLoadInChild, type PacedResult } from './paced-load.js';
import { BRANCH, REPOSITORY, SECRET, signedPush } from './signed-push.js';
import { findFreePort as freePort } from '../src/lib/free-port.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = join(ROOT, 'dist/src/cli.js');
const SELF = fileURLToPath(import.meta.url);
/** This module, which also runs the reference servers (`--baseline-server`, `--bullmq-floor-server`). */
export const INGEST_SCRIPT = SELF;
export { SECRET, signedPush };

const MEASURE_SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const FIXED_SECONDS = 10;
/** Rounds of every server in turn, so all see the same machine load. */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 10);
const WARMUP_SECONDS = 2;
/**
 * Full speed is measured at each of these concurrencies: at 20 a batching receiver still
 * idles between batches, at 64 it idles less; a server's maximum is its plateau.
 */
const CONNECTION_LEVELS = (process.env.BENCH_CONNECTIONS ?? '20,64').split(',').map((level) => {
  const connections = Number(level);
  if (!Number.isInteger(connections) || connections < 1)
    throw new Error(`BENCH_CONNECTIONS: "${level}" is not a positive whole number (expected e.g. 20,64)`);
  return connections;
});
const FIXED_RATE = 500;
/** Webhook senders keep few connections open. */
const FIXED_CONNECTIONS = 20;
/** Paced runs per server, alternating servers; the table gives the median. */
const PACED_ROUNDS = 3;
/** The receiver's young-generation size in production (NODE_OPTIONS in its Deployment). */
export const RECEIVER_NODE_FLAG = '--max-semi-space-size=32';
/** Extra node flags for both servers, e.g. `BENCH_NODE_FLAGS="--cpu-prof --cpu-prof-dir=/tmp/prof"`. */
const EXTRA_NODE_FLAGS = (process.env.BENCH_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean);
/**
 * Another build's `dist/src/cli.js` (say a worktree of the previous commit), measured in the
 * same alternating rounds as a third server and printed, not written to BENCHMARKS.md: on a
 * machine whose speed moves from minute to minute, the only fair A/B of a change.
 */
const COMPARE_CLI = process.env.BENCH_COMPARE_CLI;

interface Child {
  process: ChildProcess;
  url: string;
  /** Peak resident set size in MiB (VmHWM), read before the child is stopped. */
  peakRssMiB(): number;
  stop(): Promise<void>;
}

/** CPU time (user + system, all threads) a process has used so far, in ms. */
function cpuMs(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return NaN;
  }
}

function peakRss(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = /VmHWM:\s+(\d+) kB/.exec(status)?.[1];
    return kib ? Number(kib) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/**
 * Spawns a server on `port` with its output in `logFile` (not piped through this process,
 * whose event loop runs the load generator) and resolves once it answers HTTP.
 */
async function spawnServer(
  args: string[],
  env: NodeJS.ProcessEnv,
  port: number,
  logFile: string,
  name: string,
): Promise<Child> {
  const log = openSync(logFile, 'a');
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', log, log] });
  closeSync(log);
  let exitCode: number | null | undefined;
  child.once('exit', (code) => (exitCode = code));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exitCode !== undefined)
      throw new Error(`${name} exited with ${exitCode}:\n${readFileSync(logFile, 'utf8').slice(-2000)}`);
    try {
      await fetch(`${url}/healthz`);
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`${name} did not answer on ${url} within 30 s`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  return {
    process: child,
    url,
    peakRssMiB: () => peakRss(child.pid),
    stop: () =>
      new Promise<void>((done) => {
        if (child.exitCode !== null || child.signalCode !== null) return done();
        child.once('close', () => done());
        child.kill('SIGTERM');
      }),
  };
}

export async function startRedisServer(
  dir: string,
): Promise<{ url: string; pid: number | undefined; stop(): Promise<void> }> {
  const port = await freePort();
  const child = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
      '--maxmemory-policy',
      'noeviction',
    ],
    { stdio: 'ignore' },
  );
  const url = `redis://127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.ping();
      client.disconnect();
      break;
    } catch (error) {
      client.disconnect();
      if (Date.now() > deadline)
        throw new Error(`redis-server did not start: ${String(error)}`, { cause: error });
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  return {
    url,
    pid: child.pid,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('close', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

interface Measurement {
  requestsPerSecond: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
}

async function measure(
  url: string,
  path: string,
  seconds: number,
  connections: number,
  overallRate?: number,
): Promise<Measurement> {
  const result = await autocannon({
    url,
    connections,
    duration: seconds,
    overallRate,
    requests: [
      {
        method: 'POST',
        path,
        setupRequest: (request) => ({ ...request, ...signedPush() }),
      },
    ],
  });
  return {
    requestsPerSecond: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
  };
}

/** One server at full speed at one concurrency. */
interface ServerResult {
  /** Median of the rounds. */
  max: Measurement;
  rounds: Measurement[];
  /** CPU per request (median round), in µs: the server process, and Redis. */
  serverCpuUs: number;
  redisCpuUs: number;
  /** The load generator's (this process's) CPU per request: what bounds the baseline. */
  loadCpuUs: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

function medianOf(rounds: Measurement[]): Measurement {
  return {
    requestsPerSecond: median(rounds.map((round) => round.requestsPerSecond)),
    p50: median(rounds.map((round) => round.p50)),
    p99: median(rounds.map((round) => round.p99)),
    non2xx: rounds.reduce((sum, round) => sum + round.non2xx, 0),
    errors: rounds.reduce((sum, round) => sum + round.errors, 0),
  };
}

interface Server {
  name: string;
  url: string;
  pid: number | undefined;
}

/**
 * Full-speed rounds at `connections` alternate between the servers (all stay up; an idle one
 * costs nothing), so a change in the machine's load between two measurements hits all alike,
 * and the order rotates from round to round, so no server always runs first or right after
 * another.
 */
async function measureFullSpeed(
  servers: Server[],
  redisPid: number | undefined,
  path: string,
  connections: number,
): Promise<Map<string, ServerResult>> {
  for (const server of servers) await measure(server.url, path, WARMUP_SECONDS, connections);
  const rounds = new Map<string, Measurement[]>(servers.map((server) => [server.name, []]));
  const cpu = new Map<string, { server: number[]; redis: number[]; load: number[] }>(
    servers.map((server) => [server.name, { server: [], redis: [], load: [] }]),
  );
  for (let round = 1; round <= ROUNDS; round++) {
    const order = servers.map((_, index) => servers[(index + round - 1) % servers.length]!);
    for (const server of order) {
      const [server0, redis0, load0] = [cpuMs(server.pid), cpuMs(redisPid), cpuMs(process.pid)];
      const result = await measure(server.url, path, MEASURE_SECONDS, connections);
      const requests = result.requestsPerSecond * MEASURE_SECONDS;
      const loadUs = ((cpuMs(process.pid) - load0) * 1000) / requests;
      cpu.get(server.name)!.server.push(((cpuMs(server.pid) - server0) * 1000) / requests);
      cpu.get(server.name)!.redis.push(((cpuMs(redisPid) - redis0) * 1000) / requests);
      cpu.get(server.name)!.load.push(loadUs);
      process.stdout.write(
        `ingest: ${connections} connections, round ${round} ${server.name}: ${result.requestsPerSecond.toFixed(0)} req/s, load generator ${loadUs.toFixed(0)} µs/req\n`,
      );
      rounds.get(server.name)!.push(result);
    }
  }
  const results = new Map<string, ServerResult>();
  for (const server of servers) {
    const measured = rounds.get(server.name)!;
    results.set(server.name, {
      max: medianOf(measured),
      rounds: measured,
      serverCpuUs: median(cpu.get(server.name)!.server),
      redisCpuUs: median(cpu.get(server.name)!.redis),
      loadCpuUs: median(cpu.get(server.name)!.load),
    });
  }
  return results;
}

/** At the fixed rate: evenly paced (the target's figure), and in autocannon's per-second bursts. */
interface FixedRateResult {
  paced: PacedResult;
  bursts: Measurement;
}

/** Full speed at every concurrency level, then runs of each at the fixed rate. */
async function measureServers(
  servers: Server[],
  redisPid: number | undefined,
  path: string,
): Promise<{ levels: Map<number, Map<string, ServerResult>>; fixed: Map<string, FixedRateResult> }> {
  // The fixed rate first: after the full-speed rounds Redis holds some two million keys, and
  // its own latency (redis-cli --latency-history) then reaches 14 ms for every server alike.
  const fixed = await measureFixedRate(servers, path);
  const levels = new Map<number, Map<string, ServerResult>>();
  for (const connections of CONNECTION_LEVELS) {
    levels.set(connections, await measureFullSpeed(servers, redisPid, path, connections));
  }
  return { levels, fixed };
}

async function measureFixedRate(servers: Server[], path: string): Promise<Map<string, FixedRateResult>> {
  const paced = new Map<string, PacedResult[]>(servers.map((server) => [server.name, []]));
  for (let round = 0; round < PACED_ROUNDS; round++) {
    for (const server of servers) {
      const run = await pacedLoadInChild({
        url: server.url,
        path,
        rate: FIXED_RATE,
        seconds: FIXED_SECONDS,
        connections: FIXED_CONNECTIONS,
        warmupSeconds: WARMUP_SECONDS,
      });
      process.stdout.write(
        `ingest: paced ${FIXED_RATE}/s, round ${round + 1} ${server.name}: p50 ${format(run.p50, 1)} ms, p99 ${format(run.p99, 1)} ms\n`,
      );
      paced.get(server.name)!.push(run);
    }
  }
  const fixed = new Map<string, FixedRateResult>();
  for (const server of servers) {
    const runs = paced.get(server.name)!;
    const bursts = await measure(server.url, path, FIXED_SECONDS, FIXED_CONNECTIONS, FIXED_RATE);
    fixed.set(server.name, {
      paced: {
        sent: runs.reduce((sum, run) => sum + run.sent, 0),
        p50: median(runs.map((run) => run.p50)),
        p99: median(runs.map((run) => run.p99)),
        max: Math.max(...runs.map((run) => run.max)),
        non2xx: runs.reduce((sum, run) => sum + run.non2xx, 0),
        errors: runs.reduce((sum, run) => sum + run.errors, 0),
      },
      bursts,
    });
  }
  return fixed;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** The body, when its HMAC matches the signature header; undefined when it does not. */
async function readSignedBody(req: IncomingMessage): Promise<Buffer | undefined> {
  const body = await readBody(req);
  const given = Buffer.from(String(req.headers['x-hub-signature-256'] ?? ''));
  const expected = Buffer.from(`sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`);
  return given.length === expected.length && timingSafeEqual(given, expected) ? body : undefined;
}

/**
 * A reference server: 401 unless the body's HMAC matches, else 202 with what `accept` returns
 * (503 when it throws). `close` runs on SIGTERM.
 */
function serveSignedPushes(
  port: number,
  accept: (body: Buffer, req: IncomingMessage) => Promise<unknown>,
  close: () => void,
): void {
  const server = createHttpServer((req, res) => {
    void (async () => {
      const body = await readSignedBody(req);
      if (!body) {
        res.writeHead(401).end();
        return;
      }
      const answer = await accept(body, req);
      res.writeHead(202, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
    })().catch(() => res.writeHead(503).end());
  });
  server.listen(port, '127.0.0.1');
  process.on('SIGTERM', () => {
    server.close();
    close();
  });
}

/** The baseline: what the least a receiver can do costs — verify the HMAC, write once to Redis. */
function runBaselineServer(redisUrl: string, port: number): void {
  const redis = new Redis(redisUrl, { enableOfflineQueue: true });
  serveSignedPushes(
    port,
    async (_body, req) => {
      const delivery = String(req.headers['x-github-delivery']);
      await redis.set(`baseline:delivery:${delivery}`, '1', 'EX', 3600);
      return { jobs: [{ id: delivery }] };
    },
    () => redis.disconnect(),
  );
}

/**
 * The BullMQ floor: the baseline plus what any receiver built on BullMQ must do — parse the
 * JSON and `Queue.add` the job (one Lua script in Redis) — and nothing else: no idempotency,
 * no job record, no logs or metrics. Where pushgate stands between it and the baseline shows
 * what BullMQ costs and what pushgate's own guarantees cost.
 */
function runBullmqFloorServer(redisUrl: string, port: number): void {
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const queue = new Queue(DEPLOY_QUEUE, { connection, prefix: '{bullmq-floor}', skipVersionCheck: true });
  serveSignedPushes(
    port,
    async (body, req) => {
      const push = JSON.parse(body.toString('utf8')) as { ref: string; after: string };
      const delivery = String(req.headers['x-github-delivery']);
      const job = await queue.add(
        DEPLOY_JOB_NAME,
        {
          environment: 'production',
          trigger: { kind: 'webhook', sha: push.after },
          receivedAt: new Date().toISOString(),
        },
        { ...DEPLOY_JOB_OPTIONS, jobId: delivery },
      );
      return { jobs: [{ id: job.id, sha: push.after }] };
    },
    () => void queue.close().finally(() => connection.disconnect()),
  );
}

const format = (value: number, digits = 0): string =>
  Number.isFinite(value) ? value.toFixed(digits) : 'n/a';

/** Each round against the baseline round just before it, which saw the same machine. */
function pairedRatios(result: ServerResult, baseline: ServerResult): number[] {
  return result.rounds.map(
    (round, index) => round.requestsPerSecond / baseline.rounds[index]!.requestsPerSecond,
  );
}

/** Round by round, this build and the compared one, each against the baseline of its round. */
function printComparison(levels: Map<number, Map<string, ServerResult>>, compareCli: string): void {
  const lines = [`ingest: this build against ${compareCli}`];
  for (const [connections, results] of levels) {
    const baseline = results.get('baseline')!;
    lines.push(
      `  ${connections} connections: baseline ${format(baseline.max.requestsPerSecond)} req/s, ${format(baseline.serverCpuUs)} / ${format(baseline.redisCpuUs)} µs/req server / Redis, by round ${baseline.rounds.map((round) => format(round.requestsPerSecond)).join(' ')}`,
    );
    for (const name of ['floor', 'pushgate', 'compare']) {
      const result = results.get(name)!;
      lines.push(
        `    ${name.padEnd(8)} ${format(result.max.requestsPerSecond)} req/s, ${format(result.serverCpuUs)} / ${format(result.redisCpuUs)} µs/req server / Redis, ratio by round ${pairedRatios(
          result,
          baseline,
        )
          .map((ratio) => format(ratio, 2))
          .join(' ')}`,
      );
    }
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** `pushgate serve`'s configuration for the benches: one environment fed by the pushes sent. */
export function writeServeConfig(dir: string, redisUrl: string): string {
  const configFile = join(dir, 'pushgate.yaml');
  writeFileSync(
    configFile,
    [
      'server: { host: 127.0.0.1, port: 0 }',
      `redis: { url: "${redisUrl}", prefix: bench }`,
      'clusters: [{ name: local }]',
      'environments:',
      '  - name: production',
      `    repo: { provider: github, name: ${REPOSITORY}, url: "https://github.com/${REPOSITORY}.git" }`,
      `    branch: ${BRANCH}`,
      '    cluster: local',
      '',
    ].join('\n'),
  );
  return configFile;
}

export async function run(): Promise<void> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build (npm run bench does)`);
  const dir = mkdtempSync(join(os.tmpdir(), 'pushgate-bench-ingest-'));
  const machineText = machineFacts();
  const redis = await startRedisServer(dir);
  const children: Child[] = [];
  try {
    const configFile = writeServeConfig(dir, redis.url);
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      GITHUB_WEBHOOK_SECRET: SECRET,
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'info',
    };
    delete env.PORT;

    const baselinePort = await freePort();
    const baseline = await spawnServer(
      [...EXTRA_NODE_FLAGS, SELF, '--baseline-server', redis.url, String(baselinePort)],
      env,
      baselinePort,
      join(dir, 'baseline.log'),
      'baseline',
    );
    children.push(baseline);
    const floorPort = await freePort();
    const floor = await spawnServer(
      [...EXTRA_NODE_FLAGS, RECEIVER_NODE_FLAG, SELF, '--bullmq-floor-server', redis.url, String(floorPort)],
      env,
      floorPort,
      join(dir, 'bullmq-floor.log'),
      'BullMQ floor',
    );
    children.push(floor);
    const servers = [
      { name: 'baseline', url: baseline.url, pid: baseline.process.pid },
      { name: 'floor', url: floor.url, pid: floor.process.pid },
    ];
    /** `serve` of a build, as the receiver's Deployment runs it (deploy/kubernetes/receiver-deployment.yaml). */
    const startServe = async (name: string, cli: string): Promise<Child> => {
      const port = await freePort();
      const child = await spawnServer(
        [...EXTRA_NODE_FLAGS, RECEIVER_NODE_FLAG, cli, 'serve', '--config', configFile],
        { ...env, PORT: String(port) },
        port,
        join(dir, `${name}.log`),
        `${name} serve`,
      );
      children.push(child);
      servers.push({ name, url: child.url, pid: child.process.pid });
      return child;
    };
    const pushgate = await startServe('pushgate', CLI);
    if (COMPARE_CLI) await startServe('compare', COMPARE_CLI);
    process.stdout.write(
      `ingest: ${ROUNDS} rounds of baseline (node:http + HMAC + one Redis write), BullMQ floor (+ JSON.parse + Queue.add), pushgate serve\n`,
    );
    const { levels, fixed } = await measureServers(servers, redis.pid, '/webhooks/github');
    if (COMPARE_CLI) {
      printComparison(levels, COMPARE_CLI);
      return;
    }
    const rss = new Map([
      ['baseline', baseline.peakRssMiB()],
      ['floor', floor.peakRssMiB()],
      ['pushgate', pushgate.peakRssMiB()],
    ]);
    await Promise.all(children.map((child) => child.stop()));

    const names: [string, string][] = [
      ['baseline', 'baseline'],
      ['floor', 'BullMQ floor'],
      ['pushgate', 'pushgate serve'],
    ];
    const cpuOf = (result: ServerResult): number => result.serverCpuUs + result.redisCpuUs;
    const fullSpeedRows: string[] = [];
    const levelLines: string[] = [];
    for (const [connections, results] of levels) {
      const baselineResult = results.get('baseline')!;
      for (const [name, label] of names) {
        const result = results.get(name)!;
        const ratio = name === 'baseline' ? '1' : format(median(pairedRatios(result, baselineResult)), 2);
        fullSpeedRows.push(
          `| ${label} | ${connections} | ${format(result.max.requestsPerSecond)} | ${ratio}× | ${format(result.max.p50)} | ${format(result.max.p99)} | ${format(result.loadCpuUs)} / ${format(result.serverCpuUs)} / ${format(result.redisCpuUs)} | ${format(cpuOf(result))} |`,
        );
      }
      const pushgateResult = results.get('pushgate')!;
      const floorResult = results.get('floor')!;
      const roundRatios = pairedRatios(pushgateResult, baselineResult);
      const pushgateToFloor = median(pairedRatios(pushgateResult, floorResult));
      levelLines.push(
        `- ${connections} connections: pushgate / baseline **${format(median(roundRatios), 2)}×** (target ≥ 0.6×), round by round ${roundRatios.map((r) => format(r, 2)).join(', ')}; BullMQ floor / baseline ${format(median(pairedRatios(floorResult, baselineResult)), 2)}×; pushgate / floor **${format(pushgateToFloor, 2)}×**.`,
      );
    }
    // Each server's plateau: its best median over the concurrency levels.
    const best = (name: string): { connections: number; requestsPerSecond: number } =>
      [...levels]
        .map(([connections, results]) => ({
          connections,
          requestsPerSecond: results.get(name)!.max.requestsPerSecond,
        }))
        .reduce((a, b) => (b.requestsPerSecond > a.requestsPerSecond ? b : a));
    const [bestBaseline, bestFloor, bestPushgate] = ['baseline', 'floor', 'pushgate'].map(best);
    const fixedRows = names.map(([name, label]) => {
      const runs = [...levels.values()].flatMap((results) => results.get(name)!.rounds);
      const { paced, bursts } = fixed.get(name)!;
      const non2xx = runs.reduce((sum, run) => sum + run.non2xx, paced.non2xx + bursts.non2xx);
      const errors = runs.reduce((sum, run) => sum + run.errors, paced.errors + bursts.errors);
      return `| ${label} | ${format(paced.p50, 1)} | ${format(paced.p99, 1)} | ${format(bursts.p99)} | ${format(rss.get(name)!)} | ${non2xx} / ${errors} |`;
    });
    const levelsText = CONNECTION_LEVELS.join(' and ');
    const section = [
      '## ingest',
      '',
      `Signed GitHub push webhooks (each its own delivery id and commit, ~4 kB JSON) to \`pushgate serve\``,
      `(compiled CLI, run as the receiver Deployment runs it: \`node ${RECEIVER_NODE_FLAG}\`; one matching`,
      `environment, log level ${env.LOG_LEVEL}, logs to a file) against a raw baseline: a plain \`node:http\``,
      'server that reads the body, checks the HMAC and does one Redis `SET`; and a BullMQ floor: the',
      'baseline plus `JSON.parse` and `Queue.add` of the job, what any receiver built on BullMQ does at the',
      'least (no idempotency, no job record, no logs, no metrics). All use the same private',
      '`redis-server` (no persistence), loopback only. All servers stay up. At full speed, at each of',
      `${levelsText} connections: after a ${WARMUP_SECONDS} s warm-up each, ${ROUNDS} rounds of ${MEASURE_SECONDS} s alternate baseline, floor,`,
      'pushgate (the order rotating each round), so a change in the load of this shared machine hits all',
      "alike; the table gives the median round, and each server's ratio to the baseline is the median of",
      'its rounds over the baseline round of the same cycle. In each round the CPU time of the server',
      'process and of Redis is read from `/proc` and divided by the requests. Before those rounds (after',
      'them Redis holds some two million keys, and its own latency reaches 14 ms for every server alike),',
      `${PACED_ROUNDS} runs of each server of ${FIXED_SECONDS} s (alternating; the median run) at a fixed ${FIXED_RATE} req/s over at most ${FIXED_CONNECTIONS}`,
      `keep-alive connections, paced: request i is due at i/${FIXED_RATE} s and its latency counts from then`,
      `(\`bench/paced-load.ts\`: a fresh process each run, ${WARMUP_SECONDS} s at the same pace first, no coordinated omission), as`,
      "webhooks arriving at that rate would wait; and the same through autocannon's `overallRate`, which",
      "sends each connection's per-second quota back to back at the top of every second: a burst of",
      `${FIXED_RATE} each second, whose p99 is that burst's queue. Autocannon, the servers and Redis share the`,
      'two cores, so absolute numbers move with the machine.',
      '',
      `Measured ${new Date().toISOString()} with \`npm run bench -- ingest\` on:`,
      '',
      machineText,
      '',
      '| server | connections | max req/s | / baseline | p50 ms | p99 ms | CPU µs/req: load generator / server / Redis | server + Redis µs/req |',
      '|---|---|---|---|---|---|---|---|',
      ...fullSpeedRows,
      '',
      `| server | p50 ms @${FIXED_RATE}/s paced | p99 ms @${FIXED_RATE}/s paced | p99 ms, ${FIXED_RATE} a second in bursts | peak RSS MiB | non-2xx / errors (all runs) |`,
      '|---|---|---|---|---|---|',
      ...fixedRows,
      '',
      ...levelLines,
      `- Each at its own plateau (best median over the levels): baseline ${format(bestBaseline!.requestsPerSecond)} req/s (${bestBaseline!.connections} connections), BullMQ floor ${format(bestFloor!.requestsPerSecond)} (${bestFloor!.connections}), pushgate ${format(bestPushgate!.requestsPerSecond)} (${bestPushgate!.connections}): pushgate / baseline **${format(bestPushgate!.requestsPerSecond / bestBaseline!.requestsPerSecond, 2)}×**, floor / baseline ${format(bestFloor!.requestsPerSecond / bestBaseline!.requestsPerSecond, 2)}×.`,
      `- p99 at ${FIXED_RATE} req/s: **${format(fixed.get('pushgate')!.paced.p99, 1)} ms** paced (target < 25 ms); ${format(fixed.get('pushgate')!.bursts.p99)} ms in autocannon's bursts of ${FIXED_RATE} (baseline ${format(fixed.get('baseline')!.bursts.p99)} ms).`,
      '',
      ...INGEST_NOTES,
      '',
    ].join('\n');
    const file = writeBenchSection('ingest', section);
    process.stdout.write(`${section}\ningest: wrote ${file}\n`);
  } finally {
    await Promise.all(children.map((child) => child.stop()));
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

// `node dist/bench/ingest.js --baseline-server <redis-url>`: the baseline runs in its own process,
// so its RSS and CPU are measured the same way as pushgate's.
if (process.argv[1] === SELF && process.argv[2] === '--baseline-server') {
  runBaselineServer(process.argv[3]!, Number(process.argv[4]));
}
if (process.argv[1] === SELF && process.argv[2] === '--bullmq-floor-server') {
  runBullmqFloorServer(process.argv[3]!, Number(process.argv[4]));
}
