import type { Config } from '../config/schema.js';
import { formatDurationMs, parseDurationMs } from '../config/units.js';
import { errorMessage, PushgateError, UsageError } from '../lib/errors.js';
import { RedisModeError, waitForRedis } from '../queue/connection.js';
import { connectProducer, loadRuntime } from '../runtime.js';
import { FINISHED_STATES, jobView, type JobRecord } from '../status/job-record.js';
import type { JobStore } from '../status/job-store.js';
import { describeSuspension, type Suspension } from '../status/suspensions.js';
import { statusBaseUrl } from '../status/reporters/commit-status-reporter.js';
import { CliFailure } from './cli-failure.js';
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
 * Refused (exit 1) while the environment is suspended.
 */
export function runSync(args: CommandArgs): Promise<number> {
  return queueDeploy(args, 'sync');
}

/**
 * `pushgate resume ENV [--wait]`: lifts a suspension and, as `flux resume` does, deploys the
 * branch head at once: the same job, output and exit codes as sync.
 */
export function runResume(args: CommandArgs): Promise<number> {
  return queueDeploy(args, 'resume');
}

/** How long --wait follows unless --timeout says otherwise, as `flux reconcile --timeout`. */
const DEFAULT_WAIT_TIMEOUT_MS = 5 * 60_000;

/** --timeout: how long --wait follows, in milliseconds; 0 for no limit. */
function waitTimeoutMs(args: CommandArgs): number {
  if (args.timeout === undefined) return DEFAULT_WAIT_TIMEOUT_MS;
  // Given alone it would be ignored: sync without --wait ends once the job is queued.
  if (!args.wait) throw new UsageError('--timeout limits how long --wait follows the job: give --wait too');
  const ms = parseDurationMs(args.timeout);
  if (ms === undefined)
    throw new UsageError(
      `--timeout ${JSON.stringify(args.timeout)}: must be a duration such as 30s, 5m or 1h30m (0: no limit)`,
    );
  return ms;
}

async function queueDeploy(args: CommandArgs, command: 'sync' | 'resume'): Promise<number> {
  const [name, ...extra] = args.positionals;
  if (!name || extra.length > 0) throw new UsageError(`usage: pushgate ${command} ENV [--wait]`);
  const timeoutMs = waitTimeoutMs(args);
  // `url: ${REDIS_URL}` unset: the Redis of a pushgate start in this folder (clientRedisUrl).
  const { config } = loadRuntime(args.config, args.env, { unsetWhenVariableMissing: ['redis.url'] });
  if (!config.environments.some((environment) => environment.name === name)) {
    const problem = `unknown environment "${name}" (configured: ${listNames(config)})`;
    throw new CliFailure('environment_not_found', problem, { exitCode: 2 });
  }
  const services = connectProducer(
    { url: clientRedisUrl(config, command), cluster: config.redis.cluster },
    config.redis.prefix,
  );
  try {
    // The enqueue says whether Redis can be used; the wait says why not (a refused password, TLS).
    const waited = await waitForRedis(services.redis, REDIS_WAIT_MS).then(
      () => undefined,
      (error: unknown) => error,
    );
    // A Redis in the other mode than redis.cluster says is a configuration error (exit 2).
    if (waited instanceof RedisModeError) throw waited;
    // Once the wait failed, why is the wait's to say (as suspend and status do): the client's
    // own error ("Stream isn't writeable and enableOfflineQueue options is false") tells nobody.
    const unavailable = (error: unknown): never => {
      if (waited === undefined) throw error;
      throw new PushgateError('unavailable', `cannot ${command} ${name}: ${errorMessage(waited)}`);
    };
    // resume: the suspension it lifted (null: none), which --json shows as the API does.
    let lifted: Suspension | null = null;
    if (command === 'resume') {
      lifted = await services.store.suspensions.resume(name).catch(unavailable);
      args.stderr.write(
        lifted
          ? `pushgate resume: ${name} resumed (it was ${printable(describeSuspension(lifted))}); deploying its branch head\n`
          : `pushgate resume: ${name} was not suspended; deploying its branch head\n`,
      );
    } else {
      const suspension = await services.store.suspensions.get(name).catch(unavailable);
      if (suspension)
        throw new CliFailure(
          'suspended',
          `${name} is ${printable(describeSuspension(suspension))}: its deploys are held; pushgate resume ${name} deploys its branch head`,
        );
    }
    // A resume queues its own deploy (it must run at once); a sync joins one still waiting.
    const job = await services.producer
      .enqueue(name, { kind: 'manual' }, undefined, undefined, undefined, {
        pendingSync: command === 'resume' ? 'lead' : 'join',
      })
      .catch(unavailable);
    if (!job.created)
      args.stderr.write(
        `pushgate ${command}: a sync of ${name} queued earlier has not started yet; it deploys the branch head as it is then, so this is that job\n`,
      );
    if (command === 'resume')
      // Without it the held jobs start at their next recheck (within a minute): a warning, not a failure.
      await services.producer.wakeHeld(name).catch((error: unknown) => {
        args.stderr.write(
          `pushgate resume: could not wake the jobs held meanwhile (${errorMessage(error)}); they start within a minute\n`,
        );
      });
    const statusUrl = new URL(`jobs/${encodeURIComponent(job.id)}`, statusBaseUrl(config)).toString();
    // Heard from before the id is out: a Ctrl-C as soon as it shows stops the following, not the process.
    const stop = new AbortController();
    const onSignal = (signal: NodeJS.Signals): void => stop.abort(signal);
    if (args.wait) process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
    try {
      if (args.json) {
        const jobs = [{ id: job.id, environment: name, statusUrl }];
        // As POST /environments/:name/sync and /resume answer.
        const answer = command === 'resume' ? { jobs, resumed: lifted } : { jobs };
        args.stdout.write(`${JSON.stringify(answer)}\n`);
      } else args.stdout.write(`${job.id}\n`);
      if (!args.wait) return 0;
      return await followAndReport(services.store, job.id, args, command, timeoutMs, stop.signal);
    } finally {
      // A second Ctrl-C while closing ends the process at once.
      process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
    }
  } finally {
    await services.close();
  }
}

