/** Characters of a value shown in an error message before it is cut. */
export const defaultQuoteLength = 40;

// Everything outside printable ASCII is escaped, so that a value cannot move the cursor, change
// the terminal's colours or hide text behind a bidirectional override.
function escapeNonPrintable(text: string): string {
  return text.replace(
    /[^\x20-\x7e]/g,
    (character) => `\\u${character.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

function stringify(value: unknown): string {
  try {
    return JSON.stringify(value) ?? typeof value;
  } catch {
    return typeof value;
  }
}

/**
 * Formats a value from untrusted input for an error message: strings in double quotes with
 * every non-printable character escaped, cut after `maxLength` characters with the full length
 * noted, other values as JSON.
 */
export function quoteValue(value: unknown, maxLength = defaultQuoteLength): string {
  if (typeof value === 'string') {
    const cut = value.length > maxLength;
    const quoted = escapeNonPrintable(JSON.stringify(cut ? value.slice(0, maxLength) : value));
    return cut ? `${quoted}... (${value.length} characters)` : quoted;
  }
  const text = escapeNonPrintable(stringify(value));
  return text.length > maxLength ? `${text.slice(0, maxLength)}...` : text;
}
