import type { EnvironmentConfig } from '../config/schema.js';
import { counted } from '../lib/counted.js';
import { errorMessage } from '../lib/errors.js';
import { DeployError } from '../kube/types.js';
import type { Logger } from '../lib/logger.js';
import {
  intentsOf,
  mergeAttemptResources,
  NO_INTENTS,
  resourceKey,
  withUnsettledWrites,
  type AttemptIntents,
} from './attempt-resources.js';
import { environmentTarget } from './config-skew.js';
import type { Metrics } from '../lib/metrics.js';
import { FINISHED_STATES, type JobRecord, type JobState, type ResourceResult } from '../status/job-record.js';
import type { AppliedCommit, JobStore, LockFence } from '../status/job-store.js';
import type { CommitStatusReporter } from '../status/reporters/commit-status-reporter.js';
import type { DeployStatusState } from '../status/reporters/types.js';
import { ResyncLog } from './resync-log.js';

export interface JobRunDeps {
  store: JobStore;
  metrics: Metrics;
  reporter: CommitStatusReporter | undefined;
}

/**
 * The life of one attempt of one job, in one place: every transition writes the job record,
 * and the final ones also the environment's status, the metrics and the commit status.
 */
export class JobRun {
  private readonly startedMs = Date.now();
  /** A re-apply of the commit that is live already: see deploying(). */
  private quiet = false;
  /** The record write in flight, if any (see patch()). */
  private writes: Promise<void> = Promise.resolve();
  /** What earlier attempts of the job recorded (see mergeAttemptResources). */
  private earlierResources: readonly ResourceResult[];
  /** What earlier attempts of the job were about to create or change (JobRecord.creating, .configuring). */
  private earlierIntents: AttemptIntents;
  /** A re-sync's: its step lines held until it is known whether it changes anything. */
  private readonly resyncLog: ResyncLog | undefined;
  /** The attempt's logger, for the deploy's steps too: a re-sync's holds its info lines (ResyncLog). */
  readonly logger: Logger;

  constructor(
    private readonly deps: JobRunDeps,
    private readonly environment: EnvironmentConfig,
    private record: JobRecord,
    logger: Logger,
  ) {
    this.earlierResources = record.resources;
    this.earlierIntents = intentsOf(record);
    this.resyncLog = record.trigger.kind === 'reconcile' ? new ResyncLog(logger) : undefined;
    this.logger = this.resyncLog?.logger ?? logger;
  }

  get id(): string {
    return this.record.id;
  }

  /** This attempt wrote the record's final state. */
  get finished(): boolean {
    return FINISHED_STATES.includes(this.record.state);
  }

  /**
   * Whether another job's deploy of the environment ran since this job's previous run, or
   * between two of its earlier ones (JobStore.recordDeployStarting): then what earlier attempts
   * were about to write may be that deploy's work (AttemptIntents.uncertain).
   */
  deployRunStarted(afterOtherDeploy: boolean): void {
    if (afterOtherDeploy) this.earlierIntents = { ...this.earlierIntents, uncertain: true };
  }

  async started(attempts: number): Promise<void> {
    await this.patch({
      state: 'running',
      startedAt: new Date().toISOString(),
      finishedAt: null,
      attempts,
      error: null,
      message: null,
    });
    this.logger.info({ attempts }, 'deploy started');
  }

  /**
   * Held by a suspension, still queued: the record says why, and so does the pushed commit
   * (`pending`), whose pusher would otherwise see nothing until the environment is resumed.
   */
  async held(message: string, statusDescription: string): Promise<void> {
    const announced = this.record.trigger.sha;
    if (announced) this.report(announced, 'pending', statusDescription);
    await this.patch({ message });
  }

