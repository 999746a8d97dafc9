import { XEND_RELOCATION_DEFAULTS, quoteSxp, type XendRelocationConfig } from './sxp.js';

/** The allow list of the xend-config.sxp that Xen 3.x ships: loopback names only. */
export const SHIPPED_HOSTS_ALLOW: readonly string[] = Object.freeze([
  '^localhost$',
  '^localhost\\.localdomain$',
]);

/**
 * Renders a complete xend-config.sxp in the layout of the file that Xen ships: each setting
 * preceded by comments that explain it. Unset fields take xend's defaults, except that the lab
 * default turns the relocation server on and keeps the shipped localhost-only allow list.
 */
export function renderXendConfig(settings: Partial<XendRelocationConfig> = {}): string {
  const config: XendRelocationConfig = {
    ...XEND_RELOCATION_DEFAULTS,
    server: true,
    hostsAllow: [...SHIPPED_HOSTS_ALLOW],
    ...settings,
  };
  const yesNo = (on: boolean): string => (on ? 'yes' : 'no');

  return `# -*- sh -*-
#
# Configuration of xend, the Xen control daemon, for one ferry lab host.
#
# Each setting is a list (key value). Lines that start with # are comments. A value
# that contains spaces or backslashes is quoted, and a backslash inside quotes is
# written twice.
#

#(logfile /var/log/xen/xend.log)
#(loglevel DEBUG)

# The Unix socket that xm uses to talk to xend.
(xend-unix-server yes)

# Whether xend accepts domains migrated from other hosts. With no, nothing listens
# on the relocation port and every migration towards this host is refused.
(xend-relocation-server ${yesNo(config.server)})

# TCP port of the relocation server. Its stream is neither encrypted nor
# authenticated.
(xend-relocation-port ${config.port})

# Address the relocation server listens on. '' means every interface of the host;
# 'localhost' keeps it on the loopback interface, so that only connections that
# arrive through an SSH tunnel can reach it.
(xend-relocation-address ${quoteSxp(config.address)})

# Peers allowed to send a domain: a space-separated list of regular expressions,
# each matched from the start against the peer's IP address and against its name.
# An empty list allows every peer that reaches the port. For example:
#  (xend-relocation-hosts-allow '^localhost$ ^.*\\\\.example\\\\.org$')
(xend-relocation-hosts-allow ${quoteSxp(config.hostsAllow.join(' '))})

# Relocation over SSL, on its own port. The lab does not simulate it.
(xend-relocation-ssl-port ${config.sslPort})
(xend-relocation-ssl ${yesNo(config.ssl)})

# Scripts that connect virtual interfaces to the host's bridges.
(network-script network-bridge)
(vif-script vif-bridge)

# Lowest memory, in MiB, that dom0 may be ballooned down to when a domain needs room.
(dom0-min-mem 196)

# Physical CPUs that dom0 may use; 0 means all of them.
(dom0-cpus 0)

# Password of the VNC consoles of HVM domains; '' means none.
(vncpasswd '')
`;
}

/**
 * Returns `text` with `(xend-relocation-server yes|no)` set to `on`. The first uncommented
 * entry is rewritten in place, so comments stay where they are; the setting is appended when
 * the text has none.
 */
export function setRelocationServerInText(text: string, on: boolean): string {
  const entry = /^([ \t]*\(xend-relocation-server[ \t]+)[^\s()]+([ \t]*\))/m;
  const value = on ? 'yes' : 'no';
  if (entry.test(text)) return text.replace(entry, `$1${value}$2`);
  const separator = text === '' || text.endsWith('\n') ? '' : '\n';
  return `${text}${separator}(xend-relocation-server ${value})\n`;
}
