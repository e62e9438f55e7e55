/**
 * Idle benchmark: what idle `pushgate worker` processes cost Redis, by the number of
 * environments and of workers. Real workers (compiled CLI) against a private redis-server, the
 * local control plane (real kube-apiserver + etcd) and bare git repositories over file://; the
 * load is read from Redis itself (INFO commandstats and cpu). Writes the `## idle` section of
 * BENCHMARKS.md.
 *
 *   npm run bench -- idle
 *
 * Environment:
 *   BENCH_IDLE_SIZES        environments per run, comma-separated (default 10,100,300)
 *   BENCH_IDLE_WINDOW_S     seconds measured per row (default 120)
 *   BENCH_IDLE_SETTLE_S     seconds between the workers being ready (and the first re-syncs
 *                           done) and the window (default 10)
 *   BENCH_IDLE_RECONCILE    every environment's reconcileInterval (default 720h: see the section)
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { connectProducer, type ProducerServices } from '../src/runtime.js';
import { waitForRedis } from '../src/queue/connection.js';
import { machineFacts, writeBenchSection } from './report.js';
import { startCluster, startRedisServer, stopCluster } from './local-services.js';
import { shippedWorkerNodeFlags } from './shipped-worker.js';

const execFileAsync = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'dist/src/cli.js');
const PREFIX = 'bench';
const NAMESPACE = 'bench-idle';
/** Environments are spread over this many repositories, one branch each. */
const REPOSITORIES = 4;
const WORKER_COUNTS = [1, 3] as const;
/** How long a worker may take to say it is ready (300 environments on a busy machine). */
const READY_TIMEOUT_MS = 180_000;
/** How long the first re-syncs of every environment may take to finish. */
const FIRST_RESYNCS_TIMEOUT_MS = 300_000;
/** SIGTERM to exit: past the worker's own shutdown deadline, it is killed. */
const STOP_TIMEOUT_MS = 75_000;

interface Settings {
  sizes: number[];
  windowSeconds: number;
  settleSeconds: number;
  reconcileInterval: string;
}

function settingsFromEnv(env: Record<string, string | undefined>): Settings {
  const positive = (name: string, fallback: number, allowZero = false): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < (allowZero ? 0 : 1))
      throw new Error(`${name}="${raw}" is not a whole number of seconds${allowZero ? '' : ' above 0'}`);
    return value;
  };
  const rawSizes = env.BENCH_IDLE_SIZES;
  const sizes = (rawSizes === undefined || rawSizes === '' ? '10,100,300' : rawSizes)
    .split(',')
    .map((part) => Number(part.trim()));
  if (sizes.some((size) => !Number.isInteger(size) || size < 1 || size > 9999))
    throw new Error(`BENCH_IDLE_SIZES="${rawSizes}" is not a list of environment counts (1 to 9999)`);
  // A scheduler per environment, as with any interval, but slots so far apart that one falls in
  // a window rarely (N × 120 s / 30 days): what a window holds does not depend on the time of
  // day the bench runs (a slot's place in its interval is set by the environment's name).
  const reconcileInterval = env.BENCH_IDLE_RECONCILE || '720h';
  if (!/^[0-9a-z]+$/.test(reconcileInterval))
    throw new Error(`BENCH_IDLE_RECONCILE="${reconcileInterval}" is not a duration (e.g. 10m, 24h)`);
  return {
    // Largest first: the smaller configurations are prefixes of it (see run()).
    sizes: [...new Set(sizes)].sort((a, b) => b - a),
    windowSeconds: positive('BENCH_IDLE_WINDOW_S', 120),
    settleSeconds: positive('BENCH_IDLE_SETTLE_S', 10, true),
    reconcileInterval,
  };
}

const GIT_ENV = {
  ...process.env,
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_CONFIG_NOSYSTEM: '1',
};

const environmentName = (index: number): string => `idle-${String(index + 1).padStart(4, '0')}`;

/**
 * The repositories, written by one `git fast-import` each: a branch per environment, holding
 * one ConfigMap of its own, so every environment's deploy succeeds and owns one object.
 */
