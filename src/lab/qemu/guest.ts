import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const guestSourceDir = join(dirname(fileURLToPath(import.meta.url)), 'guest');

/** Programs that build the guest, from Debian's binutils. */
export const assembler = '/usr/bin/as';
export const linker = '/usr/bin/ld';

/**
 * Builds the lab guest (guest/guest.S, a multiboot kernel) into `outDir` and returns the path
 * of the ELF file that QEMU loads with -kernel. It takes a few milliseconds, so every lab builds
 * its own copy rather than sharing a cache.
 */
export function buildGuest(outDir: string): string {
  for (const tool of [assembler, linker]) {
    if (!existsSync(tool)) {
      throw new Error(`${tool} is missing; install Debian's binutils to build the lab's QEMU guest.`);
    }
  }
  const objectPath = join(outDir, 'guest.o');
  const kernelPath = join(outDir, 'guest.elf');
  const run = (program: string, args: string[]): void => {
    try {
      execFileSync(program, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (error) {
      const stderr = (error as { stderr?: Buffer }).stderr?.toString() ?? '';
      throw new Error(`Building the lab guest failed: ${program} ${args.join(' ')}\n${stderr}`, {
        cause: error,
      });
    }
  };
  run(assembler, ['--32', '-o', objectPath, join(guestSourceDir, 'guest.S')]);
  run(linker, ['-m', 'elf_i386', '-T', join(guestSourceDir, 'guest.ld'), '-o', kernelPath, objectPath]);
  return kernelPath;
}
