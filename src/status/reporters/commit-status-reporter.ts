import { mapWithConcurrency } from '../../kube/map-with-concurrency.js';
import { randomUUID } from 'node:crypto';
import type { Config } from '../../config/schema.js';
import { tokenReader, type Secrets } from '../../config/secrets.js';
import { publicUrlBase } from '../../http/status-url.js';
import { ConfigError, errorMessage } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { CommitStatusOutcome, Metrics } from '../../lib/metrics.js';
import { createRedis, type RedisClient } from '../../queue/connection.js';
import { createKeys } from '../../queue/keys.js';
import { classifyFailure } from './delivery-failure.js';
import { StatusOutbox, type CommitRef, type OutboxEntry, type StatusOffer } from './status-outbox.js';
import {
  statusContext,
  type CommitStatusSender,
  type CommitStatusUpdate,
  type StatusDelivery,
} from './types.js';

type Provider = 'github' | 'gitlab';

export interface ReporterOptions {
  /** Per request, whatever the provider (default REQUEST_TIMEOUT_MS). */
  timeoutMs?: number;
  /** First wait after a failure; doubles with every failure up to retryMaxMs. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** A status still failing this long after its first failure is given up (and logged). */
  giveUpAfterMs?: number;
  /** How often the outbox is looked at for statuses due (other workers', retries). */
  pollIntervalMs?: number;
  /** GitHub's secondary rate limit without `retry-after`: at least a minute, as GitHub asks. */
  rateLimitFallbackMs?: number;
  /**
   * A provider that refused the token (401) gets no status for this long, then one try: a
   * fixed token sends what is owed within this, and a bad one costs a request or two per
   * interval, not one per status (GitHub counts failed logins).
   */
  credentialsRetryMs?: number;
  /** The longest flush() waits unless told otherwise. */
  flushTimeoutMs?: number;
}

export interface CreateReporterOptions extends ReporterOptions {
  /** The Redis of the outbox (default `redis.url`): that of the queue, so every worker shares it. */
  redisUrl?: string;
  metrics?: Metrics;
}

/**
 * Per request: a slow provider must not hold a commit's lease for long. GitLab holds a write
 * for up to 10 s while another status of the same commit is written (then answers 409): a
 * shorter wait would give up on a write GitLab then makes, and send it again.
 */
const REQUEST_TIMEOUT_MS: Record<Provider, number> = { github: 5_000, gitlab: 15_000 };

const DEFAULTS = {
  retryBaseMs: 5_000,
  retryMaxMs: 10 * 60_000,
  giveUpAfterMs: 24 * 3600_000,
  pollIntervalMs: 1_000,
  rateLimitFallbackMs: 60_000,
  credentialsRetryMs: 5 * 60_000,
  flushTimeoutMs: 15_000,
} satisfies Required<Omit<ReporterOptions, 'timeoutMs'>>;

/** Commits looked at per pass of the drain loop. */
const BATCH = 50;
/**
 * Statuses one worker sends at once to one provider: a backlog after an outage goes out a few
 * at a time, not as one burst (GitHub asks integrations to send serially; bursts trip its
 * secondary rate limit). Per provider, so one that hangs does not hold back the other.
 */
const SENDS_IN_FLIGHT = 2;

/** At most `max` calls of run() at once; the rest wait their turn. */
class Slots {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly max: number) {}

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.active < this.max) this.active += 1;
    // The slot passes straight from the call that frees it (see below).
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      return await work();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active -= 1;
    }
  }
}

/**
 * Reports deploys as commit statuses. report() never throws and never waits: it offers the
 * status to the durable outbox in Redis (StatusOutbox), and every worker process delivers
 * what the outbox holds, one sender per commit at a time (a lease), always the newest desired
 * status of the commit, retrying with backoff (and within rate limits) for up to a day.
 */
