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
const MEASURED_REQUESTS = Number(process.env.BENCH_REQUESTS ?? 1000);
const START_DEADLINE_MS = 120_000;
const BASELINE_NAME = 'baseline (see ingest)';

async function sendPushes(url: string, count: number): Promise<void> {
  for (let sent = 0; sent < count; sent++) {
    const { body, headers } = signedPush();
    const response = await fetch(`${url}/webhooks/github`, { method: 'POST', headers, body });
    await response.arrayBuffer();
    if (response.status !== 202) throw new Error(`webhook answered ${response.status}, expected 202`);
  }
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

async function countPerWebhook(server: Counted, dir: string): Promise<number> {
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
    await sendPushes(url, WARMUP_REQUESTS);
    callgrindControl(pid, '-i', 'on');
    await sendPushes(url, MEASURED_REQUESTS);
    callgrindControl(pid, '-d');
    return mainThreadInstructions(dir, pid) / MEASURED_REQUESTS;
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
    const counts: number[] = [];
    for (const server of servers) {
      process.stdout.write(`instructions: ${server.name} under callgrind\n`);
      counts.push(await countPerWebhook(server, dir));
    }
    const baseline = counts[servers.findIndex((server) => server.name === BASELINE_NAME)]!;
    const rows = servers.map(
      (server, index) =>
        `| ${server.name} | ${Math.round(counts[index]! / 1000)}k | ${(counts[index]! / baseline).toFixed(2)}× |`,
    );
    const table = [
      '| server | instructions per webhook, main thread | / baseline |',
      '|---|---|---|',
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
      `valgrind's callgrind after ${WARMUP_REQUESTS} warm-up webhooks, over ${MEASURED_REQUESTS} webhooks sent one at a time (same`,
      'payload, configuration and young-generation size as the ingest bench). Unlike CPU time on this',
      'shared machine, the count repeats to about 0.1% between runs: it is the figure to compare two builds',
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
