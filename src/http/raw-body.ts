import type { IncomingMessage, ServerResponse } from 'node:http';
import { PushgateError } from '../lib/errors.js';
import { ReceiverBusyError, type BodyBudget } from './body-budget.js';

function tooLarge(limit: number): PushgateError {
  return new PushgateError('payload_too_large', `body is larger than server.bodyLimit (${limit} bytes)`, {
    status: 413,
  });
}

/** True when Content-Length alone says the body is over the limit, so nothing need be read. */
export function declaredTooLarge(req: IncomingMessage, limit: number): boolean {
  const declared = req.headers['content-length'];
  return declared !== undefined && Number(declared) > limit;
}

/** Where a body's bytes are counted while they are held: given back once `until` closes. */
export interface BodyHold {
  budget: BodyBudget;
  until: ServerResponse;
}

/**
 * Reads the raw bytes (the signature covers exactly these) up to `limit`. A chunked body is
 * not read past the limit: the reader stops and the 413 goes out with `Connection: close`.
 * With a `hold`, the bytes are taken from its budget as they arrive (not as Content-Length
 * declares them: a sender that declares much and sends nothing must not hold the budget), and a
 * body that stops fitting is refused there (ReceiverBusyError).
 */
export function readRawBody(req: IncomingMessage, limit: number, hold?: BodyHold): Promise<Buffer> {
  if (declaredTooLarge(req, limit)) return Promise.reject(tooLarge(limit));
  let taken = 0;
  hold?.until.once('close', () => hold.budget.give(taken));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        req.pause();
        reject(tooLarge(limit));
        return;
      }
      if (hold && size > taken) {
        if (!hold.budget.take(size - taken)) {
          cleanup();
          req.pause();
          reject(new ReceiverBusyError(hold.budget.capacity));
          return;
        }
        taken = size;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      // One chunk (most webhooks) is the body as it is: each chunk node:http hands over is a
      // Buffer of its own, so there is nothing to copy it out of.
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(
        new PushgateError('bad_request', 'the request body could not be read', { status: 400, cause: error }),
      );
    };
    const onClose = (): void => {
      if (req.readableEnded) return;
      cleanup();
      reject(
        new PushgateError('bad_request', 'the client closed the connection before the body ended', {
          status: 400,
        }),
      );
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}