  /**
   * A re-sync of the commit the environment's last job deployed (or failed to) reports only
   * what is news: drift it corrected, a failure, a recovery. No `pending`, and a state the
   * commit shows already is not posted again (the outbox drops quiet offers of it): every ten
   * minutes a pending and a result on the same commit would flip it for nothing, and GitHub
   * takes at most 1,000 statuses per commit and context, after which even a recovery would
   * no longer show.
   */
  async deploying(sha: string): Promise<void> {
    // An earlier attempt's changes belong to this job's story only for the same commit.
    const sameCommit = this.record.sha === sha;
    if (!sameCommit) {
      // Another deploy before this one says nothing of what the job writes of this commit.
      if (this.earlierIntents.uncertain) await this.deps.store.clearDeployRunDoubt(this.id);
      this.earlierResources = [];
      this.earlierIntents = NO_INTENTS;
    }
    await this.settleEarlierCommit(sha, sha);
    await this.settleCaughtUpCommit(sha);
    await this.patch(
      sameCommit ? { sha } : { sha, resources: [], creating: undefined, configuring: undefined },
    );
    await this.deps.store.recordDeploying(this.environment.name, sha);
    this.quiet = await this.isReapplyOfLiveCommit(sha);
    if (!this.quiet) this.report(sha, 'pending', `Deploying ${short(sha)} to ${this.environment.name}`);
  }

  /** The step a running deploy is at, in the record's `message`: a long health wait says so. */
  async progress(message: string): Promise<void> {
    try {
      await this.patch({ message }, { unlessFinished: true });
    } catch (error) {
      this.logger.warn({ err: errorMessage(error) }, 'could not record the step the deploy is at');
    }
  }

  /**
   * The attempt's log as it is, whatever its trigger: once it has ended other than by a
   * success (JobRun.succeeded), or an error escaped it.
   */
  logAsIs(): void {
    this.resyncLog?.keepSteps();
  }

  /** Outcomes so far, kept in the record in case this worker dies before the end. */
  async written(resources: ResourceResult[]): Promise<void> {
    // A re-sync that created, changed or pruned something is news: its steps are logged as they come.
    if (resources.some((resource) => resource.action !== 'unchanged')) this.logAsIs();
    try {
      await this.patch({ resources: this.merged(resources) }, { unlessFinished: true });
    } catch (error) {
      // Bookkeeping only: a deploy must not fail for it.
      this.logger.warn({ err: errorMessage(error) }, 'could not record the objects written so far');
    }
  }

  /**
   * Objects this attempt is about to create or change (each with that action), on record
   * before it writes them: the attempt that takes over from one that could not record the
   * outcome (killed, or its answers lost; see JobRecord.creating) lists them as written.
   */
  async changing(resources: readonly ResourceResult[]): Promise<void> {
    if (resources.length > 0) this.logAsIs();
    const creating = addedKeys(this.record.creating, resources, 'created');
    const configuring = addedKeys(this.record.configuring, resources, 'configured');
    if (!creating && !configuring) return;
    try {
      await this.patch(
        { ...(creating ? { creating } : {}), ...(configuring ? { configuring } : {}) },
        { unlessFinished: true },
      );
    } catch (error) {
      // Bookkeeping only, like written(): a deploy must not fail for it.
      this.logger.warn({ err: errorMessage(error) }, 'could not record the objects about to be written');
    }
  }

  // Final transitions queue the commit status before the record turns final, so whoever
  // sees the final record can flush the reporter and find the status sent.
  async succeeded(
    sha: string,
    attemptResources: ResourceResult[],
    warnings: string[] = [],
    fence?: LockFence,
  ): Promise<void> {
    const resources = this.merged(attemptResources);
    const finishedAt = new Date().toISOString();
    // Drift corrected is news even on a commit that shows success already: not quiet.
    const changed = resources.some((resource) => resource.action !== 'unchanged');
    const quietResync = this.record.trigger.kind === 'reconcile' && !changed && warnings.length === 0;
    this.report(
      sha,
      'success',
      `Deployed to ${this.environment.name}: ${summarise(resources)}`,
      this.quiet && !changed,
    );
    await this.finalPatch(
      {
        state: 'succeeded',
        sha,
        resources,
        error: null,
        finishedAt,
        message: [summarise(resources), ...warnings.map((warning) => `warning: ${warning}`)].join('; '),
      },
      { sha, at: finishedAt, target: environmentTarget(this.environment), ...(fence ? { fence } : {}) },
      // A re-sync that found nothing to do: the history keeps only the newest few of those.
      { quietResync },
    );
    this.finish('succeeded');
    const objects = resources.length;
    const durationMs = Date.now() - this.startedMs;
    if (quietResync && this.resyncLog?.nothingChanged({ sha, objects, durationMs })) return;
    this.logAsIs();
    this.logger.info({ sha, objects }, 'deploy succeeded');
  }