export class CommitStatusReporter {
  private readonly settings: Required<Omit<ReporterOptions, 'timeoutMs'>>;
  private readonly timeouts: Record<Provider, number>;
  /** What this process offered and is not known delivered yet: member → seq (for flush). */
  private readonly owed = new Map<string, { ref: CommitRef; seq: number }>();
  /** A rate limit or a refused token is the token's, not the commit's: no status to that provider before this. */
  private readonly pausedUntil: Partial<Record<Provider, number>> = {};
  private readonly slots: Record<Provider, Slots> = {
    github: new Slots(SENDS_IN_FLIGHT),
    gitlab: new Slots(SENDS_IN_FLIGHT),
  };
  private readonly offering = new Set<Promise<void>>();
  private readonly closing = new AbortController();
  private draining: Promise<void> | undefined;
  /** Deliveries started and not ended, by commit: one at a time per commit in this process. */
  private readonly sending = new Map<string, Promise<unknown>>();
  private drainAgain = false;
  private readonly timer: NodeJS.Timeout | undefined;
  private readonly metrics: Metrics | undefined;
  private readonly onClose: (() => void) | undefined;

  constructor(
    private readonly senders: Partial<Record<Provider, CommitStatusSender>>,
    /** The base of the links of jobs whose record names no status URL, ending in `/`. */
    private readonly baseUrl: string,
    private readonly outbox: StatusOutbox | undefined,
    private readonly logger: Logger,
    options: ReporterOptions & { metrics?: Metrics; onClose?: () => void } = {},
  ) {
    const { timeoutMs, ...rest } = definedOnly(options);
    this.settings = { ...DEFAULTS, ...rest };
    this.timeouts = timeoutMs === undefined ? REQUEST_TIMEOUT_MS : { github: timeoutMs, gitlab: timeoutMs };
    this.metrics = options.metrics;
    this.onClose = options.onClose;
    if (outbox && Object.keys(senders).length > 0) {
      this.timer = setInterval(() => void this.drain(), this.settings.pollIntervalMs);
      this.timer.unref();
    }
  }

  report(update: CommitStatusUpdate): void {
    const provider = update.environment.repo.provider;
    if (!this.senders[provider] || !this.outbox || this.closing.signal.aborted) return;
    const offer: StatusOffer = {
      environment: update.environment.name,
      sha: update.sha,
      provider,
      repo: update.environment.repo.name,
      ref: update.environment.branch,
      state: update.state,
      description: update.description,
      // SPEC §4: the target URL is the job's status URL.
      targetUrl: update.statusUrl ?? `${this.baseUrl}jobs/${encodeURIComponent(update.jobId)}`,
      jobId: update.jobId,
      quiet: update.quiet ?? false,
    };
    const offered = this.outbox.offer(offer).then(
      (seq) => {
        if (seq === 0) return;
        const ref = { environment: offer.environment, sha: offer.sha };
        this.owed.set(`${ref.environment}:${ref.sha}`, { ref, seq });
        void this.drain();
      },
      (error: unknown) =>
        this.logger.warn(
          { ...logFields(offer), err: errorMessage(error) },
          'commit status not recorded in the outbox (Redis unreachable): not reported',
        ),
    );
    this.offering.add(offered);
    void offered.finally(() => this.offering.delete(offered));
  }

