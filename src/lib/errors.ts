export type ErrorCode =
  | 'usage'
  | 'config_invalid'
  | 'bad_request'
  | 'unauthorized'
  | 'payload_too_large'
  | 'not_found'
  | 'unavailable'
  | 'git_failed'
  | 'manifest_invalid'
  | 'policy_violation'
  | 'apply_rejected'
  | 'health_timeout'
  | 'follow_stopped'
  | 'transient'
  | 'internal';

export interface ErrorOptions {
  /** HTTP status when the error crosses the HTTP boundary. */
  status?: number;
  /** Permanent errors fail a deploy at once; the others are retried with backoff. */
  permanent?: boolean;
  cause?: unknown;
}

export class PushgateError extends Error {
  readonly code: ErrorCode;
  readonly status: number | undefined;
  readonly permanent: boolean;

  constructor(code: ErrorCode, message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PushgateError';
    this.code = code;
    this.status = options.status;
    this.permanent = options.permanent ?? false;
  }
}

export class ConfigError extends PushgateError {
  constructor(message: string, options: ErrorOptions = {}) {
    super('config_invalid', message, { ...options, permanent: true });
    this.name = 'ConfigError';
  }
}

export class UsageError extends PushgateError {
  constructor(message: string) {
    super('usage', message, { permanent: true });
    this.name = 'UsageError';
  }
}

export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
