import { describe, expect, it } from 'vitest';
import { PushgateError } from '../../../src/lib/errors.js';
import { parseGithubEvent } from '../../../src/webhooks/github/parse-push.js';
import { parseGitlabEvent } from '../../../src/webhooks/gitlab/parse-push.js';
import { githubBranchPushExample, githubExamples } from '../../fixtures/github/payloads.js';
import { gitlabFixture } from '../../fixtures/gitlab/payloads.js';

describe('GitHub push parsing', () => {
  it("turns GitHub's example branch push into a PushEvent", () => {
    expect(parseGithubEvent('push', githubBranchPushExample(), 'delivery-1')).toEqual({
      kind: 'push',
      push: {
        provider: 'github',
        repository: 'Codertocat/Hello-World',
        branch: 'master',
        before: '0000000000000000000000000000000000000000',
        after: '6113728f27ae82c7b1a177c8d03f9e96e0adf246',
        deliveryId: 'delivery-1',
        pusher: 'Codertocat',
      },
    });
  });

  it("ignores GitHub's example tag pushes and tag deletions", () => {
    for (const example of githubExamples('push').filter((candidate) =>
      String(candidate.ref).startsWith('refs/tags/'),
    )) {
      expect(parseGithubEvent('push', example, 'd')).toMatchObject({
        kind: 'ignored',
        reason: expect.stringContaining('tag') as string,
      });
    }
  });

  it('ignores a branch deletion, by deleted: true or by an all-zero after', () => {
    const deleted = { ...githubBranchPushExample(), deleted: true };
    expect(parseGithubEvent('push', deleted, 'd')).toEqual({
      kind: 'ignored',
      reason: 'branch deletion (master)',
    });
    const zero = { ...githubBranchPushExample(), after: '0'.repeat(40), deleted: false };
    expect(parseGithubEvent('push', zero, 'd')).toEqual({
      kind: 'ignored',
      reason: 'branch deletion (master)',
    });
  });

  it('answers ping and ignores other events', () => {
    expect(parseGithubEvent('ping', {}, 'd')).toEqual({ kind: 'ping' });
    expect(parseGithubEvent('issues', {}, 'd')).toEqual({
      kind: 'ignored',
      reason: 'event "issues" is not a push',
    });
  });

  it('names the missing field of a push without ref, after or repository', () => {
    for (const [field, message] of [
      ['ref', 'push payload: ref is required'],
      ['after', 'push payload: after is required'],
      ['repository', 'push payload: repository is required'],
    ] as const) {
      const payload = githubBranchPushExample();
      delete payload[field];
      expect(() => parseGithubEvent('push', payload, 'd')).toThrow(message);
    }
    const noName = githubBranchPushExample();
    (noName.repository as Record<string, unknown>).full_name = undefined;
    expect(() => parseGithubEvent('push', noName, 'd')).toThrow(
      'push payload: repository.full_name is required',
    );
  });

  it('names a field of the wrong type, and accepts the nulls GitHub sends', () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ after: 42 }, 'push payload: after must be a string'],
      [{ ref: '' }, 'push payload: ref must not be empty'],
      [{ repository: 'acme/env' }, 'push payload: repository must be an object'],
      [{ deleted: 'yes' }, 'push payload: deleted must be true or false'],
      [{ pusher: { name: 7 } }, 'push payload: pusher.name must be a string'],
    ];
    for (const [change, message] of cases) {
      const payload = { ...githubBranchPushExample(), ...change };
      expect(() => parseGithubEvent('push', payload, 'd')).toThrow(message);
    }
    expect(() => parseGithubEvent('push', [], 'd')).toThrow('push payload: (top level) must be an object');
    const nulls = { ...githubBranchPushExample(), pusher: null, before: null, sender: { login: 'octocat' } };
    expect(parseGithubEvent('push', nulls, 'd')).toMatchObject({
      kind: 'push',
      push: { before: undefined, pusher: 'octocat' },
    });
  });

  it('refuses an after that is not a commit sha with a 400', () => {
    const payload = { ...githubBranchPushExample(), after: 'not-a-sha' };
    expect(() => parseGithubEvent('push', payload, 'd')).toThrow(PushgateError);
  });
});

describe('GitLab push parsing', () => {
  it('turns the documented Push Hook into a PushEvent', () => {
    expect(parseGitlabEvent('Push Hook', gitlabFixture('push'), 'key-1')).toEqual({
      kind: 'push',
      push: {
        provider: 'gitlab',
        repository: 'mike/diaspora',
        branch: 'master',
        before: '95790bf891e76fee5e1747ab589903a6a1f80f22',
        after: 'da1560886d4f094c3e6c9ef40349f7d38b5d27d7',
        deliveryId: 'key-1',
        pusher: 'jsmith',
      },
    });
  });

  it('ignores the documented Tag Push Hook', () => {
    expect(parseGitlabEvent('Tag Push Hook', gitlabFixture('tag-push'), 'k')).toEqual({
      kind: 'ignored',
      reason: 'tag push',
    });
  });

  it('ignores a branch deletion, by an all-zero after or by deleted: true', () => {
    expect(parseGitlabEvent('Push Hook', gitlabFixture('branch-deletion'), 'k')).toEqual({
      kind: 'ignored',
      reason: 'branch deletion (master)',
    });
    expect(parseGitlabEvent('Push Hook', { ...gitlabFixture('push'), deleted: true }, 'k')).toEqual({
      kind: 'ignored',
      reason: 'branch deletion (master)',
    });
  });

  it('ignores other events', () => {
    expect(parseGitlabEvent('Merge Request Hook', {}, 'k')).toEqual({
      kind: 'ignored',
      reason: 'event "Merge Request Hook" is not a push',
    });
  });

  it('names the missing project path', () => {
    const payload = gitlabFixture('push');
    delete payload.project;
    expect(() => parseGitlabEvent('Push Hook', payload, 'k')).toThrow('push payload: project is required');
    const noPath = { ...gitlabFixture('push'), project: { name: 'Diaspora' } };
    expect(() => parseGitlabEvent('Push Hook', noPath, 'k')).toThrow(
      'push payload: project.path_with_namespace is required',
    );
  });

  it('names the pusher from user_name when user_username is absent', () => {
    const payload = { ...gitlabFixture('push'), user_username: null };
    expect(parseGitlabEvent('Push Hook', payload, 'k')).toMatchObject({
      kind: 'push',
      push: { pusher: 'John Smith' },
    });
  });
});
