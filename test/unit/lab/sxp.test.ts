import { describe, expect, it } from 'vitest';
import {
  SxpParseError,
  formatSxp,
  parseSxp,
  parseXendRelocationConfig,
  sxpList,
  type SxpList,
} from '../../../src/lab/xen/sxp.js';
import { renderXendConfig, setRelocationServerInText } from '../../../src/lab/xen/xend-config.js';
import { compileHostsAllow, isPeerAllowed } from '../../../src/lab/xen/relocation.js';

const SHIPPED = String.raw`
# The hosts allowed to talk to the relocation port.
#(xend-relocation-hosts-allow '')
(xend-relocation-server yes)
(xend-relocation-port 8002)
(xend-relocation-address '')
(xend-relocation-hosts-allow '^localhost$ ^localhost\\.localdomain$')
`;

describe('parseSxp', () => {
  it('reads nested lists, bare atoms and both quote styles', () => {
    const [node] = parseSxp(`(domain (name "web 01") (memory 512) (device (vbd (uname 'file:/a.img'))))`);
    expect(node?.kind).toBe('list');
    const domain = node as SxpList;
    expect(domain.items.map((item) => (item.kind === 'atom' ? item.text : '(list)'))).toEqual([
      'domain',
      '(list)',
      '(list)',
      '(list)',
    ]);
    expect(formatSxp(domain)).toBe(
      [
        '(domain',
        "    (name 'web 01')",
        '    (memory 512)',
        '    (device',
        '        (vbd',
        '            (uname file:/a.img)',
        '        )',
        '    )',
        ')',
      ].join('\n'),
    );
  });

  it('keeps # inside quoted strings and drops comments elsewhere', () => {
    const nodes = parseSxp("# leading comment\n(vncpasswd 'a#b') # trailing comment\n#(ignored yes)\n");
    expect(nodes).toHaveLength(1);
    const atom = (nodes[0] as SxpList).items[1];
    expect(atom).toEqual({ kind: 'atom', text: 'a#b', line: 2 });
  });

  it('unescapes doubled backslashes and escaped quotes', () => {
    const [node] = parseSxp(String.raw`(x 'a\\.b \'q\'' "tab\there")`);
    const texts = (node as SxpList).items.map((item) => (item.kind === 'atom' ? item.text : ''));
    expect(texts).toEqual(['x', String.raw`a\.b 'q'`, 'tab\there']);
  });

  it('names the line of an unterminated string', () => {
    const parse = (): unknown => parseSxp("(a 1)\n\n(b 'open\n(c 2)");
    expect(parse).toThrow(SxpParseError);
    expect(parse).toThrow("xend-config.sxp line 3: unterminated string starting with '");
  });

  it('names the line of an unclosed list', () => {
    expect(() => parseSxp('(a 1)\n(b (c 2)\n')).toThrow('line 2');
  });

  it('rejects a stray closing parenthesis', () => {
    expect(() => parseSxp('(a 1))')).toThrow("line 1: unexpected ')'");
  });
});

