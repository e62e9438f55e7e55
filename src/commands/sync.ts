import type { Config } from '../config/schema.js';
import { UsageError } from '../lib/errors.js';
import { waitForRedis } from '../queue/connection.js';
import { connectProducer, loadRuntime } from '../runtime.js';
import { FINISHED_STATES, type JobRecord } from '../status/job-record.js';
import type { JobStore } from '../status/job-store.js';
import { statusBaseUrl } from '../status/reporters/commit-status-reporter.js';
import { clientRedisUrl } from './client-redis-url.js';
import type { CommandArgs } from './command.js';
import { printable } from './printable.js';

const POLL_MS = 500;
/** The producer connection fails fast by design; a CLI may wait a moment for it to connect. */
const REDIS_WAIT_MS = 5_000;

/**
 * `pushgate sync ENV [--wait]`: enqueues a deploy of the branch head (trigger `manual`) and
 * prints the job id; `--wait` follows the job, printing each state, and exits 0 when it
 * succeeded (or was superseded: the environment is at a newer head), 1 when it failed.
 */
export async function runSync(args: CommandArgs): Promise<number> {
  const [name, ...extra] = args.positionals;
  if (!name || extra.length > 0) throw new UsageError('usage: pushgate sync ENV [--wait]');
  // `url: ${REDIS_URL}` unset: the Redis of a pushgate start in this folder (clientRedisUrl).
  const { config } = loadRuntime(args.config, args.env, { unsetWhenVariableMissing: ['redis.url'] });
  if (!config.environments.some((environment) => environment.name === name)) {
    args.stderr.write(`pushgate sync: unknown environment "${name}" (configured: ${listNames(config)})\n`);
    return 2;
  }
  const services = connectProducer(clientRedisUrl(config, 'sync'), config.redis.prefix);
  try {
    await waitForRedis(services.redis, REDIS_WAIT_MS).catch(() => undefined);
    const job = await services.producer.enqueue(name, { kind: 'manual' });
    const statusUrl = new URL(`jobs/${encodeURIComponent(job.id)}`, statusBaseUrl(config)).toString();
    if (args.json)
      args.stdout.write(`${JSON.stringify({ jobs: [{ id: job.id, environment: name, statusUrl }] })}\n`);
    else args.stdout.write(`${job.id}\n`);
    if (!args.wait) return 0;
    const record = await follow(services.store, job.id, (line) => {
      if (!args.json) args.stdout.write(`${printable(line, true)}\n`);
    });
    if (args.json) args.stdout.write(`${JSON.stringify(record)}\n`);
    return record.state === 'failed' ? 1 : 0;
  } finally {
    await services.close();
  }
}

async function follow(store: JobStore, id: string, print: (line: string) => void): Promise<JobRecord> {
  let last = '';
  for (;;) {
    const record = await store.get(id);
    if (record) {
      const line = describe(record);
      if (line !== last) print(line);
      last = line;
      if (FINISHED_STATES.includes(record.state)) return record;
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

function describe(record: JobRecord): string {
  const sha = record.sha ? ` ${record.sha.slice(0, 12)}` : '';
  const detail = record.error ?? record.message ?? '';
  return `${record.state}${sha}${detail ? `: ${detail}` : ''}`;
}

function listNames(config: Config): string {
  return config.environments.map((environment) => environment.name).join(', ') || 'none';
}
