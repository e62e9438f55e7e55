import type { Config, EnvironmentConfig } from '../config/schema.js';
import { UsageError } from '../lib/errors.js';
import { waitForRedis } from '../queue/connection.js';
import { describeSuspension } from '../status/suspensions.js';
import { connectProducer, loadRuntime, type ProducerServices } from '../runtime.js';
import { environmentView, type EnvironmentView } from '../status/environment-view.js';
import { jobView, type JobRecord } from '../status/job-record.js';
import { CliFailure, redisUnavailable } from './cli-failure.js';
import { clientRedisUrl } from './client-redis-url.js';
import type { CommandArgs } from './command.js';
import { printable } from './printable.js';
import { someOf } from './some-of.js';
import { formatTable } from './table.js';
import { mapWithConcurrency } from '../kube/map-with-concurrency.js';

const DEFAULT_JOBS_PER_ENVIRONMENT = 5;
/** Each job shown is read whole, object list included: a fleet's page must stay cheap to read. */
const MAX_JOBS_PER_ENVIRONMENT = 100;
const REDIS_TIMEOUT_MS = 5_000;
/**
 * Environments read at once: each read holds up to --limit whole records, object lists
 * included (about 100 KB a record at 1,000 objects), so 300 at once could take gigabytes.
 */
const ENVIRONMENTS_AT_ONCE = 8;

/**
 * `pushgate status [JOB_ID] [--environment NAME]... [--limit N] [--json]`: one job, or the
 * latest jobs of every environment (or of those named); `--limit 0` the environments alone.
 */
export async function runStatus(args: CommandArgs): Promise<number> {
  const [jobId] = args.positionals;
  if (jobId !== undefined && (args.environments !== undefined || args.limit !== undefined))
    throw new UsageError(
      'JOB_ID shows one job: --environment and --limit choose environments and how many of their jobs to show',
    );
  const limit = jobsPerEnvironment(args.limit);
  // `url: ${REDIS_URL}` unset: the Redis of a pushgate start in this folder (clientRedisUrl).
  const { config } = loadRuntime(args.config, args.env, { unsetWhenVariableMissing: ['redis.url'] });
  // A misspelt name is refused before Redis is dialled, rather than answered with nothing.
  const chosen = jobId === undefined ? chosenEnvironments(config, args.environments) : [];
  const services = connectProducer(
    { url: clientRedisUrl(config, 'status'), cluster: config.redis.cluster },
    config.redis.prefix,
  );
  try {
    await waitForRedis(services.redis, REDIS_TIMEOUT_MS).catch(redisUnavailable);
    if (jobId !== undefined) return await showJob(services, jobId, args);
    if (limit === 0) return await showEnvironments(services, chosen, args);
    const environments = await mapWithConcurrency(chosen, ENVIRONMENTS_AT_ONCE, async (environment) => {
      const [status, jobs] = await Promise.all([
        services.store.environmentStatus(environment.name),
        services.store.list({ environment: environment.name, limit }),
      ]);
      // The table shows none of a job's objects: only --json keeps their lists.
      const kept = args.json ? jobs : jobs.map((job) => ({ ...job, resources: [] }));
      const lastJob = await services.store.lastJob(environment.name, jobs[0]);
      return { ...environmentView(environment, status, lastJob), jobs: kept };
    });
    if (args.json) {
      // As GET /environments/:name shows them.
      const shown = environments.map((environment) => ({
        ...environment,
        jobs: environment.jobs.map(jobView),
      }));
      args.stdout.write(`${JSON.stringify({ environments: shown }, null, 2)}\n`);
      return 0;
    }
    writeEnvironments(environments, args);
    const rows = environments.flatMap((environment) =>
      environment.jobs.length === 0
        ? [[environment.name, '-', '(no jobs)', '', '', '']]
        : environment.jobs.map((job) => jobRow(job)),
    );
    args.stdout.write(
      `\n${formatTable(['ENVIRONMENT', 'JOB', 'STATE', 'SHA', 'RECEIVED', 'FINISHED'], rows)}`,
    );
    return 0;
  } finally {
    await services.close();
  }
}

/** --limit: how many jobs of each environment to show, 0 for none. */
function jobsPerEnvironment(given: string | undefined): number {
  if (given === undefined) return DEFAULT_JOBS_PER_ENVIRONMENT;
  if (!/^\d+$/.test(given) || Number(given) > MAX_JOBS_PER_ENVIRONMENT)
    throw new UsageError(
      `--limit ${JSON.stringify(given)}: must be a whole number of jobs per environment from 0 to ${MAX_JOBS_PER_ENVIRONMENT}`,
    );
  return Number(given);
}

/** The environments --environment names (each value one name or several, comma-separated), in the config's order. */
function chosenEnvironments(config: Config, given: readonly string[] | undefined): EnvironmentConfig[] {
  if (given === undefined) return config.environments;
  const names = new Set(
    given
      .flatMap((value) => value.split(','))
      .map((name) => name.trim())
      .filter((name) => name !== ''),
  );
  if (names.size === 0) throw new UsageError('--environment: give a name, or several as NAME,NAME');
  const known = config.environments.map((environment) => environment.name);
  const unknown = [...names].filter((name) => !known.includes(name));
  if (unknown.length > 0) {
    const quoted = unknown.map((name) => JSON.stringify(name)).join(', ');
    throw new CliFailure(
      'environment_not_found',
      `unknown environment${unknown.length > 1 ? 's' : ''} ${quoted} (configured: ${someOf(known) || 'none'})`,
      { exitCode: 2 },
    );
  }
  return config.environments.filter((environment) => names.has(environment.name));
}