async function writeRepositories(dir: string, environments: number): Promise<string[]> {
  const repositories: string[] = [];
  for (let repo = 0; repo < REPOSITORIES; repo += 1) {
    const bare = join(dir, `env-${repo + 1}.git`);
    await execFileAsync('git', ['init', '--bare', '--quiet', bare], { env: GIT_ENV });
    let stream = '';
    for (let index = repo; index < environments; index += REPOSITORIES) {
      const name = environmentName(index);
      const manifest = `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\ndata:\n  environment: ${name}\n`;
      const message = `${name}\n`;
      stream +=
        `commit refs/heads/env/${name}\n` +
        `committer Bench <bench@example.com> 1700000000 +0000\n` +
        `data ${Buffer.byteLength(message)}\n${message}` +
        `M 100644 inline manifests/configmap.yaml\n` +
        `data ${Buffer.byteLength(manifest)}\n${manifest}\n`;
    }
    await new Promise<void>((resolve, reject) => {
      const child = spawn('git', ['fast-import', '--quiet'], {
        cwd: bare,
        env: GIT_ENV,
        stdio: ['pipe', 'ignore', 'inherit'],
      });
      child.on('error', reject);
      child.on('close', (code) =>
        code === 0 ? resolve() : reject(new Error(`git fast-import exited with ${code}`)),
      );
      child.stdin.end(stream);
    });
    repositories.push(bare);
  }
  return repositories;
}