  /**
   * Waits until what this process offered is delivered or given up, at most `timeoutMs`.
   * What is left stays in the outbox for the next attempt of any worker. True when nothing is left.
   */
  async flush(timeoutMs = this.settings.flushTimeoutMs): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
      timer.unref();
    });
    try {
      await Promise.race([Promise.allSettled([...this.offering]), expired]);
      while (this.owed.size > 0 && this.outbox && Date.now() < deadline && !this.closing.signal.aborted) {
        await Promise.race([this.drain(), expired]);
        for (const [key, { ref, seq }] of this.owed) {
          const entry = await this.outbox.read(ref).catch(() => undefined);
          if (entry === undefined) continue;
          if (entry === null || entry.deliveredSeq >= seq || entry.gaveUpSeq >= seq) this.owed.delete(key);
        }
        if (this.owed.size > 0)
          await Promise.race([new Promise((resolve) => setTimeout(resolve, 25)), expired]);
      }
    } finally {
      clearTimeout(timer);
    }
    return this.owed.size === 0;
  }

  /** Stops delivering; a send in flight is abandoned and stays due in the outbox for another worker. */
  async close(): Promise<void> {
    if (this.closing.signal.aborted) return;
    clearInterval(this.timer);
    this.closing.abort();
    await this.draining;
    // Aborted by `closing`: each ends at once, its commit still due for another worker.
    await Promise.allSettled([...this.sending.values()]);
    this.onClose?.();
  }

  private drain(): Promise<void> {
    if (this.closing.signal.aborted) return Promise.resolve();
    if (this.draining) {
      this.drainAgain = true;
      return this.draining;
    }
    // Pages through what is due, skipping past what this process leaves (another worker's
    // lease or token): those stay at the head of the set and must not hide the rest, nor be
    // read again and again in a loop. Once through, the poll timer comes back.
    const run = async (): Promise<void> => {
      do {
        this.drainAgain = false;
        let offset = 0;
        for (;;) {
          const due = await this.outbox!.due(Date.now(), BATCH, offset);
          const outcomes = await mapWithConcurrency(due, BATCH, (ref) => this.deliver(ref));
          if (due.length < BATCH || this.closing.signal.aborted) break;
          offset += outcomes.filter((outcome) => outcome === 'left').length;
        }
      } while (this.drainAgain && !this.closing.signal.aborted);
    };
    this.draining = run()
      .catch((error: unknown) =>
        this.logger.debug({ err: errorMessage(error) }, 'could not read the commit status outbox'),
      )
      .finally(() => (this.draining = undefined));
    return this.draining;
  }

  /**
   * Starts the commit's delivery without waiting for it: a slow provider must not hold up the
   * drain, and with it the other provider's statuses. Its end drains again. `left` when the
   * commit stays in the due set for now (being sent, or another worker's), `done` otherwise.
   */
  private async deliver(ref: CommitRef): Promise<'done' | 'left'> {
    const key = `${ref.environment}:${ref.sha}`;
    if (this.sending.has(key)) return 'left';
    const outbox = this.outbox!;
    const peek = await outbox.read(ref);
    if (!peek) {
      await outbox.forget(ref);
      return 'done';
    }
    // Another worker may hold this provider's token: leave the commit to it.
    if (!this.senders[peek.provider]) return 'left';
    if (this.sending.has(key)) return 'left';
    const sent = this.slots[peek.provider]
      .run(() => this.leaseAndSend(ref, peek.provider))
      .catch((error: unknown) => {
        this.logger.debug({ err: errorMessage(error) }, 'could not deliver a commit status (Redis?)');
        return 'left' as const;
      })
      .then((outcome) => {
        this.sending.delete(key);
        // Drain again only after a send that changed something: a commit leased by another
        // worker is due as before, and draining at once would ask for it again and again.
        if (outcome === 'done') void this.drain();
      });
    this.sending.set(key, sent);
    return 'left';
  }

  private async leaseAndSend(ref: CommitRef, provider: Provider): Promise<'done' | 'left'> {
    const outbox = this.outbox!;
    // Checked once a slot is ours: a send that held it may have met a rate limit meanwhile.
    const pausedUntil = this.pausedUntil[provider] ?? 0;
    if (Date.now() < pausedUntil) {
      // Rate-limited: due again when the limit ends, not at every poll meanwhile.
      await outbox.postpone(ref, pausedUntil);
      return 'done';
    }
    const token = randomUUID();
    if (!(await outbox.lease(ref, token, this.timeouts[provider] + 10_000))) return 'left';
    try {
      const entry = await outbox.read(ref);
      if (!entry) await outbox.forget(ref);
      else await this.send(ref, entry);
      return 'done';
    } finally {
      await outbox.release(ref, token).catch(() => undefined);
    }
  }

  private async send(ref: CommitRef, entry: OutboxEntry): Promise<void> {
    const outbox = this.outbox!;
    const sender = this.senders[entry.provider]!;
    const delivered = {
      outcome: 'delivered',
      seq: entry.seq,
      state: entry.state,
      description: entry.description,
    } as const;
    if (entry.gaveUpSeq >= entry.seq) return outbox.forget(ref);
    if (alreadyShown(entry)) {
      await outbox.complete(ref, delivered);
      this.count(entry.provider, 'skipped');
      return;
    }
    let timeout: AbortSignal | undefined;
    try {
      // The request's timeout starts once the client is loaded: a process's first status (a
      // cold import, slow on a starved CPU) must not time out before its request is even
      // sent, nor go out twice after an abort that came too late to stop it.
      await sender.ready?.();
      timeout = AbortSignal.timeout(this.timeouts[entry.provider]);
      await sender.send(toDelivery(entry), AbortSignal.any([timeout, this.closing.signal]));
      await outbox.complete(ref, delivered);
      this.count(entry.provider, 'delivered');
      if (entry.failures > 0)
        this.logger.info(
          { ...logFields(entry), failures: entry.failures },
          'commit status delivered after retrying',
        );
      return;
    } catch (error) {
      // Shutting down: not a failure of the provider. The commit stays due for another worker.
      if (this.closing.signal.aborted) return;
      const now = Date.now();
      const verdict = classifyFailure(error, {
        timedOut: timeout?.aborted ?? false,
        now,
        rateLimitFallbackMs: this.settings.rateLimitFallbackMs,
        credentialsRetryMs: this.settings.credentialsRetryMs,
      });
      const fields = { ...logFields(entry), httpStatus: verdict.httpStatus, err: verdict.message };
      if (verdict.kind === 'delivered') {
        await outbox.complete(ref, delivered);
        this.count(entry.provider, 'skipped');
        return;
      }
      const firstFailureAt = entry.firstFailureAt ?? now;
      if (verdict.kind === 'give-up' || now - firstFailureAt >= this.settings.giveUpAfterMs) {
        await outbox.complete(ref, {
          outcome: 'gave-up',
          seq: entry.seq,
          error: verdict.message,
          httpStatus: verdict.httpStatus,
        });
        this.count(entry.provider, 'failed');
        this.logger.warn({ ...fields, failures: entry.failures + 1 }, 'commit status not reported: given up');
        return;
      }
      if (verdict.notBefore !== undefined)
        this.pausedUntil[entry.provider] = Math.max(this.pausedUntil[entry.provider] ?? 0, verdict.notBefore);
      const failures = entry.failures + 1;
      const backoff = Math.min(
        this.settings.retryMaxMs,
        this.settings.retryBaseMs * 2 ** Math.min(failures - 1, 30),
      );
      // A refused token is fixed by a person, at any time: each status is tried once the
      // provider's pause ends, however long it has failed, rather than after a growing backoff.
      const nextAttemptAt =
        verdict.tokenRefused && verdict.notBefore !== undefined
          ? verdict.notBefore
          : Math.max(now + backoff, verdict.notBefore ?? 0);
      await outbox.complete(ref, {
        outcome: 'retry',
        seq: entry.seq,
        nextAttemptAt,
        ...(verdict.notBefore !== undefined ? { notBefore: verdict.notBefore } : {}),
        error: verdict.message,
        httpStatus: verdict.httpStatus,
      });
      this.count(entry.provider, verdict.tokenRefused ? 'unauthorized' : 'retried');
      const retryInMs = nextAttemptAt - now;
      // The first failure of each status is news (a pending's earlier failures say nothing
      // of the success that follows it); the retries after it are not.
      if (failures === 1 || entry.failedSeq !== entry.seq)
        this.logger.warn({ ...fields, retryInMs }, 'commit status not delivered: will retry');
      else this.logger.debug({ ...fields, failures, retryInMs }, 'commit status not delivered: will retry');
    }
  }

  private count(provider: Provider, outcome: CommitStatusOutcome): void {
    this.metrics?.commitStatuses.inc({ provider, outcome });
  }
}

