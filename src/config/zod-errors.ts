import type { z } from 'zod';

/** Formats zod issues as `field.path: problem` clauses, so that each error names the field. */
export function formatZodIssues(issues: ReadonlyArray<z.core.$ZodIssue>): string {
  return issues
    .map((issue) => {
      const path = issue.path.map(String).join('.');
      return path === '' ? issue.message : `${path}: ${issue.message}`;
    })
    .join('; ');
}
