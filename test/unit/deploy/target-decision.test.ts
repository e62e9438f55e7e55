import { describe, expect, it } from 'vitest';
import { decideTarget } from '../../../src/deploy/target-decision.js';

const OLD = 'a'.repeat(40);
const HEAD = 'b'.repeat(40);

describe('decideTarget', () => {
  it('deploys the head when the webhook announced the head', () => {
    expect(decideTarget({ announcedSha: HEAD, head: HEAD, liveSha: OLD, headJobState: undefined })).toEqual({
      action: 'deploy',
      sha: HEAD,
    });
  });

  it('deploys the head even when it is already applied, for manual and reconcile jobs (drift correction)', () => {
    expect(
      decideTarget({ announcedSha: undefined, head: HEAD, liveSha: HEAD, headJobState: 'running' }),
    ).toEqual({
      action: 'deploy',
      sha: HEAD,
    });
  });

  it('supersedes a late webhook for an old commit once the head is applied', () => {
    expect(decideTarget({ announcedSha: OLD, head: HEAD, liveSha: HEAD, headJobState: undefined })).toEqual({
      action: 'supersede',
      by: HEAD,
    });
  });

  it('supersedes an old commit when a job for the head is queued or running', () => {
    expect(decideTarget({ announcedSha: OLD, head: HEAD, liveSha: null, headJobState: 'running' })).toEqual({
      action: 'supersede',
      by: HEAD,
    });
  });

  it("supersedes an old commit when the head's own job failed, instead of re-running it", () => {
    expect(decideTarget({ announcedSha: OLD, head: HEAD, liveSha: OLD, headJobState: 'failed' })).toEqual({
      action: 'supersede',
      by: HEAD,
    });
  });

  it('catches up to a head whose job succeeded before another commit was applied', () => {
    expect(decideTarget({ announcedSha: OLD, head: HEAD, liveSha: OLD, headJobState: 'succeeded' })).toEqual({
      action: 'deploy',
      sha: HEAD,
    });
  });

  it('catches up to the head when its webhook was missed', () => {
    expect(decideTarget({ announcedSha: OLD, head: HEAD, liveSha: OLD, headJobState: undefined })).toEqual({
      action: 'deploy',
      sha: HEAD,
    });
  });

  it('deploys a force-push back to an older commit, because the head is that commit', () => {
    expect(decideTarget({ announcedSha: OLD, head: OLD, liveSha: HEAD, headJobState: undefined })).toEqual({
      action: 'deploy',
      sha: OLD,
    });
  });

  it('compares commits case-insensitively', () => {
    expect(
      decideTarget({
        announcedSha: HEAD.toUpperCase(),
        head: HEAD,
        liveSha: null,
        headJobState: 'running',
      }),
    ).toEqual({
      action: 'deploy',
      sha: HEAD,
    });
  });
});