/**
 * GitHub would add a duplicate status; GitLab refuses `pending` on a pending status and files
 * a second final state as another job of the commit's pipeline, whatever its description.
 */
function alreadyShown(entry: OutboxEntry): boolean {
  if (entry.deliveredState !== entry.state) return false;
  return entry.provider === 'gitlab' || entry.deliveredDescription === entry.description;
}

function toDelivery(entry: OutboxEntry): StatusDelivery {
  return {
    repo: entry.repo,
    ref: entry.ref,
    sha: entry.sha,
    state: entry.state,
    context: statusContext(entry.environment),
    description: entry.description,
    targetUrl: entry.targetUrl,
  };
}

/** As on every job's log line (docs/production.md, Logs): the job and its environment first. */
function logFields(
  entry: Pick<OutboxEntry, 'jobId' | 'environment' | 'sha' | 'state' | 'provider' | 'repo'>,
) {
  return {
    jobId: entry.jobId,
    environment: entry.environment,
    sha: entry.sha,
    state: entry.state,
    provider: entry.provider,
    repo: entry.repo,
  };
}

function definedOnly<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as Partial<T>;
}

/** The base of status URLs, the same as the receiver's: `server.publicUrl`, else the local receiver. */
export function statusBaseUrl(config: Config): string {
  if (config.server.publicUrl) return publicUrlBase(config.server.publicUrl);
  return `http://localhost:${config.server.port}/`;
}

