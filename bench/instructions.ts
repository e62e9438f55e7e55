/**
 * Instructions per webhook in `pushgate serve`, counted by valgrind's callgrind. CPU time on
 * this shared machine moves by up to 1.5× from minute to minute; this count repeats to about
 * 0.1%, so a change of 1–2% to the receiver's hot path shows. It counts the main thread only
 * (the event loop, where a receiver's throughput is decided) after a warm-up, with one request
 * at a time so every batch holds one webhook.
 *
 *   npm run bench -- instructions
 *   BENCH_COMPARE_CLI=/path/to/other/dist/src/cli.js npm run bench -- instructions
 *
 * Caveat: valgrind hides the CPU's SHA extensions, so the HMAC counts more than it costs.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { findFreePort } from '../src/lib/free-port.js';
import {
  CLI,
  INGEST_SCRIPT,
  RECEIVER_NODE_FLAG,
  SECRET,
  signedPush,
  startRedisServer,
  writeServeConfig,
} from './ingest.js';
import { machineFacts, writeBenchSection } from './report.js';

const WARMUP_REQUESTS = Number(process.env.BENCH_WARMUP ?? 3000);
/** Enough that the garbage collections falling in the window are the run's share of them. */
const MEASURED_REQUESTS = Number(process.env.BENCH_REQUESTS ?? 3000);
/**
 * Each server is counted this many times (a new process each) and the median reported: whether
 * a major garbage collection, or V8's choice of what to optimise, falls in one run moves it by up
 * to 5%.
 */
const RUNS_PER_SERVER = Number(process.env.BENCH_RUNS ?? 3);
/** Requests once instrumentation is on, before its counters are zeroed. */
const REWARM_REQUESTS = 200;
const START_DEADLINE_MS = 120_000;
const BASELINE_NAME = 'baseline (see ingest)';

/**
 * 503s a run may see: under valgrind's slowdown a request (unoptimised, just retranslated with
 * instrumentation, or behind a garbage collection) can outlast the receiver's 800 ms Redis command
 * timeout, which answers 503 (nothing queued) as it should. Those in the count are reported.
 */
const WARMUP_UNAVAILABLE_ALLOWED = 50;
const MEASURED_UNAVAILABLE_ALLOWED = 10;

/** Sends `count` signed pushes one at a time; the number answered 503. */
async function sendPushes(url: string, count: number, unavailableAllowed: number): Promise<number> {
  let unavailable = 0;
  for (let sent = 0; sent < count; sent++) {
    const { body, headers } = signedPush();
    const response = await fetch(`${url}/webhooks/github`, { method: 'POST', headers, body });
    await response.arrayBuffer();
    if (response.status === 503 && unavailable < unavailableAllowed) unavailable++;
    else if (response.status !== 202) throw new Error(`webhook answered ${response.status}, expected 202`);
  }
  return unavailable;
}

