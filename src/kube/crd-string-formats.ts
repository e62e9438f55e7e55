import { isIP } from 'node:net';

/**
 * String `format`s of a CRD schema that the API server validates (kube-openapi's strfmt), each
 * as a test that is true only for values the server certainly refuses. Formats whose Go parser
 * is lenient in ways hard to mirror (uri, email, hostname, duration, isbn, ...) are absent and
 * left to the server's dry-run; so are unknown formats, which the server ignores.
 */
const UUID_SHAPES: Record<string, RegExp> = {
  uuid: /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i,
  uuid3: /^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i,
  uuid4: /^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$/i,
  uuid5: /^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$/i,
};

// Loose on purpose: every layout Go's date-time parsers take matches it.
const DATE_TIME_SHAPE = /^(\d{4}-\d{2}-\d{2})[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}(:?\d{2})?)?$/;
const BASE64_SHAPE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Any IP address, taking dotted quads with leading zeros as Kubernetes' sloppy parser does. */
function isAnyIp(value: string): boolean {
  return isIP(value.replace(/(^|[.:])0+(?=\d)/g, '$1')) !== 0;
}

/** Go's time.Parse("2006-01-02"): any year 0000–9999, a real day of that month. */
function isCalendarDate(value: string): boolean {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
  if (!match) return false;
  const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
  if (month < 1 || month > 12 || day < 1) return false;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]!;
  return day <= days;
}

/** Go's net.ParseMAC: 6, 8 or 20 octets as `aa:bb:..`/`aa-bb-..`, or dotted groups of four. */
function isMac(value: string): boolean {
  const octets = value.split(/[:-]/);
  if (octets.length > 1 && /^[^.]*$/.test(value) && new Set(value.match(/[:-]/g)).size === 1)
    return [6, 8, 20].includes(octets.length) && octets.every((octet) => /^[0-9a-f]{2}$/i.test(octet));
  const groups = value.split('.');
  return [3, 4, 10].includes(groups.length) && groups.every((group) => /^[0-9a-f]{4}$/i.test(group));
}

function isCidr(value: string): boolean {
  const slash = value.indexOf('/');
  if (slash < 0) return false;
  const [address, prefix] = [value.slice(0, slash), value.slice(slash + 1)];
  if (!/^\d{1,3}$/.test(prefix) || !isAnyIp(address)) return false;
  return Number(prefix) <= (address.includes(':') ? 128 : 32);
}

const REFUSED_BY_FORMAT: Record<string, (value: string) => boolean> = {
  ...Object.fromEntries(
    Object.entries(UUID_SHAPES).map(([name, shape]) => [name, (value: string) => !shape.test(value)]),
  ),
  bsonobjectid: (value) => !/^[0-9a-f]{24}$/i.test(value),
  ipv4: (value) => !isAnyIp(value),
  ipv6: (value) => !isAnyIp(value),
  cidr: (value) => !isCidr(value),
  mac: (value) => !isMac(value),
  byte: (value) => !BASE64_SHAPE.test(value.replace(/[\r\n]/g, '')),
  date: (value) => !isCalendarDate(value),
  'date-time': (value) => {
    const match = DATE_TIME_SHAPE.exec(value);
    return !match || !isCalendarDate(match[1]!);
  },
};
REFUSED_BY_FORMAT.datetime = REFUSED_BY_FORMAT['date-time']!;

/** True when the API server certainly refuses `value` for a string of this `format`. */
export function violatesFormat(format: string, value: string): boolean {
  return Object.hasOwn(REFUSED_BY_FORMAT, format) ? REFUSED_BY_FORMAT[format]!(value) : false;
}