/** What --wait prints and its exit code: the job's end, or why following stopped before it. */
async function followAndReport(
  store: JobStore,
  id: string,
  args: CommandArgs,
  command: 'sync' | 'resume',
  /** --timeout: 0 for no limit. */
  timeoutMs: number,
  stop: AbortSignal,
): Promise<number> {
  const limits: FollowLimits = {
    ...FOLLOW_LIMITS,
    ...(timeoutMs > 0 ? { deadline: Date.now() + timeoutMs } : {}),
    stop,
  };
  const out = {
    print: (line: string) => {
      if (!args.json) args.stdout.write(`${printable(line, true)}\n`);
    },
    warn: (line: string) => args.stderr.write(`pushgate ${command}: ${line}\n`),
  };
  let record: JobRecord;
  try {
    record = await followDeploy(store, id, out, limits);
  } catch (error) {
    if (!(error instanceof FollowStoppedError)) throw error;
    // The job as it was when following stopped, where the finished job would have been.
    if (args.json && error.record) args.stdout.write(`${JSON.stringify(jobView(error.record))}\n`);
    if (error.why !== 'timeout')
      throw new CliFailure(
        'interrupted',
        `stopped following job ${error.id}; it continues (pushgate status ${error.id})`,
        // 128 + the signal's number, as a shell reports a command a signal ended.
        { exitCode: error.why === 'SIGINT' ? 130 : 143 },
      );
    const state = error.record?.state ?? 'unfinished';
    throw new CliFailure(
      'timeout',
      `job ${error.id} still ${state} after ${formatDurationMs(timeoutMs)}; follow it with: pushgate status ${error.id}`,
    );
  }
  if (args.json) args.stdout.write(`${JSON.stringify(jobView(record))}\n`);
  if (record.state !== 'failed') return 0;
  // Its state line said so already; --json says it on stderr too, as every failure.
  throw new CliFailure('deploy_failed', `job ${record.id} failed: ${record.error ?? 'no error recorded'}`, {
    shown: true,
  });
}

export interface FollowLimits {
  /** How long following bears Redis not answering, or the job having no record, before giving up. */
  redisGoneMs: number;
  recordGoneMs: number;
  /** When to stop following a job that has not finished (epoch ms; --timeout): none, no limit. */
  deadline?: number;
  /** Aborted, with the signal's name as its reason, when the user stops following (Ctrl-C). */
  stop?: AbortSignal;
}

const FOLLOW_LIMITS: FollowLimits = { redisGoneMs: 60_000, recordGoneMs: 10_000 };

