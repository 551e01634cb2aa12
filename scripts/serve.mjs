// Tiny static file server for the repository root (node:http only). `node scripts/serve.mjs`
import http from 'node:http';
import { createReadStream, existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/plain; charset=utf-8',
  '.safetensors': 'application/octet-stream',
  '.npy': 'application/octet-stream',
};

/** Maps a URL path to a file under root, or null if it escapes the root. */
function resolvePath(root, urlPath) {
  let p;
  try { p = decodeURIComponent(urlPath.split('?')[0].split('#')[0]); } catch { return null; }
  if (p.includes('\0')) return null;
  if (p.endsWith('/')) p += 'index.html';
  const file = normalize(join(root, p));
  return file === root || file.startsWith(root + sep) ? file : null;
}

/**
 * The data directory, one answer for the server, the tests and the benchmarks: $CONVLENS_DATA_DIR
 * (read per request), else ./data (what `npm run download-data` fills) when it is there, else
 * ../shared/data beside the repository when that is there, else ./data.
 */
export function dataDir() {
  if (process.env.CONVLENS_DATA_DIR) return resolve(process.env.CONVLENS_DATA_DIR);
  const own = join(ROOT, 'data');
  const shared = resolve(ROOT, '../shared/data');
  return existsSync(own) || !existsSync(shared) ? own : shared;
}

async function handle(root, req, res, { prefix = '/', headers = {} } = {}) {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD' }).end();
    return;
  }
  // Served under a sub-path (`prefix`, as a course site would): nothing outside it.
  const full = req.url ?? '/';
  if (!full.startsWith(prefix)) {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    return;
  }
  const url = `/${full.slice(prefix.length)}`;
  const file = url.startsWith('/data/') ? resolvePath(dataDir(), url.slice(5)) : resolvePath(root, url);
  if (!file) {
    res.writeHead(403, { 'content-type': 'text/plain' }).end('forbidden\n');
    return;
  }
  const info = await stat(file).catch(() => null);
  if (!info?.isFile()) {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    return;
  }
  res.writeHead(200, {
    'content-type': MIME[extname(file).toLowerCase()] ?? 'application/octet-stream',
    'content-length': info.size,
    'cache-control': 'no-store',
    ...headers,
  });
  if (req.method === 'HEAD') res.end();
  else createReadStream(file).pipe(res);
}

function listen(server, port) {
  return new Promise((ok, fail) => {
    const onError = (e) => { server.off('listening', onListening); fail(e); };
    const onListening = () => { server.off('error', onError); ok(); };
    server.once('error', onError).once('listening', onListening).listen(port, '127.0.0.1');
  });
}

/** Starts the server; port 0 picks a free one. If `port` is busy the next ports are tried. */
export async function serve({ port = Number(process.env.PORT ?? 8080), root = ROOT, tries = 20, prefix = '/', headers = {} } = {}) {
  const server = http.createServer((req, res) => {
    handle(root, req, res, { prefix, headers }).catch((e) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`${e.message}\n`);
    });
  });
  for (let i = 0; ; i++) {
    try {
      await listen(server, port === 0 ? 0 : port + i);
      break;
    } catch (e) {
      if (e.code !== 'EADDRINUSE' || port === 0 || i + 1 >= tries) throw e;
    }
  }
  const actual = server.address().port;
  return {
    url: `http://localhost:${actual}/`,
    port: actual,
    close: () => new Promise((ok) => { server.closeAllConnections?.(); server.close(() => ok()); }),
  };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { url } = await serve();
  console.log(`ConvLens: ${url}`);
}
