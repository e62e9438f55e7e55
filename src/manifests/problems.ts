import { PushgateError, type ErrorCode } from '../lib/errors.js';
import type { ManifestSource } from './types.js';

/** One thing wrong with the manifests, tied to where it was found when that is known. */
export interface ManifestProblem {
  source?: ManifestSource;
  message: string;
}

/** Enough lines to see the pattern of a broken set without flooding the job record. */
const MAX_LISTED_PROBLEMS = 20;

export function describeSource(source: ManifestSource): string {
  const item = source.item === undefined ? '' : ` item ${source.item}`;
  return `${source.file} document ${source.document}${item}`;
}

export function describeProblem(problem: ManifestProblem): string {
  return problem.source ? `${describeSource(problem.source)}: ${problem.message}` : problem.message;
}

/** Every problem in one message, so a user fixes them all in one round instead of one per push. */
export function formatProblems(problems: readonly ManifestProblem[], what: string): string {
  const lines = problems.slice(0, MAX_LISTED_PROBLEMS).map(describeProblem);
  if (problems.length === 1) return lines[0] ?? '';
  const more = problems.length - lines.length;
  const tail = more > 0 ? `\n  … and ${more} more` : '';
  return `${problems.length} ${what}:\n  ${lines.join('\n  ')}${tail}`;
}

export function problemsError(
  code: Extract<ErrorCode, 'manifest_invalid' | 'policy_violation'>,
  problems: readonly ManifestProblem[],
): PushgateError {
  const what = code === 'manifest_invalid' ? 'manifest errors' : 'policy violations';
  return new PushgateError(code, formatProblems(problems, what), { permanent: true });
}