/** Following stopped before the job finished (--timeout, or a signal): the job goes on without us. */
export class FollowStoppedError extends PushgateError {
  constructor(
    /** The job followed then (a superseded one's successor, perhaps). */
    readonly id: string,
    /** Its record as last read, if Redis answered. */
    readonly record: JobRecord | null,
    readonly why: 'timeout' | 'SIGINT' | 'SIGTERM',
  ) {
    super('follow_stopped', `stopped following job ${id} before it finished`);
    this.name = 'FollowStoppedError';
  }
}

/** How many superseding deploys a wait follows on, one after the other, at most. */
const SUCCESSORS_MAX = 10;

/**
 * The job's record once it has finished, as followJob; a job superseded (a newer commit came,
 * or another job deploys its own commit) is followed on to the deploy that took its place, so
 * `--wait` ends as that deploy does: a sync of a head whose newer push then fails exits 1,
 * as `flux reconcile` does when the revision it waited for is not ready.
 */
export async function followDeploy(
  store: JobStore,
  id: string,
  out: { print: (line: string) => void; warn: (line: string) => void },
  limits: FollowLimits = FOLLOW_LIMITS,
): Promise<JobRecord> {
  let record = await followJob(store, id, out, limits);
  for (let hop = 0; hop < SUCCESSORS_MAX && record.state === 'superseded' && record.supersededBy; hop++) {
    // Its commit's job, unless none is known any more: what superseded it is then live already.
    const next = await store.jobForSha(record.environment, record.supersededBy);
    if (!next || next.id === record.id) break;
    out.print(`following job ${next.id}, the deploy of ${record.supersededBy.slice(0, 12)}`);
    record = await followJob(store, next.id, out, limits);
  }
  return record;
}

/** The job's record once it has finished, printing each state it passes through. */
export async function followJob(
  store: JobStore,
  id: string,
  out: { print: (line: string) => void; warn: (line: string) => void },
  limits: FollowLimits = FOLLOW_LIMITS,
): Promise<JobRecord> {
  let last = '';
  let latest: JobRecord | null = null;
  let unreachableSince: number | undefined;
  let missingSince: number | undefined;
  const stopped = (): void => {
    const { stop } = limits;
    if (stop?.aborted)
      throw new FollowStoppedError(id, latest, stop.reason === 'SIGTERM' ? 'SIGTERM' : 'SIGINT');
  };
  // Checked after each read, so a job that finished by then is reported as finished.
  const pause = async (): Promise<void> => {
    stopped();
    const left = limits.deadline === undefined ? POLL_MS : limits.deadline - Date.now();
    if (left <= 0 && limits.deadline !== undefined) throw new FollowStoppedError(id, latest, 'timeout');
    await sleep(Math.min(POLL_MS, left), limits.stop);
    stopped();
  };
  for (;;) {
    let record: JobRecord | null;
    try {
      record = await store.get(id);
      if (unreachableSince !== undefined) out.warn('Redis answers again');
      unreachableSince = undefined;
    } catch (error) {
      // A Redis restart or failover is not the deploy's failure: the job goes on without us.
      if (unreachableSince === undefined)
        out.warn(`Redis does not answer (${errorMessage(error)}); still following job ${id}`);
      unreachableSince ??= Date.now();
      if (Date.now() - unreachableSince > limits.redisGoneMs)
        throw new PushgateError(
          'unavailable',
          `Redis has not answered for ${limits.redisGoneMs / 1000} s; job ${id} may still run (pushgate status ${id})`,
        );
      await pause();
      continue;
    }
    if (record) {
      latest = record;
      missingSince = undefined;
      const line = describe(record);
      if (line !== last) out.print(line);
      last = line;
      if (FINISHED_STATES.includes(record.state)) return record;
    } else {
      missingSince ??= Date.now();
      if (Date.now() - missingSince > limits.recordGoneMs)
        throw new PushgateError(
          'not_found',
          `job ${id} has no record any more: Redis lost it (a restart without persistence?)`,
        );
    }
    await pause();
  }
}

/** Resolves after `ms`, or at once when `stop` is aborted. */
function sleep(ms: number, stop?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      stop?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    stop?.addEventListener('abort', done, { once: true });
  });
}

function describe(record: JobRecord): string {
  const sha = record.sha ? ` ${record.sha.slice(0, 12)}` : '';
  const detail = record.error ?? record.message ?? '';
  return `${record.state}${sha}${detail ? `: ${detail}` : ''}`;
}

function listNames(config: Config): string {
  return config.environments.map((environment) => environment.name).join(', ') || 'none';
}
