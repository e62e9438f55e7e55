import { PushgateError } from '../lib/errors.js';

/**
 * What all webhook bodies being read at once may hold together. A body is read whole before
 * its signature can be checked, so without a cap anyone could make the receiver hold
 * connections × bodyLimit bytes (40 slow 5 MB posts exceed the receiver's 256 MiB in
 * deploy/kubernetes). Push payloads are kilobytes: this leaves room for thousands at once.
 */
export const BODY_BYTES_IN_FLIGHT = 32 * 1024 * 1024;

/** A body that would take the receiver past its budget: 503, the sender may retry. */
export class ReceiverBusyError extends PushgateError {
  constructor(capacity: number) {
    super(
      'unavailable',
      `the receiver is reading more request bodies at once than it may hold (${capacity} bytes); retry shortly`,
      { status: 503 },
    );
    this.name = 'ReceiverBusyError';
  }
}

/** Bytes of request bodies held in memory at once, across every request of the receiver. */
export class BodyBudget {
  private held = 0;

  constructor(
    readonly capacity: number,
    /** Told the bytes held after every change (the in-flight gauge). */
    private readonly onChange: (held: number) => void = () => undefined,
  ) {}

  get inUse(): number {
    return this.held;
  }

  /** Takes `bytes` when they fit, and answers whether they did. */
  take(bytes: number): boolean {
    if (this.held + bytes > this.capacity) return false;
    this.held += bytes;
    this.onChange(this.held);
    return true;
  }

  give(bytes: number): void {
    if (bytes === 0) return;
    this.held = Math.max(0, this.held - bytes);
    this.onChange(this.held);
  }
}

/** The receiver's budget: at least one body of the largest size allowed always fits. */
export function bodyBudgetFor(bodyLimit: number, onChange?: (held: number) => void): BodyBudget {
  return new BodyBudget(Math.max(BODY_BYTES_IN_FLIGHT, bodyLimit), onChange);
}
