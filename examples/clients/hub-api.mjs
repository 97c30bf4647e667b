// What the example clients share: the hub's address and token from the environment, and a JSON call that
// fails loudly with the hub's error. SWITCHBOARD_URL defaults to http://127.0.0.1:3000.

export const base = (process.env.SWITCHBOARD_URL ?? 'http://127.0.0.1:3000').replace(/\/$/, '');
export const token = process.env.SWITCHBOARD_API_TOKEN;
if (!token) {
  console.error('Set SWITCHBOARD_API_TOKEN (the hub prints it on first start; also in data/api-token).');
  process.exit(2);
}

export async function api(method, path, body) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`${method} ${path} → ${res.status} ${JSON.stringify(json.error ?? json)}`);
  return json;
}
