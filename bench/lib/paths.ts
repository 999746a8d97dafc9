/** Paths the benchmarks share. */
import { fileURLToPath } from 'node:url';

/** The repository's root folder. */
export const repositoryRoot = fileURLToPath(new URL('../../', import.meta.url));

/** The `ferry` command's entry point, started with `node` for worker processes. */
export const ferryBin = fileURLToPath(new URL('../../bin/ferry.mjs', import.meta.url));