function configText(
  redisUrl: string,
  kubeconfig: string,
  repositories: string[],
  environments: number,
  reconcileInterval: string,
): string {
  const lines = [
    `redis: { url: "${redisUrl}", prefix: ${PREFIX} }`,
    `clusters: [{ name: bench, kubeconfig: "${kubeconfig}" }]`,
    'environments:',
  ];
  for (let index = 0; index < environments; index += 1) {
    const name = environmentName(index);
    const repo = index % REPOSITORIES;
    lines.push(
      `  - name: ${name}`,
      `    repo: { provider: github, name: acme/env-${repo + 1}, url: "file://${repositories[repo]}" }`,
      `    branch: env/${name}`,
      `    path: manifests`,
      `    cluster: bench`,
      `    namespace: ${NAMESPACE}`,
      `    allow: { namespaces: [${NAMESPACE}] }`,
      `    reconcileInterval: ${reconcileInterval}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** SIGTERM, then waits for the exit; SIGKILL past the deadline. Resolves true when it exited of itself. */
async function stopProcess(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = sleep(timeoutMs, 'deadline' as const, { ref: false });
  if ((await Promise.race([exited.then(() => 'exited' as const), timer])) === 'exited') return true;
  child.kill('SIGKILL');
  await exited;
  return false;
}

/** One `pushgate worker` process, its log read for readiness and kept (the tail) for errors. */
class WorkerProcess {
  readonly child: ChildProcess;
  readonly ready: Promise<void>;
  private readonly tail: string[] = [];

  constructor(
    readonly label: string,
    configFile: string,
    cacheDir: string,
  ) {
    // The shipped worker Deployment's NODE_OPTIONS, as node's flags (the CLI turns Maglev off itself).
    this.child = spawn(
      process.execPath,
      [...shippedWorkerNodeFlags(), CLI, 'worker', '--config', configFile],
      {
        env: { ...process.env, LOG_LEVEL: 'info', PUSHGATE_CACHE_DIR: cacheDir },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    this.ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${label} not ready within ${READY_TIMEOUT_MS / 1000} s${this.lastLines()}`)),
        READY_TIMEOUT_MS,
      );
      const onLine = (line: string, stream: 'stdout' | 'stderr'): void => {
        this.tail.push(line);
        if (this.tail.length > 40) this.tail.shift();
        const entry = parseLogLine(line);
        if (entry?.msg === 'deploy worker ready') {
          clearTimeout(timer);
          resolve();
        }
        // Warnings and errors are shown as they come: an idle worker should have none.
        if (stream === 'stderr' || (entry && ['warn', 'error', 'fatal'].includes(String(entry.level))))
          process.stderr.write(`bench idle: ${label}: ${line}\n`);
      };
      readLines(this.child.stdout!, (line) => onLine(line, 'stdout'));
      readLines(this.child.stderr!, (line) => onLine(line, 'stderr'));
      this.child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${label} exited (${signal ?? code}) before it was ready${this.lastLines()}`));
      });
    });
    // Settled either way by whoever waits for it; never an unhandled rejection.
    this.ready.catch(() => undefined);
  }

  /** Resident memory now (VmRSS), MiB. */
  rssMiB(): number {
    const status = readFileSync(`/proc/${this.child.pid}/status`, 'utf8');
    const match = /^VmRSS:\s+(\d+) kB/m.exec(status);
    return match ? Number(match[1]) / 1024 : Number.NaN;
  }

  async stop(): Promise<void> {
    if (!(await stopProcess(this.child, STOP_TIMEOUT_MS)))
      process.stderr.write(`bench idle: ${this.label} did not stop on SIGTERM, killed${this.lastLines()}\n`);
  }

  private lastLines(): string {
    return this.tail.length > 0 ? `; its last lines:\n${this.tail.join('\n')}` : '';
  }
}

function readLines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let buffered = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buffered += chunk;
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines) if (line.trim() !== '') onLine(line);
  });
}

function parseLogLine(line: string): { msg?: unknown; level?: unknown } | undefined {
  try {
    const parsed: unknown = JSON.parse(line);
    return typeof parsed === 'object' && parsed !== null ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/** What Redis says of itself at one moment. */
interface RedisSample {
  /** performance.now() when the reply came. */
  at: number;
  /** Calls by command (commandstats: commands run inside scripts and MULTI included). */
  calls: Map<string, number>;
  cpuSeconds: number;
  clients: number;
  bytesIn: number;
  bytesOut: number;
  /** The size of this INFO reply, counted in the next sample's bytesOut. */
  replyBytes: number;
}

async function sampleRedis(services: ProducerServices): Promise<RedisSample> {
  const info = await services.redis.info('commandstats', 'cpu', 'clients', 'stats');
  const at = performance.now();
  const calls = new Map<string, number>();
  for (const match of info.matchAll(/^cmdstat_(\S+?):calls=(\d+),/gm)) calls.set(match[1]!, Number(match[2]));
  const field = (name: string): number =>
    Number(new RegExp(`^${name}:([0-9.]+)`, 'm').exec(info)?.[1] ?? NaN);
  return {
    at,
    calls,
    cpuSeconds: field('used_cpu_sys') + field('used_cpu_user'),
    clients: field('connected_clients'),
    bytesIn: field('total_net_input_bytes'),
    bytesOut: field('total_net_output_bytes'),
    replyBytes: Buffer.byteLength(info),
  };
}

interface IdleResult {
  environments: number;
  workers: number;
  seconds: number;
  /** Calls by command during the window, the bench's own INFO taken out. */
  calls: Map<string, number>;
  total: number;
  cpuMs: number;
  /** Bytes Redis read from and wrote to its clients per second. */
  bytesInPerSecond: number;
  bytesOutPerSecond: number;
  rssMiB: number[];
  /** Deploys that started in the window (`environment (trigger)`): none is what idle means. */
  deploys: string[];
  clients: number;
}

/** Every environment deployed once (the first re-syncs of new schedulers), and nothing queued or running. */
async function waitForFirstResyncs(services: ProducerServices, environments: number): Promise<void> {
  const deadline = Date.now() + FIRST_RESYNCS_TIMEOUT_MS;
  const names = Array.from({ length: environments }, (_, index) => environmentName(index));
  for (;;) {
    const statuses = await Promise.all(names.map((name) => services.store.environmentStatus(name)));
    const undeployed = statuses.filter((status) => status.lastAppliedSha === null).length;
    const counts = await services.queue.getJobCounts('wait', 'prioritized', 'active');
    const busy = (counts.wait ?? 0) + (counts.prioritized ?? 0) + (counts.active ?? 0);
    if (undeployed === 0 && busy === 0) return;
    if (Date.now() > deadline) {
      const failed = await services.store.list({ state: 'failed', limit: 3 });
      throw new Error(
        `first re-syncs not done within ${FIRST_RESYNCS_TIMEOUT_MS / 1000} s: ${undeployed} environments never deployed, ${busy} jobs queued or running` +
          failed.map((record) => `\n  ${record.environment}: ${record.error ?? record.message}`).join(''),
      );
    }
    await sleep(1_000);
  }
}

async function measure(
  services: ProducerServices,
  workers: WorkerProcess[],
  environments: number,
  windowSeconds: number,
): Promise<IdleResult> {
  const before = await sampleRedis(services);
  const startedAt = Date.now();
  // A duration to measure over, not a wait for something to be ready.
  await sleep(windowSeconds * 1000);
  const after = await sampleRedis(services);
  const endedAt = Date.now();
  const gone = workers.filter((worker) => worker.child.exitCode !== null || worker.child.signalCode !== null);
  if (gone.length > 0)
    throw new Error(`${gone.map((worker) => worker.label).join(', ')} exited during the window`);
  const rssMiB = workers.map((worker) => worker.rssMiB());
  const seconds = (after.at - before.at) / 1000;
  const calls = new Map<string, number>();
  for (const [command, count] of after.calls) {
    // The first INFO is counted once it has run: in the second sample.
    const delta = count - (before.calls.get(command) ?? 0) - (command === 'info' ? 1 : 0);
    if (delta > 0) calls.set(command, delta);
  }
  const total = [...calls.values()].reduce((sum, count) => sum + count, 0);
  const recent = await services.store.list({ limit: 5_000 });
  const deploys = recent
    .filter((record) => {
      const started = record.startedAt ? Date.parse(record.startedAt) : Number.NaN;
      return started >= startedAt && started <= endedAt;
    })
    .map((record) => `${record.environment} (${record.trigger.kind})`);
  return {
    environments,
    workers: workers.length,
    seconds,
    calls,
    total,
    cpuMs: ((after.cpuSeconds - before.cpuSeconds) * 1000) / seconds,
    bytesInPerSecond: (after.bytesIn - before.bytesIn) / seconds,
    bytesOutPerSecond: (after.bytesOut - before.bytesOut - before.replyBytes) / seconds,
    rssMiB,
    deploys,
    clients: after.clients - 1,
  };
}

const perSecond = (count: number, seconds: number): string => {
  const value = count / seconds;
  return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2);
};

const byCalls = (calls: Map<string, number>): [string, number][] =>
  [...calls.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));

const kib = (bytesPerSecond: number): string => (bytesPerSecond / 1024).toFixed(1);

function tableRow(result: IdleResult): string {
  const top = byCalls(result.calls)
    .slice(0, 3)
    .map(([command, count]) => `${command} ${perSecond(count, result.seconds)}`)
    .join(', ');
  const perEnvironmentWorker = result.total / result.seconds / result.environments / result.workers;
  const cells = [
    result.environments,
    result.workers,
    perSecond(result.total, result.seconds),
    perEnvironmentWorker.toFixed(3),
    result.cpuMs.toFixed(1),
    `${kib(result.bytesInPerSecond)} / ${kib(result.bytesOutPerSecond)}`,
    top,
    result.rssMiB.map((rss) => rss.toFixed(0)).join(' / '),
    result.clients,
    result.deploys.length,
  ];
  return `| ${cells.join(' | ')} |`;
}

/** Redis with no client but the bench, while the control plane starts: the floor of its CPU. */
interface RedisFloor {
  seconds: number;
  cpuMs: number;
}

function formatSection(
  results: IdleResult[],
  settings: Settings,
  machineText: string,
  run: { minutes: number; loadAtEnd: number; floor: RedisFloor },
): string {
  const rows = [...results].sort((a, b) => a.environments - b.environments || a.workers - b.workers);
  // Every command of every row, in the order of the largest row's calls.
  const largest = rows.at(-1)!;
  const commands = [
    ...new Set([...byCalls(largest.calls), ...rows.flatMap((row) => byCalls(row.calls))].map(([c]) => c)),
  ];
  const breakdown = commands.map(
    (command) =>
      `| ${command} | ${rows.map((row) => perSecond(row.calls.get(command) ?? 0, row.seconds)).join(' | ')} |`,
  );
  const heading = rows.map((row) => `${row.environments} env × ${row.workers}`).join(' | ');
  const deploys = rows
    .filter((row) => row.deploys.length > 0)
    .map((row) => `${row.environments} env × ${row.workers}: ${row.deploys.join(', ')}`);
  const windowPasses = (settings.windowSeconds / 60).toFixed(1).replace(/\.0$/, '');
  const windowRenewals = (settings.windowSeconds / 10).toFixed(1).replace(/\.0$/, '');
  const sizes = settings.sizes.join(',');
  const command =
    sizes === '300,100,10' ? 'npm run bench -- idle' : `BENCH_IDLE_SIZES=${sizes} npm run bench -- idle`;
  return `## idle

