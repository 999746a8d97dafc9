/** The dashboard's login page: one form that posts an API token to /ui/login. */

function escapeHtml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** Returns the page; `next` is where to go after the login, `error` a message to show. */
export function loginPage(next: string, error?: string): string {
  const message = error === undefined ? '' : `<p class="error" role="alert">${escapeHtml(error)}</p>`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ferry dashboard: log in</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 28rem; margin: 4rem auto; padding: 0 1rem; }
  label, input, button { display: block; width: 100%; box-sizing: border-box; font-size: 1rem; }
  input { margin: 0.5rem 0 1rem; padding: 0.5rem; }
  button { padding: 0.5rem; }
  .error { color: #a00; }
</style>
</head>
<body>
<h1>ferry dashboard</h1>
${message}
<form method="post" action="/ui/login">
  <label for="token">API token (one with dashboard access)</label>
  <input id="token" name="token" type="password" autocomplete="off" required>
  <input type="hidden" name="next" value="${escapeHtml(next)}">
  <button type="submit">Log in</button>
</form>
</body>
</html>
`;
}