  /**
   * Applied, but its health wait ended early for a newer commit queued behind it: whether its
   * workloads became ready is not known, and no longer matters, since the newer commit
   * replaces them.
   */
  async overtaken(
    sha: string,
    overtaken: { by: string; notReady: readonly string[] },
    attemptResources: ResourceResult[],
    warnings: string[] = [],
  ): Promise<void> {
    const resources = this.merged(attemptResources);
    const finishedAt = new Date().toISOString();
    const { by, notReady } = overtaken;
    this.report(
      sha,
      'canceled',
      `Applied to ${this.environment.name}; health check canceled: superseded by ${short(by)}`,
      this.quiet,
    );
    const [first] = notReady;
    const more = notReady.length > 1 ? ` (and ${notReady.length - 1} more)` : '';
    const waitedOn = first === undefined ? '' : `: ${first}${more}`;
    // Not recorded as applied: its health was never judged, so it is not "live" either, and a
    // force-push back to it deploys it again (and judges it).
    await this.finalPatch({
      state: 'superseded',
      sha,
      resources,
      error: null,
      finishedAt,
      supersededBy: by,
      message: [
        `applied (${summarise(resources)}); superseded by ${by} during the health wait, before ${counted(notReady.length, 'workload')} became ready${waitedOn}`,
        ...warnings.map((warning) => `warning: ${warning}`),
      ].join('; '),
    });
    this.finish('superseded');
    this.logAsIs();
    this.logger.info({ sha, head: by, notReady: notReady.length }, 'deploy applied, health wait overtaken');
  }

  /** Nothing applied: the environment's head is a newer commit that is applied or has a job. */
  async superseded(announcedSha: string, by: string): Promise<void> {
    const message = `superseded by ${by}`;
    await this.settleEarlierCommit(announcedSha, by);
    this.report(announcedSha, 'superseded', `Superseded by ${short(by)}; not deployed itself`);
    await this.finalPatch({
      state: 'superseded',
      finishedAt: new Date().toISOString(),
      error: null,
      supersededBy: by,
      message,
      ...this.unsettledWrites(),
    });
    this.finish('superseded');
    this.logAsIs();
    this.logger.info({ announcedSha, head: by }, 'deploy superseded');
  }

  /**
   * Nothing applied itself: another job, started after this one was queued, deploys this
   * job's very commit (a resume's, a sync's or a re-sync's deploy of the head it was pushed
   * as), so a second apply and health wait of it would add nothing. That job reports on the
   * commit; nothing is posted from here.
   */
  async coveredBy(deployJobId: string, sha: string): Promise<void> {
    await this.finalPatch({
      state: 'superseded',
      finishedAt: new Date().toISOString(),
      error: null,
      supersededBy: sha,
      message: `superseded by job ${deployJobId}, which deploys this commit (${short(sha)})`,
      ...this.unsettledWrites(),
    });
    this.finish('superseded');
    this.logAsIs();
    this.logger.info({ sha, by: deployJobId }, 'deploy superseded by a job deploying the same commit');
  }

  async failed(error: unknown, resources: ResourceResult[] | undefined): Promise<void> {
    const message = errorMessage(error);
    // The record's commit, not only this attempt's: an earlier attempt (a JobRun of its own)
    // may have reported it `pending` before this one failed without reaching deploying().
    // A job that failed before any fetch (bad credentials, a refused oversized push) reports
    // on the commit its webhook announced, so the pusher and branch protection see it.
    const sha = this.record.sha ?? this.record.trigger.sha;
    if (sha) this.report(sha, 'failure', `Deploy failed: ${headline(message)}`, this.quiet);
    const warnings = error instanceof DeployError ? error.warnings : [];
    await this.finalPatch({
      state: 'failed',
      finishedAt: new Date().toISOString(),
      error: message,
      message: warnings.length > 0 ? warnings.map((warning) => `warning: ${warning}`).join('; ') : null,
      ...(resources ? { resources: this.merged(resources) } : this.unsettledWrites()),
    });
    this.finish('failed');
    this.logger.error({ err: message }, 'deploy failed');
  }