What idle workers cost Redis: real \`pushgate worker\` processes (compiled CLI, log level info,
default concurrency, no commit-status token) against a private redis-server (no persistence), the
local control plane (\`scripts/cluster.sh up\`: real kube-apiserver + etcd on loopback) and
${REPOSITORIES} bare git repositories over file://. N environments (\`idle-0001\`…) spread over the
repositories, one branch each holding one ConfigMap, all in namespace \`${NAMESPACE}\`, each with
\`reconcileInterval: ${settings.reconcileInterval}\`: a re-sync scheduler per environment, which the
per-minute pass checks whatever the interval, but a slot in a window only rarely, whatever the
time of day (at the default 10m about N/5 re-sync deploys fall in each 120 s window: deploy work,
not idle cost; \`BENCH_IDLE_RECONCILE=10m\` measures with them).

One Redis for the whole run, the largest N first. 1 worker is started and waited for (its "deploy
worker ready" log line); the first re-sync of every environment (queued within a minute of a new
scheduler) runs, and is waited for until every environment has deployed and nothing is queued or
running; ${settings.settleSeconds} s later, ${settings.windowSeconds} s are measured. Then 2 more workers are
started and waited for, and after ${settings.settleSeconds} s the 3 are measured. All stop (SIGTERM,
waited for). Each smaller N is the first N environments of the largest: its workers remove the
other schedulers at start and have no first re-syncs to run. A ${settings.windowSeconds} s window holds
${settings.windowSeconds % 60 === 0 ? 'exactly, whatever its phase,' : 'on average'} ${windowPasses} per-minute repair
passes (requeue, scheduler restore, target changes: one worker of a configuration runs each) and
${windowRenewals} presence renewals of each worker (every 10 s; its per-environment records once a minute).

Figures are \`INFO commandstats\` deltas over the window (the bench's own INFO taken out). Commands
run inside scripts (BullMQ's EVALSHA, pushgate's EVAL) and inside MULTI/EXEC count one by one, as in
\`total_commands_processed\`, beside the EVALSHA or EXEC itself: one round trip may count many.
Redis CPU is \`used_cpu_sys + used_cpu_user\` (with no client but the bench, over the
${run.floor.seconds.toFixed(0)} s the control plane took to start, it was ${run.floor.cpuMs.toFixed(1)} ms/s: its own timers);
net in / out are the bytes Redis read from and wrote to its clients; worker RSS is VmRSS at the
window's end, one figure per worker (at the largest N, the first ran the first re-syncs); clients
are Redis's connected clients less the bench's; deploys are the jobs that started in the window
(0: the workers were idle).

Measured ${new Date().toISOString()} with \`${command}\` (${run.minutes.toFixed(0)} min in all;
\`BENCH_IDLE_SIZES=300\` runs one size, \`BENCH_IDLE_WINDOW_S\` sets the window) on:

${machineText}
- load average at end (1 min): ${run.loadAtEnd.toFixed(2)}

| environments | workers | Redis commands/s | per environment per worker | Redis CPU ms/s | Redis net in / out KiB/s | top 3 commands (calls/s) | worker RSS MiB | clients | deploys in window |
|---|---|---|---|---|---|---|---|---|---|
${rows.map(tableRow).join('\n')}

${EARLIER}${deploys.length > 0 ? `\nDeploys in the windows (re-sync slots that fell in them): ${deploys.join('; ')}.\n` : ''}
Calls/s of every command:

| command | ${heading} |
|---|${rows.map(() => '---|').join('')}
${breakdown.join('\n')}
`;
}