/**
 * A reporter for the providers whose token is set; with neither, report() does nothing and no
 * Redis connection is made. The reporter owns its connection: close() ends it.
 */
export function createCommitStatusReporter(
  config: Config,
  secrets: Secrets,
  logger: Logger,
  options: CreateReporterOptions = {},
): CommitStatusReporter {
  const senders: Partial<Record<Provider, CommitStatusSender>> = {};
  // The provider clients are loaded on first use: together they cost a worker ~15 MiB of
  // memory, which a worker without tokens (or with one provider) should not pay.
  const githubToken = tokenReader('GITHUB_TOKEN', secrets.githubToken, secrets.githubTokenFile);
  const gitlabToken = tokenReader('GITLAB_TOKEN', secrets.gitlabToken, secrets.gitlabTokenFile);
  for (const variable of ['GITHUB_TOKEN', 'GITLAB_TOKEN'] as const) {
    const file = secrets.emptyFiles?.[variable];
    if (file)
      logger.warn(
        { file },
        `${variable}_FILE: ${file} is empty: its commit statuses are retried until it holds a token`,
      );
  }
  if (githubToken) {
    senders.github = lazySender(async () =>
      (await import('./github.js')).createGithubSender({
        token: githubToken,
        apiUrl: config.providers.github.apiUrl,
      }),
    );
  }
  if (gitlabToken) {
    senders.gitlab = lazySender(async () =>
      (await import('./gitlab.js')).createGitlabSender({
        token: gitlabToken,
        url: config.providers.gitlab.url,
        timeoutMs: options.timeoutMs ?? REQUEST_TIMEOUT_MS.gitlab,
      }),
    );
  }
  let redis: RedisClient | undefined;
  let outbox: StatusOutbox | undefined;
  if (githubToken || gitlabToken) {
    const url = options.redisUrl ?? config.redis.url;
    if (!url)
      throw new ConfigError('redis.url is not set: commit statuses are kept in Redis until delivered');
    redis = createRedis({ url, cluster: config.redis.cluster }, 'worker');
    outbox = new StatusOutbox(redis, createKeys(config.redis.prefix));
  }
  return new CommitStatusReporter(senders, statusBaseUrl(config), outbox, logger, {
    ...options,
    onClose: () => redis?.disconnect(),
  });
}

function lazySender(load: () => Promise<CommitStatusSender>): CommitStatusSender {
  let loaded: Promise<CommitStatusSender> | undefined;
  const sender = () => (loaded ??= load());
  return {
    async ready() {
      await sender();
    },
    async send(delivery, signal) {
      await (await sender()).send(delivery, signal);
    },
  };
}
