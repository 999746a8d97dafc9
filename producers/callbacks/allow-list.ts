/**
 * Allow-lists of the URLs ferry may POST to (result callbacks, Slack response URLs). Each entry is
 * a URL prefix: a URL matches when it has the entry's scheme, host and port, and its path starts
 * with the entry's path at a segment boundary. Paths are compared after WHATWG URL normalisation,
 * so `/hooks/../admin` is `/admin` and does not match `/hooks/`.
 */
import { quoteValue } from '../../src/jobs/quote.js';
import { ProducerError } from '../common/errors.js';

/** Longest URL accepted, in characters. */
export const maxUrlLength = 2048;

export interface UrlPrefix {
  /** `http:` or `https:`. */
  protocol: string;
  /** Host name and, when not the scheme's default, `:port`, as WHATWG URL writes it. */
  host: string;
  pathname: string;
  /** The entry as written in the configuration, for messages. */
  text: string;
}

/** Parses an allow-list entry; returns a sentence naming the problem when it is not usable. */
export function parseUrlPrefix(text: string): UrlPrefix | string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'is not a URL';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'must start with http:// or https://';
  if (url.username !== '' || url.password !== '') return 'must not contain a user name or password';
  if (url.search !== '' || url.hash !== '') return 'must not contain a query or fragment';
  return { protocol: url.protocol, host: url.host, pathname: url.pathname, text };
}

export function matchesUrlPrefix(url: URL, prefix: UrlPrefix): boolean {
  if (url.protocol !== prefix.protocol || url.host !== prefix.host) return false;
  if (prefix.pathname.endsWith('/')) return url.pathname.startsWith(prefix.pathname);
  return url.pathname === prefix.pathname || url.pathname.startsWith(`${prefix.pathname}/`);
}

/**
 * Checks a URL from a request against an allow-list and returns it parsed. Throws
 * INVALID_REQUEST naming `field` when the URL is malformed or matches no entry.
 */
export function checkAllowedUrl(value: unknown, allowed: readonly UrlPrefix[], field: string): URL {
  const invalid = (problem: string, fix: string): ProducerError =>
    new ProducerError('INVALID_REQUEST', `${field} ${problem} (got ${quoteValue(value)}): ${fix}.`, {
      fields: [field],
    });

  if (typeof value !== 'string') throw invalid('must be a string', 'send an http:// or https:// URL');
  if (value.length > maxUrlLength) {
    throw invalid('is too long', `use a URL of at most ${maxUrlLength} characters`);
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalid('is not a URL', 'send an absolute http:// or https:// URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw invalid('must use http or https', 'send an http:// or https:// URL');
  }
  if (url.username !== '' || url.password !== '') {
    throw invalid('must not contain a user name or password', 'remove the credentials from the URL');
  }
  if (allowed.length === 0) {
    throw invalid('cannot be used', 'this server accepts no such URLs; leave the field out');
  }
  if (!allowed.some((prefix) => matchesUrlPrefix(url, prefix))) {
    throw invalid(
      'is not in the allow-list of this server',
      `use a URL under ${allowed.map((prefix) => prefix.text).join(' or ')}`,
    );
  }
  return url;
}
