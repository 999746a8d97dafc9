/**
 * A reader for the s-expressions xm prints (`xm list -l`): nested lists of bare atoms and
 * quoted strings. It only reads what xm writes; it is not a configuration parser.
 */
export type Sexp = string | Sexp[];

export function parseSexp(text: string): Sexp[] {
  const stack: Sexp[][] = [[]];
  let index = 0;
  while (index < text.length) {
    const char = text[index] as string;
    if (char === '(') {
      stack.push([]);
      index += 1;
    } else if (char === ')') {
      const done = stack.pop();
      const parent = stack[stack.length - 1];
      if (done === undefined || parent === undefined) throw new Error(`Unbalanced ')' at offset ${index}.`);
      parent.push(done);
      index += 1;
    } else if (/\s/.test(char)) {
      index += 1;
    } else if (char === "'" || char === '"') {
      let value = '';
      index += 1;
      while (index < text.length && text[index] !== char) {
        if (text[index] === '\\' && index + 1 < text.length) index += 1;
        value += text[index];
        index += 1;
      }
      index += 1;
      (stack[stack.length - 1] as Sexp[]).push(value);
    } else {
      const match = /^[^\s()'"]+/.exec(text.slice(index)) as RegExpExecArray;
      (stack[stack.length - 1] as Sexp[]).push(match[0]);
      index += match[0].length;
    }
  }
  if (stack.length !== 1) throw new Error('Unbalanced s-expression: a list is not closed.');
  return stack[0] as Sexp[];
}

/** Returns the value of the first `(key value)` child of a list, when it is an atom. */
export function sexpValue(list: Sexp, key: string): string | undefined {
  if (!Array.isArray(list)) return undefined;
  for (const child of list) {
    if (Array.isArray(child) && child[0] === key && typeof child[1] === 'string') return child[1];
  }
  return undefined;
}

/** Finds every list anywhere under `root` whose head is `key`. */
export function sexpFindAll(root: Sexp, key: string): Sexp[][] {
  const found: Sexp[][] = [];
  const visit = (node: Sexp): void => {
    if (!Array.isArray(node)) return;
    if (node[0] === key) found.push(node);
    for (const child of node) visit(child);
  };
  visit(root);
  return found;
}
