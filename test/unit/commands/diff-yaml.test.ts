import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { diffYamlLines } from '../../../src/commands/diff-yaml.js';
import { diffLines, unifiedHunks } from '../../../src/lib/line-diff.js';

function configMap(data: Record<string, string>) {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'app' }, data };
}

describe('diffYamlLines', () => {
  it('writes a CRLF value one line per line, each \\r\\n escaped, and parses back to the value', () => {
    const value = '[server]\r\nport = 8080\r\nhost = example.com\r\n';

    const lines = diffYamlLines(configMap({ 'app.ini': value }));

    expect(lines).toEqual([
      'apiVersion: v1',
      'data:',
      '  app.ini: "[server]\\r\\n\\',
      '    port = 8080\\r\\n\\',
      '    host = example.com\\r\\n"',
      'kind: ConfigMap',
      'metadata:',
      '  name: app',
    ]);
    expect(parse(lines.join('\n'))).toEqual(configMap({ 'app.ini': value }));
  });

  it('quotes a value holding a line of spaces alone, which a block scalar would lose, and it parses back', () => {
    for (const value of ['  \n', 'a\n   \nb\n', '\t\n  x\n']) {
      const lines = diffYamlLines(configMap({ 'app.conf': value }));

      expect(parse(lines.join('\n')), JSON.stringify(value)).toEqual(configMap({ 'app.conf': value }));
    }
    expect(diffYamlLines(configMap({ 'app.conf': '  \n' }))).toContain('  app.conf: "  \\n"');
  });

  it('shows a change inside a CRLF value as that line alone', () => {
    const before = configMap({
      'app.ini': '[server]\r\nport = 8080\r\nhost = example.com\r\nmode = live\r\n',
    });
    const after = configMap({
      'app.ini': '[server]\r\nport = 9090\r\nhost = example.com\r\nmode = live\r\n',
    });

    const changed = unifiedHunks(diffLines(diffYamlLines(before), diffYamlLines(after)), 3).filter((line) =>
      /^[-+]/.test(line),
    );

    expect(changed).toEqual(['-    port = 8080\\r\\n\\', '+    port = 9090\\r\\n\\']);
  });

  it.each([
    ['short', 'a\r\nb'],
    ['empty lines', 'a\r\n\r\n\r\nb\r\n'],
    ['indented lines', 'root:\r\n  child: 1\r\n    deeper: "x"\r\n'],
    ['trailing spaces', 'a  \r\n b \r\n'],
    ['a backslash before n', 'C:\\new\\nothing\r\nnext'],
    ['a leading line feed', '\r\n\nfirst'],
    ['a lone carriage return', 'old mac\rline\r\n'],
    ['mixed endings', 'lf\ncrlf\r\nlast'],
    ['control characters', '\u001b[1mbold\u001b[0m\n\ttab\u0000nul\n'],
    ['document markers', 'x\r\n---\r\n...\r\n%YAML\r\n'],
    ['quotes and hashes', '"quoted" # not a comment\r\n\'single\'\r\n'],
    ['unicode line separators', 'a\u2028b\u0085c\r\nd'],
  ])('keeps a value with %s exactly', (_, value) => {
    const object = configMap({ file: value, [`key\r\nwith break`]: value });
    const lines = diffYamlLines(object);

    expect(parse(lines.join('\n'))).toEqual(object);
    // Keys stay on one line; values break after each line feed but the last.
    expect(lines.filter((line) => line.startsWith('  "key'))).toHaveLength(1);
  });

  it('leaves a value a block scalar can hold as one, and a one-line value on its line', () => {
    const lines = diffYamlLines(configMap({ lf: 'a\nb\n', one: 'x\r' }));

    expect(lines).toEqual([
      'apiVersion: v1',
      'data:',
      '  lf: |',
      '    a',
      '    b',
      '  one: "x\\r"',
      'kind: ConfigMap',
      'metadata:',
      '  name: app',
    ]);
  });

  it('breaks a CRLF string in a list too', () => {
    const object = { spec: { args: ['one\r\ntwo', 'plain'] } };
    const lines = diffYamlLines(object);

    expect(lines).toEqual(['spec:', '  args:', '    - "one\\r\\n\\', '      two"', '    - plain']);
    expect(parse(lines.join('\n'))).toEqual(object);
  });
});