/** Figures of earlier builds, on the same kind of machine, kept for comparison. */
const EARLIER = `Before the idle load was cut (commit e869c12: records rewritten at every 10 s renewal, every
worker running every minute's pass, which read each environment's history whole), measured
2026-12-05T06:30:21Z the same way, on the same machine (load average 3.95 at start):

| environments | workers | Redis commands/s | per environment per worker | Redis CPU ms/s | Redis net in / out KiB/s | top 3 commands (calls/s) |
|---|---|---|---|---|---|---|
| 10 | 1 | 4.93 | 0.493 | 2.8 | 0.6 / 0.2 | hset 1.10, hsetnx 1.00, evalsha 0.33 |
| 10 | 3 | 13.9 | 0.464 | 3.2 | 1.8 / 0.7 | hset 3.30, hsetnx 3.00, zrevrange 1.00 |
| 100 | 1 | 33.4 | 0.334 | 2.9 | 5.3 / 2.3 | hset 10.1, hsetnx 10.00, zrevrange 3.33 |
| 100 | 3 | 99.4 | 0.331 | 4.2 | 15.8 / 6.9 | hset 30.3, hsetnx 30.0, zrevrange 9.99 |
| 300 | 1 | 96.7 | 0.322 | 3.7 | 15.6 / 6.9 | hset 30.1, hsetnx 30.0, zrevrange 9.99 |
| 300 | 3 | 289 | 0.321 | 5.9 | 46.8 / 20.6 | hset 90.2, hsetnx 89.9, zrevrange 30.0 |
`;

