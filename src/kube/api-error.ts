/** An answer from the API server that is not 2xx, or no answer at all (`status` undefined). */
export class KubeApiError extends Error {
  readonly status: number | undefined;
  /** metav1.Status reason, e.g. `NotFound`, `Invalid`, `Conflict`. */
  readonly reason: string | undefined;
  /** metav1.Status details.causes: each refused field and why (an `Invalid` answer's list). */
  readonly causes: readonly StatusCause[];
  /** The answer's Retry-After, in ms: when the server asks to be sent the request again. */
  readonly retryAfterMs: number | undefined;

  constructor(
    message: string,
    options: {
      status?: number;
      reason?: string;
      causes?: readonly StatusCause[];
      retryAfterMs?: number;
      cause?: unknown;
    },
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'KubeApiError';
    this.status = options.status;
    this.reason = options.reason;
    this.causes = options.causes ?? [];
    this.retryAfterMs = options.retryAfterMs;
  }

  /** Network trouble, overload, server faults and conflicts pass; the rest is the request's fault. */
  get transient(): boolean {
    const status = this.status;
    // Server-side apply answers 500 when a field's type does not match the schema
    // (kubernetes/kubernetes#104305 and kin); it is the manifest's fault and retrying cannot help.
    if (status === 500 && this.message.includes('failed to create typed patch object')) return false;
    return status === undefined || status >= 500 || status === 429 || status === 409 || status === 408;
  }
}

export function isNotFound(error: unknown): boolean {
  return error instanceof KubeApiError && error.status === 404;
}

/** One entry of metav1.Status details.causes. */
export interface StatusCause {
  reason?: string;
  message?: string;
  /** The refused field's path, e.g. `spec.ports[0].nodePort`. */
  field?: string;
}

function statusCauses(details: unknown): StatusCause[] {
  const causes = (details as { causes?: unknown } | null | undefined)?.causes;
  if (!Array.isArray(causes)) return [];
  return causes
    .filter((cause): cause is Record<string, unknown> => typeof cause === 'object' && cause !== null)
    .map((cause) => ({
      ...(typeof cause.reason === 'string' ? { reason: cause.reason } : {}),
      ...(typeof cause.message === 'string' ? { message: cause.message } : {}),
      ...(typeof cause.field === 'string' ? { field: cause.field } : {}),
    }));
}

export function apiError(
  status: number,
  body: unknown,
  describe: string,
  where: string,
  retryAfterMs?: number,
): KubeApiError {
  // The API server says only "Unauthorized": which cluster of several, and why, are ours to say.
  if (status === 401)
    return new KubeApiError(
      `${where}: ${describe}: the API server refused the kubeconfig's credentials (401 Unauthorized: a wrong or expired token or client certificate)`,
      { status, reason: 'Unauthorized' },
    );
  if (typeof body === 'object' && body !== null) {
    const { message, reason, details } = body as { message?: unknown; reason?: unknown; details?: unknown };
    return new KubeApiError(typeof message === 'string' ? message : `${describe}: HTTP ${status}`, {
      status,
      reason: typeof reason === 'string' ? reason : undefined,
      causes: statusCauses(details),
      retryAfterMs,
    });
  }
  const text = typeof body === 'string' && body.trim() !== '' ? `: ${body.trim().slice(0, 300)}` : '';
  return new KubeApiError(`${describe}: HTTP ${status}${text}`, { status, retryAfterMs });
}
