import type { Config } from '../../config/schema.js';
import type { Secrets } from '../../config/secrets.js';
import { errorMessage } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { statusContext, type CommitStatusSender, type CommitStatusUpdate } from './types.js';

export interface ReporterOptions {
  /** Per attempt; a slow provider must not hold a deploy. */
  timeoutMs?: number;
  attempts?: number;
  retryDelayMs?: number;
}

/**
 * Reports deploys as commit statuses, fire-and-forget: report() never throws and never
 * waits; a failed send is retried a little and then logged. Updates for one commit are sent
 * in order, so `success` never lands before the `pending` it replaces.
 */
export class CommitStatusReporter {
  private readonly chains = new Map<string, Promise<void>>();
  private readonly timeoutMs: number;
  private readonly attempts: number;
  private readonly retryDelayMs: number;

  constructor(
    private readonly senders: Partial<Record<'github' | 'gitlab', CommitStatusSender>>,
    /** `statusBaseUrl(config)`: the base of the links of jobs whose record names no status URL. */
    private readonly baseUrl: string,
    private readonly logger: Logger,
    options: ReporterOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? 5_000;
    this.attempts = options.attempts ?? 3;
    this.retryDelayMs = options.retryDelayMs ?? 1_000;
  }

  report(update: CommitStatusUpdate): void {
    const sender = this.senders[update.environment.repo.provider];
    if (!sender) return;
    const key = `${update.environment.name}:${update.sha}`;
    const previous = this.chains.get(key) ?? Promise.resolve();
    const next = previous.then(() => this.sendWithRetry(sender, update));
    this.chains.set(key, next);
    void next.then(() => {
      if (this.chains.get(key) === next) this.chains.delete(key);
    });
  }

  /** Waits for every status in flight (graceful shutdown, tests). */
  async flush(): Promise<void> {
    while (this.chains.size > 0) await Promise.all([...this.chains.values()]);
  }

  private async sendWithRetry(sender: CommitStatusSender, update: CommitStatusUpdate): Promise<void> {
    const payload = {
      ...update,
      context: statusContext(update.environment.name),
      // SPEC §4: the target URL is the job's status URL.
      targetUrl:
        update.statusUrl ?? new URL(`jobs/${encodeURIComponent(update.jobId)}`, this.baseUrl).toString(),
    };
    for (let attempt = 1; ; attempt += 1) {
      try {
        await sender.send(payload, AbortSignal.timeout(this.timeoutMs));
        return;
      } catch (error) {
        const status = httpStatusOf(error);
        const retryable = status === undefined || status >= 500 || status === 429;
        if (!retryable || attempt >= this.attempts) {
          this.logger.warn(
            {
              provider: update.environment.repo.provider,
              repo: update.environment.repo.name,
              sha: update.sha,
              state: update.state,
              httpStatus: status,
              err: errorMessage(error),
            },
            'commit status not reported',
          );
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, this.retryDelayMs * attempt));
      }
    }
  }
}

/** `server.publicUrl`, else the local receiver, as the base of the status URLs the CLI prints. */
export function statusBaseUrl(config: Config): string {
  const base = config.server.publicUrl ?? `http://localhost:${config.server.port}`;
  return base.endsWith('/') ? base : `${base}/`;
}

/** A reporter for the providers whose token is set; with neither, report() does nothing. */
export function createCommitStatusReporter(
  config: Config,
  secrets: Secrets,
  logger: Logger,
  options: ReporterOptions = {},
): CommitStatusReporter {
  const timeoutMs = options.timeoutMs ?? 5_000;
  const senders: Partial<Record<'github' | 'gitlab', CommitStatusSender>> = {};
  // The provider clients are loaded on first use: together they cost a worker ~15 MiB of
  // memory, which a worker without tokens (or with one provider) should not pay.
  const { githubToken, gitlabToken } = secrets;
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
        timeoutMs,
      }),
    );
  }
  return new CommitStatusReporter(senders, statusBaseUrl(config), logger, { ...options, timeoutMs });
}

/** Octokit puts the HTTP status on the error; gitbeaker on its cause's response. */
function httpStatusOf(error: unknown): number | undefined {
  const direct = (error as { status?: unknown }).status;
  if (typeof direct === 'number') return direct;
  const nested = (error as { cause?: { response?: { status?: unknown } } }).cause?.response?.status;
  return typeof nested === 'number' ? nested : undefined;
}

function lazySender(load: () => Promise<CommitStatusSender>): CommitStatusSender {
  let loaded: Promise<CommitStatusSender> | undefined;
  return {
    async send(update, signal) {
      loaded ??= load();
      await (await loaded).send(update, signal);
    },
  };
}