  /** The worker is stopping past its deadline: back to `queued` for the next worker, no failure. */
  async handedBack(resources: ResourceResult[] | undefined): Promise<void> {
    const message = 'handed back: its worker stopped before the deploy finished; the next worker resumes it';
    await this.patch({
      state: 'queued',
      error: null,
      message,
      ...(resources ? { resources: this.merged(resources) } : {}),
    });
    this.logAsIs();
    this.logger.info({ attempts: this.record.attempts }, 'deploy handed back at shutdown');
  }

  /** A transient failure with attempts left: back to `queued` until BullMQ's backoff runs it again. */
  async willRetry(error: unknown, resources: ResourceResult[] | undefined): Promise<void> {
    const message = errorMessage(error);
    await this.patch({
      state: 'queued',
      error: message,
      message: null,
      ...(resources ? { resources: this.merged(resources), ...this.settledIntents(resources) } : {}),
    });
    this.logger.warn({ err: message, attempts: this.record.attempts }, 'deploy failed, will retry');
  }

  /**
   * An earlier attempt reported `pending` on the head of its time; when the branch moved
   * before this attempt, that commit is now `superseded` rather than pending for good.
   * Unless another job has since taken that commit over: its own statuses are the last word.
   */
  private async settleEarlierCommit(current: string, by: string): Promise<void> {
    const earlier = this.record.sha;
    if (!this.deps.reporter || !earlier || earlier === current) return;
    const owner = await this.deps.store.jobForSha(this.environment.name, earlier);
    if (owner && owner.id !== this.id) return;
    this.report(earlier, 'superseded', `Superseded by ${short(by)}; not deployed itself`);
  }

  /**
   * A job that deploys a newer head than the commit its webhook announced (the announced
   * push's job caught up with a later push whose webhook never came) owes the announced
   * commit a word too, unless that commit has a job of its own.
   */
  private async settleCaughtUpCommit(sha: string): Promise<void> {
    const announced = this.record.trigger.sha?.toLowerCase();
    if (!this.deps.reporter || !announced || announced === sha || announced === this.record.sha) return;
    const owner = await this.deps.store.jobForSha(this.environment.name, announced);
    if (owner && owner.id !== this.id) return;
    this.report(announced, 'superseded', `Superseded by ${short(sha)}; not deployed itself`);
  }

  /**
   * A re-sync of the commit the environment's last finished job ran, whether that job
   * succeeded or failed: a re-sync after a failed re-sync of the same commit is no more news
   * than one after a success.
   */
  private async isReapplyOfLiveCommit(sha: string): Promise<boolean> {
    if (this.record.trigger.kind !== 'reconcile' || !this.deps.reporter) return false;
    const status = await this.deps.store.environmentStatus(this.environment.name);
    if (!status.lastJobId) return false;
    const last = await this.deps.store.get(status.lastJobId);
    return last?.sha === sha && (last.state === 'succeeded' || last.state === 'failed');
  }

  /**
   * A job ending with no attempt after one that could not record all it wrote: its resources,
   * each object that attempt was about to write and did not record saying it may have been.
   */
  private unsettledWrites(): Pick<JobRecord, 'resources'> | Record<string, never> {
    const { creating, configuring } = this.record;
    if (!creating?.length && !configuring?.length) return {};
    return { resources: withUnsettledWrites(this.record.resources, this.record) };
  }

  /**
   * What is still unsettled of the record's intents once this attempt ends with its own
   * outcome list (a retry to come): an object it created, configured or found done (merged
   * into the record as the earlier attempt's change) is settled, and so is one of its own
   * intents it never reached; one it failed (its answer may have been lost) is not, nor an
   * earlier attempt's it did not reach.
   */
  private settledIntents(current: readonly ResourceResult[]): Pick<JobRecord, 'creating' | 'configuring'> {
    const outcome = new Map(current.map((resource) => [resourceKey(resource), resource.action]));
    const unsettled = (keys: readonly string[] | undefined, earlier: ReadonlySet<string>): string[] =>
      (keys ?? []).filter((key) => {
        const action = outcome.get(key);
        return action === undefined || action === 'failed' || (action === 'skipped' && earlier.has(key));
      });
    const creating = unsettled(this.record.creating, this.earlierIntents.creating);
    const configuring = unsettled(this.record.configuring, this.earlierIntents.configuring);
    return {
      creating: creating.length > 0 ? creating : undefined,
      configuring: configuring.length > 0 ? configuring : undefined,
    };
  }

