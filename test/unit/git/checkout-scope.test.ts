import { describe, expect, it } from 'vitest';
import { outermost, repositoryPath, resolveSymlink } from '../../../src/git/checkout-scope.js';

const resolve = (symlinkPath: string, target: string) =>
  resolveSymlink(Buffer.from(symlinkPath), Buffer.from(target), 'tree');

describe('resolveSymlink', () => {
  it.each([
    ['apps/web/base', '../../base', 'base'],
    ['apps/web/base', '../../base/', 'base'],
    ['apps/web/d.yaml', '../../files/./d.yaml', 'files/d.yaml'],
    ['apps/web/x', 'sub//x.yaml', 'apps/web/sub/x.yaml'],
    ['apps/web/up', '..', 'apps'],
    ['apps/web/top', '../..', ''],
    ['link', '../tree/base', 'base'],
    ['apps/link', '../../tree/../tree/base', 'base'],
  ])('%s -> %s is %j in the repository', (symlinkPath, target, inside) => {
    expect(resolve(symlinkPath, target)).toEqual({ kind: 'inside', path: inside });
  });

  it.each([
    ['apps/web/x', '/etc/passwd'],
    ['apps/web/x', '../../../outside'],
    ['link', '..'],
    ['link', '../index'],
    ['link', '../../tree/base'],
    ['link', '../../pushgate-tree-1-2-abcdef/tree/base'],
  ])('%s -> %s leads out of it', (symlinkPath, target) => {
    expect(resolve(symlinkPath, target)).toEqual({ kind: 'outside' });
  });

  it('leads nowhere when empty, or too long to be read', () => {
    expect(resolveSymlink(Buffer.from('link'), Buffer.alloc(0), 'tree')).toEqual({ kind: 'outside' });
    expect(resolveSymlink(Buffer.from('link'), undefined, 'tree')).toEqual({ kind: 'outside' });
  });

  it.each([
    ['apps/web/x', '../../real/../base', /into a folder and back out/],
    ['apps/web/x', 'sub/..', /into a folder and back out/],
    ['apps/web/x', 'a\0b', /not UTF-8/],
  ])('%s -> %j is left to the whole commit', (symlinkPath, target, reason) => {
    const resolved = resolve(symlinkPath, target);
    expect(resolved.kind).toBe('unknown');
    expect(resolved.kind === 'unknown' && resolved.reason).toMatch(reason);
  });

  it('leaves a name or target that is not UTF-8 to the whole commit', () => {
    const latin1 = Buffer.from('caf\xe9', 'latin1');
    expect(resolveSymlink(latin1, Buffer.from('x'), 'tree').kind).toBe('unknown');
    expect(resolveSymlink(Buffer.from('link'), latin1, 'tree').kind).toBe('unknown');
  });
});

describe('repositoryPath', () => {
  it.each([
    ['apps/web', 'apps/web'],
    ['./apps//web/', 'apps/web'],
    ['apps/./web', 'apps/web'],
    ['.', ''],
    ['./', ''],
    ['', ''],
  ])('names %j as %j', (manifestPath, expected) => {
    expect(repositoryPath(manifestPath)).toBe(expected);
  });

  it.each(['/etc', '..', '../x', 'a/../../x', 'a\0b'])('has no path for %j', (manifestPath) => {
    expect(repositoryPath(manifestPath)).toBeUndefined();
  });
});

describe('outermost', () => {
  it('keeps the paths no other holds', () => {
    expect(outermost(['apps/web', 'base', 'apps', 'base', 'apps/web/x', 'apps-other', 'base2'])).toEqual([
      'apps',
      'apps-other',
      'base',
      'base2',
    ]);
  });
});
