import type { PreparedObject } from '../manifests/prepare.js';
import type { ResourceResult } from '../status/job-record.js';
import { resultOf } from './deploy-results.js';
import type { DeployRequest } from './types.js';

/**
 * The job record's view of what a deploy wrote so far (DeployRequest.onWritten): at once at the
 * end of each stage, at most once a second while objects land.
 */
export class ProgressWrites {
  private lastMs = 0;
  private pending: Promise<void> | undefined;

  constructor(
    private readonly write: DeployRequest['onWritten'],
    private readonly announce: DeployRequest['onChanging'],
    private readonly list: () => ResourceResult[],
    private readonly intervalMs = 1_000,
  ) {}

  /** Before the writes of these (each with its planned action): a kill between them and soon() loses nothing. */
  async changing(
    objects: readonly { object: PreparedObject; action: 'created' | 'configured' }[],
  ): Promise<void> {
    if (objects.length > 0)
      await this.announce?.(objects.map(({ object, action }) => resultOf(object.ref, action)));
  }

  soon(): void {
    if (!this.write || this.pending || Date.now() - this.lastMs < this.intervalMs) return;
    this.lastMs = Date.now();
    this.pending = this.write(this.list())
      .catch(() => undefined)
      .finally(() => (this.pending = undefined));
  }

  /** After any write in flight, so an older list never lands last. */
  async now(): Promise<void> {
    await this.idle();
    await this.write?.(this.list());
  }

  /** No write in flight: none may land after the job's final record. */
  async idle(): Promise<void> {
    await this.pending;
  }
}
