/**
 * Reader and writer for xend's s-expression files (xend-config.sxp) and the relocation keys of
 * that file.
 *
 * Syntax: `#` starts a comment that runs to the end of the line, lists are parenthesised, atoms
 * are bare words or single- or double-quoted strings. Inside a quoted string a backslash escapes
 * the next character, so the file spells one regex backslash as `\\`.
 */

export interface SxpAtom {
  kind: 'atom';
  text: string;
  /** 1-based line where the atom starts. */
  line: number;
}

export interface SxpList {
  kind: 'list';
  items: SxpNode[];
  /** 1-based line of the opening parenthesis. */
  line: number;
}

export type SxpNode = SxpAtom | SxpList;

/** Invalid s-expression text or an invalid value of a known key. */
export class SxpParseError extends Error {
  readonly code = 'SXP_PARSE';

  constructor(
    readonly line: number,
    readonly problem: string,
  ) {
    super(`xend-config.sxp line ${line}: ${problem}`);
    this.name = 'SxpParseError';
  }
}

const ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r' };

/** Parses every top-level expression of `text`. */
export function parseSxp(text: string): SxpNode[] {
  const top: SxpNode[] = [];
  const open: SxpList[] = [];
  let line = 1;
  let i = 0;

  const append = (node: SxpNode): void => {
    const parent = open.at(-1);
    if (parent === undefined) top.push(node);
    else parent.items.push(node);
  };

  while (i < text.length) {
    const char = text[i] as string;
    if (char === '\n') {
      line += 1;
      i += 1;
    } else if (/\s/.test(char)) {
      i += 1;
    } else if (char === '#') {
      while (i < text.length && text[i] !== '\n') i += 1;
    } else if (char === '(') {
      const list: SxpList = { kind: 'list', items: [], line };
      append(list);
      open.push(list);
      i += 1;
    } else if (char === ')') {
      if (open.pop() === undefined) throw new SxpParseError(line, "unexpected ')' without a matching '('");
      i += 1;
    } else if (char === "'" || char === '"') {
      const startLine = line;
      let value = '';
      i += 1;
      for (;;) {
        const next = text[i];
        if (next === undefined) {
          throw new SxpParseError(startLine, `unterminated string starting with ${char}`);
        }
        if (next === char) break;
        if (next === '\n') line += 1;
        if (next === '\\') {
          const escaped = text[i + 1];
          if (escaped === undefined) throw new SxpParseError(line, 'backslash at the end of the file');
          if (escaped === '\\' || escaped === "'" || escaped === '"') value += escaped;
          else value += ESCAPES[escaped] ?? `\\${escaped}`;
          i += 2;
          continue;
        }
        value += next;
        i += 1;
      }
      i += 1;
      append({ kind: 'atom', text: value, line: startLine });
    } else {
      const start = i;
      while (i < text.length && !/[\s()'"]/.test(text[i] as string)) i += 1;
      append({ kind: 'atom', text: text.slice(start, i), line });
    }
  }

  const unclosed = open.at(-1);
  if (unclosed !== undefined) {
    throw new SxpParseError(unclosed.line, "list opened here is never closed: a ')' is missing");
  }
  return top;
}

/** Relocation settings of xend, with xend's defaults for absent keys. */
export interface XendRelocationConfig {
  /** `xend-relocation-server`; default false. */
  server: boolean;
  /** `xend-relocation-port`; default 8002. */
  port: number;
  /** `xend-relocation-address`; default '' (every interface). */
  address: string;
  /** Regex texts of `xend-relocation-hosts-allow`; default [] (every peer is allowed). */
  hostsAllow: string[];
  /** `xend-relocation-ssl-port`; default 8003. */
  sslPort: number;
  /** `xend-relocation-ssl`; default false. */
  ssl: boolean;
}

export const XEND_RELOCATION_DEFAULTS: Readonly<XendRelocationConfig> = Object.freeze({
  server: false,
  port: 8002,
  address: '',
  hostsAllow: [],
  sslPort: 8003,
  ssl: false,
});

// The words xend 3.x accepts for a boolean setting.
const TRUE_WORDS = new Set(['yes', 'y', 'true', 't', 'on', '1']);
const FALSE_WORDS = new Set(['no', 'n', 'false', 'f', 'off', '0']);

/**
 * Parses the relocation keys of an xend-config.sxp text. Like xend, the first entry of a key
 * wins when a key appears twice. Throws SxpParseError naming the line for invalid syntax, a
 * non-boolean switch, a port outside 1-65535 or an allow-list entry that is not a valid regex.
 */
export function parseXendRelocationConfig(text: string): XendRelocationConfig {
  const entries = new Map<string, SxpList>();
  for (const node of parseSxp(text)) {
    if (node.kind !== 'list') continue;
    const key = node.items[0];
    if (key?.kind === 'atom' && !entries.has(key.text)) entries.set(key.text, node);
  }

  const value = (key: string): SxpAtom | undefined => {
    const entry = entries.get(key);
    if (entry === undefined) return undefined;
    const item = entry.items[1];
    if (item?.kind !== 'atom' || entry.items.length !== 2) {
      throw new SxpParseError(entry.line, `(${key} ...) must contain exactly one value`);
    }
    return item;
  };

  const flag = (key: string, fallback: boolean): boolean => {
    const atom = value(key);
    if (atom === undefined) return fallback;
    const word = atom.text.toLowerCase();
    if (TRUE_WORDS.has(word)) return true;
    if (FALSE_WORDS.has(word)) return false;
    throw new SxpParseError(atom.line, `${key} must be yes or no, not '${atom.text}'`);
  };

  const port = (key: string, fallback: number): number => {
    const atom = value(key);
    if (atom === undefined) return fallback;
    const number = /^\d+$/.test(atom.text) ? Number(atom.text) : NaN;
    if (!(number >= 1 && number <= 65535)) {
      throw new SxpParseError(atom.line, `${key} must be a TCP port from 1 to 65535, not '${atom.text}'`);
    }
    return number;
  };

  const allowAtom = value('xend-relocation-hosts-allow');
  const hostsAllow = allowAtom === undefined ? [] : allowAtom.text.split(/\s+/).filter((p) => p !== '');
  for (const pattern of hostsAllow) {
    try {
      new RegExp(pattern);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new SxpParseError(
        allowAtom?.line ?? 0,
        `xend-relocation-hosts-allow contains an invalid regular expression '${pattern}': ${reason}`,
      );
    }
  }

  return {
    server: flag('xend-relocation-server', XEND_RELOCATION_DEFAULTS.server),
    port: port('xend-relocation-port', XEND_RELOCATION_DEFAULTS.port),
    address: value('xend-relocation-address')?.text ?? XEND_RELOCATION_DEFAULTS.address,
    hostsAllow,
    sslPort: port('xend-relocation-ssl-port', XEND_RELOCATION_DEFAULTS.sslPort),
    ssl: flag('xend-relocation-ssl', XEND_RELOCATION_DEFAULTS.ssl),
  };
}

/** Writes `text` as a single-quoted sxp string, doubling backslashes and escaping quotes. */
export function quoteSxp(text: string): string {
  return `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** Writes an atom bare when it reads back unchanged, and quoted otherwise. */
export function formatSxpAtom(text: string): string {
  return /^[^\s()'"#\\]+$/.test(text) ? text : quoteSxp(text);
}

/**
 * Writes an s-expression over lines: a list of atoms stays on one line, any other list puts
 * each item on its own line, indented by four spaces, and closes on a line of its own.
 */
export function formatSxp(node: SxpNode, indent = ''): string {
  if (node.kind === 'atom') return `${indent}${formatSxpAtom(node.text)}`;
  if (node.items.every((item) => item.kind === 'atom')) {
    return `${indent}(${node.items.map((item) => formatSxpAtom((item as SxpAtom).text)).join(' ')})`;
  }
  const [head, ...rest] = node.items;
  const first = head?.kind === 'atom' ? `${indent}(${formatSxpAtom(head.text)}` : `${indent}(`;
  const children = (head?.kind === 'atom' ? rest : node.items).map((item) =>
    formatSxp(item, `${indent}    `),
  );
  return [first, ...children, `${indent})`].join('\n');
}

/** Builds a list node from atoms (strings or numbers) and nested nodes. */
export function sxpList(...items: Array<string | number | SxpNode>): SxpList {
  return {
    kind: 'list',
    line: 0,
    items: items.map((item) =>
      typeof item === 'object' ? item : { kind: 'atom', text: String(item), line: 0 },
    ),
  };
}