describe('parseXendRelocationConfig', () => {
  it('reads the shipped localhost-only allow list', () => {
    const config = parseXendRelocationConfig(SHIPPED);
    expect(config.hostsAllow).toEqual(['^localhost$', String.raw`^localhost\.localdomain$`]);
    expect(config.server).toBe(true);
    expect(config.port).toBe(8002);
    expect(config.address).toBe('');
  });

  it('applies xend defaults when keys are absent', () => {
    expect(parseXendRelocationConfig('# nothing but a comment\n')).toEqual({
      server: false,
      port: 8002,
      address: '',
      hostsAllow: [],
      sslPort: 8003,
      ssl: false,
    });
  });

  it('treats an empty allow list as allow all', () => {
    const config = parseXendRelocationConfig("(xend-relocation-hosts-allow '')");
    expect(config.hostsAllow).toEqual([]);
    expect(isPeerAllowed(compileHostsAllow(config.hostsAllow), '127.0.0.2', 'xen-a')).toBe(true);
  });

  it('reads an address-range regex', () => {
    const text = String.raw`(xend-relocation-hosts-allow '^127\\.0\\.0\\.[2-3]$')`;
    const config = parseXendRelocationConfig(text);
    expect(config.hostsAllow).toEqual([String.raw`^127\.0\.0\.[2-3]$`]);
    const allow = compileHostsAllow(config.hostsAllow);
    expect(isPeerAllowed(allow, '127.0.0.2', 'xen-a')).toBe(true);
    expect(isPeerAllowed(allow, '127.0.0.4', 'xen-c')).toBe(false);
    expect(isPeerAllowed(allow, '127.0.0.25', undefined)).toBe(false);
  });

  it('matches the shipped list by name, not by address', () => {
    const allow = compileHostsAllow(parseXendRelocationConfig(SHIPPED).hostsAllow);
    expect(isPeerAllowed(allow, '127.0.0.1', 'localhost')).toBe(true);
    expect(isPeerAllowed(allow, '127.0.0.2', 'xen-a')).toBe(false);
    expect(isPeerAllowed(allow, '127.0.0.1', undefined)).toBe(false);
  });

  it('anchors patterns at the start only, like re.match', () => {
    const allow = compileHostsAllow(['xen']);
    expect(isPeerAllowed(allow, '127.0.0.2', 'xen-a.lab')).toBe(true);
    expect(isPeerAllowed(allow, '127.0.0.2', 'a-xen')).toBe(false);
  });

  it('uses the first entry of a repeated key', () => {
    const config = parseXendRelocationConfig('(xend-relocation-port 9001)\n(xend-relocation-port 9002)\n');
    expect(config.port).toBe(9001);
  });

  it('reads yes/no words and ports', () => {
    const config = parseXendRelocationConfig(
      "(xend-relocation-server on)(xend-relocation-ssl false)(xend-relocation-ssl-port 9443)(xend-relocation-address 'localhost')",
    );
    expect(config).toMatchObject({ server: true, ssl: false, sslPort: 9443, address: 'localhost' });
  });

  it('rejects a non-boolean switch with its line', () => {
    expect(() => parseXendRelocationConfig('\n(xend-relocation-server maybe)')).toThrow(
      "line 2: xend-relocation-server must be yes or no, not 'maybe'",
    );
  });

  it('rejects a port outside 1-65535', () => {
    expect(() => parseXendRelocationConfig('(xend-relocation-port 70000)')).toThrow('from 1 to 65535');
  });

  it('rejects an invalid allow-list regex', () => {
    expect(() => parseXendRelocationConfig("(xend-relocation-hosts-allow '^(localhost$')")).toThrow(
      "invalid regular expression '^(localhost$'",
    );
  });
});

describe('renderXendConfig', () => {
  it('defaults to relocation on with the shipped allow list', () => {
    const text = renderXendConfig({ port: 40123 });
    expect(text).toContain(String.raw`(xend-relocation-hosts-allow '^localhost$ ^localhost\\.localdomain$')`);
    expect(parseXendRelocationConfig(text)).toEqual({
      server: true,
      port: 40123,
      address: '',
      hostsAllow: ['^localhost$', String.raw`^localhost\.localdomain$`],
      sslPort: 8003,
      ssl: false,
    });
  });

  it('round-trips every setting', () => {
    const settings = {
      server: false,
      port: 9002,
      address: 'localhost',
      hostsAllow: [String.raw`^127\.0\.0\.[2-3]$`, "^it's$"],
      sslPort: 9003,
      ssl: true,
    };
    expect(parseXendRelocationConfig(renderXendConfig(settings))).toEqual(settings);
  });

  it('switches the relocation server in place', () => {
    const text = renderXendConfig({ port: 9002 });
    const off = setRelocationServerInText(text, false);
    expect(parseXendRelocationConfig(off).server).toBe(false);
    expect(off.split('\n')).toHaveLength(text.split('\n').length);
    expect(
      parseXendRelocationConfig(setRelocationServerInText('(xend-relocation-port 1)', true)).server,
    ).toBe(true);
  });

  it('formats built lists with atoms quoted only when needed', () => {
    expect(formatSxp(sxpList('a', '', 'b c', 3))).toBe("(a '' 'b c' 3)");
  });
});