  /** This attempt's outcomes over those of earlier attempts (mergeAttemptResources). */
  private merged(resources: readonly ResourceResult[]): ResourceResult[] {
    return mergeAttemptResources(this.earlierResources, resources, this.earlierIntents);
  }

  /**
   * One record write at a time, in call order: the store reads and writes the whole record,
   * so a progress note racing the final transition could otherwise write `running` back over
   * `succeeded`. With `unlessFinished`, skipped once the record is final.
   */
  private patch(
    patch: Partial<Omit<JobRecord, 'id' | 'environment'>>,
    options: { unlessFinished?: boolean } = {},
  ): Promise<void> {
    const write = this.writes.then(async () => {
      if (options.unlessFinished && this.finished) return;
      this.record = await this.deps.store.update(this.id, patch);
    });
    this.writes = write.catch(() => undefined);
    return write;
  }

  /** The final transition: the record and the environment's status in one write (JobStore.finish). */
  private finalPatch(
    patch: Partial<Omit<JobRecord, 'id' | 'environment'>>,
    applied?: AppliedCommit,
    options: { quietResync?: boolean } = {},
  ): Promise<void> {
    const write = this.writes.then(async () => {
      try {
        const { record, recordedLive } = await this.deps.store.finish(this.id, patch, applied, options);
        this.record = record;
        if (!recordedLive)
          this.logger.warn(
            { sha: applied?.sha },
            "deploy finished after losing its environment lock to another deploy: the environment's status is that deploy's, not this commit's",
          );
      } catch (error) {
        // The transaction may have applied though its reply was lost: the record says whether
        // this attempt finished the job (see `finished`).
        const stored = await this.deps.store.get(this.id).catch(() => null);
        if (stored) this.record = stored;
        throw error;
      }
    });
    this.writes = write.catch(() => undefined);
    return write;
  }

  private finish(state: JobState): void {
    const labels = { environment: this.environment.name, state };
    const finishedMs = Date.parse(this.record.finishedAt ?? '') || Date.now();
    this.deps.metrics.deployDuration.observe(labels, (finishedMs - this.startedMs) / 1000);
    // What the pusher waited, as the job record shows it: from receipt to the end.
    const receivedMs = Date.parse(this.record.receivedAt);
    if (Number.isFinite(receivedMs))
      this.deps.metrics.jobLatency.observe(labels, Math.max(0, finishedMs - receivedMs) / 1000);
    this.deps.metrics.jobsFinished.inc(labels);
  }

  private report(sha: string, state: DeployStatusState, description: string, quiet = false): void {
    this.deps.reporter?.report({
      environment: this.environment,
      sha,
      state,
      description,
      jobId: this.id,
      quiet,
      ...(this.record.statusUrl ? { statusUrl: this.record.statusUrl } : {}),
    });
  }
}

/** `known` with the keys of `resources` planned as `action` added; undefined when none is new. */
function addedKeys(
  known: readonly string[] | undefined,
  resources: readonly ResourceResult[],
  action: 'created' | 'configured',
): string[] | undefined {
  const keys = new Set(known);
  const added = resources
    .filter((resource) => resource.action === action)
    .map(resourceKey)
    .filter((key) => !keys.has(key));
  return added.length === 0 ? undefined : [...keys, ...added];
}

function short(sha: string): string {
  return sha.slice(0, 7);
}

/**
 * The first line of a failure, for a commit status. A headline that announces a list
 * ("workloads not ready after 300s:") takes the list's first entry along, so the status names
 * what failed.
 */
export function headline(message: string): string {
  const lines = message.split('\n');
  const first = lines[0]!.trim();
  if (!first.endsWith(':')) return first;
  const next = lines.slice(1).find((line) => line.trim() !== '');
  return next === undefined ? first : `${first} ${next.trim()}`;
}

/** "3 objects: 1 created, 2 unchanged" */
export function summarise(resources: readonly ResourceResult[]): string {
  const counts = new Map<string, number>();
  for (const resource of resources) counts.set(resource.action, (counts.get(resource.action) ?? 0) + 1);
  const parts = [...counts].map(([action, count]) => `${count} ${action}`);
  const total = `${resources.length} object${resources.length === 1 ? '' : 's'}`;
  return parts.length === 0 ? total : `${total}: ${parts.join(', ')}`;
}