/**
 * --limit 0: one line an environment, as `flux get kustomizations` and `argocd app list` show
 * a fleet. Only each newest job's fields before its object list are read, as GET /environments
 * reads them, and no job table follows (a "(no jobs)" row for each would say what is not so).
 */
async function showEnvironments(
  services: ProducerServices,
  chosen: readonly EnvironmentConfig[],
  args: CommandArgs,
): Promise<number> {
  const environments = await Promise.all(
    chosen.map(async (environment) => {
      const [status, latest] = await Promise.all([
        services.store.environmentStatus(environment.name),
        services.store.lastJob(environment.name),
      ]);
      return environmentView(environment, status, latest);
    }),
  );
  if (args.json) {
    // As GET /environments shows them.
    args.stdout.write(`${JSON.stringify({ environments }, null, 2)}\n`);
    return 0;
  }
  writeEnvironments(environments, args);
  return 0;
}

/** What each environment runs first, as `flux get kustomizations` shows it; then its suspension, if any. */
function writeEnvironments(environments: readonly EnvironmentView[], args: CommandArgs): void {
  args.stdout.write(
    formatTable(
      ['ENVIRONMENT', 'BRANCH', 'LAST APPLIED', 'APPLIED AT', 'LAST JOB', 'SUSPENDED'],
      environments.map((environment) => [
        environment.name,
        environment.branch,
        environment.lastAppliedSha?.slice(0, 12) ?? '-',
        environment.lastAppliedAt ?? '-',
        describeLastJob(environment.lastJob),
        environment.suspended ? `since ${environment.suspended.at}` : '-',
      ]),
    ),
  );
  // The reason is free text: on a line of its own, made printable.
  for (const environment of environments) {
    if (environment.suspended)
      args.stdout.write(
        `${printable(`${environment.name} is ${describeSuspension(environment.suspended)}: deploys held until pushgate resume ${environment.name}`)}\n`,
      );
  }
}

async function showJob(services: ProducerServices, jobId: string, args: CommandArgs): Promise<number> {
  const job = await services.store.get(jobId);
  if (!job) throw new CliFailure('job_not_found', `job "${jobId}" not found`);
  // As GET /jobs/:id shows it.
  const sha = job.sha ?? job.trigger.sha;
  const commitStatus = sha ? await services.store.commitStatus(job.environment, sha) : null;
  if (args.json) {
    const view = { ...jobView(job), ...(commitStatus ? { commitStatus } : {}) };
    args.stdout.write(`${JSON.stringify(view, null, 2)}\n`);
    return 0;
  }
  const lines = [
    `job          ${job.id}`,
    `environment  ${job.environment}`,
    `state        ${job.state}`,
    `trigger      ${describeTrigger(job)}`,
    `sha          ${job.sha ?? '-'}`,
    `attempts     ${job.attempts}`,
    `received     ${job.receivedAt}`,
    `started      ${job.startedAt ?? '-'}`,
    `finished     ${job.finishedAt ?? '-'}`,
  ];
  // One value a line: a newline inside one (a pusher's name) must not forge another line.
  const shown = lines.map((line) => printable(line));
  if (job.error) shown.push(`error        ${printable(job.error, true)}`);
  if (job.message) shown.push(`message      ${printable(job.message, true)}`);
  if (commitStatus) {
    const delivery = commitStatus.delivered
      ? 'delivered'
      : commitStatus.error
        ? `not delivered: ${commitStatus.error}`
        : 'not delivered yet';
    shown.push(`commit       ${printable(`${commitStatus.state} (${delivery})`, true)}`);
  }
  args.stdout.write(`${shown.join('\n')}\n`);
  if (job.resources.length > 0) {
    args.stdout.write(
      `\n${formatTable(
        ['ACTION', 'KIND', 'NAMESPACE', 'NAME'],
        job.resources.map((resource) => [
          resource.action,
          `${resource.apiVersion}/${resource.kind}`,
          resource.namespace ?? '',
          resource.name,
        ]),
      )}`,
    );
  }
  return 0;
}

function describeTrigger(job: JobRecord): string {
  const { trigger } = job;
  const parts: string[] = [trigger.kind];
  if (trigger.provider) parts.push(trigger.provider);
  if (trigger.sha) parts.push(trigger.sha.slice(0, 12));
  if (trigger.pusher) parts.push(`by ${trigger.pusher}`);
  if (trigger.deliveryId) parts.push(`delivery ${trigger.deliveryId}`);
  return parts.join(' ');
}

/** "failed on 1a2b3c4d5e6f": a failed deploy's commit may be partly live. */
function describeLastJob(job: EnvironmentView['lastJob']): string {
  if (!job) return '(no jobs)';
  return job.sha ? `${job.state} on ${job.sha.slice(0, 12)}` : job.state;
}

function jobRow(job: JobRecord): string[] {
  // A job waiting out its backoff is queued again: say so, or it looks as if nothing happened.
  const retrying = job.state === 'queued' && job.attempts > 0 && job.error !== null;
  return [
    job.environment,
    job.id,
    retrying ? `queued (attempt ${job.attempts} failed, retrying)` : job.state,
    (job.sha ?? job.trigger.sha ?? '-').slice(0, 12),
    job.receivedAt,
    job.finishedAt ?? '-',
  ];
}