export async function run(): Promise<void> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build (npm run bench does)`);
  const settings = settingsFromEnv(process.env);
  const runStarted = Date.now();
  const machineText = machineFacts();
  const dir = mkdtempSync(join(os.tmpdir(), 'pushgate-bench-idle-'));
  const clusterDir = join(dir, 'cluster');
  const workers: WorkerProcess[] = [];
  let redis: { url: string; child: ChildProcess } | undefined;
  let services: ProducerServices | undefined;
  const stopWorkers = async (): Promise<void> => {
    await Promise.all(workers.map((worker) => worker.stop()));
    workers.length = 0;
  };
  try {
    redis = await startRedisServer(dir);
    services = connectProducer({ url: redis.url, cluster: false }, PREFIX);
    await waitForRedis(services.redis, 10_000);
    const alone = await sampleRedis(services);
    const kubeconfig = await startCluster(clusterDir);
    await execFileAsync('kubectl', ['--kubeconfig', kubeconfig, 'create', 'namespace', NAMESPACE]);
    const repositories = await writeRepositories(dir, settings.sizes[0]!);
    const aloneEnd = await sampleRedis(services);
    const floorSeconds = (aloneEnd.at - alone.at) / 1000;
    const floor = {
      seconds: floorSeconds,
      cpuMs: ((aloneEnd.cpuSeconds - alone.cpuSeconds) * 1000) / floorSeconds,
    };

    const results: IdleResult[] = [];
    let workerCount = 0;
    for (const [sizeIndex, environments] of settings.sizes.entries()) {
      const configFile = join(dir, `pushgate-${environments}.yaml`);
      writeFileSync(
        configFile,
        configText(redis.url, kubeconfig, repositories, environments, settings.reconcileInterval),
      );
      for (const count of WORKER_COUNTS) {
        const started = Date.now();
        while (workers.length < count) {
          workerCount += 1;
          const cacheDir = join(dir, `cache-${workerCount}`);
          mkdirSync(cacheDir);
          workers.push(new WorkerProcess(`worker ${workerCount}`, configFile, cacheDir));
        }
        await Promise.all(workers.map((worker) => worker.ready));
        process.stdout.write(
          `bench idle: ${environments} environments, ${count} worker(s) ready in ${((Date.now() - started) / 1000).toFixed(0)} s\n`,
        );
        if (sizeIndex === 0 && count === WORKER_COUNTS[0]) {
          await waitForFirstResyncs(services, environments);
          process.stdout.write(
            `bench idle: first re-syncs done ${((Date.now() - started) / 1000).toFixed(0)} s after the start\n`,
          );
        }
        await sleep(settings.settleSeconds * 1000);
        const result = await measure(services, workers, environments, settings.windowSeconds);
        results.push(result);
        process.stdout.write(
          `bench idle: ${environments} environments, ${count} worker(s): ${perSecond(result.total, result.seconds)} commands/s, ${result.cpuMs.toFixed(1)} ms/s CPU, deploys: ${result.deploys.join(', ') || 'none'}\n`,
        );
      }
      await stopWorkers();
    }

    const section = formatSection(results, settings, machineText, {
      minutes: (Date.now() - runStarted) / 60_000,
      loadAtEnd: os.loadavg()[0]!,
      floor,
    });
    writeBenchSection('idle', section);
    process.stdout.write(section);
  } finally {
    await stopWorkers();
    await services?.close();
    if (redis) await stopProcess(redis.child, 10_000);
    await stopCluster(clusterDir);
    rmSync(dir, { recursive: true, force: true });
  }
}