/** Until the server answers HTTP at all (the BullMQ floor has no /healthz: it answers 401). */
async function waitUntilAnswering(url: string, exited: () => boolean): Promise<void> {
  const deadline = Date.now() + START_DEADLINE_MS;
  for (;;) {
    if (exited()) throw new Error('the server under valgrind exited before answering');
    try {
      await (await fetch(`${url}/healthz`)).arrayBuffer();
      return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`the server did not answer on ${url} in time`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

function callgrindControl(pid: number, ...args: string[]): void {
  const result = spawnSync('callgrind_control', [...args, String(pid)], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`callgrind_control ${args.join(' ')}: ${result.stderr}`);
}

/** The main thread's instruction count in the dump callgrind_control -d wrote. */
function mainThreadInstructions(dir: string, pid: number): number {
  const dump = readdirSync(dir).find((name) => name === `cg-${pid}.out.1-01`);
  if (!dump) throw new Error(`callgrind wrote no dump for process ${pid} in ${dir}`);
  const total = /^(?:summary|totals): (\d+)/m.exec(readFileSync(join(dir, dump), 'utf8'))?.[1];
  if (!total) throw new Error(`no totals in ${dump}`);
  return Number(total);
}

/** A server to count: its node arguments, given the port it must listen on. */
interface Counted {
  name: string;
  args(port: number): string[];
}

interface Count {
  perWebhook: number;
  /** Of the measured webhooks, those answered 503 (counted all the same). */
  unavailable: number;
}

async function countPerWebhook(server: Counted, dir: string): Promise<Count> {
  const port = await findFreePort();
  const child = spawn(
    'valgrind',
    [
      '--tool=callgrind',
      '--instr-atstart=no',
      '--separate-threads=yes',
      // V8 writes and rewrites machine code at run time.
      '--smc-check=all-non-file',
      `--callgrind-out-file=${join(dir, 'cg-%p.out')}`,
      process.execPath,
      RECEIVER_NODE_FLAG,
      ...server.args(port),
    ],
    {
      env: { ...process.env, GITHUB_WEBHOOK_SECRET: SECRET, PORT: String(port), LOG_LEVEL: 'info' },
      stdio: 'ignore',
    },
  );
  const pid = child.pid!;
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitUntilAnswering(url, () => child.exitCode !== null);
    await sendPushes(url, WARMUP_REQUESTS, WARMUP_UNAVAILABLE_ALLOWED);
    // Turning instrumentation on retranslates all code, slowly: the first requests after it are
    // warm-up again, and the counters are zeroed after them.
    callgrindControl(pid, '-i', 'on');
    await sendPushes(url, REWARM_REQUESTS, WARMUP_UNAVAILABLE_ALLOWED);
    callgrindControl(pid, '-z');
    const unavailable = await sendPushes(url, MEASURED_REQUESTS, MEASURED_UNAVAILABLE_ALLOWED);
    callgrindControl(pid, '-d');
    return { perWebhook: mainThreadInstructions(dir, pid) / MEASURED_REQUESTS, unavailable };
  } finally {
    const closed = new Promise((resolve) => child.once('close', resolve));
    child.kill('SIGKILL');
    await closed;
  }
}

export async function run(): Promise<void> {
  if (spawnSync('valgrind', ['--version']).status !== 0) {
    process.stdout.write(
      'bench instructions: valgrind is not installed (apt-get install valgrind), skipped\n',
    );
    return;
  }
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build (npm run bench does)`);
  const dir = mkdtempSync(join(os.tmpdir(), 'pushgate-bench-instructions-'));
  const redis = await startRedisServer(dir);
  try {
    const configFile = writeServeConfig(dir, redis.url);
    const serve = (name: string, cli: string): Counted => ({
      name,
      args: () => [cli, 'serve', '--config', configFile],
    });
    const servers: Counted[] = [
      serve('pushgate serve, this build', CLI),
      {
        name: 'BullMQ floor (see ingest)',
        args: (port) => [INGEST_SCRIPT, '--bullmq-floor-server', redis.url, String(port)],
      },
      {
        name: BASELINE_NAME,
        args: (port) => [INGEST_SCRIPT, '--baseline-server', redis.url, String(port)],
      },
    ];
    const compare = process.env.BENCH_COMPARE_CLI;
    if (compare) servers.push(serve(`pushgate serve, ${compare}`, compare));
    /** Each server's median run, with every run's count (`range`). */
    const counts: (Count & { range: string })[] = [];
    for (const server of servers) {
      const runs: Count[] = [];
      for (let run = 1; run <= RUNS_PER_SERVER; run++) {
        process.stdout.write(`instructions: ${server.name} under callgrind, run ${run}\n`);
        runs.push(await countPerWebhook(server, dir));
      }
      runs.sort((a, b) => a.perWebhook - b.perWebhook);
      counts.push({
        perWebhook: runs[Math.floor(runs.length / 2)]!.perWebhook,
        unavailable: runs.reduce((sum, { unavailable }) => sum + unavailable, 0),
        range: runs.map(({ perWebhook }) => `${Math.round(perWebhook / 1000)}k`).join(', '),
      });
    }
    const baseline = counts[servers.findIndex((server) => server.name === BASELINE_NAME)]!.perWebhook;
    const rows = servers.map((server, index) => {
      const { perWebhook, unavailable, range } = counts[index]!;
      return `| ${server.name} | ${Math.round(perWebhook / 1000)}k | ${range} | ${(perWebhook / baseline).toFixed(2)}× | ${unavailable} |`;
    });
    const table = [
      '| server | instructions per webhook, main thread (median) | runs | / baseline | answered 503 while counted |',
      '|---|---|---|---|---|',
      ...rows,
    ].join('\n');
    if (compare) {
      process.stdout.write(`${table}\n`);
      return;
    }
    const section = [
      '## instructions',
      '',
      `User-space instructions of \`pushgate serve\`'s main thread per signed GitHub push webhook, counted by`,
      `valgrind's callgrind after ${WARMUP_REQUESTS} warm-up webhooks (and ${REWARM_REQUESTS} more once counting is on, which`,
      `retranslates the code), over ${MEASURED_REQUESTS} webhooks sent one at a time (same payload, configuration and`,
      'young-generation size as the ingest bench). Unlike CPU time on this shared machine, the count',
      `repeats to a few tenths of a percent between most runs, but about one run in four is up to 5% off (a`,
      `garbage collection or an optimisation more or less in the window): each server is counted ${RUNS_PER_SERVER} times`,
      '(a new process each), and the median of them is the figure to compare two builds',
      "by (`BENCH_COMPARE_CLI`). valgrind hides the CPU's SHA extensions, so the HMAC counts for more than",
      'it costs on the real CPU. The BullMQ floor of the ingest bench (HMAC, `JSON.parse`, `Queue.add`,',
      'nothing else) and the baseline (HMAC and one `SET`) are counted the same way, as the references for',
      "what BullMQ and pushgate add. Were the main thread the only cost, 0.6× of the baseline's requests/s",
      `would need at most ${Math.round(baseline / 0.6 / 1000)}k instructions per webhook (the baseline's ÷ 0.6).`,
      '',
      `Measured ${new Date().toISOString()} with \`npm run bench -- instructions\` on:`,
      '',
      machineFacts(),
      '',
      table,
      '',
    ].join('\n');
    const file = writeBenchSection('instructions', section);
    process.stdout.write(`${section}\ninstructions: wrote ${file}\n`);
  } finally {
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
